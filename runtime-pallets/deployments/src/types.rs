//! What the pallet stores and what nodes report.

use codec::{Decode, DecodeWithMemTracking, Encode, MaxEncodedLen};
use polkadot_sdk::frame_support::{
    traits::{ConstU32, PalletError},
    BoundedVec,
};
use scale_info::TypeInfo;
use zos_contracts::{limits, Capacity, Name, UpdateRule, ValidationErrorKind};

/// A contract's id.
pub type ContractId = u64;

/// The exact SCALE encoding of a validated [`zos_contracts::Deployment`].
pub type EncodedDeployment = BoundedVec<u8, ConstU32<{ limits::MAX_ENCODED_LEN }>>;

/// Where a contract is in its life.
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    Debug,
    Encode,
    Decode,
    DecodeWithMemTracking,
    TypeInfo,
    MaxEncodedLen,
)]
pub enum ContractState {
    /// Paid up; the node runs it.
    Active,
    /// The owner could not pay since `since` (unix seconds); the node pauses it.
    GracePeriod {
        /// When the grace period started, unix seconds.
        since: u64,
    },
}

/// Why the chain deleted a contract.
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    Debug,
    Encode,
    Decode,
    DecodeWithMemTracking,
    TypeInfo,
    MaxEncodedLen,
)]
pub enum DeletionCause {
    /// The grace period ended without payment.
    OutOfFunds,
}

/// A deployment contract.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, TypeInfo, MaxEncodedLen)]
pub struct Contract<AccountId, Balance> {
    /// Who pays and may update or cancel it; may be a multisig account.
    pub owner: AccountId,
    /// The node that runs it.
    pub node: AccountId,
    /// The deployment's version.
    pub version: u32,
    /// The deployment's canonical hash; the deployment itself is kept apart
    /// (`ContractDeployment`), so that billing reads only this record.
    pub hash: [u8; 32],
    /// The capacity it reserves on the node.
    pub capacity: Capacity,
    /// The part of `capacity` whose workloads the node reported it cannot run
    /// ([`WorkloadStatus::Unsupported`]): reserved, but not billed.
    pub unsupported: Capacity,
    /// Active or in its grace period.
    pub state: ContractState,
    /// Chain time of its creation, unix seconds.
    pub created_at: u64,
    /// Chain time it was billed up to, unix seconds.
    pub last_billed: u64,
    /// The node's lifetime downtime (seconds) at `last_billed`; what it grew by since is not
    /// billed.
    pub downtime_mark: u64,
    /// Chain time of its next bill: its place in the billing queue.
    pub next_bill: u64,
    /// What the owner owes and has not paid.
    pub unpaid: Balance,
    /// Held from the owner for the bytes this contract keeps in storage; returned at its end.
    pub deposit: Balance,
    /// Held from the owner since creation (its first billing period); what is owed at the end
    /// is settled from it before anything is forgiven, the rest is returned.
    pub reserve: Balance,
}

/// The state of one workload, as its node sees it.
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    Debug,
    Encode,
    Decode,
    DecodeWithMemTracking,
    TypeInfo,
    MaxEncodedLen,
)]
pub enum WorkloadStatus {
    /// Running (or, for volumes, disks and networks, in place).
    Ok,
    /// Could not be applied, or crashes; the message says why.
    Error,
    /// Paused for the contract's grace period.
    Paused,
    /// Removed from the node.
    Deleted,
    /// This node cannot run this kind of workload; it is not billed.
    Unsupported,
}

/// Longest message in a workload report, bytes.
pub const MAX_REPORT_MESSAGE_LEN: u32 = 256;

/// One workload's state.
#[derive(
    Clone, PartialEq, Eq, Debug, Encode, Decode, DecodeWithMemTracking, TypeInfo, MaxEncodedLen,
)]
pub struct WorkloadReport {
    /// The workload's name.
    pub name: Name,
    /// The workload version the node applied.
    pub version: u32,
    /// Its state.
    pub status: WorkloadStatus,
    /// Why, for errors.
    pub message: BoundedVec<u8, ConstU32<MAX_REPORT_MESSAGE_LEN>>,
}

/// The latest report on a contract's workloads.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, TypeInfo, MaxEncodedLen)]
pub struct StateReport {
    /// The deployment version the node had applied.
    pub version: u32,
    /// Chain time of the report, unix seconds.
    pub at: u64,
    /// The workloads' states.
    pub workloads: BoundedVec<WorkloadReport, ConstU32<{ limits::MAX_WORKLOADS }>>,
}

/// What a contract's workloads consumed over a period.
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    Debug,
    Default,
    Encode,
    Decode,
    DecodeWithMemTracking,
    TypeInfo,
    MaxEncodedLen,
)]
pub struct Consumption {
    /// CPU time, milliseconds.
    pub cpu_ms: u64,
    /// Peak memory, bytes (a peak does not add up: the larger one is kept).
    pub memory_peak: u64,
    /// Bytes received.
    pub net_rx: u64,
    /// Bytes sent.
    pub net_tx: u64,
}

