//! Outbound internet for a network that opts in: a veth from the network's namespace to the
//! host's (`up0` inside, `zu<12 hex>` outside, a /30 of 198.18.0.0/15 between them, which no
//! network's range can be), a default route through it, and two masquerades (the network's
//! addresses behind its end of the link, that end behind the host's own address).
//!
//! The host's rules (one nftables table per network, `zos_<12 hex>`) let the link reach the
//! internet only: never the host itself, nor any private, shared, link-local, loopback or
//! multicast address (the farmer's LAN, the other networks' links); and nothing comes in but
//! replies. The rules are applied by `nft -f` in one transaction: nftables' netlink messages are
//! many and nft is the one well-kept tool that speaks them all.

use std::{
    io::Write,
    net::Ipv4Addr,
    path::Path,
    process::{Command, Stdio},
};

use futures::TryStreamExt;
use rtnetlink::{LinkUnspec, LinkVeth, RouteMessageBuilder};

use super::{delete, index, link, netns, only_address, replace_route, set_up, NetError, BRIDGE};

/// The uplink's end inside the network's namespace.
const INSIDE: &str = "up0";

/// Where no network's traffic may go through the uplink.
const NOT_INTERNET: &str = "0.0.0.0/8, 10.0.0.0/8, 100.64.0.0/10, 127.0.0.0/8, 169.254.0.0/16, \
     172.16.0.0/12, 192.0.0.0/24, 192.168.0.0/16, 198.18.0.0/15, 224.0.0.0/4, 240.0.0.0/4";

/// A network's uplink: names and addresses.
pub struct Uplink {
    /// The host's end (and the nftables table's suffix).
    pub outside: String,
    /// The host end's address.
    pub host: Ipv4Addr,
    /// The network end's address.
    pub network: Ipv4Addr,
}

impl Uplink {
    /// The uplink of the network whose WireGuard interface is `interface` (`zw<12 hex>`) and
    /// listens on `port`: ports are unique on a node, so its /30 is too.
    pub fn new(interface: &str, port: u16) -> Uplink {
        let base = u32::from(Ipv4Addr::new(198, 18, 0, 0)) + (u32::from(port) & 0x7fff) * 4;
        Uplink {
            outside: format!("zu{}", &interface[2..]),
            host: Ipv4Addr::from(base + 1),
            network: Ipv4Addr::from(base + 2),
        }
    }

    fn table(&self) -> String {
        format!("zos_{}", &self.outside[2..])
    }
}

/// Gives the network in namespace `ns` its uplink through the namespace `host` (this process's
/// when `None`), or checks that it has it. Idempotent.
pub fn ensure(ns: &Path, host: Option<&Path>, up: &Uplink) -> Result<(), NetError> {
    let outside = up.outside.clone();
    let present = netns::with_netlink(host, |h| async move { link(&h, &outside).await })?;
    let inside_present = netns::with_netlink(Some(ns), |h| async move { link(&h, INSIDE).await })?;
    if present.is_none() || inside_present.is_none() {
        // Half of a pair is what a crash left: both go, and the pair is made again.
        if let Some(l) = present {
            netns::with_netlink(host, |h| delete(h, l.header.index))?;
        }
        if let Some(l) = inside_present {
            netns::with_netlink(Some(ns), |h| delete(h, l.header.index))?;
        }
        let target = netns::open(ns)?;
        let fd = std::os::fd::AsRawFd::as_raw_fd(&target);
        let outside = up.outside.clone();
        netns::with_netlink(host, |h| async move {
            h.link()
                .add(LinkVeth::new(&outside, INSIDE).build())
                .execute()
                .await
                .map_err(NetError::netlink("adding the uplink"))?;
            let inside = index(&h, INSIDE).await?;
            h.link()
                .set(LinkUnspec::new_with_index(inside).setns_by_fd(fd).build())
                .execute()
                .await
                .map_err(NetError::netlink("moving the uplink into the network"))
        })?;
    }
    let (outside, host_addr, net_addr) = (up.outside.clone(), up.host, up.network);
    netns::with_netlink(host, |h| async move {
        let i = index(&h, &outside).await?;
        only_address(&h, i, host_addr, 30, "the uplink").await?;
        set_up(&h, &outside).await
    })?;
    netns::with_netlink(Some(ns), |h| async move {
        let i = index(&h, INSIDE).await?;
        only_address(&h, i, net_addr, 30, "the uplink").await?;
        set_up(&h, INSIDE).await?;
        let route = RouteMessageBuilder::<Ipv4Addr>::new()
            .gateway(host_addr)
            .output_interface(i)
            .build();
        replace_route(&h, route, "the network's default route").await
    })?;
    // Inside: only this node's workloads (from the bridge) leave by the uplink, as the uplink's
    // address: a member node's traffic arriving through WireGuard never exits here.
    nft(
        Some(ns),
        &format!(
            "table ip zos_uplink\ndelete table ip zos_uplink\n\
             table ip zos_uplink {{\n\
               chain forward {{ type filter hook forward priority filter; oifname \"{INSIDE}\" iifname != \"{BRIDGE}\" drop; }}\n\
               chain post {{ type nat hook postrouting priority srcnat; oifname \"{INSIDE}\" masquerade; }}\n\
             }}\n"
        ),
    )?;
    // Outside: the internet only, replies only back, the link's address behind the host's.
    let (table, link) = (up.table(), &up.outside);
    nft(
        host,
        &format!(
            "table ip {table}\ndelete table ip {table}\n\
             table ip {table} {{\n\
               chain input {{ type filter hook input priority filter; iifname \"{link}\" ct state established,related accept; iifname \"{link}\" drop; }}\n\
               chain forward {{ type filter hook forward priority filter;\n\
                 iifname \"{link}\" ip saddr != {net} drop;\n\
                 iifname \"{link}\" ip daddr {{ {NOT_INTERNET} }} drop;\n\
                 iifname \"{link}\" fib daddr type {{ local, broadcast, multicast }} drop;\n\
                 oifname \"{link}\" ct state established,related accept;\n\
                 oifname \"{link}\" drop; }}\n\
               chain post {{ type nat hook postrouting priority srcnat; ip saddr {net} oifname != \"{link}\" masquerade; }}\n\
             }}\n",
            net = up.network
        ),
    )?;
    // The host forwards for the uplinks and nothing else: forwarding is switched on for the whole
    // host, and this table keeps it to them.
    nft(
        host,
        "table ip zos_forward\ndelete table ip zos_forward\n\
         table ip zos_forward {\n\
           chain forward { type filter hook forward priority filter; iifname \"zu*\" accept; oifname \"zu*\" accept; drop; }\n\
         }\n",
    )?;
    let forward = || {
        std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")
            .map_err(|e| NetError::io("turning the host's forwarding on", e))
    };
    match host {
        Some(host) => netns::within(host, forward),
        None => forward(),
    }
}

