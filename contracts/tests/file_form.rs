//! The YAML/JSON form: human units, errors that name the field and the line, and the examples.

use zos_contracts::{
    file::{DeploymentFile, FileError},
    sealed::{self, ContextPart, SealError, SealFor},
    validate, Deployment, EnvValue, Ipv4Cidr, WorkloadSpec,
};

const IMAGE: &str =
    "127.0.0.1:5000/app@sha256:3fbc632167424a6d997e74f52b878d7cc478225cffac6bc977eedfe51c7f4e79";

#[test]
fn every_example_loads_and_validates() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).expect("examples/ exists") {
        let path = entry.unwrap().path();
        let ext = path.extension().and_then(|e| e.to_str());
        if !matches!(ext, Some("yaml" | "yml" | "json")) {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let file = DeploymentFile::from_str_any(&text)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let d = file
            .into_deployment(None)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        validate(&d).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        seen += 1;
    }
    assert!(seen >= 3, "expected at least three examples, found {seen}");
}

#[test]
fn human_units_read_and_write() {
    let yaml = format!(
        "workloads:
  - name: web
    container:
      image: {IMAGE}
      cpu: 0.5
      memory: 512MiB
  - name: data
    volume:
      size: 10GB
"
    );
    let d = DeploymentFile::from_yaml(&yaml)
        .unwrap()
        .into_deployment(None)
        .unwrap();
    let WorkloadSpec::Container(c) = &d.workloads[0].spec else {
        panic!()
    };
    assert_eq!((c.cpu_millis, c.memory), (500, 512 << 20));
    assert_eq!(c.image.digest[0], 0x3f);
    let WorkloadSpec::Volume(v) = &d.workloads[1].spec else {
        panic!()
    };
    assert_eq!(v.size, 10_000_000_000);

    let out = DeploymentFile::from_deployment(&d).unwrap().to_yaml();
    assert!(out.contains("memory: 512MiB"), "{out}");
    // Not given: the default, written out so that a reader sees what is reserved.
    assert_eq!(
        c.rootfs_size,
        zos_contracts::limits::DEFAULT_CONTAINER_ROOTFS
    );
    assert!(out.contains("rootfs: 256MiB"), "{out}");
    assert!(out.contains("cpu: 500m"), "{out}");
    assert!(out.contains(&format!("image: {IMAGE}")), "{out}");
}

#[test]
fn a_container_states_its_root_filesystem_in_human_units() {
    let d = DeploymentFile::from_yaml(&format!(
        "workloads: [{{ name: web, container: {{ image: {IMAGE}, cpu: 1, memory: 64MiB, rootfs: 2GiB }} }}]"
    ))
    .unwrap()
    .into_deployment(None)
    .unwrap();
    let WorkloadSpec::Container(c) = &d.workloads[0].spec else {
        panic!()
    };
    assert_eq!(c.rootfs_size, 2 << 30);
    let file = DeploymentFile::from_deployment(&d).unwrap();
    assert!(
        file.to_yaml().contains("rootfs: 2GiB"),
        "{}",
        file.to_yaml()
    );
    assert!(
        file.to_json().contains(r#""rootfs": "2GiB""#),
        "{}",
        file.to_json()
    );

    let Err(FileError::Parse { path, message, .. }) = DeploymentFile::from_yaml(&format!(
        "workloads: [{{ name: web, container: {{ image: {IMAGE}, cpu: 1, memory: 64MiB, rootfs: lots }} }}]"
    )) else {
        panic!("a size is needed")
    };
    assert_eq!(path, "workloads[0].container.rootfs");
    assert!(message.contains("not a size"), "{message}");
}

#[test]
fn yaml_errors_name_the_field_and_the_line() {
    let yaml = format!(
        "version: 1
workloads:
  - name: web
    container:
      image: {IMAGE}
      cpu: 1
      memroy: 64MiB
"
    );
    let e = DeploymentFile::from_yaml(&yaml).unwrap_err();
    let FileError::Parse { path, line, .. } = &e else {
        panic!("{e:?}")
    };
    assert_eq!(path, "workloads[0].container.memroy");
    assert_eq!(*line, Some(7));
    assert!(e.to_string().contains("unknown field `memroy`"), "{e}");

    let yaml = format!(
        "workloads:
  - name: web
    container:
      image: {IMAGE}
      cpu: 1
      memory: 64 parsecs
"
    );
    let e = DeploymentFile::from_yaml(&yaml).unwrap_err();
    let FileError::Parse { path, line, .. } = &e else {
        panic!("{e:?}")
    };
    assert_eq!(path, "workloads[0].container.memory");
    assert_eq!(*line, Some(6));
    assert!(e.to_string().contains("unknown unit"), "{e}");
}

#[test]
fn images_need_a_digest_and_no_tag() {
    for (image, why) in [
        ("127.0.0.1:5000/app:latest", "no digest"),
        ("127.0.0.1:5000/app:1.0@sha256:3fbc632167424a6d997e74f52b878d7cc478225cffac6bc977eedfe51c7f4e79", "tags are not accepted"),
        ("127.0.0.1:5000/app@sha512:00", "only sha256"),
        ("127.0.0.1:5000/app@sha256:abc", "64 hex digits"),
        ("busybox@sha256:3fbc632167424a6d997e74f52b878d7cc478225cffac6bc977eedfe51c7f4e79", "not a repository"),
    ] {
        let yaml = format!("workloads: [{{ name: a, container: {{ image: \"{image}\", cpu: 1, memory: 64MiB }} }}]");
        let e = DeploymentFile::from_yaml(&yaml).unwrap_err();
        assert!(e.to_string().contains(why), "{image}: {e}");
        assert!(e.to_string().contains("workloads[0].container.image"), "{e}");
    }
}

#[test]
fn a_workload_has_exactly_one_kind() {
    let e = DeploymentFile::from_yaml("workloads: [{ name: a }]")
        .unwrap()
        .into_deployment(None)
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "workloads[0]: set exactly one of container, vm, volume, disk or network"
    );
    let e = DeploymentFile::from_yaml(
        "workloads: [{ name: a, volume: { size: 1MiB }, disk: { size: 1MiB } }]",
    )
    .unwrap()
    .into_deployment(None)
    .unwrap_err();
    assert!(matches!(e, FileError::Kind { .. }));
}

