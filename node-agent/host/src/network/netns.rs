//! Named network namespaces (a bind mount of the namespace on a file, as `ip netns` does) and
//! netlink work done inside one.

use std::{
    fs::File,
    future::Future,
    io,
    path::{Path, PathBuf},
};

use nix::{
    mount::{mount, umount2, MntFlags, MsFlags},
    sched::{setns, unshare, CloneFlags},
};

use super::NetError;

/// Creates a network namespace kept alive by a bind mount on `path`, unless one is there.
pub fn create(path: &Path) -> Result<(), NetError> {
    if is_mounted(path)? {
        return Ok(());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| NetError::io("making the namespace dir", e))?;
    }
    File::create(path).map_err(|e| NetError::io("making the namespace file", e))?;
    // A thread of its own: the new namespace is the thread's, which ends after the mount.
    let target = path.to_path_buf();
    std::thread::spawn(move || -> Result<(), NetError> {
        unshare(CloneFlags::CLONE_NEWNET).map_err(|e| NetError::sys("unshare", e))?;
        mount(
            Some(Path::new("/proc/thread-self/ns/net")),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| NetError::sys("bind-mounting the namespace", e))
    })
    .join()
    .map_err(|_| NetError::Panicked)?
}

/// Removes the namespace at `path`: what lives only in it (its links, a WireGuard interface and
/// so its wireguard-go) goes with it once nothing else holds it.
pub fn remove(path: &Path) -> Result<(), NetError> {
    if is_mounted(path)? {
        umount2(path, MntFlags::MNT_DETACH).map_err(|e| NetError::sys("unmounting", e))?;
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(NetError::io("removing", e)),
        _ => Ok(()),
    }
}

/// Whether a namespace is mounted on `path` (a plain file there is a leftover of a crash).
pub fn is_mounted(path: &Path) -> Result<bool, NetError> {
    let Ok(meta) = std::fs::metadata(path) else {
        return Ok(false);
    };
    // A bind-mounted namespace lives on the nsfs filesystem, whose device is not the directory's.
    let dir = std::fs::metadata(path.parent().unwrap_or(Path::new("/")))
        .map_err(|e| NetError::io("reading the namespace dir", e))?;
    use std::os::unix::fs::MetadataExt;
    Ok(meta.dev() != dir.dev())
}

/// Runs `work` with a netlink connection inside the namespace at `ns` (the caller's own when
/// `None`), on a thread of its own so that no other thread changes namespace.
pub fn with_netlink<R, F, Fut>(ns: Option<&Path>, work: F) -> Result<R, NetError>
where
    R: Send,
    F: FnOnce(rtnetlink::Handle) -> Fut + Send,
    Fut: Future<Output = Result<R, NetError>>,
{
    std::thread::scope(|s| {
        s.spawn(move || {
            if let Some(ns) = ns {
                enter(ns)?;
            }
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_io()
                .build()
                .map_err(|e| NetError::io("starting a netlink runtime", e))?;
            runtime.block_on(async move {
                let (connection, handle, _) =
                    rtnetlink::new_connection().map_err(|e| NetError::io("opening netlink", e))?;
                tokio::spawn(connection);
                work(handle).await
            })
        })
        .join()
        .map_err(|_| NetError::Panicked)?
    })
}

/// Runs `work` on a thread inside the namespace at `ns`.
pub fn within<R: Send>(
    ns: &Path,
    work: impl FnOnce() -> Result<R, NetError> + Send,
) -> Result<R, NetError> {
    std::thread::scope(|s| {
        s.spawn(move || {
            enter(ns)?;
            work()
        })
        .join()
        .map_err(|_| NetError::Panicked)?
    })
}

/// Moves the calling thread into the namespace at `ns`.
fn enter(ns: &Path) -> Result<(), NetError> {
    let file = File::open(ns).map_err(|e| NetError::io(&format!("opening {}", ns.display()), e))?;
    setns(file, CloneFlags::CLONE_NEWNET).map_err(|e| NetError::sys("entering the namespace", e))
}

/// A namespace's file, opened to hand its descriptor to netlink.
pub fn open(path: &Path) -> Result<File, NetError> {
    File::open(path).map_err(|e| NetError::io(&format!("opening {}", path.display()), e))
}

/// The namespace files under `dir` whose names start with `prefix`.
pub fn list(dir: &Path, prefix: &str) -> Result<Vec<PathBuf>, NetError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(NetError::io("listing namespaces", e)),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| NetError::io("listing namespaces", e))?;
        if entry.file_name().to_string_lossy().starts_with(prefix) {
            found.push(entry.path());
        }
    }
    found.sort();
    Ok(found)
}
