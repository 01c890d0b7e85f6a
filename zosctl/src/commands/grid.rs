//! `zosctl farm create|approve`, `node list|show`, `balance`, `transfer`.

use serde_json::{json, Value};
use zos_chain_client::{api, AccountId32, ChainClient, MultiAddress};

use crate::{
    ctx::{submit, Ctx, Out},
    exit::other,
    fmt,
};

/// `farm create NAME`.
pub async fn farm_create(ctx: &Ctx, name: &str) -> anyhow::Result<Out> {
    let key = ctx.key()?;
    let client = ctx.client().await?;
    submit(
        &client,
        &key,
        &api::tx().grid().create_farm(name.as_bytes().to_vec()),
        format!("creating farm {name}"),
    )
    .await?;
    let id = client
        .farm_by_name(name, None)
        .await?
        .ok_or_else(|| other(format!("farm {name} is not on chain after its creation")))?;
    Ok(Out {
        human: format!("farm {name} created: id {id}, owner {}", key.account()),
        json: json!({ "id": id, "name": name, "owner": key.account().to_string() }),
    })
}

/// `farm approve FARM NODE`: the farm's owner lets a node register under the farm.
pub async fn farm_approve(ctx: &Ctx, farm: u32, node: &str) -> anyhow::Result<Out> {
    let key = ctx.key()?;
    let node = ctx.home.account(node)?;
    let client = ctx.client().await?;
    let f = client
        .farm(farm, None)
        .await?
        .ok_or_else(|| other(format!("no farm has id {farm}")))?;
    submit(
        &client,
        &key,
        &api::tx().grid().approve_node(farm, node),
        format!("approving node {node} for farm {farm}"),
    )
    .await?;
    Ok(Out {
        human: format!(
            "node {node} may now register under farm {} (id {farm})",
            f.name
        ),
        json: json!({ "farm": farm, "node": node.to_string() }),
    })
}

/// A node as `node list` and `node show` print it.
struct NodeView {
    json: Value,
    row: String,
    details: String,
}

async fn node_view(client: &ChainClient, account: &AccountId32) -> anyhow::Result<NodeView> {
    let node = client
        .node(account, None)
        .await?
        .ok_or_else(|| other(format!("no node {account} is registered")))?;
    let reserved = client.reserved(account, None).await?;
    let free = node.capacity.saturating_sub(&reserved);
    let now = client.now(None).await?;
    let offline_after = client.offline_after().await?;
    let up = now.saturating_sub(node.last_seen) <= offline_after;
    let last_report = client.node_last_report(account, None).await?;
    let contracts = client.contracts_of_node(account, None).await?;
    let vms = match client.node_hypervisor(account, None).await? {
        Some(zos_chain_client::Hypervisor::Kvm) => Some("kvm"),
        Some(zos_chain_client::Hypervisor::Tcg) => Some("tcg"),
        None => None,
    };
    let farm_name = client
        .farm(node.farm, None)
        .await?
        .map(|f| f.name)
        .unwrap_or_default();
    let status = if up { "up" } else { "down" };
    let report = last_report.map_or_else(
        || "never".to_string(),
        |t| format!("{} ({})", fmt::time(t), fmt::ago(now, t)),
    );
    let row = format!(
        "{:<49} {:<12} {:<11} {:<19} {:<19} {:<6} {}",
        account.to_string(),
        farm_name,
        format!(
            "{}/{}",
            fmt::cpu(reserved.cpu_millis),
            fmt::cpu(node.capacity.cpu_millis)
        ),
        format!(
            "{}/{}",
            fmt::bytes(reserved.mru),
            fmt::bytes(node.capacity.mru)
        ),
        format!(
            "{}/{}",
            fmt::bytes(reserved.sru),
            fmt::bytes(node.capacity.sru)
        ),
        status,
        last_report.map_or_else(|| "never".into(), |t| fmt::ago(now, t)),
    );
    let details = format!(
        "node      {account}\nfarm      {farm_name} (id {})\nstatus    {status} (down after {offline_after}s without a report; last seen {})\nlast uptime report  {report}, up {}s\ncapacity  {}\nreserved  {}\nfree      {}\ncontracts {}\nvms       {}\nendpoint  {}\nwireguard 0x{}",
        node.farm,
        fmt::ago(now, node.last_seen),
        node.uptime,
        fmt::capacity(&node.capacity),
        fmt::capacity(&reserved),
        fmt::capacity(&free),
        if contracts.is_empty() { "none".to_string() } else { contracts.iter().map(u64::to_string).collect::<Vec<_>>().join(", ") },
        match vms {
            Some("kvm") => "yes, with KVM",
            Some(_) => "yes, with TCG (no hardware virtualization: slower)",
            None => "no",
        },
        node.endpoint.as_deref().unwrap_or("none (behind NAT: reached through relays)"),
        hex::encode(node.wg_public_key),
    );
    Ok(NodeView {
        json: json!({
            "account": account.to_string(),
            "farm": node.farm,
            "farm_name": farm_name,
            "status": status,
            "last_seen": node.last_seen,
            "last_report": last_report,
            "uptime": node.uptime,
            "capacity": fmt::capacity_json(&node.capacity),
            "reserved": fmt::capacity_json(&reserved),
            "free": fmt::capacity_json(&free),
            "contracts": contracts,
            "endpoint": node.endpoint,
            "vms": vms,
        }),
        row,
        details,
    })
}

