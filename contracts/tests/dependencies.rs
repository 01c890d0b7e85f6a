//! What each workload needs first, and the order that follows.

use zos_contracts::{file::DeploymentFile, Deployment};

const IMAGE: &str =
    "127.0.0.1:5000/app@sha256:3fbc632167424a6d997e74f52b878d7cc478225cffac6bc977eedfe51c7f4e79";

fn deployment(workloads: &str) -> Deployment {
    DeploymentFile::from_yaml(&format!("workloads:\n{workloads}"))
        .unwrap()
        .into_deployment(None)
        .unwrap()
}

fn names<'a>(it: impl IntoIterator<Item = &'a [u8]>) -> Vec<String> {
    it.into_iter()
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .collect()
}

fn mixed() -> Deployment {
    deployment(&format!(
        "  - name: web
    container:
      image: {IMAGE}
      cpu: 1
      memory: 64MiB
      mounts: [{{ volume: data, path: /data }}, {{ volume: logs, path: /logs }}, {{ volume: data, path: /again, read_only: true }}]
      network: {{ name: net }}
  - name: vm
    vm:
      image: {IMAGE}
      vcpus: 1
      memory: 256MiB
      disks: [root, scratch]
      network: {{ name: net }}
  - name: data
    volume: {{ size: 1GiB }}
  - name: logs
    volume: {{ size: 1GiB }}
  - name: root
    disk: {{ size: 1GiB }}
  - name: scratch
    disk: {{ size: 1GiB }}
  - name: net
    network: {{ range: 10.20.0.0/16, subnet: 10.20.1.0/24 }}
"
    ))
}

#[test]
fn a_container_needs_its_volumes_and_network_and_a_vm_its_disks_and_network() {
    let d = mixed();
    let of = |name: &str| {
        names(
            d.workload(name.as_bytes())
                .expect("the workload")
                .depends_on(),
        )
    };
    assert_eq!(of("web"), ["data", "logs", "net"], "each once, as named");
    assert_eq!(of("vm"), ["root", "scratch", "net"]);
    for leaf in ["data", "logs", "root", "scratch", "net"] {
        assert!(of(leaf).is_empty(), "{leaf} needs nothing");
    }
}

#[test]
fn every_workload_comes_after_what_it_needs_and_otherwise_keeps_its_place() {
    let d = mixed();
    let order = names(d.in_dependency_order().iter().map(|w| &w.name[..]));
    assert_eq!(
        order,
        ["data", "logs", "root", "scratch", "net", "web", "vm"]
    );

    // Already in order: unchanged.
    let d = deployment(&format!(
        "  - name: data
    volume: {{ size: 1GiB }}
  - name: app
    container:
      image: {IMAGE}
      cpu: 1
      memory: 64MiB
      mounts: [{{ volume: data, path: /data }}]
  - name: other
    volume: {{ size: 1GiB }}
"
    ));
    let order = names(d.in_dependency_order().iter().map(|w| &w.name[..]));
    assert_eq!(order, ["data", "app", "other"]);
}

#[test]
fn the_kinds_a_workload_names_are_the_kinds_its_kind_depends_on() {
    use zos_contracts::RestartPolicy;
    let d = mixed();
    for w in &d.workloads {
        let kind = w.spec.kind();
        for dep in w.depends_on() {
            let dep = d.workload(dep).expect("named").spec.kind();
            assert!(
                kind.depends_on_kinds().contains(&dep),
                "{kind} depends on a {dep}"
            );
        }
        assert_eq!(w.restart_policy().is_some(), kind.runs(), "{kind}");
    }
    let vm = d.workload(b"vm").unwrap();
    assert_eq!(vm.restart_policy(), Some(RestartPolicy::Always));
}
