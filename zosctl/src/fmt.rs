//! How amounts, sizes, times and chain objects read, for people and in JSON.

use serde_json::{json, Value};
use zos_chain_client::{
    api::runtime_types::pallet_deployments::types::{StateReport, WorkloadStatus},
    AccountId32, DispatchFailure,
};
use zos_contracts::{Capacity, Deployment, ImageRef, WorkloadSpec};

use crate::exit::invalid;

/// Decimals of the currency: 1 ZOS = 10^12 of its smallest unit.
pub const DECIMALS: u32 = 12;
/// One ZOS in the smallest unit.
pub const UNIT: u128 = 10u128.pow(DECIMALS);
/// The currency's symbol.
pub const SYMBOL: &str = "ZOS";

/// `1500000000000` → `1.5 ZOS`.
pub fn amount(v: u128) -> String {
    format!("{} {SYMBOL}", decimal(v))
}

/// `1500000000000` → `1.5`.
pub fn decimal(v: u128) -> String {
    let whole = v / UNIT;
    let frac = v % UNIT;
    if frac == 0 {
        return whole.to_string();
    }
    let frac = format!("{frac:0width$}", width = DECIMALS as usize);
    format!("{whole}.{}", frac.trim_end_matches('0'))
}

/// `1.5` → `1500000000000`; at most 12 decimals.
pub fn parse_amount(s: &str) -> anyhow::Result<u128> {
    let bad = || invalid(format!("{s:?} is not an amount of {SYMBOL} like 10 or 1.5"));
    let (whole, frac) = s.trim().split_once('.').unwrap_or((s.trim(), ""));
    if whole.is_empty() && frac.is_empty()
        || !whole.chars().all(|c| c.is_ascii_digit())
        || !frac.chars().all(|c| c.is_ascii_digit())
    {
        return Err(bad());
    }
    if frac.len() > DECIMALS as usize {
        return Err(invalid(format!("{s:?} has more than {DECIMALS} decimals")));
    }
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| bad())?
    };
    let frac_units: u128 = if frac.is_empty() {
        0
    } else {
        frac.parse::<u128>().map_err(|_| bad())? * 10u128.pow(DECIMALS - frac.len() as u32)
    };
    whole
        .checked_mul(UNIT)
        .and_then(|w| w.checked_add(frac_units))
        .ok_or_else(bad)
}

