//! Private networks for real: two agents on one machine, each with WireGuard in a "host"
//! namespace of its own, the hosts joined by a veth underlay (zos_testkit::netlab); a dev chain
//! whose index of networks gives each node its peers. Traffic stays in the namespaces the test
//! made and on loopback.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use zos_chain_client::keys::UserKey;
use zos_e2e::{deployment, leftovers, wait_gone, Agent, Grid};
use zos_testkit::{
    netlab::{busybox_in, pings, Lab},
    wait_until,
};

const DEPLOY: Duration = Duration::from_secs(120);

/// A network `net` of range 10.77.0.0/16 with `subnet` on this node, and a busybox container
/// `name` on it that idles.
fn member(image: &str, subnet: &str, name: &str) -> String {
    format!(
        "workloads:
  - name: net
    network: {{ range: 10.77.0.0/16, subnet: {subnet} }}
  - name: {name}
    container:
      image: {image}
      entrypoint: [sleep, '100000']
      cpu: 0.1
      memory: 32MiB
      rootfs: 64MiB
      network: {{ name: net }}
"
    )
}

/// Sends `marker` by TCP from the namespace at `from` to port 7000 of `to`, where a listener
/// runs in the namespace at `at`; returns what the listener got.
fn tcp(from: &std::path::Path, at: &std::path::Path, to: &str, marker: &str) -> Result<String> {
    let listener = std::process::Command::new("nsenter")
        .arg(format!("--net={}", at.display()))
        .args([
            "/bin/busybox",
            "timeout",
            "10",
            "/bin/busybox",
            "nc",
            "-l",
            "-p",
            "7000",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    std::thread::sleep(Duration::from_millis(300));
    let sent = busybox_in(
        from,
        &[
            "sh",
            "-c",
            &format!("echo {marker} | /bin/busybox nc -w 2 {to} 7000"),
        ],
    );
    ensure!(sent.status.success(), "nc to {to}: {sent:?}");
    let got = listener.wait_with_output()?;
    Ok(String::from_utf8_lossy(&got.stdout).trim().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_on_two_nodes_share_a_private_network_and_no_one_else_gets_in() -> Result<()> {
    let _one = zos_e2e::one_agent_at_a_time().await;
    let lab = Lab::new();
    let grid = Grid::start("e2e-networks").await?;
    let dir = tempfile::tempdir()?;
    let home_a = &grid.test_home(&dir.path().join("a"))?;
    let home_b = &grid.test_home(&dir.path().join("b"))?;
    home_a.on_lab_host(&lab, "a")?;
    home_b.on_lab_host(&lab, "b")?;
    let (mut agent_a, node_a) = grid.start_node(home_a).await?;
    let (_agent_b, node_b) = grid.start_node(home_b).await?;
    let bob = grid.client.submitter(UserKey::from_uri("//Bob")?);
    let charlie = grid.client.submitter(UserKey::from_uri("//Charlie")?);

    // Bob's network on both nodes: a container on each, finalized to first packet timed.
    // A VM on a beside the container, on the same network.
    let with_vm = format!(
        "{}  - name: box
    vm:
      image: {}
      vcpus: 1
      memory: 256MiB
      network: {{ name: net }}
",
        member(&grid.image, "10.77.1.0/24", "web"),
        grid.vm_image
    );
    let on_a = grid
        .create(&bob, &node_a, &deployment(&with_vm, None)?)
        .await?;
    grid.wait_states(
        on_a,
        1,
        &[("net", "ok"), ("web", "ok"), ("box", "ok")],
        DEPLOY,
    )
    .await?;
    let on_b = grid
        .create(
            &bob,
            &node_b,
            &deployment(&member(&grid.image, "10.77.2.0/24", "db"), None)?,
        )
        .await?;
    let created = std::time::Instant::now();
    grid.wait_states(on_b, 1, &[("net", "ok"), ("db", "ok")], DEPLOY)
        .await?;
    let (web, db) = (
        home_a.container_namespace(on_a, "web"),
        home_b.container_namespace(on_b, "db"),
    );
    // Addresses: the first host after the gateway.
    wait_until("web to reach db over the tunnel", DEPLOY, || {
        let ok = pings(&web, "10.77.2.2");
        async move { ok.then_some(()) }
    })
    .await?;
    eprintln!(
        "contract on b finalized -> first ping from a answered: {:?}",
        created.elapsed()
    );
    // The VM on a and the container on b reach each other (the guest's kernel answers).
    let console = home_a
        .run_dir
        .join("vms")
        .join(zos_e2e::container_id(on_a, "box"))
        .join("console.log");
    wait_until("db to reach the VM on a", DEPLOY, || {
        let ok = pings(&db, "10.77.1.3");
        async move { ok.then_some(()) }
    })
    .await
    .with_context(|| {
        format!(
            "the VM's console: {}",
            std::fs::read_to_string(&console).unwrap_or_default()
        )
    })?;

    // Another owner's network of the same name, range and subnet on b: its container has db's
    // very address, and still no one crosses.
    let theirs = grid
        .create(
            &charlie,
            &node_b,
            &deployment(&member(&grid.image, "10.77.2.0/24", "spy"), None)?,
        )
        .await?;
    grid.wait_states(theirs, 1, &[("net", "ok"), ("spy", "ok")], DEPLOY)
        .await?;
    let spy = home_b.container_namespace(theirs, "spy");

    let capture = lab.capture(&dir.path().join("underlay.pcap"));
    ensure!(pings(&web, "10.77.2.2"), "web reaches db (ICMP)");
    ensure!(pings(&db, "10.77.1.2"), "db reaches web (ICMP)");
    let marker = "zos-e2e-marker-5d1f";
    ensure!(
        tcp(&web, &db, "10.77.2.2", marker)? == marker,
        "web reaches db (TCP), and only db"
    );
    ensure!(
        tcp(&db, &web, "10.77.1.2", marker)? == marker,
        "db reaches web (TCP)"
    );
    ensure!(
        !pings(&spy, "10.77.1.2"),
        "another owner's container reaches Bob's web"
    );
    let (raw, lines) = capture.stop();
    ensure!(
        !raw.windows(marker.len()).any(|w| w == marker.as_bytes()),
        "the marker crossed the underlay in the clear"
    );
    ensure!(lines.len() > 4, "the capture saw the tunnel: {lines:?}");
    for line in &lines {
        let wireguard =
            line.contains(" UDP") && (line.contains(".51820") || line.contains(".51821"));
        ensure!(
            wireguard || line.contains("ARP"),
            "not WireGuard on the underlay: {line}"
        );
    }

    // The agent on a killed with -9 and started again: traffic keeps flowing, nothing rebuilt.
    let interface_before = zos_testkit::netlab::links(
        &home_a
            .run_dir
            .join("networks/networks")
            .join(zos_e2e::container_id(on_a, "net")),
        "zw",
    );
    agent_a.process.kill9();
    ensure!(
        pings(&web, "10.77.2.2"),
        "traffic flows while the agent is down"
    );
    let _agent_a = Agent::start(home_a)?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    ensure!(
        pings(&web, "10.77.2.2"),
        "traffic flows after the agent came back"
    );
    let interface_after = zos_testkit::netlab::links(
        &home_a
            .run_dir
            .join("networks/networks")
            .join(zos_e2e::container_id(on_a, "net")),
        "zw",
    );
    ensure!(
        interface_before == interface_after && !interface_after.is_empty(),
        "{interface_before:?} -> {interface_after:?}"
    );

    // A member leaving: b's contract canceled, a drops the peer and the traffic.
    grid.cancel(&bob, on_b).await?;
    wait_gone(on_b, home_b, DEPLOY).await?;
    wait_until("a to drop b's peer", DEPLOY, || {
        let ok = !pings(&web, "10.77.2.2");
        async move { ok.then_some(()) }
    })
    .await?;
    ensure!(
        leftovers(on_b, home_b).is_empty(),
        "{:?}",
        leftovers(on_b, home_b)
    );

    for (owner, id, home) in [(&bob, on_a, home_a), (&charlie, theirs, home_b)] {
        grid.cancel(owner, id).await?;
        wait_gone(id, home, DEPLOY).await?;
        let left = leftovers(id, home);
        ensure!(left.is_empty(), "{left:?}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_behind_nat_join_and_reach_each_other_through_a_member_with_an_endpoint() -> Result<()>
{
    let _one = zos_e2e::one_agent_at_a_time().await;
    // a on the underlay; c and d behind host b, a NAT router that lets nothing in unasked.
    let mut lab = Lab::new();
    lab.add_behind_nat(&["c", "d"]);
    let grid = Grid::start("e2e-networks-nat").await?;
    let dir = tempfile::tempdir()?;
    let mut homes = Vec::new();
    for host in ["a", "c", "d"] {
        let home = grid.test_home(&dir.path().join(host))?;
        home.on_lab_host(&lab, host)?;
        homes.push(home);
    }
    let mut nodes = Vec::new();
    for home in &homes {
        nodes.push(grid.start_node(home).await?);
    }
    // Behind NAT: registered without an endpoint.
    for (home, nat) in homes.iter().zip([false, true, true]) {
        let node = grid
            .client
            .node(&home.account()?, None)
            .await?
            .context("registered")?;
        ensure!(
            node.endpoint.is_none() == nat,
            "endpoint {:?}",
            node.endpoint
        );
    }
    let bob = grid.client.submitter(UserKey::from_uri("//Bob")?);
    let mut contracts = Vec::new();
    for (i, (name, (_, node))) in ["web", "cat", "dog"].iter().zip(&nodes).enumerate() {
        let subnet = format!("10.77.{}.0/24", i + 1);
        let id = grid
            .create(
                &bob,
                node,
                &deployment(&member(&grid.image, &subnet, name), None)?,
            )
            .await?;
        contracts.push(id);
    }
    for (id, name) in contracts.iter().zip(["web", "cat", "dog"]) {
        grid.wait_states(*id, 1, &[("net", "ok"), (name, "ok")], DEPLOY)
            .await?;
    }
    let ns = |i: usize, name: &str| homes[i].container_namespace(contracts[i], name);
    let (web, cat, dog) = (ns(0, "web"), ns(1, "cat"), ns(2, "dog"));
    // cat and dog are both behind NAT: only a, the member with an endpoint, joins them.
    wait_until("cat to reach dog through a", DEPLOY, || {
        let ok = pings(&cat, "10.77.3.2");
        async move { ok.then_some(()) }
    })
    .await?;
    let capture = lab.capture(&dir.path().join("underlay.pcap"));
    ensure!(pings(&dog, "10.77.2.2"), "dog reaches cat (ICMP)");
    ensure!(pings(&web, "10.77.2.2"), "web reaches cat (ICMP)");
    ensure!(pings(&dog, "10.77.1.2"), "dog reaches web (ICMP)");
    let marker = "zos-e2e-nat-marker-77c3";
    ensure!(
        tcp(&cat, &dog, "10.77.3.2", marker)? == marker,
        "cat reaches dog (TCP)"
    );
    // The relay carries it: a's tunnel takes cat's bytes from c and gives them to d, and d's
    // peer for a holds cat's subnet.
    let interface = |i: usize| -> Result<String> {
        let ns = homes[i]
            .run_dir
            .join("networks/networks")
            .join(zos_e2e::container_id(contracts[i], "net"));
        zos_testkit::netlab::links(&ns, "zw")
            .pop()
            .context("the network's WireGuard interface")
    };
    let mut keys = Vec::new();
    for home in &homes {
        let node = grid.client.node(&home.account()?, None).await?;
        keys.push(node.context("registered")?.wg_public_key);
    }
    let relay = interface(0)?;
    let counters = || -> Result<(u64, u64)> {
        let device = zos_host::network::wireguard::get(&relay)?;
        let from_c = device
            .peers
            .get(&keys[1])
            .context("c is a's peer")?
            .rx_bytes;
        let to_d = device
            .peers
            .get(&keys[2])
            .context("d is a's peer")?
            .tx_bytes;
        Ok((from_c, to_d))
    };
    let before = counters()?;
    let big = busybox_in(
        &cat,
        &["ping", "-c", "3", "-s", "1000", "-W", "2", "10.77.3.2"],
    );
    ensure!(big.status.success(), "cat pings dog: {big:?}");
    let after = counters()?;
    ensure!(
        after.0 >= before.0 + 3000 && after.1 >= before.1 + 3000,
        "a relayed cat's pings from c to d: {before:?} -> {after:?}"
    );
    let on_d = zos_host::network::wireguard::get(&interface(2)?)?;
    let via_a = &on_d
        .peers
        .get(&keys[0])
        .context("a is d's peer")?
        .allowed_ips;
    ensure!(
        via_a.iter().any(|ip| ip.to_string() == "10.77.2.0/24")
            && !on_d.peers.contains_key(&keys[1]),
        "d reaches cat's subnet through a only: {:?}",
        on_d.peers
    );
    let (raw, lines) = capture.stop();
    ensure!(
        !raw.windows(marker.len()).any(|w| w == marker.as_bytes()),
        "the marker crossed the underlay in the clear"
    );
    // Everything on the underlay is WireGuard between a and the NAT's public address.
    ensure!(lines.len() > 4, "the capture saw the relay: {lines:?}");
    for line in &lines {
        let wireguard = line.contains(" UDP")
            && line.contains("10.250.0.1.5182")
            && line.contains("10.250.0.2.");
        ensure!(
            wireguard || line.contains("ARP"),
            "not WireGuard between a and the NAT on the underlay: {line}"
        );
    }

    for (id, home) in contracts.iter().zip(&homes) {
        grid.cancel(&bob, *id).await?;
        wait_gone(*id, home, DEPLOY).await?;
        let left = leftovers(*id, home);
        ensure!(left.is_empty(), "{left:?}");
    }
    Ok(())
}
