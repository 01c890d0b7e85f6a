//! Groups: accounts that act when enough of their members approve, with FRAME's
//! `pallet-multisig` and nothing else on chain.
//!
//! A [`Group`] is a sorted member list and a threshold; its account is
//! `blake2_256(("modlpy/utilisuba", members, threshold).encode())`, exactly as the pallet derives it.
//! The first member to approve a call *proposes* it with `as_multi(threshold, others, None, call,
//! max_weight)`: the pallet stores the call's hash, the proposer's deposit and the *timepoint* of
//! the proposing extrinsic (block height and extrinsic index), but not the call. [`pending`] finds
//! each open proposal's call again in that extrinsic and decodes it, so that members see what they
//! approve; a call that is not there, or that this client's types cannot decode, is a
//! [`ProposedCall`] saying so, never an error. [`approve`] sends the full call with `as_multi`
//! when this approval reaches the threshold (the call then runs as the group; an undecodable call
//! is sent back as the bytes it was proposed with) and `approve_as_multi` with the hash otherwise;
//! [`withdraw`] is the proposer's `cancel_as_multi`. The pallet gives no way for the other members
//! to refuse a proposal but not approving it.

use codec::{Compact, Decode, Encode};
use subxt::{
    config::{substrate::BlakeTwo256, Hasher},
    ext::scale_encode::{self, EncodeAsFields, EncodeAsType, FieldIter, TypeResolver},
    transactions::{Signer, StaticPayload},
    utils::AccountId32,
    Metadata,
};
use zos_contracts::{Capacity, Deployment};

use crate::{
    api::{
        self,
        runtime_types::{pallet_deployments::types::Pricing, sp_weights::weight_v2::Weight},
    },
    error::{subxt_err, ChainError, DispatchFailure},
    submit::{Submitter, TxOutcome},
    ChainClient, Static, ZosConfig,
};

/// The domain tag of `pallet-multisig`'s account derivation.
pub const GROUP_ACCOUNT_DOMAIN: &[u8; 16] = b"modlpy/utilisuba";

/// Why a group operation was not done.
#[derive(Debug, thiserror::Error)]
pub enum MultisigError {
    /// The threshold is below 2 or above the number of members.
    #[error("a threshold must be at least 2 and at most the number of members ({members}), not {threshold}")]
    Threshold {
        /// The threshold asked for.
        threshold: u16,
        /// The number of members.
        members: usize,
    },
    /// A member is listed twice.
    #[error("{0} is listed twice")]
    DuplicateMember(AccountId32),
    /// The signing account is not a member of the group.
    #[error("{account} is not a member of the group {group}")]
    NotMember {
        /// The signer.
        account: AccountId32,
        /// The group's account.
        group: AccountId32,
    },
    /// No open proposal of the group has this call hash.
    #[error("the group {group} has no open proposal 0x{}", hex::encode(call_hash))]
    NoProposal {
        /// The group's account.
        group: AccountId32,
        /// The call hash asked for.
        call_hash: [u8; 32],
    },
    /// The same call is already proposed: it needs approvals, not a second proposal.
    #[error(
        "the same call is already proposed as 0x{} by {depositor}: approve it instead",
        hex::encode(call_hash)
    )]
    AlreadyProposed {
        /// The open proposal's call hash.
        call_hash: [u8; 32],
        /// Who proposed it.
        depositor: AccountId32,
    },
    /// This member already approved the proposal.
    #[error("{account} already approved proposal 0x{}", hex::encode(call_hash))]
    AlreadyApproved {
        /// The member.
        account: AccountId32,
        /// The proposal.
        call_hash: [u8; 32],
    },
    /// Only the proposer may withdraw a proposal.
    #[error("only the proposer {depositor} can withdraw proposal 0x{}: pallet-multisig lets the other members refuse a proposal only by not approving it", hex::encode(call_hash))]
    NotProposer {
        /// Who proposed it.
        depositor: AccountId32,
        /// The proposal.
        call_hash: [u8; 32],
    },
    /// The call of a proposal cannot be recovered from its proposing extrinsic.
    #[error(
        "the call of proposal 0x{} is not in block {height} extrinsic {index}: {reason}",
        hex::encode(call_hash)
    )]
    CallUnavailable {
        /// The proposal.
        call_hash: [u8; 32],
        /// The proposing extrinsic's block.
        height: u32,
        /// Its index in the block.
        index: u32,
        /// What was found instead.
        reason: String,
    },
    /// The chain, the connection or a transaction.
    #[error(transparent)]
    Chain(#[from] ChainError),
}