/// Removes the uplink of network interface `interface` (if it has one) and the host's rules for
/// it; with `ns`, the rules inside the network's namespace too (when egress is turned off). With
/// `always`, the host's rules go even when the link is already gone (the network goes: a crash
/// may have left them).
pub fn remove(
    ns: Option<&Path>,
    host: Option<&Path>,
    interface: &str,
    always: bool,
) -> Result<(), NetError> {
    let up = Uplink::new(interface, 0);
    let outside = up.outside.clone();
    let present = netns::with_netlink(host, |h| async move { link(&h, &outside).await })?;
    let Some(l) = present else {
        if always {
            let table = up.table();
            nft(
                host,
                &format!("table ip {table}\ndelete table ip {table}\n"),
            )?;
        }
        return Ok(());
    };
    // Its inner end goes with it, and the default route through it.
    netns::with_netlink(host, |h| delete(h, l.header.index))?;
    if let Some(ns) = ns {
        nft(
            Some(ns),
            "table ip zos_uplink\ndelete table ip zos_uplink\n",
        )?;
    }
    let table = up.table();
    nft(
        host,
        &format!("table ip {table}\ndelete table ip {table}\n"),
    )?;
    // The last uplink gone, the host's forwarding rules go too.
    let uplinks = netns::with_netlink(host, |h| async move {
        let mut links = h.link().get().execute();
        let mut any = false;
        while let Some(l) = links
            .try_next()
            .await
            .map_err(NetError::netlink("listing links"))?
        {
            any |= l.attributes.iter().any(|a| {
                matches!(a, rtnetlink::packet_route::link::LinkAttribute::IfName(n) if n.starts_with("zu"))
            });
        }
        Ok(any)
    })?;
    if !uplinks {
        nft(host, "table ip zos_forward\ndelete table ip zos_forward\n")?;
    }
    Ok(())
}

/// Applies `rules` with `nft -f -` in the namespace at `ns` (this process's when `None`).
fn nft(ns: Option<&Path>, rules: &str) -> Result<(), NetError> {
    let run = || -> Result<(), NetError> {
        let mut child = Command::new("nft")
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| NetError::io("running nft", e))?;
        child
            .stdin
            .take()
            .expect("stdin is piped")
            .write_all(rules.as_bytes())
            .map_err(|e| NetError::io("writing to nft", e))?;
        let out = child
            .wait_with_output()
            .map_err(|e| NetError::io("running nft", e))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(NetError::Invalid(format!(
                "nft refused the rules: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )))
        }
    };
    match ns {
        Some(ns) => netns::within(ns, run),
        None => run(),
    }
}
