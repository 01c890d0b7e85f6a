//! The cgroups of containers and VMs. A container's are made by libcontainer and read and
//! removed here; a VM's are made here ([`Hierarchies::create_limited`]).
//!
//! The cgroup of workload `<id>` is `/zos/<id>` below the root of every hierarchy: one directory
//! per v1 controller on a v1 or hybrid host, one directory on a v2 host.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::sys;

/// The cgroup hierarchies mounted on this host.
#[derive(Debug, Clone)]
pub(crate) struct Hierarchies {
    /// v1 hierarchies: mount point and the controllers bound to it.
    v1: Vec<(PathBuf, Vec<String>)>,
    /// cgroup2 mounts (the unified hierarchy; on a hybrid host it has no controllers).
    v2: Vec<PathBuf>,
}

/// Resource use read from the cgroup files.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Usage {
    pub cpu_ns: u64,
    pub memory_current: u64,
    pub memory_peak: u64,
}

impl Hierarchies {
    pub fn detect() -> io::Result<Hierarchies> {
        let mut h = Hierarchies {
            v1: Vec::new(),
            v2: Vec::new(),
        };
        for m in sys::self_mountinfo()? {
            match m.fs_type.as_str() {
                "cgroup" => {
                    let controllers = m
                        .super_options
                        .split(',')
                        .filter(|o| !matches!(*o, "rw" | "ro") && !o.contains('='))
                        .map(str::to_owned)
                        .collect();
                    h.v1.push((m.mount_point, controllers));
                }
                "cgroup2" => h.v2.push(m.mount_point),
                _ => {}
            }
        }
        Ok(h)
    }

    /// v1 controllers are in use (v1 or hybrid host): libcgroups then uses v1 for everything.
    fn is_v1(&self) -> bool {
        self.v1.iter().any(|(_, c)| !c.is_empty())
    }

    fn v1_dir(&self, controller: &str, container_id: &str) -> Option<PathBuf> {
        self.v1
            .iter()
            .find(|(_, c)| c.iter().any(|c| c == controller))
            .map(|(root, _)| leaf(root, container_id))
    }

    fn v2_dir(&self, container_id: &str) -> Option<PathBuf> {
        if self.is_v1() {
            return None;
        }
        self.v2.first().map(|root| leaf(root, container_id))
    }

    /// Every directory of the container's cgroup that exists.
    pub fn dirs(&self, container_id: &str) -> Vec<PathBuf> {
        self.v1
            .iter()
            .map(|(root, _)| root)
            .chain(self.v2.iter())
            .map(|root| leaf(root, container_id))
            .filter(|d| d.is_dir())
            .collect()
    }

    /// The processes in the container's cgroup (all hierarchies).
    pub fn procs(&self, container_id: &str) -> Vec<i32> {
        let mut pids: Vec<i32> = self
            .dirs(container_id)
            .iter()
            .filter_map(|d| fs::read_to_string(d.join("cgroup.procs")).ok())
            .flat_map(|s| {
                s.lines()
                    .filter_map(|l| l.trim().parse().ok())
                    .collect::<Vec<i32>>()
            })
            .collect();
        pids.sort_unstable();
        pids.dedup();
        pids
    }

    /// Frozen or not.
    pub fn is_frozen(&self, container_id: &str) -> bool {
        if let Some(d) = self.v1_dir("freezer", container_id) {
            return fs::read_to_string(d.join("freezer.state")).is_ok_and(|s| s.trim() != "THAWED");
        }
        if let Some(d) = self.v2_dir(container_id) {
            return fs::read_to_string(d.join("cgroup.freeze")).is_ok_and(|s| s.trim() == "1");
        }
        false
    }

    /// Thaws the cgroup if it exists (a frozen process cannot act on signals, not even die).
    pub fn thaw(&self, container_id: &str) -> io::Result<()> {
        if let Some(d) = self.v1_dir("freezer", container_id) {
            if d.is_dir() {
                fs::write(d.join("freezer.state"), "THAWED")?;
            }
        }
        if let Some(d) = self.v2_dir(container_id) {
            if d.is_dir() {
                fs::write(d.join("cgroup.freeze"), "0")?;
            }
        }
        Ok(())
    }

    /// Sends `signal` to every process in the cgroup.
    pub fn signal_all(&self, container_id: &str, signal: Signal) {
        for pid in self.procs(container_id) {
            let _ = kill(Pid::from_raw(pid), signal);
        }
    }

    /// Kills what is left in the cgroup and removes its directories. Fails if they stay busy.
    pub fn remove(&self, container_id: &str) -> Result<(), String> {
        let _ = self.thaw(container_id);
        let mut last_err = String::new();
        let gone = sys::wait_until(Duration::from_secs(5), || {
            self.signal_all(container_id, Signal::SIGKILL);
            let mut left = false;
            for d in self.dirs(container_id) {
                if let Err(e) = fs::remove_dir(&d) {
                    if e.kind() != io::ErrorKind::NotFound {
                        last_err = format!("rmdir {}: {e}", d.display());
                        left = true;
                    }
                }
            }
            !left
        });
        if gone {
            Ok(())
        } else {
            Err(format!(
                "{last_err} (processes left: {:?})",
                self.procs(container_id)
            ))
        }
    }

