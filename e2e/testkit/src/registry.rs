//! A real OCI registry (Debian's `docker-registry`) on a free loopback port, with its storage in
//! a temporary directory; killed with its process group on drop.

use std::{
    fs,
    io::{Read, Write},
    net::TcpStream,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// Where Debian installs the registry.
pub const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

/// See the module documentation.
pub struct Registry {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    child: Child,
    dir: tempfile::TempDir,
}

fn answers_v2(addr: &str) -> bool {
    let Ok(addr_parsed) = addr.parse() else {
        return false;
    };
    let Ok(mut s) = TcpStream::connect_timeout(&addr_parsed, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(format!("GET /v2/ HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.") && &head[9..12] == b"200"
}

impl Registry {
    /// Starts a registry on a free port; panics (failing the test, with the reason) if the
    /// binary is missing or it does not come up.
    pub fn start() -> Registry {
        Registry::start_on(None)
    }

    /// Starts a registry on `127.0.0.1:port`, or on a free port.
    pub fn start_on(fixed: Option<u16>) -> Registry {
        assert!(
            Path::new(REGISTRY_BIN).is_file(),
            "{REGISTRY_BIN} is missing: these tests need a real OCI registry \
             (Debian package docker-registry; scripts/setup.sh installs it)"
        );
        // The port is free when probed but could be taken before the registry binds it: retry.
        for _ in 0..5 {
            let dir = tempfile::tempdir().expect("temporary directory");
            let port = fixed.unwrap_or_else(|| crate::free_port().expect("a free port"));
            let addr = format!("127.0.0.1:{port}");
            let config = dir.path().join("config.yml");
            fs::write(
                &config,
                format!(
                    "version: 0.1\n\
                     log:\n  level: warn\n  accesslog:\n    disabled: true\n\
                     storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
                     http:\n  addr: {addr}\n  secret: zos-tests\n",
                    dir.path().join("data").display()
                ),
            )
            .expect("registry config");
            let log = fs::File::create(dir.path().join("registry.log")).expect("registry log");
            let child = Command::new(REGISTRY_BIN)
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log"))
                .stderr(log)
                .process_group(0)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {REGISTRY_BIN}: {e}"));
            let mut registry = Registry { addr, child, dir };
            let deadline = Instant::now() + Duration::from_secs(30);
            let up = loop {
                if answers_v2(&registry.addr) {
                    break true;
                }
                if matches!(registry.child.try_wait(), Ok(Some(_))) {
                    break false;
                }
                assert!(
                    Instant::now() < deadline,
                    "the registry did not answer in 30 s"
                );
                std::thread::sleep(Duration::from_millis(20));
            };
            if up {
                return registry;
            }
            let log = registry.log();
            assert!(
                log.contains("address already in use"),
                "registry exited at start:\n{log}"
            );
            assert!(
                fixed.is_none(),
                "{} is in use by another program",
                registry.addr
            );
        }
        panic!("could not find a free port for the registry");
    }

    /// What the registry logged.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// Where the registry keeps the blob with this sha256 (manifests are blobs too).
    pub fn blob_path_hex(&self, sha256_hex: &str) -> PathBuf {
        self.dir
            .path()
            .join("data/docker/registry/v2/blobs/sha256")
            .join(&sha256_hex[..2])
            .join(sha256_hex)
            .join("data")
    }

    /// PUTs a manifest under `repository:tag`.
    pub fn put_manifest_raw(&self, repository: &str, tag: &str, media_type: &str, body: &[u8]) {
        let mut s = TcpStream::connect(&self.addr).expect("registry connection");
        write!(
            s,
            "PUT /v2/{repository}/manifests/{tag} HTTP/1.0\r\nHost: {}\r\nContent-Type: {media_type}\r\nContent-Length: {}\r\n\r\n",
            self.addr,
            body.len()
        )
        .expect("request");
        s.write_all(body).expect("body");
        let mut response = String::new();
        s.read_to_string(&mut response).expect("response");
        assert!(
            response.starts_with("HTTP/1.0 201") || response.starts_with("HTTP/1.1 201"),
            "manifest PUT failed: {response}"
        );
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        use nix::{sys::signal, unistd::Pid};
        let _ = signal::killpg(
            Pid::from_raw(self.child.id() as i32),
            signal::Signal::SIGKILL,
        );
        let _ = self.child.wait();
    }
}
