//! A small blocking client of QEMU's machine protocol (QMP): JSON lines over the VM's unix socket.
//! A connection is made per operation: QEMU serves one QMP client at a time on a socket, and an
//! agent that restarts must find every VM again with nothing kept in memory.

use std::{
    io::{BufRead, BufReader, Write},
    os::unix::net::UnixStream,
    path::Path,
    time::Duration,
};

use serde_json::{json, Value};

/// Why a QMP exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum QmpError {
    /// The socket could not be reached, read or written.
    #[error("QMP socket: {0}")]
    Io(#[from] std::io::Error),
    /// QEMU said something that is not QMP.
    #[error("QMP: unexpected answer {0}")]
    Protocol(String),
    /// QEMU refused the command.
    #[error("QMP {command}: {class}: {desc}")]
    Refused {
        /// The command.
        command: String,
        /// QEMU's error class.
        class: String,
        /// QEMU's words.
        desc: String,
    },
}

/// A QMP session, in command mode.
pub struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Qmp {
    /// Connects to `socket`, reads the greeting and enters command mode. Every read and write
    /// waits at most `timeout`.
    pub fn connect(socket: &Path, timeout: Duration) -> Result<Qmp, QmpError> {
        let stream = UnixStream::connect(socket)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        let mut qmp = Qmp {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
        };
        let greeting = qmp.read()?;
        if greeting.get("QMP").is_none() {
            return Err(QmpError::Protocol(greeting.to_string()));
        }
        qmp.execute("qmp_capabilities", None)?;
        Ok(qmp)
    }

    /// Runs `command` (with `arguments`) and returns its `return` value. Events that arrive
    /// meanwhile are skipped.
    pub fn execute(&mut self, command: &str, arguments: Option<Value>) -> Result<Value, QmpError> {
        let mut request = json!({ "execute": command });
        if let Some(arguments) = arguments {
            request["arguments"] = arguments;
        }
        let mut line = request.to_string();
        line.push('\n');
        self.writer.write_all(line.as_bytes())?;
        loop {
            let answer = self.read()?;
            if let Some(value) = answer.get("return") {
                return Ok(value.clone());
            }
            if let Some(error) = answer.get("error") {
                let text = |k: &str| error[k].as_str().unwrap_or_default().to_string();
                return Err(QmpError::Refused {
                    command: command.to_string(),
                    class: text("class"),
                    desc: text("desc"),
                });
            }
            if answer.get("event").is_none() {
                return Err(QmpError::Protocol(answer.to_string()));
            }
        }
    }

    /// The run state QEMU reports (`running`, `paused`, `shutdown`, `guest-panicked`, …).
    pub fn status(&mut self) -> Result<String, QmpError> {
        let status = self.execute("query-status", None)?;
        status["status"]
            .as_str()
            .map(String::from)
            .ok_or_else(|| QmpError::Protocol(status.to_string()))
    }

    fn read(&mut self) -> Result<Value, QmpError> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(QmpError::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        serde_json::from_str(&line).map_err(|_| QmpError::Protocol(line.trim().to_string()))
    }
}
