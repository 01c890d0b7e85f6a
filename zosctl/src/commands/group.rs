//! `zosctl group create|list|show|pending|approve|reject`, and proposals for `apply` and
//! `delete --as-group`.

use std::time::Duration;

use serde_json::{json, Value};
use zos_chain_client::{
    api::{self, runtime_types::pallet_deployments::types::Pricing},
    keys::UserKey,
    multisig::{self, Approval, CallSummary, Group, GroupCall, Proposal, ProposedCall},
    ChainClient,
};
use zos_contracts::{validate, Deployment};

use crate::{
    commands::apply,
    ctx::{Ctx, Out},
    exit::{coded, invalid, Exit},
    fmt, review,
};

/// `group create NAME --members A,B,C --threshold N`.
pub fn create(ctx: &Ctx, name: &str, members: &[String], threshold: u16) -> anyhow::Result<Out> {
    let accounts = members
        .iter()
        .map(|m| ctx.home.account(m.trim()))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let group = Group::new(accounts, threshold)?;
    let path = ctx.home.save_group(name, &group)?;
    let account = group.account();
    let mut human = format!(
        "group {name}: {threshold} of {} members must approve\naccount {account}\nmembers:\n",
        group.members().len()
    );
    for m in group.members() {
        human.push_str(&format!(
            "  {}\n",
            fmt::account(m, ctx.home.name_of(m).as_deref())
        ));
    }
    human.push_str(&format!(
        "saved to {}\nthe group pays for its contracts: fund it with `zosctl transfer {account} 10`",
        path.display()
    ));
    Ok(Out {
        human,
        json: group_json(name, &group),
    })
}

fn group_json(name: &str, group: &Group) -> Value {
    json!({
        "name": name,
        "account": group.account().to_string(),
        "threshold": group.threshold(),
        "members": group.members().iter().map(|m| m.to_string()).collect::<Vec<_>>(),
    })
}

/// `group list`.
pub fn list(ctx: &Ctx) -> anyhow::Result<Out> {
    let mut human = String::new();
    let mut rows = Vec::new();
    for name in ctx.home.group_names()? {
        let group = ctx.home.group(&name)?;
        human.push_str(&format!(
            "{name:<20} {} of {}  {}\n",
            group.threshold(),
            group.members().len(),
            group.account()
        ));
        rows.push(group_json(&name, &group));
    }
    if rows.is_empty() {
        human = "no groups (zosctl group create NAME --members A,B,C --threshold 2)".into();
    }
    Ok(Out {
        human,
        json: json!(rows),
    })
}

/// `group show NAME`.
pub async fn show(ctx: &Ctx, name: &str) -> anyhow::Result<Out> {
    let group = ctx.home.group(name)?;
    let client = ctx.client().await?;
    let balance = client.balance(&group.account(), None).await?;
    let open = multisig::pending(&client, &group).await?;
    let mut human = format!(
        "group {name}: {} of {} members must approve\naccount {}\nbalance {}\nopen proposals {}\nmembers:\n",
        group.threshold(),
        group.members().len(),
        group.account(),
        fmt::amount(balance),
        open.len()
    );
    for m in group.members() {
        human.push_str(&format!(
            "  {}\n",
            fmt::account(m, ctx.home.name_of(m).as_deref())
        ));
    }
    let mut j = group_json(name, &group);
    j["balance"] = json!(balance.to_string());
    j["open_proposals"] = json!(open.len());
    Ok(Out { human, json: j })
}

/// Parses `0x` and 64 hex digits.
fn parse_hash(s: &str) -> anyhow::Result<[u8; 32]> {
    let mut h = [0u8; 32];
    hex::decode_to_slice(s.trim().trim_start_matches("0x"), &mut h)
        .map_err(|_| invalid(format!("{s:?} is not a call hash (0x and 64 hex digits)")))?;
    Ok(h)
}

