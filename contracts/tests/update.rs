//! The rules an update must keep so that the node can apply it.

use zos_contracts::{check_update, file::DeploymentFile, follow_versions, Deployment, UpdateRule};

const IMAGE: &str =
    "127.0.0.1:5000/app@sha256:3fbc632167424a6d997e74f52b878d7cc478225cffac6bc977eedfe51c7f4e79";

/// A volume of `size` (workload version `vv`) and a container with `cpu` (version `cv`).
fn deployment(size: &str, vv: u32, cpu: &str, cv: u32) -> Deployment {
    DeploymentFile::from_yaml(&format!(
        "version: 1
workloads:
  - name: data
    version: {vv}
    volume: {{ size: {size} }}
  - name: web
    version: {cv}
    container: {{ image: {IMAGE}, cpu: {cpu}, memory: 64MiB, mounts: [{{ volume: data, path: /data }}] }}"
    ))
    .unwrap()
    .into_deployment(None)
    .unwrap()
}

fn rule(old: &Deployment, new: &Deployment) -> Option<(UpdateRule, String, u8)> {
    check_update(old, new).err().map(|e| {
        (
            e.rule,
            String::from_utf8(e.workload.to_vec()).unwrap(),
            e.index,
        )
    })
}

#[test]
fn a_changed_workload_must_raise_its_version() {
    let old = deployment("1GiB", 1, "0.5", 1);
    let same_version = deployment("1GiB", 1, "0.7", 1);
    assert_eq!(
        rule(&old, &same_version),
        Some((UpdateRule::SpecChangedWithoutVersion, "web".into(), 1))
    );
    assert_eq!(rule(&old, &deployment("1GiB", 1, "0.7", 2)), None);
    // Unchanged workloads keep their version.
    assert_eq!(rule(&old, &old.clone()), None);
}

#[test]
fn versions_never_go_down() {
    let old = deployment("1GiB", 1, "0.5", 3);
    assert_eq!(
        rule(&old, &deployment("1GiB", 1, "0.5", 2)),
        Some((UpdateRule::VersionLowered, "web".into(), 1))
    );
}

#[test]
fn volumes_grow_but_never_shrink() {
    let old = deployment("2GiB", 1, "0.5", 1);
    assert_eq!(rule(&old, &deployment("3GiB", 2, "0.5", 1)), None);
    assert_eq!(
        rule(&old, &deployment("1GiB", 2, "0.5", 1)),
        Some((UpdateRule::Shrink, "data".into(), 0))
    );
    let msg = check_update(&old, &deployment("1GiB", 2, "0.5", 1))
        .unwrap_err()
        .to_string();
    assert_eq!(msg, "workload data: a volume or disk cannot shrink");
}

#[test]
fn a_containers_root_filesystem_may_shrink_with_a_new_version() {
    let with_rootfs = |size: &str, version: u32| {
        let yaml = format!(
            "workloads:
  - name: web
    version: {version}
    container: {{ image: {IMAGE}, cpu: 1, memory: 64MiB, rootfs: {size} }}"
        );
        DeploymentFile::from_yaml(&yaml)
            .unwrap()
            .into_deployment(None)
            .unwrap()
    };
    let old = with_rootfs("1GiB", 1);
    assert_eq!(rule(&old, &with_rootfs("512MiB", 2)), None);
    assert_eq!(
        rule(&old, &with_rootfs("512MiB", 1)),
        Some((UpdateRule::SpecChangedWithoutVersion, "web".into(), 0))
    );
}

#[test]
fn workloads_may_come_and_go() {
    let old = deployment("2GiB", 1, "0.5", 1);
    let mut fewer = old.clone();
    fewer.workloads.truncate(1);
    assert_eq!(rule(&old, &fewer), None);
    assert_eq!(rule(&fewer, &old), None);
}

#[test]
fn a_file_without_workload_versions_follows_the_chain() {
    // On chain: the container at version 3. The file names no versions (all 1).
    let on_chain = deployment("1GiB", 1, "0.5", 3);
    let mut unchanged = deployment("1GiB", 1, "0.5", 1);
    let set = follow_versions(&on_chain, &mut unchanged);
    assert_eq!(
        set.iter().map(|c| (c.from, c.to)).collect::<Vec<_>>(),
        vec![(1, 3)]
    );
    assert_eq!(check_update(&on_chain, &unchanged), Ok(()));

    let mut changed = deployment("1GiB", 1, "0.7", 1);
    follow_versions(&on_chain, &mut changed);
    assert_eq!(changed.workloads[1].version, 4);
    assert_eq!(check_update(&on_chain, &changed), Ok(()));

    // A version the file sets higher stands.
    let mut ahead = deployment("1GiB", 1, "0.7", 9);
    assert!(follow_versions(&on_chain, &mut ahead).is_empty());
    assert_eq!(ahead.workloads[1].version, 9);
}
