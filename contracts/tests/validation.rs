//! Every validation error, reached from a deployment a user could write.

use zos_contracts::{
    file::DeploymentFile, limits, validate, BoundedVec, Deployment, EnvValue, Field,
    ValidationError, WorkloadKind, WorkloadSpec,
};

const IMAGE: &str =
    "127.0.0.1:5000/app@sha256:3fbc632167424a6d997e74f52b878d7cc478225cffac6bc977eedfe51c7f4e79";

fn deployment(yaml: &str) -> Deployment {
    DeploymentFile::from_yaml(yaml)
        .unwrap()
        .into_deployment(None)
        .unwrap()
}

fn container(extra: &str) -> Deployment {
    deployment(&format!(
        "workloads:
  - name: data
    volume: {{ size: 1GiB }}
  - name: disk
    disk: {{ size: 1GiB }}
  - name: net
    network: {{ range: 10.1.0.0/16, subnet: 10.1.2.0/24 }}
  - name: web
    container:
      image: {IMAGE}
      cpu: 1
      memory: 64MiB
{extra}"
    ))
}

fn name(s: &str) -> BoundedVec<u8, zos_contracts::ConstU32<63>> {
    s.as_bytes().to_vec().try_into().unwrap()
}

fn err(d: &Deployment) -> ValidationError {
    validate(d).expect_err("deployment should be invalid")
}

#[test]
fn a_sound_deployment_passes() {
    let d = container(
        "      mounts: [{ volume: data, path: /data }]
      network: { name: net, ip: 10.1.2.7 }
      env: { A: b }",
    );
    validate(&d).unwrap();
    let cap = d.capacity();
    // SSD: the volume, the disk and the container's writable root filesystem (the default).
    assert_eq!(
        (cap.cpu_millis, cap.mru, cap.sru, cap.hru),
        (
            1000,
            64 << 20,
            (2 << 30) + limits::DEFAULT_CONTAINER_ROOTFS,
            0
        )
    );
}

#[test]
fn a_containers_root_filesystem_is_reserved_as_ssd() {
    let d = container("      rootfs: 3GiB");
    validate(&d).unwrap();
    let web = d.workload(b"web").unwrap();
    assert_eq!(
        web.capacity(),
        zos_contracts::Capacity {
            cpu_millis: 1000,
            mru: 64 << 20,
            sru: 3 << 30,
            hru: 0,
        }
    );
    assert_eq!(d.capacity().sru, (2 << 30) + (3 << 30));
    // It is not a volume: an update may set it lower (a new version starts from an empty one).
    assert_eq!(web.storage_size(), None);
}

#[test]
fn a_root_filesystem_has_a_floor_and_a_ceiling() {
    let (min, max) = limits::CONTAINER_ROOTFS;
    assert_eq!((min, max), (64 << 20, 1 << 40));
    for (size, ok) in [
        ("64MiB", true),
        ("1TiB", true),
        ("63MiB", false),
        ("0", false),
        ("1025GiB", false),
    ] {
        let d = container(&format!("      rootfs: {size}"));
        if ok {
            validate(&d).unwrap_or_else(|e| panic!("{size}: {e}"));
            continue;
        }
        let e = err(&d);
        assert!(
            matches!(&e, ValidationError::OutOfRange { workload, field, min: lo, max: hi, .. }
                if *workload == name("web") && *field == Field::new("rootfs") && (*lo, *hi) == (min, max)),
            "{size}: {e:?}"
        );
        assert!(
            e.to_string().starts_with("workload \"web\": rootfs: "),
            "{e}"
        );
    }
}

#[test]
fn cpu_is_reserved_in_the_thousandths_the_deployment_states() {
    // Two small containers reserve 600 thousandths, not two whole vCPUs.
    let d = zos_contracts::file::DeploymentFile::from_yaml(
        "version: 1
workloads:
  - name: a
    container: { image: 127.0.0.1:5000/app@sha256:3fbc632167424a6d997e74f52b878d7cc478225cffac6bc977eedfe51c7f4e79, cpu: 0.5, memory: 16MiB }
  - name: b
    container: { image: 127.0.0.1:5000/app@sha256:3fbc632167424a6d997e74f52b878d7cc478225cffac6bc977eedfe51c7f4e79, cpu: 100m, memory: 16MiB }",
    )
    .unwrap()
    .into_deployment(None)
    .unwrap();
    assert_eq!(d.capacity().cpu_millis, 600);
    assert_eq!(d.workloads[1].capacity().cpu_millis, 100);
}

