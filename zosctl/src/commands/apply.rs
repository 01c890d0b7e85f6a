//! `zosctl apply`: parse, validate, seal, create or update, wait for the node.

use std::{collections::BTreeMap, time::Duration};

use anyhow::Context;
use serde_json::json;
use zos_chain_client::{api, multisig, AccountId32, ChainClient, Static};
use zos_contracts::{file::DeploymentFile, sealed::SealFor, validate, Deployment};

use crate::{
    cli::ApplyArgs,
    commands::group,
    ctx::{submit, Ctx, Out},
    exit::{invalid, other, usage},
    fmt,
};

/// Gives each network of `file` without a subnet this node's subnet in the owner's network of
/// that name: the one it has when the node is a member already, else the lowest free one.
async fn pick_subnets(
    ctx: &Ctx,
    client: &ChainClient,
    owner: &AccountId32,
    node: &AccountId32,
    file: &mut DeploymentFile,
) -> anyhow::Result<()> {
    for w in &mut file.workloads {
        let Some(n) = w.network.as_mut().filter(|n| n.subnet.is_none()) else {
            continue;
        };
        let record = client.network(owner, w.name.as_bytes(), None).await?;
        let members = record
            .as_ref()
            .map(|r| r.members.as_slice())
            .unwrap_or_default();
        let cidr = |(addr, prefix): ([u8; 4], u8)| zos_contracts::Ipv4Cidr { addr, prefix };
        let subnet = match members.iter().find(|m| m.node == *node) {
            Some(m) => cidr(m.subnet),
            None => {
                let taken: Vec<_> = members.iter().map(|m| cidr(m.subnet)).collect();
                n.range.0.free_subnet(&taken).ok_or_else(|| {
                    invalid(format!(
                        "network {}: no free subnet left in {} ({} members)",
                        w.name,
                        n.range.0,
                        members.len()
                    ))
                })?
            }
        };
        ctx.progress(format!("network {}: subnet {subnet} on this node", w.name));
        n.subnet = Some(zos_contracts::file::CidrFile(subnet));
    }
    Ok(())
}

/// How often the node's reports are read while waiting.
const POLL: Duration = Duration::from_secs(1);

/// `apply -f FILE (--node NODE | --contract ID) [--as-group G] [--no-wait] [--wait-timeout]`.
pub async fn apply(ctx: &Ctx, args: ApplyArgs) -> anyhow::Result<Out> {
    let path = &args.file;
    let text =
        std::fs::read_to_string(path).map_err(|e| invalid(format!("{}: {e}", path.display())))?;
    let is_json = path.extension().is_some_and(|e| e == "json");
    let mut file = if is_json {
        DeploymentFile::from_json(&text)
    } else {
        DeploymentFile::from_yaml(&text)
    }
    .map_err(|e| invalid(format!("{}: {e}", path.display())))?;
    let node_arg = args
        .node
        .as_deref()
        .map(|n| ctx.home.account(n))
        .transpose()?;
    if args.contract.is_none() && node_arg.is_none() {
        return Err(usage(
            "a new contract needs --node NODE (or pass --contract ID to update one)",
        ));
    }
    // Everything local is checked before the chain is asked anything.
    let key = ctx.key()?;
    let group = args
        .as_group
        .as_deref()
        .map(|g| ctx.home.group(g))
        .transpose()?;
    if let Some(g) = &group {
        g.others(&key.account())?;
    }
    // Secrets open only in a contract of this owner (the group's account with --as-group).
    let owner = group
        .as_ref()
        .map_or_else(|| key.account(), |g| g.account());
    let seal = |file: &DeploymentFile, node: &AccountId32| -> anyhow::Result<Deployment> {
        let seal_for = SealFor {
            owner: owner.0,
            node: node.0,
        };
        let d = file
            .into_deployment(Some(&seal_for))
            .map_err(|e| invalid(format!("{}: {e}", path.display())))?;
        validate(&d)
            .map_err(|e| invalid(format!("{}: invalid deployment: {e}", path.display())))?;
        Ok(d)
    };
    // A network without a subnet gets one from the chain's index below.
    let needs_subnets = file
        .workloads
        .iter()
        .any(|w| w.network.as_ref().is_some_and(|n| n.subnet.is_none()));
    let early = match (&node_arg, needs_subnets) {
        (Some(node), false) => Some(seal(&file, node)?),
        _ => None,
    };
    let client = ctx.client().await?;

    let existing = match args.contract {
        Some(id) => {
            let c = client
                .contract(id, None)
                .await?
                .ok_or_else(|| other(format!("no contract {id} on chain")))?;
            if c.owner != owner {
                return Err(invalid(format!(
                    "contract {id} is owned by {}, not {owner}: only its owner updates it (pass --as-group GROUP for a group's contract)",
                    c.owner
                )));
            }
            if let Some(n) = &node_arg {
                if *n != c.node {
                    return Err(invalid(format!(
                        "contract {id} runs on node {}, not {n}; a contract cannot move",
                        c.node
                    )));
                }
            }
            Some(c)
        }
        None => None,
    };
    let node = existing
        .as_ref()
        .map(|c| c.node)
        .or(node_arg)
        .expect("one of --node and --contract is given; qed");
    // `--node`, when given, is the contract's node (checked above).
    if needs_subnets {
        pick_subnets(ctx, &client, &owner, &node, &mut file).await?;
    }
    let mut deployment = match early {
        Some(d) => d,
        None => seal(&file, &node)?,
    };
    if let Some(c) = &existing {
        if deployment.version <= c.deployment.version {
            return Err(invalid(format!(
                "{}: version {} is not higher than version {} of contract {} on chain: set `version: {}` to update it",
                path.display(),
                deployment.version,
                c.deployment.version,
                c.id,
                c.deployment.version + 1
            )));
        }
        // The node re-applies only workloads whose version changed: carry the versions on
        // chain over, and raise those of changed workloads.
        for v in zos_contracts::follow_versions(&c.deployment, &mut deployment) {
            ctx.progress(format!(
                "  {}: workload version {} -> {}",
                String::from_utf8_lossy(&v.workload),
                v.from,
                v.to
            ));
        }
        zos_contracts::check_update(&c.deployment, &deployment).map_err(|e| {
            invalid(format!(
                "{}: the node could not apply this update: {e}",
                path.display()
            ))
        })?;
    }

    if let (Some(group_name), Some(group)) = (args.as_group.as_deref(), &group) {
        let call = match &existing {
            Some(c) => multisig::update_contract_call(c.id, deployment),
            None => multisig::create_contract_call(node, deployment),
        };
        return group::propose(ctx, &client, &key, group_name, group, call).await;
    }

    let (id, verb) = match &existing {
        Some(c) => {
            submit(
                &client,
                &key,
                &api::tx()
                    .deployments()
                    .update_contract(c.id, Static(deployment.clone())),
                format!("updating contract {}", c.id),
            )
            .await?;
            (c.id, "updated")
        }
        None => {
            let outcome = submit(
                &client,
                &key,
                &api::tx()
                    .deployments()
                    .create_contract(node, Static(deployment.clone())),
                format!("creating a contract on node {node}"),
            )
            .await?;
            let id = outcome
                .events
                .find_first::<api::deployments::events::ContractCreated>()
                .context("the creation's events")?
                .context("the ContractCreated event")?
                .contract_id;
            (id, "created")
        }
    };
    ctx.progress(format!(
        "contract {id} {verb}: version {} on node {node}",
        deployment.version
    ));
    let states = if args.no_wait {
        None
    } else {
        Some(wait_for_node(ctx, &client, id, &deployment, args.wait_timeout).await?)
    };
    Ok(Out {
        human: format!("contract {id}"),
        json: json!({
            "contract": id,
            "action": verb,
            "version": deployment.version,
            "node": node.to_string(),
            "workloads": states.map(|s| s.into_iter().map(|(n, (st, m))| json!({"name": n, "status": st, "message": m})).collect::<Vec<_>>()),
        }),
    })
}