impl Consumption {
    /// Both periods together.
    pub fn saturating_add(&self, other: &Consumption) -> Consumption {
        Consumption {
            cpu_ms: self.cpu_ms.saturating_add(other.cpu_ms),
            memory_peak: self.memory_peak.max(other.memory_peak),
            net_rx: self.net_rx.saturating_add(other.net_rx),
            net_tx: self.net_tx.saturating_add(other.net_tx),
        }
    }
}

/// Consumption kept for a contract, and what may still be reported.
///
/// A contract can consume at most what it reserved: CPU time up to its reserved thousandths of a
/// vCPU times the seconds it existed (a thousandth for a second is a millisecond), traffic up to
/// [`crate::Config::MaxNetworkBytesPerSecond`] times the seconds. The allowances grow with chain
/// time at the reservation of the moment and shrink by what is reported, so jitter between a
/// node's sampling and chain time evens out, and a report beyond them is refused.
#[derive(Clone, PartialEq, Eq, Debug, Default, Encode, Decode, TypeInfo, MaxEncodedLen)]
pub struct UsageRecord {
    /// Reported since the last bill.
    pub unbilled: Consumption,
    /// Reported over the contract's life.
    pub total: Consumption,
    /// Chain time of the last accepted report, unix seconds.
    pub last_report: Option<u64>,
    /// CPU time, milliseconds, that may still be reported.
    pub cpu_allowance_ms: u64,
    /// Bytes of traffic that may still be reported.
    pub net_allowance: u64,
    /// The largest memory reserved since the last report, bytes.
    pub memory_allowance: u64,
    /// Chain time the allowances were grown to, unix seconds.
    pub allowance_at: u64,
}

/// Prices, in the smallest unit of the currency.
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    Debug,
    Default,
    Encode,
    Decode,
    DecodeWithMemTracking,
    TypeInfo,
    MaxEncodedLen,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(deny_unknown_fields)]
pub struct Pricing {
    /// Per reserved vCPU per hour.
    pub cru_per_hour: u128,
    /// Per reserved GiB of memory per hour.
    pub mru_gib_per_hour: u128,
    /// Per reserved GiB of SSD per hour.
    pub sru_gib_per_hour: u128,
    /// Per reserved GiB of HDD per hour.
    pub hru_gib_per_hour: u128,
    /// Per hour of CPU time consumed.
    pub cpu_hour: u128,
    /// Per GiB sent or received.
    pub network_gib: u128,
}

impl Pricing {
    /// The prices of reserved capacity, as `zos_contracts::pricing` takes them.
    pub fn hourly(&self) -> zos_contracts::pricing::HourlyPrices {
        zos_contracts::pricing::HourlyPrices {
            vcpu: self.cru_per_hour,
            memory_gib: self.mru_gib_per_hour,
            ssd_gib: self.sru_gib_per_hour,
            hdd_gib: self.hru_gib_per_hour,
        }
    }
}

/// Why a deployment was refused: the `zos-contracts` validation error, without its data.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Encode, Decode, DecodeWithMemTracking, TypeInfo)]
pub struct InvalidReason(pub ValidationErrorKind);

impl PalletError for InvalidReason {
    const MAX_ENCODED_SIZE: usize = 1;
}

/// Why an update was refused: the rule it breaks and the position of the workload that breaks it
/// in the new deployment (see [`zos_contracts::check_update`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Encode, Decode, DecodeWithMemTracking, TypeInfo)]
pub struct UpdateRefusal {
    /// The rule.
    pub rule: UpdateRule,
    /// The workload's index in the new deployment.
    pub workload: u8,
}

impl PalletError for UpdateRefusal {
    const MAX_ENCODED_SIZE: usize = 2;
}

/// Most nodes one private network spans.
pub const MAX_NETWORK_MEMBERS: u32 = 64;

/// Most private networks one node takes part in: each has a WireGuard port of its own, the
/// node's endpoint port plus the network's slot on the node (see [`NetworkMember::port_offset`]).
pub const MAX_NODE_NETWORKS: u32 = 256;

/// One node's part of a private network: the contract that put it there and its subnet.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, TypeInfo, MaxEncodedLen)]
pub struct NetworkMember<AccountId> {
    /// The node.
    pub node: AccountId,
    /// The contract whose network workload makes this member.
    pub contract_id: ContractId,
    /// The node's part of the range.
    pub subnet: zos_contracts::Ipv4Cidr,
    /// The node listens for this network's WireGuard traffic on its endpoint's port plus this:
    /// the lowest slot free on the node when the member joined, kept while it stays.
    pub port_offset: u16,
}

/// A private network of one owner: its range and its members, at most one per node, with
/// subnets that do not overlap. Nodes build their WireGuard peers from it.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, TypeInfo, MaxEncodedLen)]
pub struct NetworkRecord<AccountId> {
    /// The whole range, the same for every member.
    pub range: zos_contracts::Ipv4Cidr,
    /// The members, in the order they joined.
    pub members: BoundedVec<NetworkMember<AccountId>, ConstU32<MAX_NETWORK_MEMBERS>>,
}