/// A group: sorted members and the number of them that must approve a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    members: Vec<AccountId32>,
    threshold: u16,
}

impl Group {
    /// A group of `members` (in any order; kept sorted, as the pallet needs them) acting when
    /// `threshold` of them approve.
    pub fn new(mut members: Vec<AccountId32>, threshold: u16) -> Result<Group, MultisigError> {
        members.sort();
        if let Some(w) = members.windows(2).find(|w| w[0] == w[1]) {
            return Err(MultisigError::DuplicateMember(w[0]));
        }
        if threshold < 2 || usize::from(threshold) > members.len() {
            return Err(MultisigError::Threshold {
                threshold,
                members: members.len(),
            });
        }
        Ok(Group { members, threshold })
    }

    /// The members, sorted.
    pub fn members(&self) -> &[AccountId32] {
        &self.members
    }

    /// How many members must approve.
    pub fn threshold(&self) -> u16 {
        self.threshold
    }

    /// The group's account, derived as `pallet-multisig` derives it.
    pub fn account(&self) -> AccountId32 {
        let entropy = Encode::encode(&(GROUP_ACCOUNT_DOMAIN, &self.members, self.threshold));
        AccountId32(BlakeTwo256.hash(&entropy).0)
    }

    /// Whether `account` is a member.
    pub fn is_member(&self, account: &AccountId32) -> bool {
        self.members.binary_search(account).is_ok()
    }

    /// The members other than `me`, sorted: the `other_signatories` of `me`'s calls.
    pub fn others(&self, me: &AccountId32) -> Result<Vec<AccountId32>, MultisigError> {
        if !self.is_member(me) {
            return Err(MultisigError::NotMember {
                account: *me,
                group: self.account(),
            });
        }
        Ok(self.members.iter().filter(|m| *m != me).copied().collect())
    }
}

/// Where a proposal was made: the block height and the index of the extrinsic in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timepoint {
    /// Block number.
    pub height: u32,
    /// Extrinsic index in the block.
    pub index: u32,
}

type ChainTimepoint = api::runtime_types::pallet_multisig::Timepoint<u32>;

impl From<Timepoint> for ChainTimepoint {
    fn from(t: Timepoint) -> ChainTimepoint {
        ChainTimepoint {
            height: t.height,
            index: t.index,
        }
    }
}

/// What a group call does, for people to judge it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallSummary {
    /// `Deployments::create_contract`.
    CreateContract {
        /// The node.
        node: AccountId32,
        /// What it must run.
        deployment: Deployment,
    },
    /// `Deployments::update_contract`.
    UpdateContract {
        /// The contract.
        contract: u64,
        /// Its new deployment.
        deployment: Deployment,
    },
    /// `Deployments::cancel_contract`.
    CancelContract {
        /// The contract.
        contract: u64,
    },
    /// `Balances::transfer_keep_alive` or `transfer_allow_death` to an account.
    Transfer {
        /// The recipient.
        to: AccountId32,
        /// The amount, in the smallest unit.
        amount: u128,
    },
    /// Any other call, by name.
    Other,
}

/// A call of the group's, decoded.
#[derive(Debug, Clone)]
pub struct GroupCall {
    /// The runtime call.
    pub call: api::Call,
    /// Its pallet's name, e.g. `Deployments`.
    pub pallet: String,
    /// The call's name, e.g. `create_contract`.
    pub name: String,
    /// What it does.
    pub summary: CallSummary,
    /// Its SCALE encoding.
    pub encoded: Vec<u8>,
    /// `blake2_256` of the encoding: what members approve.
    pub hash: [u8; 32],
}

