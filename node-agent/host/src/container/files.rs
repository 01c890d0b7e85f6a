//! The files of one container in its workload directory (`<state root>/workloads/<id>/`).
//!
//! | file | written by | what |
//! |---|---|---|
//! | `config.json` | `start` | the OCI bundle's config (the rootfs is an absolute path) |
//! | `meta.json` | `start` | labels, creation time |
//! | `shim.log` | the shim's stderr | the shim's own errors |
//! | `shim.json` | shim | the shim's pid and start time (to wait for or kill it) |
//! | `started.json` | shim | the init pid and when it started |
//! | `exit.json` | shim | exit code or signal, and when |
//! | `output.log`, `output.log.1` | shim | the container's stdout and stderr, rotated |
//!
//! The config and the output may hold the container's secrets: every file is 0600.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::sys;

pub(super) const META: &str = "meta.json";
pub(super) const SHIM_LOG: &str = "shim.log";
pub(super) const SHIM: &str = "shim.json";
pub(super) const STARTED: &str = "started.json";
pub(super) const EXIT: &str = "exit.json";
pub(super) const OUTPUT: &str = "output.log";
pub(super) const OUTPUT_OLD: &str = "output.log.1";

/// When `output.log` would pass this size it becomes `output.log.1` (replacing the older one),
/// so a container's output takes at most twice this much.
pub(super) const OUTPUT_ROTATE: u64 = 512 * 1024;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Meta {
    pub labels: BTreeMap<String, String>,
    pub created_ms: u64,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ShimRecord {
    pub pid: i32,
    pub start_time: u64,
}

impl ShimRecord {
    /// The recorded shim still runs (and its pid was not reused).
    pub fn is_live(&self) -> bool {
        sys::proc_stat(self.pid).is_some_and(|s| s.is_live() && s.start_time == self.start_time)
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Started {
    pub pid: i32,
    pub at_ms: u64,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Exit {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub at_ms: u64,
}

/// Reads a JSON record; `Ok(None)` when the file does not exist.
pub(super) fn read<T: serde::de::DeserializeOwned>(
    dir: &Path,
    name: &str,
) -> io::Result<Option<T>> {
    match fs::read(dir.join(name)) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(io::Error::other),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

pub(super) fn write<T: Serialize>(dir: &Path, name: &str, value: &T) -> io::Result<()> {
    let bytes = serde_json::to_vec(value).map_err(io::Error::other)?;
    sys::write_atomic(&dir.join(name), &bytes)
}

/// Appends a container's output to `output.log`, rotating it at [`OUTPUT_ROTATE`].
pub(super) struct OutputLog {
    path: PathBuf,
    old: PathBuf,
    file: fs::File,
    size: u64,
}

impl OutputLog {
    pub fn open(dir: &Path) -> io::Result<OutputLog> {
        let path = dir.join(OUTPUT);
        let file = sys::open_private(&path, fs::OpenOptions::new().append(true))?;
        let size = file.metadata()?.len();
        Ok(OutputLog {
            path,
            old: dir.join(OUTPUT_OLD),
            file,
            size,
        })
    }

    pub fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.size > 0 && self.size + bytes.len() as u64 > OUTPUT_ROTATE {
            fs::rename(&self.path, &self.old)?;
            self.file = sys::open_private(&self.path, fs::OpenOptions::new().append(true))?;
            self.size = 0;
        }
        self.file.write_all(bytes)?;
        self.size += bytes.len() as u64;
        Ok(())
    }
}

/// The last `lines` lines of a container's output (from the older file too if needed).
pub(super) fn output_tail(dir: &Path, lines: usize) -> String {
    let mut text = tail_bytes(&dir.join(OUTPUT), 4096);
    if text.iter().filter(|b| **b == b'\n').count() <= lines {
        let mut older = tail_bytes(&dir.join(OUTPUT_OLD), 4096);
        older.extend_from_slice(&text);
        text = older;
    }
    let text = String::from_utf8_lossy(&text);
    let all: Vec<&str> = text.trim_end_matches('\n').split('\n').collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn tail_bytes(path: &Path, max: u64) -> Vec<u8> {
    let Ok(mut f) = fs::File::open(path) else {
        return Vec::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let mut buf = Vec::new();
    if f.seek(SeekFrom::Start(len.saturating_sub(max))).is_ok() {
        let _ = f.take(max).read_to_end(&mut buf);
    }
    buf
}

/// The last lines of a text file (the shim's log, for errors).
pub(super) fn file_tail(path: &Path, lines: usize) -> String {
    let bytes = tail_bytes(path, 4096);
    let text = String::from_utf8_lossy(&bytes);
    let all: Vec<&str> = text.trim().lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_rotates_and_tail_spans_both_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = OutputLog::open(dir.path()).unwrap();
        let line = vec![b'x'; 1023];
        for _ in 0..(OUTPUT_ROTATE / 1024 * 3) {
            log.write(&line).unwrap();
            log.write(b"\n").unwrap();
        }
        log.write(b"last one\n").unwrap();
        let size = |n| fs::metadata(dir.path().join(n)).unwrap().len();
        assert!(size(OUTPUT) <= OUTPUT_ROTATE);
        assert!(size(OUTPUT_OLD) <= OUTPUT_ROTATE);
        assert!(output_tail(dir.path(), 3).ends_with("\nlast one"));

        // Right after a rotation the new file has one line; the tail takes the rest from the old.
        let dir = tempfile::tempdir().unwrap();
        let mut log = OutputLog::open(dir.path()).unwrap();
        log.write(b"a\nb\n").unwrap();
        log.write(&vec![b'y'; OUTPUT_ROTATE as usize]).unwrap();
        log.write(b"\nc\n").unwrap();
        let tail = output_tail(dir.path(), 3);
        assert!(tail.starts_with("b\n") || tail.contains("\nc"), "{tail:?}");
        assert!(tail.ends_with("\nc"), "{tail:?}");
    }

    #[test]
    fn tail_of_missing_output_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(output_tail(dir.path(), 3), "");
    }
}
