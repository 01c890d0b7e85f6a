//! `zosctl get`, `describe`, `delete`.

use serde_json::json;
use zos_chain_client::{api, multisig, ChainClient, Contract, ContractState};

use crate::{
    commands::group,
    ctx::{submit, Ctx, Out},
    exit::other,
    fmt,
};

fn state(c: &Contract, now: u64) -> String {
    match c.state {
        ContractState::Active => "active".into(),
        ContractState::GracePeriod { since } => {
            format!("grace period since {}", fmt::ago(now, since))
        }
    }
}

fn state_json(c: &Contract) -> serde_json::Value {
    match c.state {
        ContractState::Active => json!({ "state": "active" }),
        ContractState::GracePeriod { since } => json!({ "state": "grace_period", "since": since }),
    }
}

/// `ok 2/2`, `error 1/2`, `pending` for the latest report, when it is for the current version.
async fn summary(client: &ChainClient, c: &Contract) -> anyhow::Result<String> {
    let Some(report) = client.workload_states(c.id, None).await? else {
        return Ok("pending".into());
    };
    if report.version != c.deployment.version {
        return Ok(format!("pending (v{} reported)", report.version));
    }
    let lines = fmt::report_lines(&report);
    let ok = lines.iter().filter(|l| l.1 == "ok").count();
    let total = c.deployment.workloads.len();
    let worst = lines
        .iter()
        .map(|l| l.1)
        .find(|s| *s != "ok")
        .unwrap_or("ok");
    Ok(format!("{worst} {ok}/{total}"))
}

/// `get [--owner A]`.
pub async fn get(ctx: &Ctx, owner: Option<&str>) -> anyhow::Result<Out> {
    let owner = ctx.account_or_mine(owner)?;
    let client = ctx.client().await?;
    let now = client.now(None).await?;
    let ids = client.contracts_of_owner(&owner, None).await?;
    let mut human = format!(
        "{:<6} {:<49} {:>7} {:<22} {:<16} CAPACITY\n",
        "ID", "NODE", "VERSION", "STATE", "WORKLOADS"
    );
    let mut rows = Vec::new();
    for id in &ids {
        let Some(c) = client.contract(*id, None).await? else {
            continue;
        };
        let workloads = summary(&client, &c).await?;
        human.push_str(&format!(
            "{:<6} {:<49} {:>7} {:<22} {:<16} {}\n",
            c.id,
            c.node.to_string(),
            c.deployment.version,
            state(&c, now),
            workloads,
            fmt::capacity(&c.capacity)
        ));
        rows.push(json!({
            "id": c.id,
            "node": c.node.to_string(),
            "owner": c.owner.to_string(),
            "version": c.deployment.version,
            "state": state_json(&c),
            "workloads": workloads,
            "capacity": fmt::capacity_json(&c.capacity),
        }));
    }
    if ids.is_empty() {
        human = format!(
            "{} has no contracts",
            fmt::account(&owner, ctx.home.name_of(&owner).as_deref())
        );
    }
    Ok(Out {
        human,
        json: json!(rows),
    })
}