/// Why `call` cannot be shown in full, when it cannot: approving it then takes `--blind`.
fn unshown(call: &ProposedCall) -> Option<String> {
    match call {
        ProposedCall::Unavailable(why) => Some(format!("its call is not on chain: {why}")),
        ProposedCall::Undecodable {
            pallet,
            name,
            reason,
            ..
        } => Some(format!(
            "{pallet}::{name} does not decode with this zosctl's types: {reason}"
        )),
        ProposedCall::Decoded(c) => match &c.summary {
            CallSummary::Other => Some(format!(
                "{}::{} is not a call zosctl decodes",
                c.pallet, c.name
            )),
            CallSummary::CreateContract { deployment, .. }
            | CallSummary::UpdateContract { deployment, .. } => review::deployment_json(deployment)
                .err()
                .map(|e| format!("its deployment cannot be shown: {e}")),
            CallSummary::CancelContract { .. } | CallSummary::Transfer { .. } => None,
        },
    }
}

/// The deployment on chain that an update proposal replaces; `None` when the call is not an
/// update or the contract is gone.
async fn replaced(client: &ChainClient, call: &GroupCall) -> anyhow::Result<Option<Deployment>> {
    match &call.summary {
        CallSummary::UpdateContract { contract, .. } => Ok(client
            .contract(*contract, None)
            .await?
            .map(|c| c.deployment)),
        _ => Ok(None),
    }
}

/// `0x…` of an encoded call, cut after 64 bytes for people.
fn encoded_human(bytes: &[u8]) -> String {
    const SHOWN: usize = 64;
    if bytes.len() <= SHOWN {
        format!("0x{} ({} bytes)", hex::encode(bytes), bytes.len())
    } else {
        format!(
            "0x{}... ({} bytes; all of them in -o json)",
            hex::encode(&bytes[..SHOWN]),
            bytes.len()
        )
    }
}

/// `text` with every line indented by `indent`.
fn indented(text: &str, indent: &str) -> String {
    text.lines().map(|l| format!("{indent}{l}\n")).collect()
}

/// A decoded call, for people (lines indented by `indent`) and JSON. `current` is the deployment
/// on chain that an update replaces.
fn call_view(
    ctx: &Ctx,
    call: &GroupCall,
    prices: &Pricing,
    current: Option<&Deployment>,
    indent: &str,
) -> (String, Value) {
    let mut human = format!("{indent}call      {}::{}\n", call.pallet, call.name);
    let mut j = json!({
        "pallet": call.pallet,
        "call": call.name,
        "encoded": format!("0x{}", hex::encode(&call.encoded)),
    });
    match &call.summary {
        CallSummary::CreateContract { deployment, .. }
        | CallSummary::UpdateContract { deployment, .. } => {
            match &call.summary {
                CallSummary::CreateContract { node, .. } => {
                    human.push_str(&format!("{indent}node      {node}\n"));
                    j["node"] = json!(node.to_string());
                }
                CallSummary::UpdateContract { contract, .. } => {
                    human.push_str(&format!("{indent}contract  {contract}\n"));
                    j["contract"] = json!(contract);
                }
                _ => {}
            }
            let capacity = deployment.capacity();
            let per_hour = multisig::reservation_per_hour(prices, &capacity);
            human.push_str(&format!(
                "{indent}version   {}\n{indent}workloads\n",
                deployment.version
            ));
            let lines = fmt::workloads(deployment);
            for w in &lines {
                human.push_str(&format!("{indent}  {}\n", w.human()));
            }
            human.push_str(&format!(
                "{indent}capacity  {}\n{indent}price     {} per hour\n",
                fmt::capacity(&capacity),
                fmt::amount(per_hour)
            ));
            j["version"] = json!(deployment.version);
            j["workloads"] = json!(lines.iter().map(|w| w.json()).collect::<Vec<_>>());
            j["capacity"] = fmt::capacity_json(&capacity);
            j["price_per_hour"] = json!(per_hour.to_string());
            if let Err(e) = validate(deployment) {
                human.push_str(&format!(
                    "{indent}invalid   the chain will refuse it: {e}\n"
                ));
                j["invalid"] = json!(e.to_string());
            }
            if let CallSummary::UpdateContract { contract, .. } = &call.summary {
                match current.map(|c| (c, review::diff(c, deployment))) {
                    Some((c, Ok(diff))) => {
                        human.push_str(&format!(
                            "{indent}changes   from version {} on chain\n{}",
                            c.version,
                            diff.human(&format!("{indent}  "))
                        ));
                        j["diff"] = diff.json();
                    }
                    Some((_, Err(e))) => {
                        human.push_str(&format!("{indent}changes   cannot be shown: {e}\n"));
                        j["diff"] = json!({ "error": e.to_string() });
                    }
                    None => {
                        human.push_str(&format!(
                            "{indent}changes   none to show: contract {contract} is not on chain, the update will fail\n"
                        ));
                        j["diff"] = Value::Null;
                    }
                }
            }
            match review::deployment_yaml(deployment) {
                Ok(yaml) => {
                    human.push_str(&format!(
                        "{indent}deployment\n{}",
                        indented(&yaml, &format!("{indent}  "))
                    ));
                }
                Err(e) => human.push_str(&format!("{indent}deployment cannot be shown: {e}\n")),
            }
            j["deployment"] = review::deployment_json(deployment).unwrap_or(Value::Null);
        }
        CallSummary::CancelContract { contract } => {
            human.push_str(&format!("{indent}contract  {contract}\n"));
            j["contract"] = json!(contract);
        }
        CallSummary::Transfer { to, amount } => {
            human.push_str(&format!(
                "{indent}to        {}\n{indent}amount    {}\n",
                fmt::account(to, ctx.home.name_of(to).as_deref()),
                fmt::amount(*amount)
            ));
            j["to"] = json!(to.to_string());
            j["amount"] = json!(amount.to_string());
        }
        CallSummary::Other => {
            human.push_str(&format!(
                "{indent}encoded   {}\n",
                encoded_human(&call.encoded)
            ));
        }
    }
    (human, j)
}