impl GroupCall {
    /// Describes `call` with the chain's metadata.
    pub fn new(call: api::Call, metadata: &Metadata) -> Result<GroupCall, ChainError> {
        let ty = metadata.outer_enums().call_enum_ty();
        let encoded = call
            .encode_as_type(ty, metadata.types())
            .map_err(|e| ChainError::Decode(format!("encoding a call: {e}")))?;
        let (pallet, name) = call_names(&encoded, metadata);
        let summary = summarize(&call);
        let hash = BlakeTwo256.hash(&encoded).0;
        Ok(GroupCall {
            call,
            pallet,
            name,
            summary,
            encoded,
            hash,
        })
    }

    /// The capacity the call's deployment reserves, for creates and updates.
    pub fn capacity(&self) -> Option<Capacity> {
        match &self.summary {
            CallSummary::CreateContract { deployment, .. }
            | CallSummary::UpdateContract { deployment, .. } => Some(deployment.capacity()),
            _ => None,
        }
    }
}

/// `Pallet`, `call` from the first two bytes of an encoded call.
fn call_names(encoded: &[u8], metadata: &Metadata) -> (String, String) {
    let pallet = encoded
        .first()
        .and_then(|i| metadata.pallet_by_call_index(*i));
    let call = pallet
        .as_ref()
        .zip(encoded.get(1))
        .and_then(|(p, i)| p.call_variant_by_index(*i))
        .map(|v| v.name.clone());
    (
        pallet.map_or_else(|| "?".into(), |p| p.name().to_string()),
        call.unwrap_or_else(|| "?".into()),
    )
}

fn summarize(call: &api::Call) -> CallSummary {
    use api::{balances::Call as B, deployments::Call as D, Call};
    match call {
        Call::Deployments(D::create_contract { node, deployment }) => CallSummary::CreateContract {
            node: *node,
            deployment: deployment.0.clone(),
        },
        Call::Deployments(D::update_contract {
            contract_id,
            deployment,
        }) => CallSummary::UpdateContract {
            contract: *contract_id,
            deployment: deployment.0.clone(),
        },
        Call::Deployments(D::cancel_contract { contract_id }) => CallSummary::CancelContract {
            contract: *contract_id,
        },
        Call::Balances(
            B::transfer_keep_alive {
                dest: subxt::utils::MultiAddress::Id(to),
                value,
            }
            | B::transfer_allow_death {
                dest: subxt::utils::MultiAddress::Id(to),
                value,
            },
        ) => CallSummary::Transfer {
            to: *to,
            amount: *value,
        },
        _ => CallSummary::Other,
    }
}

/// `Deployments::create_contract(node, deployment)` as a runtime call.
pub fn create_contract_call(node: AccountId32, deployment: Deployment) -> api::Call {
    api::Call::Deployments(api::deployments::Call::create_contract {
        node,
        deployment: Static(deployment),
    })
}

/// `Deployments::update_contract(id, deployment)` as a runtime call.
pub fn update_contract_call(contract_id: u64, deployment: Deployment) -> api::Call {
    api::Call::Deployments(api::deployments::Call::update_contract {
        contract_id,
        deployment: Static(deployment),
    })
}

/// `Deployments::cancel_contract(id)` as a runtime call.
pub fn cancel_contract_call(contract_id: u64) -> api::Call {
    api::Call::Deployments(api::deployments::Call::cancel_contract { contract_id })
}

/// What a reservation of `capacity` costs per hour at `prices`, as the chain bills it
/// (`pallet_deployments::billing::reservation_cost` over 3600 seconds).
pub fn reservation_per_hour(prices: &Pricing, capacity: &Capacity) -> u128 {
    let hourly = zos_contracts::pricing::HourlyPrices {
        vcpu: prices.cru_per_hour,
        memory_gib: prices.mru_gib_per_hour,
        ssd_gib: prices.sru_gib_per_hour,
        hdd_gib: prices.hru_gib_per_hour,
    };
    zos_contracts::pricing::reservation_cost(&hourly, capacity, 3600)
}