/// Bytes with a binary unit: `64MiB`, `1.5GiB`, `512B`.
pub fn bytes(v: u64) -> String {
    const UNITS: [(&str, u64); 4] = [
        ("TiB", 1 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
    ];
    for (unit, size) in UNITS {
        if v >= size {
            let whole = v / size;
            let hundredths = (v % size) * 100 / size;
            return if hundredths == 0 {
                format!("{whole}{unit}")
            } else {
                let h = format!("{hundredths:02}");
                format!("{whole}.{}{unit}", h.trim_end_matches('0'))
            };
        }
    }
    format!("{v}B")
}

/// Thousandths of a vCPU: `500` → `0.5`.
pub fn cpu(millis: u64) -> String {
    if millis.is_multiple_of(1000) {
        (millis / 1000).to_string()
    } else {
        let f = format!("{:03}", millis % 1000);
        format!("{}.{}", millis / 1000, f.trim_end_matches('0'))
    }
}

/// `2 vCPU, 64MiB memory, 1GiB SSD` (HDD only when there is some).
pub fn capacity(c: &Capacity) -> String {
    let mut s = format!(
        "{} vCPU, {} memory, {} SSD",
        cpu(c.cpu_millis),
        bytes(c.mru),
        bytes(c.sru)
    );
    if c.hru > 0 {
        s.push_str(&format!(", {} HDD", bytes(c.hru)));
    }
    s
}

/// A capacity in JSON.
pub fn capacity_json(c: &Capacity) -> Value {
    json!({ "cpu_millis": c.cpu_millis, "mru": c.mru, "sru": c.sru, "hru": c.hru })
}

/// A pinned image reference.
pub fn image(i: &ImageRef) -> String {
    format!(
        "{}@sha256:{}",
        String::from_utf8_lossy(&i.repository),
        hex::encode(i.digest)
    )
}

/// Unix seconds as `2025-01-31 12:00:00 UTC`.
pub fn time(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// `t` relative to `now`: `42s ago`, `3m ago`, `2h ago`, `5d ago`.
pub fn ago(now: u64, t: u64) -> String {
    let d = now.saturating_sub(t);
    match d {
        0..60 => format!("{d}s ago"),
        60..3600 => format!("{}m ago", d / 60),
        3600..86_400 => format!("{}h ago", d / 3600),
        _ => format!("{}d ago", d / 86_400),
    }
}

/// `Pallet::Error: docs`.
pub fn failure(f: &DispatchFailure) -> String {
    if f.docs.is_empty() {
        format!("{}::{}", f.pallet, f.error)
    } else {
        format!("{}::{}: {}", f.pallet, f.error, f.docs)
    }
}

/// `0x…` of a call hash.
pub fn hash(h: &[u8; 32]) -> String {
    format!("0x{}", hex::encode(h))
}

/// One line per workload: name, kind, and for containers and VMs the image, CPU and memory (and a
/// container's writable root filesystem).
pub struct WorkloadLine {
    /// Name.
    pub name: String,
    /// `container`, `vm`, `volume`, `disk`, `network`.
    pub kind: &'static str,
    /// Its own version.
    pub version: u32,
    /// Image, for containers and VMs.
    pub image: Option<String>,
    /// vCPUs, for containers and VMs.
    pub cpu: Option<String>,
    /// Memory or size, bytes.
    pub size: Option<u64>,
    /// A container's writable root filesystem, bytes.
    pub rootfs: Option<u64>,
}

/// The workloads of a deployment, for display.
pub fn workloads(d: &Deployment) -> Vec<WorkloadLine> {
    d.workloads
        .iter()
        .map(|w| {
            let (image, cpu_, size, rootfs) = match &w.spec {
                WorkloadSpec::Container(c) => (
                    Some(image(&c.image)),
                    Some(cpu(u64::from(c.cpu_millis))),
                    Some(c.memory),
                    Some(c.rootfs_size),
                ),
                WorkloadSpec::VirtualMachine(vm) => (
                    Some(image(&vm.image)),
                    Some(vm.vcpus.to_string()),
                    Some(vm.memory),
                    None,
                ),
                WorkloadSpec::Volume(v) => (None, None, Some(v.size), None),
                WorkloadSpec::Disk(d) => (None, None, Some(d.size), None),
                WorkloadSpec::Network(_) => (None, None, None, None),
            };
            WorkloadLine {
                name: String::from_utf8_lossy(&w.name).into_owned(),
                kind: w.spec.kind().as_str(),
                version: w.version,
                image,
                cpu: cpu_,
                size,
                rootfs,
            }
        })
        .collect()
}

impl WorkloadLine {
    /// `app  container  127.0.0.1:5000/x@sha256:…  cpu 0.5  memory 64MiB  rootfs 256MiB`.
    pub fn human(&self) -> String {
        let mut s = format!("{:<16} {:<9}", self.name, self.kind);
        if let Some(i) = &self.image {
            s.push_str(&format!(" {i}"));
        }
        if let Some(c) = &self.cpu {
            s.push_str(&format!("  cpu {c}"));
        }
        if let Some(b) = self.size {
            let what = if self.cpu.is_some() { "memory" } else { "size" };
            s.push_str(&format!("  {what} {}", bytes(b)));
        }
        if let Some(b) = self.rootfs {
            s.push_str(&format!("  rootfs {}", bytes(b)));
        }
        s
    }

    /// In JSON.
    pub fn json(&self) -> Value {
        json!({
            "name": self.name,
            "kind": self.kind,
            "version": self.version,
            "image": self.image,
            "cpu": self.cpu,
            "bytes": self.size,
            "rootfs_bytes": self.rootfs,
        })
    }
}

/// `ok`, `error`, `paused`, `deleted`, `unsupported` (the node cannot run this kind; not billed).
pub fn status(s: &WorkloadStatus) -> &'static str {
    match s {
        WorkloadStatus::Ok => "ok",
        WorkloadStatus::Error => "error",
        WorkloadStatus::Paused => "paused",
        WorkloadStatus::Deleted => "deleted",
        WorkloadStatus::Unsupported => "unsupported",
    }
}

/// A node's state report as (name, status, message).
pub fn report_lines(r: &StateReport) -> Vec<(String, &'static str, String)> {
    r.workloads
        .0
        .iter()
        .map(|w| {
            (
                String::from_utf8_lossy(&w.name.0).into_owned(),
                status(&w.status),
                String::from_utf8_lossy(&w.message.0).into_owned(),
            )
        })
        .collect()
}

/// An account, with a local name when one is known.
pub fn account(a: &AccountId32, name: Option<&str>) -> String {
    match name {
        Some(n) => format!("{a} ({n})"),
        None => a.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_round_trip() {
        assert_eq!(parse_amount("1.5").unwrap(), 1_500_000_000_000);
        assert_eq!(parse_amount("10").unwrap(), 10 * UNIT);
        assert_eq!(parse_amount("0.000000000001").unwrap(), 1);
        assert_eq!(parse_amount(".5").unwrap(), UNIT / 2);
        assert!(parse_amount("1.0000000000001").is_err());
        assert!(parse_amount("-1").is_err());
        assert!(parse_amount("abc").is_err());
        assert!(parse_amount(".").is_err());
        assert_eq!(amount(1_500_000_000_000), "1.5 ZOS");
        assert_eq!(decimal(1), "0.000000000001");
        assert_eq!(decimal(0), "0");
    }

    #[test]
    fn a_container_line_shows_its_root_filesystem() {
        let d = zos_contracts::file::DeploymentFile::from_yaml(
            "workloads:
  - name: app
    container: { image: 127.0.0.1:5000/x@sha256:3fbc632167424a6d997e74f52b878d7cc478225cffac6bc977eedfe51c7f4e79, cpu: 0.5, memory: 64MiB, rootfs: 1GiB }
  - name: data
    volume: { size: 2GiB }",
        )
        .unwrap()
        .into_deployment(None)
        .unwrap();
        let lines = workloads(&d);
        assert!(
            lines[0]
                .human()
                .ends_with("  cpu 0.5  memory 64MiB  rootfs 1GiB"),
            "{}",
            lines[0].human()
        );
        assert_eq!(lines[0].json()["rootfs_bytes"], 1u64 << 30);
        assert!(
            lines[1].human().ends_with("  size 2GiB"),
            "{}",
            lines[1].human()
        );
        assert!(lines[1].json()["rootfs_bytes"].is_null());
    }

    #[test]
    fn sizes_cpus_and_times_read_well() {
        assert_eq!(bytes(64 << 20), "64MiB");
        assert_eq!(bytes(3 << 29), "1.5GiB");
        assert_eq!(bytes(512), "512B");
        assert_eq!(cpu(500), "0.5");
        assert_eq!(cpu(2000), "2");
        assert_eq!(cpu(1250), "1.25");
        assert_eq!(time(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(time(1_709_210_096), "2024-02-29 12:34:56 UTC");
        assert_eq!(ago(100, 58), "42s ago");
        assert_eq!(ago(10_000, 0), "2h ago");
    }
}