#[test]
fn bounds_are_reported_with_the_path() {
    let long = "x".repeat(300);
    let e = DeploymentFile::from_yaml(&format!("description: {long}\nworkloads: []"))
        .unwrap()
        .into_deployment(None)
        .unwrap_err();
    assert_eq!(e.to_string(), "description: longer than 256");
}

#[test]
fn json_is_read_with_the_same_rules() {
    let json = format!(
        r#"{{"workloads": [{{"name": "web", "container": {{"image": "{IMAGE}", "cpu": 2, "memory": "1GiB", "bogus": 1}}}}]}}"#
    );
    let e = DeploymentFile::from_str_any(&json).unwrap_err();
    let FileError::Parse { path, line, .. } = &e else {
        panic!("{e:?}")
    };
    assert_eq!(path, "workloads[0].container.bogus");
    assert_eq!(*line, Some(1));
    let ok = json.replace(r#", "bogus": 1"#, "");
    let d = DeploymentFile::from_str_any(&ok)
        .unwrap()
        .into_deployment(None)
        .unwrap();
    validate(&d).unwrap();
    let back =
        DeploymentFile::from_json(&DeploymentFile::from_deployment(&d).unwrap().to_json()).unwrap();
    assert_eq!(back.into_deployment(None).unwrap(), d);
}

/// The sealed bytes of variable `index` of the first workload (a container).
fn sealed_env(d: &Deployment, index: usize) -> Vec<u8> {
    let WorkloadSpec::Container(c) = &d.workloads[0].spec else {
        panic!("the first workload is a container")
    };
    let EnvValue::Sealed(sealed) = &c.env[index].value else {
        panic!("not sealed")
    };
    sealed.to_vec()
}

#[test]
fn secrets_are_sealed_to_the_node_and_never_written_plain() {
    let node = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
    let to = SealFor {
        owner: [1; 32],
        node: node.verifying_key().to_bytes(),
    };
    let yaml = format!(
        "workloads:
  - name: web
    container:
      image: {IMAGE}
      cpu: 1
      memory: 64MiB
      env:
        MODE: prod
        TOKEN: {{ secret: hunter2 }}
"
    );
    let file = DeploymentFile::from_yaml(&yaml).unwrap();
    let e = file.into_deployment(None).unwrap_err();
    assert_eq!(
        e.to_string(),
        "workloads[0].container.env.TOKEN: a secret needs the contract's owner and node to be sealed for"
    );

    let d = file.into_deployment(Some(&to)).unwrap();
    validate(&d).unwrap();
    assert_eq!(
        sealed::open(&node, &to.context(b"web", b"TOKEN"), &sealed_env(&d, 1)).unwrap(),
        b"hunter2"
    );
    let encoded = codec::Encode::encode(&d);
    assert!(
        !encoded.windows(7).any(|w| w == b"hunter2"),
        "plain secret on chain"
    );

    let out = DeploymentFile::from_deployment(&d).unwrap().to_yaml();
    assert!(out.contains("sealed:") && !out.contains("hunter2"), "{out}");
    let again = DeploymentFile::from_yaml(&out)
        .unwrap()
        .into_deployment(None)
        .unwrap();
    assert_eq!(again, d);
}

#[test]
fn a_sealed_value_copied_into_another_contract_does_not_open() {
    let node = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
    let yaml = |name: &str, key: &str, value: &str| {
        format!(
            "workloads:
  - name: {name}
    container:
      image: {IMAGE}
      cpu: 1
      memory: 64MiB
      env: {{ {key}: {value} }}
"
        )
    };
    let victim = SealFor {
        owner: [1; 32],
        node: node.verifying_key().to_bytes(),
    };
    let d = DeploymentFile::from_yaml(&yaml("web", "TOKEN", "{ secret: hunter2 }"))
        .unwrap()
        .into_deployment(Some(&victim))
        .unwrap();
    // What anyone can read from chain storage, put into other contracts on the same node.
    let copied = format!("{{ sealed: {} }}", hex::encode(sealed_env(&d, 0)));
    let attacker = SealFor {
        owner: [2; 32],
        ..victim
    };
    for (seal_for, name, key, part) in [
        (&attacker, "web", "TOKEN", ContextPart::Owner),
        (&victim, "app", "TOKEN", ContextPart::Workload),
        (&victim, "web", "DEBUG_TOKEN", ContextPart::Variable),
    ] {
        let copy = DeploymentFile::from_yaml(&yaml(name, key, &copied))
            .unwrap()
            .into_deployment(Some(seal_for))
            .unwrap();
        validate(&copy).unwrap();
        let e = sealed::open(
            &node,
            &seal_for.context(name.as_bytes(), key.as_bytes()),
            &sealed_env(&copy, 0),
        )
        .unwrap_err();
        assert_eq!(e, SealError::SealedForAnother(part));
        assert_eq!(e.to_string(), format!("sealed for another {part}"));
    }
    let other_node = ed25519_dalek::SigningKey::from_bytes(&[8u8; 32]);
    let there = SealFor {
        node: other_node.verifying_key().to_bytes(),
        ..victim
    };
    assert_eq!(
        sealed::open(
            &other_node,
            &there.context(b"web", b"TOKEN"),
            &sealed_env(&d, 0)
        ),
        Err(SealError::CannotOpen)
    );
}

#[test]
fn a_network_without_a_subnet_is_refused_until_one_is_chosen() {
    let yaml = "workloads:\n  - name: net\n    network: { range: 10.20.0.0/16 }\n";
    let mut file = DeploymentFile::from_yaml(yaml).unwrap();
    let e = file.into_deployment(None).unwrap_err();
    assert!(matches!(e, FileError::NoSubnet { .. }), "{e}");
    assert!(e.to_string().contains("workloads[0].network.subnet"), "{e}");
    let range = file.workloads[0].network.as_ref().unwrap().range.0;
    let subnet = range.free_subnet(&[]).unwrap();
    file.workloads[0].network.as_mut().unwrap().subnet =
        Some(zos_contracts::file::CidrFile(subnet));
    let d = file.into_deployment(None).unwrap();
    zos_contracts::validate(&d).unwrap();
}

#[test]
fn a_free_subnet_is_the_lowest_that_overlaps_no_member() {
    let cidr = |addr: [u8; 4], prefix| Ipv4Cidr { addr, prefix };
    let range = cidr([10, 20, 0, 0], 16);
    assert_eq!(range.free_subnet(&[]), Some(cidr([10, 20, 0, 0], 24)));
    let taken = [
        cidr([10, 20, 0, 0], 24),
        cidr([10, 20, 1, 128], 25),
        cidr([10, 20, 3, 0], 24),
    ];
    assert_eq!(range.free_subnet(&taken), Some(cidr([10, 20, 2, 0], 24)));
    // A narrow range is cut in quarters; a full one has none left.
    let narrow = cidr([192, 168, 7, 0], 24);
    assert_eq!(
        narrow.free_subnet(&[cidr([192, 168, 7, 0], 26)]),
        Some(cidr([192, 168, 7, 64], 26))
    );
    assert_eq!(narrow.free_subnet(&[narrow]), None);
    assert_eq!(
        cidr([10, 0, 0, 0], 30).free_subnet(&[]),
        Some(cidr([10, 0, 0, 0], 30))
    );
}