/// An open proposal of a group.
#[derive(Debug, Clone)]
pub struct Proposal {
    /// The hash members approve.
    pub call_hash: [u8; 32],
    /// The proposing extrinsic.
    pub when: Timepoint,
    /// The proposer, whose deposit is held until the proposal ends.
    pub depositor: AccountId32,
    /// The deposit.
    pub deposit: u128,
    /// Who approved so far (the proposer included), sorted.
    pub approvals: Vec<AccountId32>,
    /// The call, as found in the proposing extrinsic.
    pub call: ProposedCall,
}

/// The call of an open proposal, as far as it can be recovered.
#[derive(Debug, Clone)]
pub enum ProposedCall {
    /// Found and decoded.
    Decoded(Box<GroupCall>),
    /// Found (its hash matches), but this client's types do not decode it: e.g. a runtime
    /// upgrade added or changed the call.
    Undecodable {
        /// Its pallet's name from the chain's metadata at the proposing block, `?` when unknown.
        pallet: String,
        /// The call's name, likewise.
        name: String,
        /// Its SCALE encoding, as proposed.
        encoded: Vec<u8>,
        /// Why it does not decode.
        reason: String,
    },
    /// Not in the proposing extrinsic (the proposer sent only the hash, or the block is gone).
    Unavailable(String),
}

impl ProposedCall {
    /// `Pallet::call` when known.
    pub fn names(&self) -> Option<(&str, &str)> {
        match self {
            ProposedCall::Decoded(c) => Some((&c.pallet, &c.name)),
            ProposedCall::Undecodable { pallet, name, .. } => Some((pallet, name)),
            ProposedCall::Unavailable(_) => None,
        }
    }

    /// Its SCALE encoding, when it was found.
    pub fn encoded(&self) -> Option<&[u8]> {
        match self {
            ProposedCall::Decoded(c) => Some(&c.encoded),
            ProposedCall::Undecodable { encoded, .. } => Some(encoded),
            ProposedCall::Unavailable(_) => None,
        }
    }
}

/// The open proposals of `group`, oldest first, with their calls decoded.
pub async fn pending(client: &ChainClient, group: &Group) -> Result<Vec<Proposal>, MultisigError> {
    let at = client.at(None).await?;
    let mut entries = at
        .storage()
        .iter(api::storage().multisig().multisigs(), (group.account(),))
        .await
        .map_err(subxt_err)?;
    let mut open = Vec::new();
    while let Some(kv) = entries.next().await {
        let kv = kv.map_err(subxt_err)?;
        let (_group, call_hash) = kv.key().map_err(subxt_err)?.decode().map_err(subxt_err)?;
        let m = kv.value().decode().map_err(subxt_err)?;
        open.push((call_hash, m));
    }
    drop(entries);
    let mut proposals = Vec::with_capacity(open.len());
    for (call_hash, m) in open {
        let when = Timepoint {
            height: m.when.height,
            index: m.when.index,
        };
        let call = proposed_call(client, when, call_hash).await?;
        proposals.push(Proposal {
            call_hash,
            when,
            depositor: m.depositor,
            deposit: m.deposit,
            approvals: m.approvals.0,
            call,
        });
    }
    proposals.sort_by_key(|p| (p.when.height, p.when.index));
    Ok(proposals)
}

/// The open proposal of `group` with this call hash.
pub async fn proposal(
    client: &ChainClient,
    group: &Group,
    call_hash: [u8; 32],
) -> Result<Proposal, MultisigError> {
    let at = client.at(None).await?;
    let m = at
        .storage()
        .try_fetch(
            api::storage().multisig().multisigs(),
            (group.account(), call_hash),
        )
        .await
        .map_err(subxt_err)?
        .ok_or(MultisigError::NoProposal {
            group: group.account(),
            call_hash,
        })?
        .decode()
        .map_err(subxt_err)?;
    let when = Timepoint {
        height: m.when.height,
        index: m.when.index,
    };
    Ok(Proposal {
        call_hash,
        when,
        depositor: m.depositor,
        deposit: m.deposit,
        approvals: m.approvals.0,
        call: proposed_call(client, when, call_hash).await?,
    })
}

