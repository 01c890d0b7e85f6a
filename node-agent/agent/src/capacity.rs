//! What this machine offers: logical CPUs, memory less a reserve, the storage filesystem less a
//! reserve.

use std::path::Path;

use zos_contracts::Capacity;

use crate::config::{CapacityOverride, Reserve};

/// What the node offers: what is detected, with the configured overrides applied. An override
/// above what the machine has is offered as configured, with a warning.
pub fn offered(
    storage_dir: &Path,
    reserve: &Reserve,
    overrides: &CapacityOverride,
) -> anyhow::Result<Capacity> {
    let detected = detect(storage_dir, reserve)?;
    let pick = |name: &str, found: u64, given: Option<u64>| match given {
        Some(v) if v > found => {
            tracing::warn!(
                resource = name,
                configured = v,
                detected = found,
                "offering more than detected"
            );
            v
        }
        Some(v) => v,
        None => found,
    };
    Ok(Capacity {
        cpu_millis: pick("cpu_millis", detected.cpu_millis, overrides.cpu_millis),
        mru: pick("mru", detected.mru, overrides.mru),
        sru: pick("sru", detected.sru, overrides.sru),
        hru: detected.hru,
    })
}

/// Reads the machine's capacity. `storage_dir` must exist.
pub fn detect(storage_dir: &Path, reserve: &Reserve) -> anyhow::Result<Capacity> {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get() as u64)
        .unwrap_or(1);
    let meminfo = std::fs::read_to_string("/proc/meminfo")?;
    let total =
        mem_total(&meminfo).ok_or_else(|| anyhow::anyhow!("/proc/meminfo has no MemTotal line"))?;
    let fs = rustix::fs::statvfs(storage_dir)
        .map_err(|e| anyhow::anyhow!("statvfs {}: {e}", storage_dir.display()))?;
    let storage = fs.f_blocks.saturating_mul(fs.f_frsize);
    Ok(Capacity {
        cpu_millis: cpus * 1000,
        mru: total.saturating_sub(reserve.memory),
        sru: storage.saturating_sub(reserve.storage),
        hru: 0,
    })
}

/// `MemTotal` of `/proc/meminfo`, in bytes.
fn mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_mem_total() {
        let text = "MemTotal:       24563812 kB\nMemFree:        1 kB\n";
        assert_eq!(mem_total(text), Some(24563812 * 1024));
        assert_eq!(mem_total("MemFree: 3 kB\n"), None);
    }

    #[test]
    fn overrides_replace_what_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let reserve = Reserve::default();
        let detected = detect(dir.path(), &reserve).unwrap();
        let o = CapacityOverride {
            cpu_millis: Some(64_000),
            mru: None,
            sru: Some(1 << 30),
        };
        let c = offered(dir.path(), &reserve, &o).unwrap();
        assert_eq!(
            (c.cpu_millis, c.mru, c.sru),
            (64_000, detected.mru, 1 << 30)
        );
    }

    #[test]
    fn this_machine_has_capacity_and_the_reserve_is_taken_off() {
        let dir = tempfile::tempdir().unwrap();
        let none = Reserve {
            memory: 0,
            storage: 0,
        };
        let full = detect(dir.path(), &none).unwrap();
        assert!(
            full.cpu_millis >= 1000 && full.mru > 0 && full.sru > 0,
            "{full:?}"
        );
        let some = Reserve {
            memory: 1 << 20,
            storage: 1 << 20,
        };
        let less = detect(dir.path(), &some).unwrap();
        assert_eq!(less.mru, full.mru - (1 << 20));
        assert_eq!(less.sru, full.sru - (1 << 20));
        assert_eq!(less.cpu_millis, full.cpu_millis);
    }
}
