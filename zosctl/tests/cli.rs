//! `zosctl` as users run it: the binary, against a real `zos-chain --dev` (no node agent: nodes
//! are registered through the chain client, and contracts are applied with `--no-wait`).

use std::{os::unix::fs::PermissionsExt, path::Path};

use anyhow::{ensure, Context, Result};
use assert_cmd::Command;
use predicates::prelude::*;
use serde_json::Value;
use zos_chain_client::{
    api,
    keys::{NodeKey, UserKey},
    multisig::{self, Group},
    AccountId32, ChainClient,
};
use zos_contracts::Capacity;
use zos_testkit::ChainNode;

const IMAGE: &str =
    "127.0.0.1:5000/app@sha256:3fbc632167424a6d997e74f52b878d7cc478225cffac6bc977eedfe51c7f4e79";

/// `zosctl` with its own home and endpoint, and no key from the environment.
fn zosctl(home: &Path, url: &str) -> Command {
    let mut cmd = Command::cargo_bin("zosctl").expect("the zosctl binary is built with its tests");
    cmd.env("ZOSCTL_HOME", home)
        .env("ZOSCTL_URL", url)
        .env_remove("ZOSCTL_KEY");
    cmd
}

/// Runs `args`, expects success, returns stdout parsed as JSON (`-o json` is added).
fn json(home: &Path, url: &str, args: &[&str]) -> Result<Value> {
    let out = zosctl(home, url).args(args).args(["-o", "json"]).output()?;
    ensure!(
        out.status.success(),
        "zosctl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "zosctl {args:?} printed no JSON: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn deployment_yaml(version: u32, cpu: &str, memory: &str) -> String {
    format!(
        "version: {version}
description: a test
workloads:
  - name: web
    container:
      image: {IMAGE}
      cpu: {cpu}
      memory: {memory}
      env: {{ MODE: test, TOKEN: {{ secret: s3cr3t }} }}
"
    )
}

fn write(dir: &Path, name: &str, text: &str) -> Result<String> {
    let path = dir.join(name);
    std::fs::write(&path, text)?;
    Ok(path.to_string_lossy().into_owned())
}

#[test]
fn keys_files_and_local_checks_need_no_chain() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let home = dir.path().join("home");
    // Nothing listens there: only commands that never reach the chain may succeed.
    let url = format!("ws://127.0.0.1:{}", zos_testkit::free_port()?);

    // Generated keys: shown once, private files, listed.
    let gen = json(&home, &url, &["key", "generate", "me"])?;
    let phrase = gen["mnemonic"].as_str().context("a mnemonic")?.to_string();
    assert_eq!(phrase.split(' ').count(), 12);
    let mode = std::fs::metadata(home.join("keys/me"))?
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "key files are 0600");
    let ed = json(
        &home,
        &url,
        &["key", "generate", "node", "--scheme", "ed25519"],
    )?;
    assert_eq!(ed["scheme"], "ed25519");
    assert_eq!(ed["seed"].as_str().map(str::len), Some(66));
    zosctl(&home, &url)
        .args(["key", "generate", "me"])
        .assert()
        .code(3)
        .stderr(predicate::str::contains("exists already"));

    // Imports give the same accounts as the secrets they come from.
    let again = json(
        &home,
        &url,
        &["key", "import", "me2", "--mnemonic", &phrase],
    )?;
    assert_eq!(again["address"], gen["address"]);
    let bob = json(&home, &url, &["key", "import", "bob", "--uri", "//Bob"])?;
    assert_eq!(
        bob["address"],
        UserKey::from_uri("//Bob")?.account().to_string()
    );
    let seed = ed["seed"].as_str().context("seed")?;
    let ed2 = json(
        &home,
        &url,
        &[
            "key", "import", "node2", "--seed", seed, "--scheme", "ed25519",
        ],
    )?;
    assert_eq!(ed2["address"], ed["address"]);
    zosctl(&home, &url)
        .args([
            "key",
            "import",
            "bad",
            "--mnemonic",
            "not a mnemonic at all",
        ])
        .assert()
        .code(3);
    let list = json(&home, &url, &["key", "list"])?;
    let names: Vec<&str> = list
        .as_array()
        .context("a list")?
        .iter()
        .filter_map(|k| k["name"].as_str())
        .collect();
    assert_eq!(names, ["bob", "me", "me2", "node", "node2"]);
    zosctl(&home, &url)
        .args(["key", "list"])
        .assert()
        .success()
        .stdout(predicate::str::contains("ed25519").and(predicate::str::contains("sr25519")));

    // A key others can read is refused; so is an unknown key.
    std::fs::set_permissions(
        home.join("keys/me2"),
        std::fs::Permissions::from_mode(0o644),
    )?;
    zosctl(&home, &url)
        .args(["--key", "me2", "balance"])
        .assert()
        .code(3)
        .stderr(predicate::str::contains("chmod 600"));
    zosctl(&home, &url)
        .args(["--key", "nobody", "balance"])
        .assert()
        .code(3)
        .stderr(predicate::str::contains("no key named \"nobody\""));
    zosctl(&home, &url)
        .args(["--key", "//Alice", "transfer", "//Bob", "1.2.3"])
        .assert()
        .code(3)
        .stderr(predicate::str::contains("not an amount"));

    // A YAML error names the field and the line; a deployment the chain would refuse is refused
    // here with the same rule, before any connection.
    let node = NodeKey::generate().account().to_string();
    let bad = write(
        dir.path(),
        "bad.yaml",
        &deployment_yaml(1, "1", "256MiB").replace("memory: 256MiB", "memory: lots"),
    )?;
    zosctl(&home, &url)
        .args(["--key", "//Alice", "apply", "-f", &bad, "--node", &node])
        .assert()
        .code(3)
        .stderr(
            predicate::str::contains("workloads[0].container.memory")
                .and(predicate::str::contains("line 8")),
        );
    let unknown = write(
        dir.path(),
        "unknown.yaml",
        &deployment_yaml(1, "1", "256MiB").replace("description:", "descripton:"),
    )?;
    zosctl(&home, &url)
        .args(["--key", "//Alice", "apply", "-f", &unknown, "--node", &node])
        .assert()
        .code(3)
        .stderr(predicate::str::contains("descripton").and(predicate::str::contains("line 2")));
    let invalid = write(
        dir.path(),
        "invalid.yaml",
        &format!(
            "{}      mounts: [{{ volume: nowhere, path: /data }}]\n",
            deployment_yaml(1, "1", "256MiB")
        ),
    )?;
    zosctl(&home, &url)
        .args(["--key", "//Alice", "apply", "-f", &invalid, "--node", &node])
        .assert()
        .code(3)
        .stderr(
            predicate::str::contains("invalid deployment").and(predicate::str::contains("nowhere")),
        );

    // Usage errors are clap's code.
    zosctl(&home, &url).args(["apply"]).assert().code(2);
    let ok = write(dir.path(), "ok.yaml", &deployment_yaml(1, "1", "256MiB"))?;
    zosctl(&home, &url)
        .args(["--key", "//Alice", "apply", "-f", &ok])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--node"));
    zosctl(&home, &url)
        .args(["transfer", "//Bob", "1"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--key"));

    // No chain at the URL: exit 5.
    zosctl(&home, &url)
        .args(["balance", "//Alice"])
        .assert()
        .code(5)
        .stderr(predicate::str::contains("cannot reach the chain"));
    zosctl(&home, &url)
        .args(["-o", "json", "balance", "//Alice"])
        .assert()
        .code(5)
        .stderr(predicate::function(|s: &str| {
            serde_json::from_str::<Value>(s).is_ok_and(|v| v["exit_code"] == 5)
        }));

    // Groups are local profiles: the account is pallet-multisig's.
    let group = json(
        &home,
        &url,
        &[
            "group",
            "create",
            "team",
            "--members",
            "//Charlie,bob,//Alice",
            "--threshold",
            "2",
        ],
    )?;
    let members = ["//Alice", "//Bob", "//Charlie"]
        .iter()
        .map(|u| Ok(UserKey::from_uri(u)?.account()))
        .collect::<Result<Vec<AccountId32>>>()?;
    let expected = Group::new(members, 2)?;
    assert_eq!(group["account"], expected.account().to_string());
    let text = std::fs::read_to_string(home.join("groups/team.toml"))?;
    let mut sorted = expected.members().iter().map(|m| m.to_string());
    assert!(
        sorted.all(|m| text.contains(&m)),
        "the profile lists the members: {text}"
    );
    zosctl(&home, &url)
        .args([
            "group",
            "create",
            "big",
            "--members",
            "//Alice,//Bob",
            "--threshold",
            "3",
        ])
        .assert()
        .code(3)
        .stderr(predicate::str::contains("threshold"));
    let groups = json(&home, &url, &["group", "list"])?;
    assert_eq!(groups.as_array().map(Vec::len), Some(1));
    zosctl(&home, &url)
        .args([
            "--key",
            "//Dave",
            "group",
            "approve",
            "team",
            &format!("0x{}", "ab".repeat(32)),
        ])
        .assert()
        .code(3)
        .stderr(predicate::str::contains("is not a member of the group"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_chain_command_against_a_dev_chain() -> Result<()> {
    let chain = ChainNode::dev().await?;
    let url = chain.ws_url();
    let dir = tempfile::tempdir()?;
    let home = dir.path().join("home");
    let client = ChainClient::connect(std::slice::from_ref(&url)).await?;

    // Farms and nodes.
    zosctl(&home, &url)
        .args(["--key", "//Alice", "farm", "create", "farm-a"])
        .assert()
        .success()
        .stdout(predicate::str::contains("farm farm-a created: id 0"));
    zosctl(&home, &url)
        .args(["--key", "//Alice", "farm", "create", "farm-a"])
        .assert()
        .code(4)
        .stderr(predicate::str::contains("Grid::"));
    let capacity = Capacity {
        cpu_millis: 8000,
        mru: 16 << 30,
        sru: 100 << 30,
        hru: 0,
    };
    // Only the farm's owner lets a node in.
    let joining = NodeKey::generate().account();
    zosctl(&home, &url)
        .args([
            "--key",
            "//Bob",
            "farm",
            "approve",
            "0",
            &joining.to_string(),
        ])
        .assert()
        .code(4)
        .stderr(predicate::str::contains("NotFarmOwner"));
    ensure!(!client.node_approved(0, &joining, None).await?);
    zosctl(&home, &url)
        .args([
            "--key",
            "//Alice",
            "farm",
            "approve",
            "0",
            &joining.to_string(),
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains(format!(
            "node {joining} may now register under farm farm-a (id 0)"
        )));
    ensure!(client.node_approved(0, &joining, None).await?);
    let node = zos_e2e::register_node(&client, "farm-a", capacity)
        .await?
        .account();
    let nodes = json(&home, &url, &["node", "list", "--farm", "farm-a"])?;
    assert_eq!(nodes[0]["account"], node.to_string());
    assert_eq!(nodes[0]["status"], "up");
    assert_eq!(nodes[0]["capacity"]["cpu_millis"], 8000);
    zosctl(&home, &url)
        .args(["node", "show", &node.to_string()])
        .assert()
        .success()
        .stdout(
            predicate::str::contains("free      8 vCPU, 16GiB memory, 100GiB SSD")
                .and(predicate::str::contains("status    up")),
        );

    // Balances.
    let bob = UserKey::from_uri("//Bob")?.account();
    let before = json(&home, &url, &["balance", "//Bob"])?;
    assert_eq!(before["account"], bob.to_string());
    zosctl(&home, &url)
        .args(["--key", "//Alice", "transfer", "//Bob", "1.5"])
        .assert()
        .success()
        .stdout(predicate::str::contains("sent 1.5 ZOS"));
    let after = json(&home, &url, &["--key", "//Bob", "balance"])?;
    let free = |v: &Value| v["free"].as_str().and_then(|s| s.parse::<u128>().ok());
    assert_eq!(
        free(&after).context("free")? - free(&before).context("free")?,
        1_500_000_000_000
    );

    // A contract: created, listed, described, updated, deleted.
    let v1 = write(dir.path(), "v1.yaml", &deployment_yaml(1, "1", "256MiB"))?;
    let created = json(
        &home,
        &url,
        &[
            "--key",
            "//Bob",
            "apply",
            "-f",
            &v1,
            "--node",
            &node.to_string(),
            "--no-wait",
        ],
    )?;
    let id = created["contract"].as_u64().context("a contract id")?;
    let contract = client.contract(id, None).await?.context("on chain")?;
    assert_eq!(contract.owner, bob);
    let zos_contracts::WorkloadSpec::Container(c) = &contract.deployment.workloads[0].spec else {
        anyhow::bail!("a container");
    };
    assert!(
        matches!(c.env[1].value, zos_contracts::EnvValue::Sealed(_)),
        "the secret left sealed to the node: {:?}",
        c.env[1].value
    );
    let listed = json(&home, &url, &["--key", "//Bob", "get"])?;
    assert_eq!(listed[0]["id"], id);
    assert_eq!(listed[0]["version"], 1);
    assert_eq!(listed[0]["workloads"], "pending");
    zosctl(&home, &url)
        .args(["get", "--owner", "//Bob"])
        .assert()
        .success()
        .stdout(predicate::str::contains(node.to_string()));
    let described = json(&home, &url, &["describe", &id.to_string()])?;
    assert_eq!(described["workloads"][0]["name"], "web");
    assert_eq!(described["workloads"][0]["status"], "pending");
    let per_hour: u128 = described["billing"]["per_hour"]
        .as_str()
        .context("price")?
        .parse()?;
    let prices = client.pricing(None).await?;
    assert_eq!(
        per_hour,
        prices.cru_per_hour + prices.mru_gib_per_hour / 4 + prices.sru_gib_per_hour / 4,
        "1 vCPU, a quarter GiB of memory and the default 256 MiB root filesystem for an hour"
    );
    assert_eq!(described["workloads"][0]["rootfs_bytes"], 256 << 20);
    zosctl(&home, &url)
        .args(["describe", &id.to_string()])
        .assert()
        .success()
        .stdout(
            predicate::str::contains("no report from the node yet")
                .and(predicate::str::contains("memory 256MiB  rootfs 256MiB"))
                .and(predicate::str::contains("per hour")),
        );
    zosctl(&home, &url)
        .args([
            "--key",
            "//Bob",
            "apply",
            "-f",
            &v1,
            "--contract",
            &id.to_string(),
            "--no-wait",
        ])
        .assert()
        .code(3)
        .stderr(predicate::str::contains(
            "version 1 is not higher than version 1 of contract",
        ));
    let v2 = write(dir.path(), "v2.yaml", &deployment_yaml(2, "2", "512MiB"))?;
    let updated = json(
        &home,
        &url,
        &[
            "--key",
            "//Bob",
            "apply",
            "-f",
            &v2,
            "--contract",
            &id.to_string(),
            "--no-wait",
        ],
    )?;
    assert_eq!(updated["action"], "updated");
    let on_chain = client
        .contract(id, None)
        .await?
        .context("still there")?
        .deployment;
    assert_eq!(on_chain.version, 2);
    // The file names no workload version: the changed container was raised to 2 for the node.
    assert_eq!(on_chain.workloads[0].version, 2);
    zosctl(&home, &url)
        .args(["--key", "//Charlie", "delete", &id.to_string()])
        .assert()
        .code(4)
        .stderr(predicate::str::contains("Deployments::NotOwner"));

    // Waiting for a node that never reports ends at the timeout, naming what is missing.
    zosctl(&home, &url)
        .args([
            "--key",
            "//Bob",
            "apply",
            "-f",
            &v1,
            "--node",
            &node.to_string(),
            "--wait-timeout",
            "2s",
        ])
        .assert()
        .code(1)
        .stderr(
            predicate::str::contains("timed out after 2s")
                .and(predicate::str::contains("web pending")),
        );

    zosctl(&home, &url)
        .args(["--key", "//Bob", "delete", &id.to_string()])
        .assert()
        .success();
    assert!(client.contract(id, None).await?.is_none());
    zosctl(&home, &url)
        .args(["describe", &id.to_string()])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("no contract"));

    // An owner who cannot hold the deposit and the first billing period is refused by name.
    zosctl(&home, &url)
        .args(["key", "generate", "poor"])
        .assert()
        .success();
    zosctl(&home, &url)
        .args(["--key", "//Alice", "transfer", "poor", "0.01"])
        .assert()
        .success();
    let big = write(dir.path(), "big.yaml", &deployment_yaml(1, "4", "8GiB"))?;
    zosctl(&home, &url)
        .args([
            "--key",
            "poor",
            "apply",
            "-f",
            &big,
            "--node",
            &node.to_string(),
            "--no-wait",
        ])
        .assert()
        .code(4)
        .stderr(predicate::str::contains(
            "Deployments::InsufficientBalance: The owner cannot hold the storage deposit",
        ));

    // A group: proposals, refusals by pallet-multisig's rules, a call that fails as the group,
    // a withdrawal, a call that runs as the group.
    zosctl(&home, &url)
        .args([
            "group",
            "create",
            "team",
            "--members",
            "//Alice,//Bob,//Charlie",
            "--threshold",
            "2",
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains("zosctl transfer"));
    // Without secrets (sealing is randomised), so that the same file is the same call.
    let plain = write(
        dir.path(),
        "plain.yaml",
        &deployment_yaml(1, "1", "256MiB").replace(", TOKEN: { secret: s3cr3t }", ""),
    )?;
    let team = json(&home, &url, &["group", "show", "team"])?;
    let team_account = team["account"].as_str().context("account")?.to_string();
    let propose = |key: &str| {
        json(
            &home,
            &url,
            &[
                "--key",
                key,
                "apply",
                "-f",
                &plain,
                "--node",
                &node.to_string(),
                "--as-group",
                "team",
            ],
        )
    };
    let proposed = propose("//Alice")?;
    let hash = proposed["call_hash"]
        .as_str()
        .context("call hash")?
        .to_string();
    assert_eq!(proposed["call"]["call"], "create_contract");
    let pending = json(&home, &url, &["group", "pending", "team"])?;
    assert_eq!(pending[0]["call_hash"], hash.as_str());
    assert_eq!(pending[0]["call"]["pallet"], "Deployments");
    assert_eq!(pending[0]["call"]["node"], node.to_string());
    assert_eq!(pending[0]["call"]["workloads"][0]["name"], "web");
    assert_eq!(pending[0]["call"]["workloads"][0]["image"], IMAGE);
    assert_eq!(pending[0]["call"]["price_per_hour"], per_hour.to_string());
    assert_eq!(pending[0]["approvals"].as_array().map(Vec::len), Some(1));
    zosctl(&home, &url)
        .args(["group", "pending", "team"])
        .assert()
        .success()
        .stdout(
            predicate::str::contains("Deployments::create_contract")
                .and(predicate::str::contains("approved  1/2"))
                .and(predicate::str::contains(
                    "cpu 1  memory 256MiB  rootfs 256MiB",
                ))
                .and(predicate::str::contains("  deployment\n    version: 1\n"))
                .and(predicate::str::contains("rootfs: 256MiB"))
                .and(predicate::str::contains("MODE: test")),
        );
    zosctl(&home, &url)
        .args([
            "--key",
            "//Bob",
            "apply",
            "-f",
            &plain,
            "--node",
            &node.to_string(),
            "--as-group",
            "team",
        ])
        .assert()
        .code(4)
        .stderr(predicate::str::contains("already proposed"));
    zosctl(&home, &url)
        .args(["--key", "//Alice", "group", "approve", "team", &hash])
        .assert()
        .code(4)
        .stderr(predicate::str::contains("already approved"));
    zosctl(&home, &url)
        .args(["--key", "//Dave", "group", "approve", "team", &hash])
        .assert()
        .code(3)
        .stderr(predicate::str::contains("is not a member"));
    zosctl(&home, &url)
        .args(["--key", "//Charlie", "group", "reject", "team", &hash])
        .assert()
        .code(4)
        .stderr(predicate::str::contains("only the proposer"));
    // The group has no funds: the call runs as the group and fails, by name.
    zosctl(&home, &url)
        .args([
            "--key",
            "//Bob",
            "group",
            "approve",
            "team",
            &hash,
            "--no-wait",
        ])
        .assert()
        .code(4)
        .stderr(
            predicate::str::contains("Deployments::InsufficientBalance").and(
                predicate::str::contains(format!("zosctl transfer {team_account} 10")),
            ),
        );
    assert_eq!(
        json(&home, &url, &["group", "pending", "team"])?,
        Value::Array(vec![])
    );

    zosctl(&home, &url)
        .args(["--key", "//Alice", "transfer", "team", "10"])
        .assert()
        .success();
    let hash = propose("//Alice")?["call_hash"]
        .as_str()
        .context("hash")?
        .to_string();
    zosctl(&home, &url)
        .args(["--key", "//Alice", "group", "reject", "team", &hash])
        .assert()
        .success()
        .stdout(predicate::str::contains("withdrawn"));
    assert_eq!(
        json(&home, &url, &["group", "pending", "team"])?,
        Value::Array(vec![])
    );

    let hash = propose("//Charlie")?["call_hash"]
        .as_str()
        .context("hash")?
        .to_string();
    let approved = json(
        &home,
        &url,
        &[
            "--key",
            "//Bob",
            "group",
            "approve",
            "team",
            &hash,
            "--no-wait",
        ],
    )?;
    assert_eq!(approved["executed"], true);
    let gid = approved["contract"]
        .as_u64()
        .context("the group's contract")?;
    let owned = json(&home, &url, &["get", "--owner", "team"])?;
    assert_eq!(owned[0]["id"], gid);
    assert_eq!(owned[0]["owner"], team_account.as_str());

    // An update proposed to the group: members see the whole new deployment and what changes
    // from the one on chain; the secret only as a sealed marker.
    let group_v2 = write(
        dir.path(),
        "group-v2.yaml",
        &format!(
            "version: 2
description: a test
workloads:
  - name: web
    container:
      image: {IMAGE}
      entrypoint: [/bin/sh, -c]
      args: [httpd -f -p 8080]
      cpu: 2
      memory: 256MiB
      env: {{ MODE: prod, TOKEN: {{ secret: s3cr3t }} }}
      mounts: [{{ volume: data, path: /data }}]
      restart: on-failure
  - name: data
    volume: {{ size: 1GiB }}
"
        ),
    )?;
    let update = json(
        &home,
        &url,
        &[
            "--key",
            "//Alice",
            "apply",
            "-f",
            &group_v2,
            "--contract",
            &gid.to_string(),
            "--as-group",
            "team",
        ],
    )?;
    assert_eq!(update["call"]["diff"]["from_version"], 1);
    let update_hash = update["call_hash"].as_str().context("hash")?.to_string();
    let pending = json(&home, &url, &["group", "pending", "team"])?;
    let call = &pending[0]["call"];
    assert_eq!(call["call"], "update_contract");
    assert_eq!(call["decoded"], true);
    assert_eq!(call["diff"]["from_version"], 1);
    assert_eq!(call["diff"]["added"][0]["name"], "data");
    assert_eq!(
        call["diff"]["added"][0]["workload"]["volume"]["size"],
        "1GiB"
    );
    assert_eq!(call["diff"]["removed"], Value::Array(vec![]));
    assert_eq!(call["diff"]["changed"][0]["name"], "web");
    let changes = call["diff"]["changed"][0]["changes"]
        .as_array()
        .context("changes")?;
    let change = |path: &str| {
        changes
            .iter()
            .find(|c| c["path"] == path)
            .with_context(|| format!("a change of {path} in {changes:?}"))
    };
    assert_eq!(change("container.cpu")?["old"], 1);
    assert_eq!(change("container.cpu")?["new"], 2);
    assert_eq!(change("container.env.MODE")?["new"], "prod");
    assert_eq!(change("container.env.TOKEN")?["old"], Value::Null);
    assert!(change("container.env.TOKEN")?["new"]["sealed"].is_string());
    assert_eq!(change("container.restart")?["new"], "on-failure");
    let web = &call["deployment"]["workloads"][0]["container"];
    assert_eq!(web["args"][0], "httpd -f -p 8080");
    assert_eq!(web["mounts"][0]["path"], "/data");
    zosctl(&home, &url)
        .args(["group", "pending", "team"])
        .assert()
        .success()
        .stdout(
            predicate::str::contains("Deployments::update_contract")
                .and(predicate::str::contains(
                    "changes   from version 1 on chain",
                ))
                .and(predicate::str::contains("    added data (volume)\n"))
                .and(predicate::str::contains("    changed web\n"))
                .and(predicate::str::contains("      container.cpu: 1 → 2\n"))
                .and(predicate::str::contains(
                    "      container.env.MODE: test → prod\n",
                ))
                .and(predicate::str::contains(
                    "      container.env.TOKEN: (not set) → sealed ",
                ))
                .and(predicate::str::contains("- httpd -f -p 8080"))
                .and(predicate::str::contains("restart: on-failure"))
                .and(predicate::str::contains("s3cr3t").not()),
        );
    zosctl(&home, &url)
        .args(["--key", "//Alice", "group", "reject", "team", &update_hash])
        .assert()
        .success();

    // A call zosctl does not decode (another pallet's) is shown as such, and approved only with
    // --blind.
    let group = Group::new(
        ["//Alice", "//Bob", "//Charlie"]
            .iter()
            .map(|u| Ok(UserKey::from_uri(u)?.account()))
            .collect::<Result<Vec<AccountId32>>>()?,
        2,
    )?;
    let remark = api::Call::System(api::system::Call::remark {
        remark: b"hello from the group".to_vec(),
    });
    let proposed = multisig::propose(
        &client,
        &client.submitter(UserKey::from_uri("//Alice")?),
        &group,
        remark,
    )
    .await?;
    let remark_hash = format!("0x{}", hex::encode(proposed.call.hash));
    let pending = json(&home, &url, &["group", "pending", "team"])?;
    assert_eq!(pending[0]["call_hash"], remark_hash.as_str());
    assert_eq!(pending[0]["call"]["pallet"], "System");
    assert_eq!(pending[0]["call"]["call"], "remark");
    assert_eq!(pending[0]["call"]["decoded"], false);
    assert!(pending[0]["call"]["undecodable"].is_string());
    assert_eq!(
        pending[0]["call"]["encoded"],
        format!("0x{}", hex::encode(&proposed.call.encoded)).as_str()
    );
    zosctl(&home, &url)
        .args(["group", "pending", "team"])
        .assert()
        .success()
        .stdout(
            predicate::str::contains("call      System::remark")
                .and(predicate::str::contains(
                    "undecoded System::remark is not a call zosctl decodes",
                ))
                .and(predicate::str::contains("approving it takes --blind")),
        );
    zosctl(&home, &url)
        .args([
            "--key",
            "//Bob",
            "group",
            "approve",
            "team",
            &remark_hash,
            "--no-wait",
        ])
        .assert()
        .code(4)
        .stderr(
            predicate::str::contains("cannot show what proposal")
                .and(predicate::str::contains("System::remark"))
                .and(predicate::str::contains("--blind")),
        );
    let still = json(&home, &url, &["group", "pending", "team"])?;
    assert_eq!(still[0]["approvals"].as_array().map(Vec::len), Some(1));
    let blind = json(
        &home,
        &url,
        &[
            "--key",
            "//Bob",
            "group",
            "approve",
            "team",
            &remark_hash,
            "--blind",
        ],
    )?;
    assert_eq!(blind["executed"], true);
    assert_eq!(blind["blind"], true);
    assert_eq!(blind["pallet"], "System");
    assert_eq!(
        json(&home, &url, &["group", "pending", "team"])?,
        Value::Array(vec![])
    );

    // Its deletion, by the group.
    let cancel = json(
        &home,
        &url,
        &[
            "--key",
            "//Charlie",
            "delete",
            &gid.to_string(),
            "--as-group",
            "team",
        ],
    )?;
    assert_eq!(cancel["call"]["call"], "cancel_contract");
    assert!(
        client.contract(gid, None).await?.is_some(),
        "one approval does nothing"
    );
    zosctl(&home, &url)
        .args([
            "--key",
            "//Alice",
            "group",
            "approve",
            "team",
            cancel["call_hash"].as_str().context("hash")?,
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains(format!("contract {gid} canceled")));
    assert!(client.contract(gid, None).await?.is_none());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_push_prints_the_pinned_reference() -> Result<()> {
    let registry = zos_testkit::registry::Registry::start();
    let dir = tempfile::tempdir()?;
    let layer = dir.path().join("layer");
    std::fs::create_dir_all(layer.join("etc"))?;
    std::fs::write(layer.join("etc/motd"), "hello")?;
    let out = json(
        &dir.path().join("home"),
        "ws://127.0.0.1:1",
        &[
            "image",
            "push",
            &layer.to_string_lossy(),
            "--registry",
            &registry.addr,
            "--repository",
            "zos/motd",
        ],
    )?;
    let reference = out["reference"].as_str().context("a reference")?;
    let prefix = format!("{}/zos/motd@sha256:", registry.addr);
    assert!(reference.starts_with(&prefix), "{reference}");
    assert_eq!(reference.len(), prefix.len() + 64);
    // The same content pushed again is the same image.
    zosctl(&dir.path().join("home"), "ws://127.0.0.1:1")
        .args([
            "image",
            "push",
            &layer.to_string_lossy(),
            "--registry",
            &registry.addr,
            "--repository",
            "zos/motd",
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains(reference));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_picks_a_free_subnet_and_network_show_lists_the_members() -> Result<()> {
    let chain = ChainNode::dev().await?;
    let url = chain.ws_url();
    let dir = tempfile::tempdir()?;
    let home = dir.path().join("home");
    let client = ChainClient::connect(std::slice::from_ref(&url)).await?;
    zosctl(&home, &url)
        .args(["--key", "//Alice", "farm", "create", "farm-n"])
        .assert()
        .success();
    let capacity = Capacity {
        cpu_millis: 4000,
        mru: 8 << 30,
        sru: 100 << 30,
        hru: 0,
    };
    let mut nodes = Vec::new();
    let mut keys = Vec::new();
    for _ in 0..3 {
        let key = zos_e2e::register_node(&client, "farm-n", capacity).await?;
        nodes.push(key.account().to_string());
        keys.push(key);
    }
    // The first node moves behind NAT: no endpoint on chain.
    client
        .submitter(keys[0].clone())
        .submit(
            &api::tx()
                .grid()
                .update_node(zos_chain_client::Static(capacity), [9; 32], None),
        )
        .await?;
    // Only the network's name and range: each node gets the lowest subnet no member has.
    let file = write(
        dir.path(),
        "net.yaml",
        "workloads:\n  - name: backbone\n    network: { range: 10.30.0.0/16 }\n",
    )?;
    for node in &nodes[..2] {
        zosctl(&home, &url)
            .args([
                "--key",
                "//Bob",
                "apply",
                "-f",
                &file,
                "--node",
                node,
                "--no-wait",
            ])
            .assert()
            .success();
    }
    // Another owner's network of that name is another network: it starts from the bottom.
    zosctl(&home, &url)
        .args([
            "--key",
            "//Charlie",
            "apply",
            "-f",
            &file,
            "--node",
            &nodes[2],
            "--no-wait",
        ])
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "network backbone: subnet 10.30.0.0/24",
        ));
    let shown = json(
        &home,
        &url,
        &["--key", "//Bob", "network", "show", "backbone"],
    )?;
    assert_eq!(shown["range"], "10.30.0.0/16");
    let members: Vec<(String, String, bool, bool)> = shown["members"]
        .as_array()
        .context("members")?
        .iter()
        .map(|m| {
            (
                m["node"].as_str().unwrap_or_default().to_string(),
                m["subnet"].as_str().unwrap_or_default().to_string(),
                m["behind_nat"] == true,
                m["relay"] == true,
            )
        })
        .collect();
    // The node behind NAT is reached through the first member with an endpoint.
    assert_eq!(
        members,
        vec![
            (nodes[0].clone(), "10.30.0.0/24".to_string(), true, false),
            (nodes[1].clone(), "10.30.1.0/24".to_string(), false, true)
        ]
    );
    zosctl(&home, &url)
        .args(["--key", "//Bob", "network", "show", "backbone"])
        .assert()
        .success()
        .stdout(predicate::str::contains("NAT").and(predicate::str::contains("(relay)")));
    // A subnet that clashes with a member's is the chain's to refuse, by name.
    let clash = write(
        dir.path(),
        "clash.yaml",
        "workloads:\n  - name: backbone\n    network: { range: 10.30.0.0/16, subnet: 10.30.1.0/25 }\n",
    )?;
    zosctl(&home, &url)
        .args([
            "--key",
            "//Bob",
            "apply",
            "-f",
            &clash,
            "--node",
            &nodes[2],
            "--no-wait",
        ])
        .assert()
        .code(4)
        .stderr(predicate::str::contains("NetworkSubnetOverlap"));
    zosctl(&home, &url)
        .args(["--key", "//Bob", "network", "show", "nothing-here"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("has no network \"nothing-here\""));
    Ok(())
}