/// The call of a proposal, from its proposing extrinsic. Chain errors are errors; a call that is
/// not there or does not decode is said so in the result.
async fn proposed_call(
    client: &ChainClient,
    when: Timepoint,
    call_hash: [u8; 32],
) -> Result<ProposedCall, ChainError> {
    let at = client.at(Some(u64::from(when.height))).await?;
    let metadata = at.metadata();
    let extrinsics = at.extrinsics().fetch().await.map_err(subxt_err)?;
    let Some(ext) = extrinsics.iter().nth(when.index as usize) else {
        return Ok(ProposedCall::Unavailable(format!(
            "block {} has {} extrinsics",
            when.height,
            extrinsics.len()
        )));
    };
    let ext = ext.map_err(subxt_err)?;
    if (ext.pallet_name(), ext.call_name()) != ("Multisig", "as_multi") {
        return Ok(ProposedCall::Unavailable(format!(
            "block {} extrinsic {} is {}::{}, which does not carry the call",
            when.height,
            when.index,
            ext.pallet_name(),
            ext.call_name()
        )));
    }
    let Some(field) = ext.iter_call_data_fields().find(|f| f.name() == "call") else {
        return Ok(ProposedCall::Unavailable(
            "as_multi without a call field".into(),
        ));
    };
    let encoded = field.bytes().to_vec();
    if BlakeTwo256.hash(&encoded).0 != call_hash {
        return Ok(ProposedCall::Unavailable(
            "the call there has another hash (the same member proposed another call)".into(),
        ));
    }
    Ok(match field.decode_as::<api::Call>() {
        Ok(call) => match GroupCall::new(call, &metadata) {
            Ok(c) if c.encoded == encoded => ProposedCall::Decoded(Box::new(c)),
            Ok(_) => undecodable(
                encoded,
                &metadata,
                "it does not encode back to the same bytes".into(),
            ),
            Err(e) => undecodable(encoded, &metadata, e.to_string()),
        },
        Err(e) => undecodable(encoded, &metadata, e.to_string()),
    })
}

fn undecodable(encoded: Vec<u8>, metadata: &Metadata, reason: String) -> ProposedCall {
    let (pallet, name) = call_names(&encoded, metadata);
    ProposedCall::Undecodable {
        pallet,
        name,
        encoded,
        reason,
    }
}

/// The weight `call` declares, which `as_multi` must be given as its `max_weight`.
pub async fn call_weight(client: &ChainClient, call: &GroupCall) -> Result<Weight, ChainError> {
    let at = client.at(None).await?;
    let info = at
        .runtime_apis()
        .call(
            api::runtime_apis()
                .transaction_payment_call_api()
                .query_call_info(call.call.clone(), call.encoded.len() as u32),
        )
        .await
        .map_err(subxt_err)?;
    Ok(info.weight)
}

/// The weight of a call given as its SCALE encoding, from the same runtime API as
/// [`call_weight`]: for calls this client cannot decode.
pub async fn encoded_call_weight(
    client: &ChainClient,
    encoded: &[u8],
) -> Result<Weight, ChainError> {
    let at = client.at(None).await?;
    let mut args = encoded.to_vec();
    (encoded.len() as u32).encode_to(&mut args);
    let answer = at
        .runtime_apis()
        .call_raw("TransactionPaymentCallApi_query_call_info", Some(&args))
        .await
        .map_err(subxt_err)?;
    // `RuntimeDispatchInfo { weight, class, partial_fee }`: the weight comes first.
    let mut input = &answer[..];
    let ref_time = Compact::<u64>::decode(&mut input);
    let proof_size = Compact::<u64>::decode(&mut input);
    match (ref_time, proof_size) {
        (Ok(r), Ok(p)) => Ok(Weight {
            ref_time: r.0,
            proof_size: p.0,
        }),
        _ => Err(ChainError::Decode(
            "the weight of an undecodable call: an unexpected query_call_info answer".into(),
        )),
    }
}

/// The arguments of `as_multi` with the call as bytes: they are SCALE-encoded in the call's
/// argument order, the call's bytes as they are.
struct RawAsMulti {
    threshold: u16,
    others: Vec<AccountId32>,
    timepoint: Option<Timepoint>,
    call: Vec<u8>,
    max_weight: Weight,
}