#[test]
fn empty_and_too_large() {
    let mut d = container("");
    d.workloads.truncate(0);
    assert_eq!(err(&d), ValidationError::NoWorkloads);

    let mut d = container("");
    let WorkloadSpec::Container(c) = &mut d.workloads[3].spec else {
        panic!()
    };
    for i in 0..8 {
        c.env
            .try_push(zos_contracts::EnvVar {
                key: format!("K{i}").into_bytes().try_into().unwrap(),
                value: EnvValue::Plain(vec![b'x'; 4000].try_into().unwrap()),
            })
            .unwrap();
    }
    assert!(matches!(err(&d), ValidationError::TooLarge { len } if len > 16 * 1024));
}

#[test]
fn names_must_be_dns_labels_and_unique() {
    let mut d = container("");
    d.workloads[1].name = name("Disk");
    assert_eq!(err(&d), ValidationError::InvalidName { index: 1 });
    d.workloads[1].name = name("-disk");
    assert_eq!(err(&d), ValidationError::InvalidName { index: 1 });
    d.workloads[1].name = name("");
    assert_eq!(err(&d), ValidationError::InvalidName { index: 1 });
    d.workloads[1].name = name("data");
    assert_eq!(
        err(&d),
        ValidationError::DuplicateName {
            workload: name("data")
        }
    );
}

#[test]
fn description_must_be_text() {
    let mut d = container("");
    d.description = vec![0xff, 0xfe].try_into().unwrap();
    assert_eq!(err(&d), ValidationError::InvalidDescription);
}

#[test]
fn references_must_exist_and_be_of_the_right_kind() {
    let d = container("      mounts: [{ volume: nope, path: /data }]");
    assert_eq!(
        err(&d),
        ValidationError::MissingReference {
            workload: name("web"),
            field: Field::at("mounts", 0).part("volume"),
            target: name("nope"),
        }
    );
    let d = container("      mounts: [{ volume: disk, path: /data }]");
    assert_eq!(
        err(&d),
        ValidationError::WrongKind {
            workload: name("web"),
            field: Field::at("mounts", 0).part("volume"),
            target: name("disk"),
            expected: WorkloadKind::Volume,
            found: WorkloadKind::Disk,
        }
    );
    let d = container("      network: { name: data }");
    assert!(matches!(
        err(&d),
        ValidationError::WrongKind {
            expected: WorkloadKind::Network,
            found: WorkloadKind::Volume,
            ..
        }
    ));

    let vm = |disks: &str| {
        deployment(&format!(
            "workloads:
  - {{ name: data, volume: {{ size: 1GiB }} }}
  - {{ name: disk, disk: {{ size: 1GiB }} }}
  - name: vm
    vm: {{ image: {IMAGE}, vcpus: 1, memory: 256MiB, disks: {disks} }}
  - name: vm2
    vm: {{ image: {IMAGE}, vcpus: 1, memory: 256MiB, disks: [disk] }}"
        ))
    };
    let e = err(&vm("[data]"));
    assert!(matches!(
        e,
        ValidationError::WrongKind {
            expected: WorkloadKind::Disk,
            found: WorkloadKind::Volume,
            ..
        }
    ));
    assert_eq!(
        err(&vm("[disk]")),
        ValidationError::DiskAttachedTwice {
            workload: name("vm2"),
            field: Field::at("disks", 0),
            target: name("disk"),
        }
    );
    validate(&vm("[]")).unwrap();
}

