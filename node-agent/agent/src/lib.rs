//! The Zero-OS node agent. It has no shell and no inbound interface: it registers the node,
//! follows the chain, makes the host run what the contracts naming this node ask for, and
//! reports back with signed extrinsics.
//!
//! - [`config`]: the TOML file.
//! - [`chain`]: the connection, the node's registration, contracts as desired state.
//! - [`watch`]: chain events, resyncs and host ticks that start reconcile passes.
//! - [`engine`]: the reconcile engine, over the [`engine::Driver`] (one per workload kind) and [`engine::Chain`] ports.
//! - [`drivers`]: the host for real: containers (youki's libcontainer via `zos-host`), volumes,
//!   root filesystems from the image store.
//! - [`metering`] and [`reports`]: consumption, workload states and uptime, through an outbox.
//! - [`state`]: the local rocksdb database; [`status`]: `zos-agent status`.

pub mod agent;
pub mod capacity;
pub mod chain;
pub mod config;
pub mod drivers;
pub mod engine;
pub mod metering;
pub mod reports;
pub mod state;
pub mod status;
pub mod watch;
