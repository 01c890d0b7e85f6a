//! The agent's local state, in rocksdb: the last block it processed, what it last saw of each
//! workload, consumption not yet reported, and the outbox of reports not yet on chain.
//!
//! Nothing here is the only copy of anything that matters: the chain has the contracts and the
//! host has the workloads. Losing this database costs at most one period of consumption (see
//! `metering`) and a few repeated state reports.
//!
//! Metering records and the outbox are written synced (the write returns once it is on disk), so
//! a power loss keeps every report and every sample counted; each such write is one batch, so a
//! crash keeps all of it or none.

use std::{
    collections::BTreeMap,
    path::Path,
    sync::atomic::{AtomicU64, Ordering},
};

use rocksdb::{ColumnFamilyDescriptor, Options, WriteBatch, WriteOptions, DB};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use zos_chain_client::H256;

const META: &str = "meta";
const WORKLOADS: &str = "workloads";
const METER: &str = "meter";
const OUTBOX: &str = "outbox";
const FAMILIES: [&str; 4] = [META, WORKLOADS, METER, OUTBOX];

const LAST_BLOCK: &[u8] = b"last_block";
/// Followed by a contract id (big endian): a cancel or deletion seen in a followed finalized block.
const ENDED: &[u8] = b"ended/";
const NEXT_SEQ: &[u8] = b"next_seq";
const GENESIS: &[u8] = b"genesis";

/// What the agent last saw of a workload, for `zos-agent status` and for reporting only changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadRecord {
    /// The contract.
    pub contract: u64,
    /// The workload's name.
    pub name: String,
    /// `container`, `volume`, …
    pub kind: String,
    /// The workload version it applies to.
    pub version: u32,
    /// The deployment version it belongs to.
    pub deployment_version: u32,
    /// `ok`, `error`, `paused`.
    pub status: Status,
    /// What went wrong, or what it is doing.
    pub message: String,
    /// Times it was restarted after an exit.
    pub restarts: u32,
    /// Unix seconds of the last change of status.
    pub since: u64,
}

/// A workload's status as the chain knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Runs as asked (or a volume exists).
    Ok,
    /// Does not run as asked; the message says why.
    Error,
    /// Paused while the contract is in its grace period.
    Paused,
    /// This node cannot run this kind of workload; the chain does not bill it.
    Unsupported,
}

impl Status {
    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Error => "error",
            Status::Paused => "paused",
            Status::Unsupported => "unsupported",
        }
    }
}

/// The local database.
pub struct State {
    db: DB,
    seq: std::sync::Mutex<u64>,
    synced_writes: AtomicU64,
}

/// A failure of the local database.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// rocksdb failed.
    #[error("local state: {0}")]
    Db(#[from] rocksdb::Error),
    /// A record cannot be decoded.
    #[error("local state: corrupt record {key}: {source}")]
    Corrupt {
        /// The record's key.
        key: String,
        /// Why.
        source: serde_json::Error,
    },
}