impl RawAsMulti {
    fn encode_args_to(&self, out: &mut Vec<u8>) {
        self.threshold.encode_to(out);
        self.others.encode_to(out);
        self.timepoint.map(|t| (t.height, t.index)).encode_to(out);
        out.extend_from_slice(&self.call);
        Compact(self.max_weight.ref_time).encode_to(out);
        Compact(self.max_weight.proof_size).encode_to(out);
    }
}

impl EncodeAsFields for RawAsMulti {
    fn encode_as_fields_to<R: TypeResolver>(
        &self,
        _fields: &mut dyn FieldIter<'_, R::TypeId>,
        _types: &R,
        out: &mut Vec<u8>,
    ) -> Result<(), scale_encode::Error> {
        self.encode_args_to(out);
        Ok(())
    }
}

/// `as_multi` with the call given as its SCALE encoding: the approval that reaches the threshold
/// of a call this client cannot decode.
fn as_multi_encoded(
    group: &Group,
    me: &AccountId32,
    timepoint: Timepoint,
    call: Vec<u8>,
    max_weight: Weight,
) -> Result<impl subxt::transactions::Payload + Send + Sync, MultisigError> {
    Ok(StaticPayload::new(
        "Multisig",
        "as_multi",
        RawAsMulti {
            threshold: group.threshold,
            others: group.others(me)?,
            timepoint: Some(timepoint),
            call,
            max_weight,
        },
    ))
}

/// The call data of the chain's metadata at the finalized head, to describe calls.
pub async fn metadata(client: &ChainClient) -> Result<subxt::ArcMetadata, ChainError> {
    Ok(client.at(None).await?.metadata())
}

/// `as_multi(threshold, others, timepoint, call, max_weight)` signed by `me`: the proposal (no
/// timepoint) or the approval that reaches the threshold (with the proposal's timepoint).
pub fn as_multi(
    group: &Group,
    me: &AccountId32,
    timepoint: Option<Timepoint>,
    call: api::Call,
    max_weight: Weight,
) -> Result<impl subxt::transactions::Payload + Send + Sync, MultisigError> {
    Ok(api::tx().multisig().as_multi(
        group.threshold,
        group.others(me)?,
        timepoint.map(Into::into),
        call,
        max_weight,
    ))
}

/// `approve_as_multi`: an approval by hash that does not reach the threshold.
pub fn approve_as_multi(
    group: &Group,
    me: &AccountId32,
    timepoint: Timepoint,
    call_hash: [u8; 32],
    max_weight: Weight,
) -> Result<impl subxt::transactions::Payload + Send + Sync, MultisigError> {
    Ok(api::tx().multisig().approve_as_multi(
        group.threshold,
        group.others(me)?,
        Some(timepoint.into()),
        call_hash,
        max_weight,
    ))
}

/// `cancel_as_multi`: the proposer withdraws a proposal and gets the deposit back.
pub fn cancel_as_multi(
    group: &Group,
    me: &AccountId32,
    timepoint: Timepoint,
    call_hash: [u8; 32],
) -> Result<impl subxt::transactions::Payload + Send + Sync, MultisigError> {
    Ok(api::tx().multisig().cancel_as_multi(
        group.threshold,
        group.others(me)?,
        timepoint.into(),
        call_hash,
    ))
}

/// A proposal on chain.
pub struct Proposed {
    /// The call, as members see it.
    pub call: GroupCall,
    /// The proposing transaction.
    pub outcome: TxOutcome,
}

/// Proposes `call` on behalf of `group`, signed by `submitter` (a member): the first approval.
/// Refuses a call that is already proposed, and a signer that is not a member, before submitting.
pub async fn propose<S: Signer<ZosConfig> + Send + Sync + 'static>(
    client: &ChainClient,
    submitter: &Submitter<S>,
    group: &Group,
    call: api::Call,
) -> Result<Proposed, MultisigError> {
    let me = *submitter.account();
    group.others(&me)?;
    let call = GroupCall::new(call, &*metadata(client).await?)?;
    match proposal(client, group, call.hash).await {
        Ok(open) => {
            return Err(MultisigError::AlreadyProposed {
                call_hash: call.hash,
                depositor: open.depositor,
            })
        }
        Err(MultisigError::NoProposal { .. }) => {}
        Err(e) => return Err(e),
    }
    let weight = call_weight(client, &call).await?;
    let payload = as_multi(group, &me, None, call.call.clone(), weight)?;
    let outcome = submitter.submit(&payload).await?;
    Ok(Proposed { call, outcome })
}