#[test]
fn numbers_are_bounded() {
    let mut d = container("");
    let WorkloadSpec::Container(c) = &mut d.workloads[3].spec else {
        panic!()
    };
    c.cpu_millis = 0;
    assert_eq!(
        err(&d),
        ValidationError::OutOfRange {
            workload: name("web"),
            field: Field::new("cpu"),
            value: 0,
            min: 10,
            max: 256_000,
        }
    );
    let mut d = container("");
    let WorkloadSpec::Container(c) = &mut d.workloads[3].spec else {
        panic!()
    };
    c.memory = 1024;
    assert!(
        matches!(err(&d), ValidationError::OutOfRange { field, .. } if field == Field::new("memory"))
    );

    let mut d = container("");
    d.workloads[0].spec = WorkloadSpec::Volume(zos_contracts::Volume { size: 0 });
    assert!(
        matches!(err(&d), ValidationError::OutOfRange { field, value: 0, .. } if field == Field::new("size"))
    );
    let mut d = container("");
    d.workloads[1].spec = WorkloadSpec::Disk(zos_contracts::Disk { size: u64::MAX });
    assert!(
        matches!(err(&d), ValidationError::OutOfRange { field, .. } if field == Field::new("size"))
    );

    let d = deployment(&format!(
        "workloads: [{{ name: vm, vm: {{ image: {IMAGE}, vcpus: 0, memory: 256MiB }} }}]"
    ));
    assert!(
        matches!(err(&d), ValidationError::OutOfRange { field, .. } if field == Field::new("vcpus"))
    );
    let d = deployment(&format!(
        "workloads: [{{ name: vm, vm: {{ image: {IMAGE}, vcpus: 1, memory: 1MiB }} }}]"
    ));
    assert!(
        matches!(err(&d), ValidationError::OutOfRange { field, .. } if field == Field::new("memory"))
    );
}

#[test]
fn images_paths_and_args_are_checked() {
    let mut d = container("");
    let WorkloadSpec::Container(c) = &mut d.workloads[3].spec else {
        panic!()
    };
    c.image.repository = b"busybox".to_vec().try_into().unwrap();
    assert_eq!(
        err(&d),
        ValidationError::InvalidImage {
            workload: name("web"),
            field: Field::new("image")
        }
    );

    for bad in ["data", "/a/../b", "/a\0b"] {
        let d = container(&format!("      workdir: {bad:?}"));
        assert_eq!(
            err(&d),
            ValidationError::InvalidPath {
                workload: name("web"),
                field: Field::new("workdir")
            },
            "{bad}"
        );
    }
    let d = container("      mounts: [{ volume: data, path: /d }, { volume: data, path: /d }]");
    assert_eq!(
        err(&d),
        ValidationError::DuplicateMountPath {
            workload: name("web"),
            field: Field::at("mounts", 1).part("path"),
        }
    );
    let d = container("      args: [ok, \"a\\0b\"]");
    assert_eq!(
        err(&d),
        ValidationError::InvalidArg {
            workload: name("web"),
            field: Field::at("args", 1)
        }
    );
}

#[test]
fn env_keys_and_values_are_checked() {
    let d = container("      env: { 1BAD: x }");
    assert_eq!(
        err(&d),
        ValidationError::InvalidEnvKey {
            workload: name("web"),
            field: Field::at("env", 0)
        }
    );
    let d = container("      env: { A: \"x\\0y\" }");
    assert_eq!(
        err(&d),
        ValidationError::InvalidEnvValue {
            workload: name("web"),
            field: Field::at("env", 0).part("value")
        }
    );
    let d = container("      env: { A: { sealed: \"00ff\" } }");
    assert!(matches!(err(&d), ValidationError::InvalidEnvValue { .. }));
    // As long as the sealing overhead but without room for the context every sealed value carries.
    let overhead_only = "00".repeat(limits::SEAL_OVERHEAD as usize);
    let d = container(&format!(
        "      env: {{ A: {{ sealed: \"{overhead_only}\" }} }}"
    ));
    assert!(matches!(err(&d), ValidationError::InvalidEnvValue { .. }));
    let shortest = "00".repeat(limits::MIN_SEALED_VALUE_LEN as usize);
    validate(&container(&format!(
        "      env: {{ A: {{ sealed: \"{shortest}\" }} }}"
    )))
    .unwrap();

    let mut d = container("      env: { A: x, B: y }");
    let WorkloadSpec::Container(c) = &mut d.workloads[3].spec else {
        panic!()
    };
    c.env[1].key = c.env[0].key.clone();
    assert_eq!(
        err(&d),
        ValidationError::DuplicateEnvKey {
            workload: name("web"),
            field: Field::at("env", 1)
        }
    );
}