    /// Makes the cgroup of `id` in every hierarchy, limited to `cpu_millis` thousandths of a CPU,
    /// `memory` bytes (swap included where the host accounts it) and `pids` tasks. Memory a
    /// process used before it moves in stays charged where it was (on kernels that no longer
    /// move charges): move processes in as they start.
    pub fn create_limited(
        &self,
        id: &str,
        cpu_millis: u64,
        memory: u64,
        pids: u64,
    ) -> io::Result<()> {
        let write = |dir: &Path, file: &str, value: String| -> io::Result<()> {
            let path = dir.join(file);
            if path.exists() {
                fs::write(&path, value)
                    .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
            }
            Ok(())
        };
        let quota = cpu_millis.saturating_mul(100).max(1000);
        if self.is_v1() {
            // Only the controllers that limit and account (a new cpuset cgroup would have no
            // CPUs to run on until filled in).
            for controller in ["cpu", "cpuacct", "memory", "pids"] {
                if let Some(d) = self.v1_dir(controller, id) {
                    fs::create_dir_all(d)?;
                }
            }
            if let Some(d) = self.v1_dir("cpu", id) {
                write(&d, "cpu.cfs_period_us", "100000".into())?;
                write(&d, "cpu.cfs_quota_us", quota.to_string())?;
            }
            if let Some(d) = self.v1_dir("memory", id) {
                // Deprecated by newer kernels (EINVAL here, 6.18): best effort only.
                let _ = write(&d, "memory.move_charge_at_immigrate", "3".into());
                write(&d, "memory.limit_in_bytes", memory.to_string())?;
                write(&d, "memory.memsw.limit_in_bytes", memory.to_string())?;
            }
            if let Some(d) = self.v1_dir("pids", id) {
                write(&d, "pids.max", pids.to_string())?;
            }
        } else if let Some(d) = self.v2_dir(id) {
            fs::create_dir_all(&d)?;
            write(&d, "cpu.max", format!("{quota} 100000"))?;
            write(&d, "memory.max", memory.to_string())?;
            write(&d, "memory.swap.max", "0".into())?;
            write(&d, "pids.max", pids.to_string())?;
        }
        Ok(())
    }

    /// Moves process `pid` (all its threads) into the cgroup of `id`, in every hierarchy.
    pub fn add(&self, id: &str, pid: i32) -> io::Result<()> {
        for d in self.dirs(id) {
            let procs = d.join("cgroup.procs");
            fs::write(&procs, pid.to_string())
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", procs.display())))?;
        }
        Ok(())
    }

    /// CPU time and memory of the cgroup; `None` if it does not exist.
    pub fn usage(&self, container_id: &str) -> Option<Usage> {
        if self.is_v1() {
            let cpu = self.v1_dir("cpuacct", container_id)?;
            let mem = self.v1_dir("memory", container_id)?;
            if !cpu.is_dir() || !mem.is_dir() {
                return None;
            }
            Some(Usage {
                cpu_ns: read_u64(&cpu.join("cpuacct.usage")).unwrap_or(0),
                memory_current: read_u64(&mem.join("memory.usage_in_bytes")).unwrap_or(0),
                memory_peak: read_u64(&mem.join("memory.max_usage_in_bytes")).unwrap_or(0),
            })
        } else {
            let d = self.v2_dir(container_id)?;
            if !d.is_dir() {
                return None;
            }
            let usec = fs::read_to_string(d.join("cpu.stat"))
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find_map(|l| l.strip_prefix("usage_usec "))
                        .and_then(|v| v.trim().parse::<u64>().ok())
                })
                .unwrap_or(0);
            Some(Usage {
                cpu_ns: usec * 1000,
                memory_current: read_u64(&d.join("memory.current")).unwrap_or(0),
                memory_peak: read_u64(&d.join("memory.peak")).unwrap_or(0),
            })
        }
    }
}

fn leaf(root: &Path, container_id: &str) -> PathBuf {
    root.join("zos").join(container_id)
}

fn read_u64(path: &Path) -> Option<u64> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// `pid` is in the container's cgroup (guards signals against a reused pid).
pub(crate) fn in_cgroup(pid: i32, container_id: &str) -> bool {
    let suffix = format!("/zos/{container_id}");
    fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .is_ok_and(|s| s.lines().any(|l| l.ends_with(&suffix)))
}

/// Bytes received and sent on the interfaces of `pid`'s network namespace, loopback excluded.
pub(crate) fn net_bytes(pid: i32) -> (u64, u64) {
    let Ok(text) = fs::read_to_string(format!("/proc/{pid}/net/dev")) else {
        return (0, 0);
    };
    parse_net_dev(&text)
}

fn parse_net_dev(text: &str) -> (u64, u64) {
    let (mut rx, mut tx) = (0u64, 0u64);
    for line in text.lines().skip(2) {
        let Some((iface, counters)) = line.split_once(':') else {
            continue;
        };
        if iface.trim() == "lo" {
            continue;
        }
        let c: Vec<u64> = counters
            .split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect();
        if c.len() >= 9 {
            rx += c[0];
            tx += c[8];
        }
    }
    (rx, tx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn net_dev_without_lo() {
        let text = "Inter-|   Receive                                                |  Transmit\n \
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
lo:     100       1    0    0    0     0          0         0      100       1    0    0    0     0       0          0\n  \
eth0:    2000      10    0    0    0     0          0         0      300       3    0    0    0     0       0          0\n";
        assert_eq!(parse_net_dev(text), (2000, 300));
    }
}