/// `node list [--farm NAME]`.
pub async fn node_list(ctx: &Ctx, farm: Option<&str>) -> anyhow::Result<Out> {
    let client = ctx.client().await?;
    let farm_id = match farm {
        Some(name) => Some(
            client
                .farm_by_name(name, None)
                .await?
                .ok_or_else(|| other(format!("no farm is named {name}")))?,
        ),
        None => None,
    };
    let accounts = client.node_accounts(farm_id, None).await?;
    let mut human = format!(
        "{:<49} {:<12} {:<11} {:<19} {:<19} {:<6} LAST REPORT\n",
        "NODE", "FARM", "CPU", "MEMORY", "SSD", "STATE"
    );
    let mut rows = Vec::new();
    for a in &accounts {
        let v = node_view(&client, a).await?;
        human.push_str(&v.row);
        human.push('\n');
        rows.push(v.json);
    }
    if accounts.is_empty() {
        human = "no nodes".into();
    } else {
        human.push_str("(CPU, memory and SSD: reserved/total)");
    }
    Ok(Out {
        human,
        json: json!(rows),
    })
}

/// `node show ACCOUNT`.
pub async fn node_show(ctx: &Ctx, account: &str) -> anyhow::Result<Out> {
    let account = ctx.home.account(account)?;
    let client = ctx.client().await?;
    let v = node_view(&client, &account).await?;
    Ok(Out {
        human: v.details,
        json: v.json,
    })
}

/// `balance [ACCOUNT]`.
pub async fn balance(ctx: &Ctx, account: Option<&str>) -> anyhow::Result<Out> {
    let account = ctx.account_or_mine(account)?;
    let client = ctx.client().await?;
    let free = client.balance(&account, None).await?;
    Ok(Out {
        human: format!(
            "{}: {}",
            fmt::account(&account, ctx.home.name_of(&account).as_deref()),
            fmt::amount(free)
        ),
        json: json!({ "account": account.to_string(), "free": free.to_string(), "free_zos": fmt::decimal(free) }),
    })
}

/// `transfer TO AMOUNT`.
pub async fn transfer(ctx: &Ctx, to: &str, amount: &str) -> anyhow::Result<Out> {
    let to = ctx.home.account(to)?;
    let value = fmt::parse_amount(amount)?;
    let key = ctx.key()?;
    let client = ctx.client().await?;
    let outcome = submit(
        &client,
        &key,
        &api::tx()
            .balances()
            .transfer_keep_alive(MultiAddress::Id(to), value),
        format!("sending {} to {to}", fmt::amount(value)),
    )
    .await?;
    let balance = client.balance(&to, None).await?;
    Ok(Out {
        human: format!(
            "sent {} to {}; its balance is now {}",
            fmt::amount(value),
            fmt::account(&to, ctx.home.name_of(&to).as_deref()),
            fmt::amount(balance)
        ),
        json: json!({
            "from": key.account().to_string(),
            "to": to.to_string(),
            "amount": value.to_string(),
            "balance": balance.to_string(),
            "block": format!("{:?}", outcome.block_hash),
        }),
    })
}
