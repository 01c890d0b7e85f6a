//! `zos-agent status`: what this node runs, read from the agent's local database (the agent
//! listens on no socket).

use std::{
    path::Path,
    time::{SystemTime, UNIX_EPOCH},
};

use serde::Serialize;
use zos_image_store::Store;

use crate::{
    reports::outbox::Entry,
    state::{State, WorkloadRecord},
};

/// What `status` shows.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The node's account.
    pub node: String,
    /// The last finalized block the agent processed.
    pub last_block: Option<u64>,
    /// Reports not yet on chain.
    pub unsent_reports: usize,
    /// Every workload.
    pub workloads: Vec<WorkloadRecord>,
    /// What the image store holds; `None` before the agent made one.
    pub image_store: Option<ImageStore>,
}

/// What the image store holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ImageStore {
    /// Complete images.
    pub images: u64,
    /// Files stored (each content once per mode and owner it is used with).
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// The blocks they occupy on disk, bytes.
    pub disk_bytes: u64,
}

impl ImageStore {
    /// Reads the store at `root` without changing it; `None` if there is none.
    pub fn read(root: &Path) -> anyhow::Result<Option<ImageStore>> {
        let Some(store) = Store::open_existing(root)? else {
            return Ok(None);
        };
        let stats = store.stats()?;
        Ok(Some(ImageStore {
            images: stats.images,
            files: stats.objects,
            bytes: stats.bytes,
            disk_bytes: stats.disk_bytes,
        }))
    }
}

impl Report {
    /// Reads the database at `path` (read-only: the agent may be running).
    pub fn read(state: &State, node: String) -> anyhow::Result<Report> {
        Ok(Report {
            node,
            last_block: state.last_block()?,
            unsent_reports: state.outbox::<Entry>()?.len(),
            workloads: state.workloads()?,
            image_store: None,
        })
    }

    /// The same report, with what the image store at `root` holds.
    pub fn with_image_store(mut self, root: &Path) -> anyhow::Result<Report> {
        self.image_store = ImageStore::read(root)?;
        Ok(self)
    }

    /// As a table for people.
    pub fn to_text(&self) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut out = format!(
            "node        {}\nlast block  {}\nunsent      {} report(s)\nimages      {}\n\n",
            self.node,
            self.last_block
                .map_or("none yet".to_string(), |n| n.to_string()),
            self.unsent_reports,
            self.image_store
                .map_or("no image store yet".to_string(), |s| format!(
                    "{} image(s), {} file(s), {} ({} on disk)",
                    s.images,
                    s.files,
                    bytes(s.bytes),
                    bytes(s.disk_bytes)
                )),
        );
        if self.workloads.is_empty() {
            out.push_str("no workloads\n");
            return out;
        }
        let rows: Vec<[String; 7]> = self
            .workloads
            .iter()
            .map(|w| {
                [
                    w.contract.to_string(),
                    w.name.clone(),
                    w.kind.clone(),
                    format!("v{}", w.version),
                    w.status.as_str().to_string(),
                    format!(
                        "{} ({} restarts)",
                        ago(now.saturating_sub(w.since)),
                        w.restarts
                    ),
                    w.message.clone(),
                ]
            })
            .collect();
        let header = [
            "CONTRACT", "WORKLOAD", "KIND", "VERSION", "STATUS", "SINCE", "MESSAGE",
        ];
        let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
        for row in &rows {
            for (i, cell) in row.iter().enumerate() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let mut line = |cells: Vec<&str>| {
            let mut l = String::new();
            for (i, c) in cells.iter().enumerate() {
                if i + 1 == cells.len() {
                    l.push_str(c);
                } else {
                    l.push_str(&format!("{c:<w$}  ", w = widths[i]));
                }
            }
            out.push_str(l.trim_end());
            out.push('\n');
        };
        line(header.to_vec());
        for row in &rows {
            line(row.iter().map(|s| s.as_str()).collect());
        }
        out
    }
}

/// Bytes for people: `512 B`, `1.5 KiB`, `3.2 GiB`.
fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

fn ago(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Status;

    #[test]
    fn the_table_lists_every_workload_with_its_state() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::open(&dir.path().join("db")).unwrap();
        state.set_last_block(17).unwrap();
        let w = |name: &str, status, message: &str| WorkloadRecord {
            contract: 4,
            name: name.into(),
            kind: "container".into(),
            version: 2,
            deployment_version: 3,
            status,
            message: message.into(),
            restarts: 1,
            since: 0,
        };
        state
            .set_workloads(
                4,
                &[
                    w("web", Status::Ok, ""),
                    w("db", Status::Error, "image not found"),
                ],
            )
            .unwrap();
        let text = Report::read(&state, "5Node".into()).unwrap().to_text();
        assert!(text.contains("last block  17"), "{text}");
        assert!(text.contains("CONTRACT"), "{text}");
        let db = text.lines().find(|l| l.contains(" db ")).unwrap();
        assert!(
            db.contains("error") && db.contains("image not found") && db.starts_with('4'),
            "{text}"
        );
        assert!(
            text.lines()
                .any(|l| l.contains(" web ") && l.contains(" ok ")),
            "{text}"
        );
    }
}
