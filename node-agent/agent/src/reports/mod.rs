//! What the node tells the chain: workload states and consumption through the [`outbox`], sent by
//! [`sender`]; uptime every period (a fresh one replaces a missed one, so it needs no outbox).

pub mod outbox;
pub mod sender;