/// What an approval did.
pub enum Approval {
    /// Recorded; more approvals are needed.
    Recorded {
        /// Approvals so far, this one included.
        approvals: usize,
        /// The group's threshold.
        threshold: u16,
        /// The approving transaction.
        outcome: TxOutcome,
    },
    /// The threshold was reached and the call ran as the group.
    Executed {
        /// The call.
        call: Box<ProposedCall>,
        /// The call's own result: the pallet error when it failed (the approval itself
        /// succeeded either way).
        result: Result<(), DispatchFailure>,
        /// The approving transaction, with the call's events.
        outcome: TxOutcome,
    },
}

/// Approves the open proposal `call_hash` of `group` as `submitter`. When this approval reaches
/// the threshold the full call (recovered from the proposing extrinsic, as it was proposed) is
/// sent and runs. This approves whatever the call is: look at [`Proposal::call`] first.
pub async fn approve<S: Signer<ZosConfig> + Send + Sync + 'static>(
    client: &ChainClient,
    submitter: &Submitter<S>,
    group: &Group,
    call_hash: [u8; 32],
) -> Result<Approval, MultisigError> {
    let me = *submitter.account();
    group.others(&me)?;
    let open = proposal(client, group, call_hash).await?;
    if open.approvals.contains(&me) {
        return Err(MultisigError::AlreadyApproved {
            account: me,
            call_hash,
        });
    }
    let approvals = open.approvals.len() + 1;
    if approvals < usize::from(group.threshold) {
        let weight = match &open.call {
            ProposedCall::Decoded(call) => call_weight(client, call).await?,
            ProposedCall::Undecodable { encoded, .. } => {
                encoded_call_weight(client, encoded).await?
            }
            ProposedCall::Unavailable(_) => Weight {
                ref_time: 0,
                proof_size: 0,
            },
        };
        let payload = approve_as_multi(group, &me, open.when, call_hash, weight)?;
        let outcome = submitter.submit(&payload).await?;
        return Ok(Approval::Recorded {
            approvals,
            threshold: group.threshold,
            outcome,
        });
    }
    let outcome = match &open.call {
        ProposedCall::Decoded(call) => {
            let weight = call_weight(client, call).await?;
            let payload = as_multi(group, &me, Some(open.when), call.call.clone(), weight)?;
            submitter.submit(&payload).await?
        }
        ProposedCall::Undecodable { encoded, .. } => {
            let weight = encoded_call_weight(client, encoded).await?;
            let payload = as_multi_encoded(group, &me, open.when, encoded.clone(), weight)?;
            submitter.submit(&payload).await?
        }
        ProposedCall::Unavailable(reason) => {
            return Err(MultisigError::CallUnavailable {
                call_hash,
                height: open.when.height,
                index: open.when.index,
                reason: reason.clone(),
            })
        }
    };
    let executed = outcome
        .events
        .find_first::<api::multisig::events::MultisigExecuted>()
        .ok_or_else(|| {
            ChainError::Decode("an approval at the threshold without MultisigExecuted".into())
        })?
        .map_err(subxt_err)?;
    let metadata = metadata(client).await?;
    let result = executed
        .result
        .map_err(|e| DispatchFailure::from_runtime(&e, &metadata));
    Ok(Approval::Executed {
        call: Box::new(open.call),
        result,
        outcome,
    })
}