impl State {
    /// Opens (creating) the database at `path` for the running agent.
    pub fn open(path: &Path) -> Result<State, StateError> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        let cfs = FAMILIES
            .iter()
            .map(|name| ColumnFamilyDescriptor::new(*name, Options::default()));
        let db = DB::open_cf_descriptors(&opts, path, cfs)?;
        let seq = match db.get_cf(db.cf_handle(META).expect("family"), NEXT_SEQ)? {
            Some(v) => u64_of(&v),
            None => 0,
        };
        Ok(State {
            db,
            seq: std::sync::Mutex::new(seq),
            synced_writes: AtomicU64::new(0),
        })
    }

    /// Opens the database of a running (or stopped) agent for reading only: `zos-agent status`.
    pub fn open_read_only(path: &Path) -> Result<State, StateError> {
        let db = DB::open_cf_for_read_only(&Options::default(), path, FAMILIES, false)?;
        Ok(State {
            db,
            seq: std::sync::Mutex::new(0),
            synced_writes: AtomicU64::new(0),
        })
    }

    /// Writes `batch` at once and returns when it is on disk.
    fn write_synced(&self, batch: WriteBatch) -> Result<(), StateError> {
        let mut opts = WriteOptions::default();
        opts.set_sync(true);
        self.db.write_opt(batch, &opts)?;
        self.synced_writes.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Synced writes since the database was opened; each one is a single batch, all of which
    /// or none of which survives a crash.
    pub fn synced_writes(&self) -> u64 {
        self.synced_writes.load(Ordering::Relaxed)
    }

    fn cf(&self, name: &str) -> &rocksdb::ColumnFamily {
        self.db
            .cf_handle(name)
            .expect("column families are created at open")
    }

    /// The last block whose events were processed.
    pub fn last_block(&self) -> Result<Option<u64>, StateError> {
        Ok(self
            .db
            .get_cf(self.cf(META), LAST_BLOCK)?
            .map(|v| u64_of(&v)))
    }

    /// The genesis hash of the chain this node follows, once it has met it.
    pub fn genesis(&self) -> Result<Option<H256>, StateError> {
        Ok(self
            .db
            .get_cf(self.cf(META), GENESIS)?
            .and_then(|v| <[u8; 32]>::try_from(v.as_slice()).ok())
            .map(H256))
    }

    /// Pins the chain this node follows.
    pub fn set_genesis(&self, genesis: H256) -> Result<(), StateError> {
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(META), GENESIS, genesis.0);
        self.write_synced(batch)
    }

    /// Records block `n` as processed, with the contracts whose cancel or deletion it holds, in
    /// one synced batch: a contract is only ever torn down on the word of a block the node
    /// followed, or of an endpoint at least as far as this number.
    pub fn processed_block(&self, n: u64, ended: &[u64]) -> Result<(), StateError> {
        let mut batch = WriteBatch::default();
        for id in ended {
            batch.put_cf(self.cf(META), ended_key(*id), n.to_be_bytes());
        }
        batch.put_cf(self.cf(META), LAST_BLOCK, n.to_be_bytes());
        if ended.is_empty() {
            // Losing the last block number to a crash only repeats blocks: no sync needed.
            return Ok(self.db.write(batch)?);
        }
        self.write_synced(batch)
    }

    /// Records block `n` as processed, no contract ending in it.
    pub fn set_last_block(&self, n: u64) -> Result<(), StateError> {
        self.processed_block(n, &[])
    }

    /// The block in which a followed cancel or deletion of `contract` was seen, if one was.
    pub fn ended_in(&self, contract: u64) -> Result<Option<u64>, StateError> {
        Ok(self
            .db
            .get_cf(self.cf(META), ended_key(contract))?
            .map(|v| u64_of(&v)))
    }

    /// Forgets the cancel or deletion of `contract` once nothing of it is left on the host.
    pub fn forget_ended(&self, contract: u64) -> Result<(), StateError> {
        Ok(self.db.delete_cf(self.cf(META), ended_key(contract))?)
    }

    /// Every workload record, by contract then name.
    pub fn workloads(&self) -> Result<Vec<WorkloadRecord>, StateError> {
        self.values(WORKLOADS, &[])
    }

    /// The records of one contract's workloads.
    pub fn workloads_of(&self, contract: u64) -> Result<Vec<WorkloadRecord>, StateError> {
        self.values(WORKLOADS, &contract_prefix(contract))
    }

    /// Replaces the records of a contract's workloads.
    pub fn set_workloads(
        &self,
        contract: u64,
        records: &[WorkloadRecord],
    ) -> Result<(), StateError> {
        let cf = self.cf(WORKLOADS);
        let mut batch = WriteBatch::default();
        for key in self.keys(WORKLOADS, &contract_prefix(contract))? {
            batch.delete_cf(cf, key);
        }
        for r in records {
            batch.put_cf(cf, workload_key(contract, &r.name), json(r));
        }
        Ok(self.db.write(batch)?)
    }

    /// A metering record (see `metering`).
    pub fn meter<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StateError> {
        self.get(METER, key.as_bytes())
    }

    /// Every metering record under `prefix`.
    pub fn meters<T: DeserializeOwned>(
        &self,
        prefix: &str,
    ) -> Result<BTreeMap<String, T>, StateError> {
        let mut out = BTreeMap::new();
        for key in self.keys(METER, prefix.as_bytes())? {
            let k = String::from_utf8_lossy(&key).into_owned();
            if let Some(v) = self.get(METER, &key)? {
                out.insert(k, v);
            }
        }
        Ok(out)
    }

    /// Writes metering records and deletes others, in one synced write.
    pub fn write_meters<T: Serialize>(
        &self,
        put: &[(String, T)],
        delete: &[String],
    ) -> Result<(), StateError> {
        let cf = self.cf(METER);
        let mut batch = WriteBatch::default();
        for k in delete {
            batch.delete_cf(cf, k.as_bytes());
        }
        for (k, v) in put {
            batch.put_cf(cf, k.as_bytes(), json(v));
        }
        self.write_synced(batch)
    }

    /// Deletes metering records and puts (or replaces) outbox entries, in one synced write:
    /// either all of it happens or none.
    pub fn meters_to_outbox<T: Serialize>(
        &self,
        delete: &[String],
        entries: &[(Vec<u8>, T)],
    ) -> Result<(), StateError> {
        let mut batch = WriteBatch::default();
        for k in delete {
            batch.delete_cf(self.cf(METER), k.as_bytes());
        }
        for (key, entry) in entries {
            batch.put_cf(self.cf(OUTBOX), key, json(entry));
        }
        self.write_synced(batch)
    }

    /// A fresh, ever-growing sequence number (for outbox keys).
    pub fn next_seq(&self) -> Result<u64, StateError> {
        let mut seq = self.seq.lock().unwrap_or_else(|p| p.into_inner());
        let n = *seq;
        self.db
            .put_cf(self.cf(META), NEXT_SEQ, (n + 1).to_be_bytes())?;
        *seq = n + 1;
        Ok(n)
    }

    /// Every outbox entry, in key order.
    pub fn outbox<T: DeserializeOwned>(&self) -> Result<Vec<(Vec<u8>, T)>, StateError> {
        let mut out = Vec::new();
        for item in self
            .db
            .iterator_cf(self.cf(OUTBOX), rocksdb::IteratorMode::Start)
        {
            let (k, v) = item?;
            out.push((k.to_vec(), decode(&k, &v)?));
        }
        Ok(out)
    }

    /// One outbox entry.
    pub fn outbox_entry<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, StateError> {
        self.get(OUTBOX, key)
    }

    /// Puts (or replaces) an outbox entry, synced.
    pub fn put_outbox<T: Serialize>(&self, key: &[u8], entry: &T) -> Result<(), StateError> {
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(OUTBOX), key, json(entry));
        self.write_synced(batch)
    }

    /// Deletes an outbox entry, synced.
    pub fn delete_outbox(&self, key: &[u8]) -> Result<(), StateError> {
        let mut batch = WriteBatch::default();
        batch.delete_cf(self.cf(OUTBOX), key);
        self.write_synced(batch)
    }

    fn get<T: DeserializeOwned>(&self, cf: &str, key: &[u8]) -> Result<Option<T>, StateError> {
        self.db
            .get_cf(self.cf(cf), key)?
            .map(|v| decode(key, &v))
            .transpose()
    }

    fn keys(&self, cf: &str, prefix: &[u8]) -> Result<Vec<Vec<u8>>, StateError> {
        let mut keys = Vec::new();
        for item in self.db.prefix_iterator_cf(self.cf(cf), prefix) {
            let (k, _) = item?;
            if !k.starts_with(prefix) {
                break;
            }
            keys.push(k.to_vec());
        }
        Ok(keys)
    }

    fn values<T: DeserializeOwned>(&self, cf: &str, prefix: &[u8]) -> Result<Vec<T>, StateError> {
        let mut out = Vec::new();
        for item in self.db.prefix_iterator_cf(self.cf(cf), prefix) {
            let (k, v) = item?;
            if !k.starts_with(prefix) {
                break;
            }
            out.push(decode(&k, &v)?);
        }
        Ok(out)
    }
}