#[test]
fn ssh_keys_are_checked() {
    let d = deployment(&format!(
        "workloads: [{{ name: vm, vm: {{ image: {IMAGE}, vcpus: 1, memory: 256MiB, ssh_keys: [\"not a key\"] }} }}]"
    ));
    assert_eq!(
        err(&d),
        ValidationError::InvalidSshKey {
            workload: name("vm"),
            field: Field::at("ssh_keys", 0)
        }
    );
}

fn network(range: &str, subnet: &str, ip: &str) -> Deployment {
    deployment(&format!(
        "workloads:
  - {{ name: net, network: {{ range: {range}, subnet: {subnet} }} }}
  - name: a
    container: {{ image: {IMAGE}, cpu: 1, memory: 64MiB, network: {{ name: net, ip: {ip} }} }}
  - name: b
    container: {{ image: {IMAGE}, cpu: 1, memory: 64MiB, network: {{ name: net, ip: 10.1.2.20 }} }}"
    ))
}

#[test]
fn networks_are_private_and_nested() {
    validate(&network("10.1.0.0/16", "10.1.2.0/24", "10.1.2.5")).unwrap();
    assert_eq!(
        err(&network("10.1.0.1/16", "10.1.2.0/24", "10.1.2.5")),
        ValidationError::InvalidCidr {
            workload: name("net"),
            field: Field::new("range")
        }
    );
    assert_eq!(
        err(&network("10.1.0.0/16", "10.1.2.3/24", "10.1.2.5")),
        ValidationError::InvalidCidr {
            workload: name("net"),
            field: Field::new("subnet")
        }
    );
    assert_eq!(
        err(&network("8.8.0.0/16", "8.8.2.0/24", "8.8.2.5")),
        ValidationError::PublicRange {
            workload: name("net"),
            field: Field::new("range")
        }
    );
    assert_eq!(
        err(&network("172.15.0.0/16", "172.15.2.0/24", "172.15.2.5")),
        ValidationError::PublicRange {
            workload: name("net"),
            field: Field::new("range")
        }
    );
    assert_eq!(
        err(&network("10.1.0.0/16", "10.2.2.0/24", "10.2.2.5")),
        ValidationError::SubnetOutsideRange {
            workload: name("net")
        }
    );
    assert!(matches!(
        err(&network("10.0.0.0/8", "10.1.2.0/31", "10.1.2.5")),
        ValidationError::OutOfRange { field, .. } if field == Field::new("subnet")
    ));
    let ip = Field::new("network").part("ip");
    assert_eq!(
        err(&network("10.1.0.0/16", "10.1.2.0/24", "10.1.3.5")),
        ValidationError::IpOutsideSubnet {
            workload: name("a"),
            field: ip,
            network: name("net")
        }
    );
    for reserved in ["10.1.2.0", "10.1.2.1", "10.1.2.255"] {
        assert_eq!(
            err(&network("10.1.0.0/16", "10.1.2.0/24", reserved)),
            ValidationError::IpReserved {
                workload: name("a"),
                field: ip
            }
        );
    }
    assert_eq!(
        err(&network("10.1.0.0/16", "10.1.2.0/24", "10.1.2.20")),
        ValidationError::DuplicateIp {
            workload: name("b"),
            field: ip
        }
    );
}

#[test]
fn errors_read_well() {
    let d = container("      mounts: [{ volume: disk, path: /data }]");
    assert_eq!(
        err(&d).to_string(),
        "workload \"web\": mounts[0].volume: \"disk\" is a disk, expected a volume"
    );
}