/// Withdraws the open proposal `call_hash` of `group`: only its proposer may.
pub async fn withdraw<S: Signer<ZosConfig> + Send + Sync + 'static>(
    client: &ChainClient,
    submitter: &Submitter<S>,
    group: &Group,
    call_hash: [u8; 32],
) -> Result<TxOutcome, MultisigError> {
    let me = *submitter.account();
    group.others(&me)?;
    let open = proposal(client, group, call_hash).await?;
    if open.depositor != me {
        return Err(MultisigError::NotProposer {
            depositor: open.depositor,
            call_hash,
        });
    }
    let payload = cancel_as_multi(group, &me, open.when, call_hash)?;
    Ok(submitter.submit(&payload).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(b: u8) -> AccountId32 {
        AccountId32([b; 32])
    }

    #[test]
    fn members_are_sorted_and_checked() {
        let g = Group::new(vec![account(3), account(1), account(2)], 2).unwrap();
        assert_eq!(g.members(), &[account(1), account(2), account(3)]);
        assert_eq!(g.others(&account(2)).unwrap(), vec![account(1), account(3)]);
        assert!(matches!(
            g.others(&account(9)),
            Err(MultisigError::NotMember { .. })
        ));
        assert!(matches!(
            Group::new(vec![account(1), account(1)], 2),
            Err(MultisigError::DuplicateMember(_))
        ));
        assert!(matches!(
            Group::new(vec![account(1), account(2)], 3),
            Err(MultisigError::Threshold { .. })
        ));
        assert!(matches!(
            Group::new(vec![account(1), account(2)], 1),
            Err(MultisigError::Threshold { .. })
        ));
    }

    #[test]
    fn the_account_does_not_depend_on_the_order_given() {
        let a = Group::new(vec![account(1), account(2), account(3)], 2).unwrap();
        let b = Group::new(vec![account(3), account(2), account(1)], 2).unwrap();
        let c = Group::new(vec![account(1), account(2), account(3)], 3).unwrap();
        assert_eq!(a.account(), b.account());
        assert_ne!(a.account(), c.account());
    }

    #[test]
    fn an_hour_of_reservation_costs_what_the_chain_bills() {
        let prices = Pricing {
            cru_per_hour: 1_000,
            mru_gib_per_hour: 500,
            sru_gib_per_hour: 10,
            hru_gib_per_hour: 1,
            cpu_hour: 2_000,
            network_gib: 100,
        };
        // The example of pallet-deployments' billing tests: 2 vCPU, 4 GiB, 100 GiB SSD.
        let cap = Capacity {
            cpu_millis: 2000,
            mru: 4 << 30,
            sru: 100 << 30,
            hru: 0,
        };
        assert_eq!(reservation_per_hour(&prices, &cap), 5_000);
        let half = Capacity {
            mru: 1 << 29,
            ..Capacity::default()
        };
        assert_eq!(reservation_per_hour(&prices, &half), 250);
    }
    #[test]
    fn an_undecodable_call_is_sent_back_as_the_typed_call_would_be() {
        let metadata = Metadata::decode_from(include_bytes!("../metadata/zos.scale")).unwrap();
        let group = Group::new(vec![account(1), account(2), account(3)], 2).unwrap();
        let inner = api::Call::System(api::system::Call::remark {
            remark: b"hello".to_vec(),
        });
        let inner_encoded = inner
            .encode_as_type(metadata.outer_enums().call_enum_ty(), metadata.types())
            .unwrap();
        let weight = || Weight {
            ref_time: 123_456_789,
            proof_size: 4_096,
        };
        let when = Timepoint {
            height: 7,
            index: 1,
        };
        let typed = api::Call::Multisig(api::multisig::Call::as_multi {
            threshold: 2,
            other_signatories: group.others(&account(2)).unwrap(),
            maybe_timepoint: Some(when.into()),
            call: Box::new(inner),
            max_weight: weight(),
        })
        .encode_as_type(metadata.outer_enums().call_enum_ty(), metadata.types())
        .unwrap();
        let mut raw = Vec::new();
        RawAsMulti {
            threshold: 2,
            others: group.others(&account(2)).unwrap(),
            timepoint: Some(when),
            call: inner_encoded,
            max_weight: weight(),
        }
        .encode_args_to(&mut raw);
        // The typed encoding starts with the pallet's and the call's indices.
        assert_eq!(typed[2..], raw[..]);
    }
}