fn ended_key(contract: u64) -> Vec<u8> {
    [ENDED, &contract.to_be_bytes()[..]].concat()
}

fn contract_prefix(contract: u64) -> Vec<u8> {
    format!("{contract:020}/").into_bytes()
}

fn workload_key(contract: u64, name: &str) -> Vec<u8> {
    format!("{contract:020}/{name}").into_bytes()
}

fn json<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("records serialize")
}

fn decode<T: DeserializeOwned>(key: &[u8], v: &[u8]) -> Result<T, StateError> {
    serde_json::from_slice(v).map_err(|source| StateError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        source,
    })
}

fn u64_of(v: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    let n = v.len().min(8);
    b[8 - n..].copy_from_slice(&v[v.len() - n..]);
    u64::from_be_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(contract: u64, name: &str) -> WorkloadRecord {
        WorkloadRecord {
            contract,
            name: name.into(),
            kind: "container".into(),
            version: 1,
            deployment_version: 1,
            status: Status::Ok,
            message: String::new(),
            restarts: 0,
            since: 0,
        }
    }

    #[test]
    fn survives_reopen_and_reads_while_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        {
            let s = State::open(&path).unwrap();
            s.set_last_block(42).unwrap();
            s.set_workloads(1, &[record(1, "a"), record(1, "b")])
                .unwrap();
            s.set_workloads(12, &[record(12, "c")]).unwrap();
            assert_eq!(s.next_seq().unwrap(), 0);
            assert_eq!(s.next_seq().unwrap(), 1);
            // The status command reads while the agent has the database open.
            let ro = State::open_read_only(&path).unwrap();
            assert_eq!(ro.last_block().unwrap(), Some(42));
            assert_eq!(ro.workloads().unwrap().len(), 3);
        }
        let s = State::open(&path).unwrap();
        assert_eq!(s.last_block().unwrap(), Some(42));
        assert_eq!(s.next_seq().unwrap(), 2);
        let one: Vec<_> = s
            .workloads_of(1)
            .unwrap()
            .into_iter()
            .map(|r| r.name)
            .collect();
        assert_eq!(one, ["a", "b"]);
        // Replacing a contract's records drops the ones not given, and only those.
        s.set_workloads(1, &[record(1, "b")]).unwrap();
        assert_eq!(s.workloads_of(1).unwrap().len(), 1);
        assert_eq!(s.workloads_of(12).unwrap().len(), 1);
    }

    #[test]
    fn meters_move_to_the_outbox_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let s = State::open(&dir.path().join("db")).unwrap();
        s.write_meters(&[("p/1".to_string(), 5u64), ("p/2".to_string(), 7u64)], &[])
            .unwrap();
        let all: BTreeMap<String, u64> = s.meters("p/").unwrap();
        assert_eq!(all.len(), 2);
        let writes = s.synced_writes();
        s.meters_to_outbox(&["p/1".into(), "p/2".into()], &[(b"c/1".to_vec(), 12u64)])
            .unwrap();
        assert_eq!(s.synced_writes(), writes + 1);
        assert!(s.meters::<u64>("p/").unwrap().is_empty());
        let out: Vec<(Vec<u8>, u64)> = s.outbox().unwrap();
        assert_eq!(out, vec![(b"c/1".to_vec(), 12)]);
        s.delete_outbox(b"c/1").unwrap();
        assert!(s.outbox::<u64>().unwrap().is_empty());
    }
}