/// `describe ID`.
pub async fn describe(ctx: &Ctx, id: u64) -> anyhow::Result<Out> {
    let client = ctx.client().await?;
    let c = client
        .contract(id, None)
        .await?
        .ok_or_else(|| other(format!("no contract {id} on chain")))?;
    let now = client.now(None).await?;
    let report = client.workload_states(id, None).await?;
    let usage = client.usage(id, None).await?;
    let prices = client.pricing(None).await?;
    let per_hour = multisig::reservation_per_hour(&prices, &c.capacity);
    let owner_name = ctx.home.name_of(&c.owner);

    let reported: Vec<(String, &'static str, String)> =
        report.as_ref().map(fmt::report_lines).unwrap_or_default();
    let report_version = report.as_ref().map(|r| r.version);
    let mut human = format!(
        "contract  {id}\nowner     {}\nnode      {}\nversion   {}\nhash      {}\nstate     {}\ncapacity  {}\n",
        fmt::account(&c.owner, owner_name.as_deref()),
        c.node,
        c.deployment.version,
        fmt::hash(&c.hash),
        state(&c, now),
        fmt::capacity(&c.capacity),
    );
    if !c.deployment.description.is_empty() {
        human.push_str(&format!(
            "about     {}\n",
            String::from_utf8_lossy(&c.deployment.description)
        ));
    }
    match &report {
        Some(r) => human.push_str(&format!(
            "\nworkloads (node report for version {}, {}):\n",
            r.version,
            fmt::ago(now, r.at)
        )),
        None => human.push_str("\nworkloads (no report from the node yet):\n"),
    }
    let mut workloads = Vec::new();
    for w in fmt::workloads(&c.deployment) {
        let (status, message) = reported
            .iter()
            .find(|r| r.0 == w.name)
            .map(|r| (r.1, r.2.clone()))
            .unwrap_or(("pending", String::new()));
        let status = match report_version {
            Some(v) if v != c.deployment.version => format!("{status} (version {v})"),
            _ => status.to_string(),
        };
        human.push_str(&format!("  {status:<8} {}\n", w.human()));
        if !message.is_empty() {
            human.push_str(&format!("           {message}\n"));
        }
        let mut j = w.json();
        j["status"] = json!(status);
        j["message"] = json!(message);
        workloads.push(j);
    }
    match usage.as_ref().filter(|u| u.last_report.is_some()) {
        Some(u) => human.push_str(&format!(
            "\nconsumption (total): cpu {:.1}s, memory peak {}, received {}, sent {}{}\n",
            u.total.cpu_ms as f64 / 1000.0,
            fmt::bytes(u.total.memory_peak),
            fmt::bytes(u.total.net_rx),
            fmt::bytes(u.total.net_tx),
            u.last_report
                .map(|t| format!(" (last report {})", fmt::ago(now, t)))
                .unwrap_or_default()
        )),
        None => human.push_str("\nconsumption: no report yet\n"),
    }
    human.push_str(&format!(
        "billing: {} per hour for its reservation; unpaid {}",
        fmt::amount(per_hour),
        fmt::amount(c.unpaid)
    ));
    if let ContractState::GracePeriod { since } = c.state {
        human.push_str(&format!(
            "; in its grace period since {} ({}): fund the owner or the node pauses it and the chain deletes it",
            fmt::time(since),
            fmt::ago(now, since)
        ));
    }
    Ok(Out {
        human,
        json: json!({
            "id": id,
            "owner": c.owner.to_string(),
            "node": c.node.to_string(),
            "version": c.deployment.version,
            "hash": fmt::hash(&c.hash),
            "state": state_json(&c),
            "capacity": fmt::capacity_json(&c.capacity),
            "report": report.as_ref().map(|r| json!({ "version": r.version, "at": r.at })),
            "workloads": workloads,
            "consumption": usage.as_ref().map(|u| json!({
                "cpu_ms": u.total.cpu_ms,
                "memory_peak": u.total.memory_peak,
                "net_rx": u.total.net_rx,
                "net_tx": u.total.net_tx,
                "last_report": u.last_report,
            })),
            "billing": {
                "per_hour": per_hour.to_string(),
                "unpaid": c.unpaid.to_string(),
                "grace_since": match c.state { ContractState::GracePeriod { since } => Some(since), _ => None },
            },
        }),
    })
}

/// `delete ID [--as-group G]`.
pub async fn delete(ctx: &Ctx, id: u64, as_group: Option<&str>) -> anyhow::Result<Out> {
    let key = ctx.key()?;
    let group = as_group.map(|g| ctx.home.group(g)).transpose()?;
    if let Some(g) = &group {
        g.others(&key.account())?;
    }
    let client = ctx.client().await?;
    if client.contract(id, None).await?.is_none() {
        return Err(other(format!("no contract {id} on chain")));
    }
    if let (Some(name), Some(group)) = (as_group, &group) {
        return group::propose(
            ctx,
            &client,
            &key,
            name,
            group,
            multisig::cancel_contract_call(id),
        )
        .await;
    }
    submit(
        &client,
        &key,
        &api::tx().deployments().cancel_contract(id),
        format!("canceling contract {id}"),
    )
    .await?;
    Ok(Out {
        human: format!("contract {id} canceled; its node tears it down"),
        json: json!({ "contract": id, "action": "canceled" }),
    })
}
