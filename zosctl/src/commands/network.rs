//! `zosctl network`: an owner's private network as the chain indexes it.

use serde_json::json;

use crate::{
    ctx::{Ctx, Out},
    exit::other,
    fmt,
};

/// `network show NAME [--owner OWNER]`.
pub async fn show(ctx: &Ctx, name: &str, owner: Option<&str>) -> anyhow::Result<Out> {
    let owner = ctx.account_or_mine(owner)?;
    let client = ctx.client().await?;
    let record = client
        .network(&owner, name.as_bytes(), None)
        .await?
        .ok_or_else(|| other(format!("{owner} has no network {name:?} on chain")))?;
    let cidr = |(addr, prefix): ([u8; 4], u8)| zos_contracts::Ipv4Cidr { addr, prefix };
    let mut human = format!(
        "network  {name}\nowner    {}\nrange    {}\nmembers  {}\n\n  {:<8} {:<18} {:<6} {:<10} node\n",
        fmt::account(&owner, ctx.home.name_of(&owner).as_deref()),
        cidr(record.range),
        record.members.len(),
        "contract",
        "subnet",
        "port",
        "state",
    );
    let mut members = Vec::new();
    let mut nodes = Vec::new();
    for m in &record.members {
        nodes.push(client.node(&m.node, None).await?);
    }
    // Members behind NAT reach each other through the first member with an endpoint, as the
    // nodes choose it; without members behind NAT there is no relay.
    let any_behind_nat = nodes.iter().flatten().any(|n| n.endpoint.is_none());
    let relay = nodes
        .iter()
        .flatten()
        .find(|n| any_behind_nat && n.endpoint.is_some())
        .map(|n| n.account);
    for (m, node) in record.members.iter().zip(nodes) {
        // The member's state is its network workload's, as its node last reported it.
        let report = client.workload_states(m.contract_id, None).await?;
        let (state, message) = report
            .as_ref()
            .map(fmt::report_lines)
            .unwrap_or_default()
            .into_iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, s, m)| (s, m))
            .unwrap_or(("pending", String::new()));
        let endpoint = node.as_ref().and_then(|n| n.endpoint.clone());
        let behind_nat = node.is_some() && endpoint.is_none();
        let is_relay = relay == Some(m.node);
        let port = match &endpoint {
            _ if behind_nat => "NAT".to_string(),
            Some(e) => e
                .rsplit_once(':')
                .and_then(|(_, p)| p.parse::<u32>().ok())
                .map(|p| (p + u32::from(m.port_offset)).to_string())
                .unwrap_or_else(|| format!("+{}", m.port_offset)),
            None => format!("+{}", m.port_offset),
        };
        human.push_str(&format!(
            "  {:<8} {:<18} {:<6} {:<10} {}{}\n",
            m.contract_id,
            cidr(m.subnet).to_string(),
            port,
            state,
            m.node,
            if is_relay { " (relay)" } else { "" }
        ));
        if !message.is_empty() {
            human.push_str(&format!("           {message}\n"));
        }
        members.push(json!({
            "contract": m.contract_id,
            "node": m.node.to_string(),
            "subnet": cidr(m.subnet).to_string(),
            "port_offset": m.port_offset,
            "endpoint": endpoint,
            "behind_nat": behind_nat,
            "relay": is_relay,
            "state": state,
            "message": message,
        }));
    }
    Ok(Out {
        human: human.trim_end().to_string(),
        json: json!({
            "name": name,
            "owner": owner.to_string(),
            "range": cidr(record.range).to_string(),
            "members": members,
        }),
    })
}