/// Any proposed call, for people and JSON; one that cannot be shown in full says so, and that
/// approving it takes `--blind`.
fn proposed_view(
    ctx: &Ctx,
    call: &ProposedCall,
    prices: &Pricing,
    current: Option<&Deployment>,
    indent: &str,
) -> (String, Value) {
    let (mut human, mut j) = match call {
        ProposedCall::Decoded(c) => call_view(ctx, c, prices, current, indent),
        ProposedCall::Undecodable {
            pallet,
            name,
            encoded,
            ..
        } => (
            format!(
                "{indent}call      {pallet}::{name}\n{indent}encoded   {}\n",
                encoded_human(encoded)
            ),
            json!({
                "pallet": pallet,
                "call": name,
                "encoded": format!("0x{}", hex::encode(encoded)),
            }),
        ),
        ProposedCall::Unavailable(_) => (format!("{indent}call      unknown\n"), json!({})),
    };
    match unshown(call) {
        Some(why) => {
            human.push_str(&format!(
                "{indent}undecoded {why}; approving it takes --blind\n"
            ));
            j["decoded"] = json!(false);
            j["undecodable"] = json!(why);
        }
        None => j["decoded"] = json!(true),
    }
    (human, j)
}

fn proposal_view(
    ctx: &Ctx,
    group: &Group,
    p: &Proposal,
    prices: &Pricing,
    current: Option<&Deployment>,
) -> (String, Value) {
    let mut human = format!(
        "proposal {}\n  proposed  by {} at block {} extrinsic {} (deposit {})\n  approved  {}/{}: {}\n",
        fmt::hash(&p.call_hash),
        fmt::account(&p.depositor, ctx.home.name_of(&p.depositor).as_deref()),
        p.when.height,
        p.when.index,
        fmt::amount(p.deposit),
        p.approvals.len(),
        group.threshold(),
        p.approvals
            .iter()
            .map(|a| fmt::account(a, ctx.home.name_of(a).as_deref()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let (h, call) = proposed_view(ctx, &p.call, prices, current, "  ");
    human.push_str(&h);
    let waiting: Vec<String> = group
        .members()
        .iter()
        .filter(|m| !p.approvals.contains(m))
        .map(|m| fmt::account(m, ctx.home.name_of(m).as_deref()))
        .collect();
    human.push_str(&format!("  not yet   {}\n", waiting.join(", ")));
    (
        human,
        json!({
            "call_hash": fmt::hash(&p.call_hash),
            "timepoint": { "height": p.when.height, "index": p.when.index },
            "depositor": p.depositor.to_string(),
            "deposit": p.deposit.to_string(),
            "approvals": p.approvals.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
            "threshold": group.threshold(),
            "call": call,
        }),
    )
}

/// `group pending NAME`.
pub async fn pending(ctx: &Ctx, name: &str) -> anyhow::Result<Out> {
    let group = ctx.home.group(name)?;
    let client = ctx.client().await?;
    let open = multisig::pending(&client, &group).await?;
    let prices = client.pricing(None).await?;
    let mut human = String::new();
    let mut rows = Vec::new();
    for p in &open {
        let current = match &p.call {
            ProposedCall::Decoded(call) => replaced(&client, call).await?,
            _ => None,
        };
        let (h, j) = proposal_view(ctx, &group, p, &prices, current.as_ref());
        human.push_str(&h);
        human.push('\n');
        rows.push(j);
    }
    if open.is_empty() {
        human = format!("group {name} has no open proposals");
    }
    Ok(Out {
        human,
        json: json!(rows),
    })
}

/// Proposes `call` on behalf of group `name` (for `apply` and `delete`).
pub async fn propose(
    ctx: &Ctx,
    client: &ChainClient,
    key: &UserKey,
    name: &str,
    group: &Group,
    call: api::Call,
) -> anyhow::Result<Out> {
    let submitter = client.submitter(key.clone());
    let proposed = multisig::propose(client, &submitter, group, call).await?;
    let prices = client.pricing(None).await?;
    let current = replaced(client, &proposed.call).await?;
    let (call_human, call_json) = call_view(ctx, &proposed.call, &prices, current.as_ref(), "  ");
    let hash = fmt::hash(&proposed.call.hash);
    Ok(Out {
        human: format!(
            "proposed on behalf of group {name} ({}): 1/{} approvals\n{call_human}call hash {hash}\nother members approve with: zosctl group approve {name} {hash}",
            group.account(),
            group.threshold()
        ),
        json: json!({
            "group": name,
            "group_account": group.account().to_string(),
            "call_hash": hash,
            "approvals": 1,
            "threshold": group.threshold(),
            "call": call_json,
        }),
    })
}

/// `group approve NAME CALL_HASH [--blind]`: a call that cannot be shown in full is approved
/// only with `blind`.
pub async fn approve(
    ctx: &Ctx,
    name: &str,
    call_hash: &str,
    wait: Option<Duration>,
    blind: bool,
) -> anyhow::Result<Out> {
    let group = ctx.home.group(name)?;
    let hash = parse_hash(call_hash)?;
    let key = ctx.key()?;
    group.others(&key.account())?;
    let client = ctx.client().await?;
    if !blind {
        let open = multisig::proposal(&client, &group, hash).await?;
        if let Some(why) = unshown(&open.call) {
            return Err(coded(
                Exit::Refused,
                format!(
                    "not approved: zosctl cannot show what proposal {} does ({why}); approve only what you have checked another way, with --blind",
                    fmt::hash(&hash)
                ),
            ));
        }
    }
    let submitter = client.submitter(key.clone());
    match multisig::approve(&client, &submitter, &group, hash).await? {
        Approval::Recorded {
            approvals,
            threshold,
            ..
        } => Ok(Out {
            human: format!(
                "approved {}: {approvals}/{threshold} approvals; {} more needed",
                fmt::hash(&hash),
                usize::from(threshold).saturating_sub(approvals)
            ),
            json: json!({
                "call_hash": fmt::hash(&hash),
                "executed": false,
                "blind": blind,
                "approvals": approvals,
                "threshold": threshold,
            }),
        }),
        Approval::Executed {
            call,
            result: Ok(()),
            outcome,
        } => {
            let mut what = String::new();
            let mut contract = None;
            if let Some(Ok(e)) = outcome
                .events
                .find_first::<api::deployments::events::ContractCreated>()
            {
                what = format!(": contract {} created", e.contract_id);
                contract = Some(e.contract_id);
            } else if let Some(Ok(e)) = outcome
                .events
                .find_first::<api::deployments::events::ContractUpdated>()
            {
                what = format!(
                    ": contract {} updated to version {}",
                    e.contract_id, e.version
                );
                contract = Some(e.contract_id);
            } else if let Some(Ok(e)) = outcome
                .events
                .find_first::<api::deployments::events::ContractCanceled>()
            {
                what = format!(": contract {} canceled", e.contract_id);
                contract = Some(e.contract_id);
            }
            let (pallet, call_name) = call.names().unwrap_or(("?", "?"));
            let message = format!(
                "approved {}: the threshold is reached and {pallet}::{call_name} ran as group {name}{what}",
                fmt::hash(&hash),
            );
            let deployment = match &*call {
                ProposedCall::Decoded(c) => match &c.summary {
                    CallSummary::CreateContract { deployment, .. }
                    | CallSummary::UpdateContract { deployment, .. } => Some(deployment),
                    _ => None,
                },
                _ => None,
            };
            let states = match (wait, contract, deployment) {
                (Some(timeout), Some(id), Some(d)) => {
                    ctx.progress(format!("{message}; waiting for the node"));
                    Some(apply::wait_for_node(ctx, &client, id, d, timeout).await?)
                }
                _ => None,
            };
            Ok(Out {
                human: message,
                json: json!({
                    "call_hash": fmt::hash(&hash),
                    "executed": true,
                    "result": "ok",
                    "blind": blind,
                    "pallet": pallet,
                    "call": call_name,
                    "contract": contract,
                    "workloads": states.map(|s| s.into_iter().map(|(n, (st, m))| json!({"name": n, "status": st, "message": m})).collect::<Vec<_>>()),
                }),
            })
        }
        Approval::Executed {
            call,
            result: Err(failure),
            ..
        } => {
            // The group's own funds ran short: its balance, its deposit, a contract's deposit.
            let unfunded = matches!(
                failure.module(),
                Some(
                    api::Error::Balances(_)
                        | api::Error::Deployments(
                            zos_chain_client::DeploymentsError::InsufficientBalance
                        )
                )
            ) || matches!(
                failure.runtime(),
                Some(api::DispatchError::Token(
                    api::runtime_types::sp_runtime::TokenError::FundsUnavailable
                ))
            );
            let hint = if unfunded {
                format!(
                    "; fund the group with `zosctl transfer {} 10` and propose again",
                    group.account()
                )
            } else {
                "; propose again once that is fixed".into()
            };
            let (pallet, call_name) = call.names().unwrap_or(("?", "?"));
            Err(coded(
                Exit::Refused,
                format!(
                    "the threshold was reached and {pallet}::{call_name} ran as group {name}, but failed: {}. The proposal is closed{hint}",
                    fmt::failure(&failure)
                ),
            ))
        }
    }
}

/// `group reject NAME CALL_HASH`: the proposer withdraws its proposal.
pub async fn reject(ctx: &Ctx, name: &str, call_hash: &str) -> anyhow::Result<Out> {
    let group = ctx.home.group(name)?;
    let hash = parse_hash(call_hash)?;
    let key = ctx.key()?;
    group.others(&key.account())?;
    let client = ctx.client().await?;
    let submitter = client.submitter(key.clone());
    multisig::withdraw(&client, &submitter, &group, hash).await?;
    Ok(Out {
        human: format!(
            "proposal {} withdrawn; the deposit is returned",
            fmt::hash(&hash)
        ),
        json: json!({ "call_hash": fmt::hash(&hash), "withdrawn": true }),
    })
}