/// Waits until the node reported `deployment`'s version with every workload `ok`, printing each
/// workload's changes. Fails when every workload was reported and one is in error, or at the
/// timeout, naming what is missing.
pub async fn wait_for_node(
    ctx: &Ctx,
    client: &ChainClient,
    id: u64,
    deployment: &Deployment,
    timeout: Duration,
) -> anyhow::Result<BTreeMap<String, (String, String)>> {
    let names: Vec<String> = deployment
        .workloads
        .iter()
        .map(|w| String::from_utf8_lossy(&w.name).into_owned())
        .collect();
    let mut shown: BTreeMap<String, (String, String)> = names
        .iter()
        .map(|n| (n.clone(), ("pending".to_string(), String::new())))
        .collect();
    for n in &names {
        ctx.progress(format!("  {n}: pending"));
    }
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(report) = client.workload_states(id, None).await? {
            if report.version == deployment.version {
                for (name, status, message) in fmt::report_lines(&report) {
                    if let Some(s) = shown.get_mut(&name) {
                        let now = (status.to_string(), message);
                        if *s != now {
                            if now.1.is_empty() {
                                ctx.progress(format!("  {name}: {}", now.0));
                            } else {
                                ctx.progress(format!("  {name}: {}: {}", now.0, now.1));
                            }
                            *s = now;
                        }
                    }
                }
            }
        }
        if shown.values().all(|(s, _)| s == "ok") {
            return Ok(shown);
        }
        let all_reported = shown.values().all(|(s, _)| s != "pending");
        if all_reported {
            let failed = describe_missing(&shown);
            return Err(other(format!(
                "contract {id} version {} is on chain, but the node reports: {failed} (see `zosctl describe {id}`)",
                deployment.version
            )));
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(other(format!(
                "timed out after {}s waiting for the node to run contract {id} version {}: {} (the contract is on chain; see `zosctl describe {id}`)",
                timeout.as_secs(),
                deployment.version,
                describe_missing(&shown)
            )));
        }
        tokio::time::sleep(POLL).await;
    }
}

fn describe_missing(shown: &BTreeMap<String, (String, String)>) -> String {
    shown
        .iter()
        .filter(|(_, (s, _))| s != "ok")
        .map(|(n, (s, m))| {
            if m.is_empty() {
                format!("{n} {s}")
            } else {
                format!("{n} {s} ({m})")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}
