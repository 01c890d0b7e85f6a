//! The canonical encoding and hash: golden vectors, round trips and untrusted bytes.

use codec::{Decode, Encode};
use proptest::prelude::*;
use zos_contracts::{
    file::DeploymentFile, limits, BoundedVec, Container, DecodeError, Deployment, Disk, EnvValue,
    EnvVar, ImageRef, Ipv4Cidr, Mount, Network, NetworkAttachment, RestartPolicy, VirtualMachine,
    Volume, Workload, WorkloadSpec,
};

fn bv<T, const N: u32>(v: Vec<T>) -> BoundedVec<T, zos_contracts::ConstU32<N>> {
    v.try_into().ok().expect("within bound")
}

fn text<const N: u32>(s: &str) -> BoundedVec<u8, zos_contracts::ConstU32<N>> {
    bv(s.as_bytes().to_vec())
}

/// A fixed deployment whose encoding and hash must never change by accident.
fn golden() -> Deployment {
    Deployment {
        version: 3,
        description: text("golden"),
        workloads: bv(vec![
            Workload {
                name: text("data"),
                version: 1,
                spec: WorkloadSpec::Volume(Volume { size: 1 << 30 }),
            },
            Workload {
                name: text("net"),
                version: 1,
                spec: WorkloadSpec::Network(Network {
                    range: Ipv4Cidr {
                        addr: [10, 1, 0, 0],
                        prefix: 16,
                    },
                    subnet: Ipv4Cidr {
                        addr: [10, 1, 2, 0],
                        prefix: 24,
                    },
                    egress: true,
                }),
            },
            Workload {
                name: text("web"),
                version: 2,
                spec: WorkloadSpec::Container(Container {
                    image: ImageRef {
                        repository: text("127.0.0.1:5000/app"),
                        digest: [0xab; 32],
                    },
                    entrypoint: bv(vec![text("/bin/sh")]),
                    args: bv(vec![text("-c"), text("sleep 1")]),
                    env: bv(vec![EnvVar {
                        key: text("A"),
                        value: EnvValue::Plain(text("b")),
                    }]),
                    workdir: Some(text("/")),
                    cpu_millis: 500,
                    memory: 64 << 20,
                    rootfs_size: 1 << 30,
                    mounts: bv(vec![Mount {
                        volume: text("data"),
                        path: text("/data"),
                        read_only: false,
                    }]),
                    network: Some(NetworkAttachment {
                        network: text("net"),
                        ip: Some([10, 1, 2, 9]),
                    }),
                    restart: RestartPolicy::OnFailure,
                }),
            },
        ]),
    }
}

#[test]
fn golden_encoding_and_hash_never_change() {
    let d = golden();
    zos_contracts::validate(&d).unwrap();
    let encoded = d.encode();
    assert_eq!(
        hex::encode(&encoded),
        GOLDEN_ENCODING,
        "the SCALE encoding changed"
    );
    assert_eq!(hex::encode(d.hash()), GOLDEN_HASH);
    // The domain tag matters: the same bytes without it hash differently.
    assert_ne!(d.hash(), blake2_of(&encoded));
}

const GOLDEN_ENCODING: &str = "0300000018676f6c64656e0c1064617461010000000200000040000000000c6e657401000000040a010000100a01020018010c7765620200000000483132372e302e302e313a353030302f617070abababababababababababababababababababababababababababababababab041c2f62696e2f736808082d631c736c656570203104044100046201042ff401000000000004000000000000004000000000041064617461142f6461746100010c6e6574010a01020901";
const GOLDEN_HASH: &str = "beed899ed72c825894bb1c4d3d77b073c70aa75946040d7cce446731bcbcfafc";

fn blake2_of(bytes: &[u8]) -> [u8; 32] {
    use blake2::{digest::consts::U32, Blake2b, Digest};
    Blake2b::<U32>::digest(bytes).into()
}

#[test]
fn decode_bounded_refuses_oversize_and_trailing_bytes() {
    let mut bytes = golden().encode();
    assert_eq!(Deployment::decode_bounded(&bytes).unwrap(), golden());
    bytes.push(0);
    assert_eq!(
        Deployment::decode_bounded(&bytes),
        Err(DecodeError::Malformed)
    );
    let huge = vec![0u8; limits::MAX_ENCODED_LEN as usize + 1];
    assert_eq!(
        Deployment::decode_bounded(&huge),
        Err(DecodeError::TooLarge { len: huge.len() })
    );
    // A length prefix far over a bound is refused without allocating for it.
    let mut lying = 3u32.encode();
    lying.extend(codec::Compact(1_000_000u32).encode());
    assert_eq!(
        Deployment::decode_bounded(&lying),
        Err(DecodeError::Malformed)
    );
}

fn name() -> impl Strategy<Value = BoundedVec<u8, zos_contracts::ConstU32<63>>> {
    "[a-z0-9]{1,10}".prop_map(|s| text(&s))
}

fn utf8<const N: u32>(
    max: usize,
) -> impl Strategy<Value = BoundedVec<u8, zos_contracts::ConstU32<N>>> {
    proptest::string::string_regex(&format!("[ -~é€]{{0,{max}}}"))
        .unwrap()
        .prop_map(|s| text(&s))
}

fn image() -> impl Strategy<Value = ImageRef> {
    ("[a-z]{1,8}", any::<[u8; 32]>()).prop_map(|(p, digest)| ImageRef {
        repository: text(&format!("registry.local:5000/{p}")),
        digest,
    })
}

fn env() -> impl Strategy<Value = zos_contracts::Env> {
    prop::collection::vec(
        (
            "[A-Z_][A-Z0-9_]{0,8}",
            prop_oneof![
                utf8::<4096>(20).prop_map(EnvValue::Plain),
                prop::collection::vec(any::<u8>(), 48..80).prop_map(|v| EnvValue::Sealed(bv(v))),
            ],
        ),
        0..4,
    )
    .prop_map(|vars| {
        let mut seen = std::collections::HashSet::new();
        let vars: Vec<_> = vars
            .into_iter()
            .filter(|(k, _)| seen.insert(k.clone()))
            .map(|(k, value)| EnvVar {
                key: text(&k),
                value,
            })
            .collect();
        bv(vars)
    })
}

fn attachment() -> impl Strategy<Value = Option<NetworkAttachment>> {
    proptest::option::of((name(), proptest::option::of(any::<[u8; 4]>())))
        .prop_map(|a| a.map(|(network, ip)| NetworkAttachment { network, ip }))
}

fn spec() -> impl Strategy<Value = WorkloadSpec> {
    prop_oneof![
        (
            image(),
            prop::collection::vec(utf8::<1024>(10), 0..3),
            prop::collection::vec(utf8::<1024>(10), 0..3),
            env(),
            proptest::option::of("/[a-z]{0,6}"),
            any::<u32>(),
            (any::<u64>(), any::<u64>()),
            prop::collection::vec((name(), "/[a-z]{1,6}", any::<bool>()), 0..3),
            attachment(),
            prop_oneof![
                Just(RestartPolicy::Always),
                Just(RestartPolicy::OnFailure),
                Just(RestartPolicy::Never)
            ],
        )
            .prop_map(
                |(
                    image,
                    ep,
                    args,
                    env,
                    workdir,
                    cpu_millis,
                    (memory, rootfs_size),
                    mounts,
                    network,
                    restart,
                )| {
                    WorkloadSpec::Container(Container {
                        image,
                        entrypoint: bv(ep),
                        args: bv(args),
                        env,
                        workdir: workdir.map(|w| text(&w)),
                        cpu_millis,
                        memory,
                        rootfs_size,
                        mounts: bv(mounts
                            .into_iter()
                            .map(|(volume, path, read_only)| Mount {
                                volume,
                                path: text(&path),
                                read_only,
                            })
                            .collect()),
                        network,
                        restart,
                    })
                }
            ),
        (
            image(),
            proptest::option::of(image()),
            any::<u16>(),
            any::<u64>(),
            prop::collection::vec(name(), 0..3),
            attachment(),
            prop::collection::vec("ssh-ed25519 [A-Za-z0-9]{4,20}", 0..2),
            env(),
        )
            .prop_map(
                |(image, kernel, vcpus, memory, disks, network, keys, env)| {
                    WorkloadSpec::VirtualMachine(VirtualMachine {
                        image,
                        kernel,
                        vcpus,
                        memory,
                        disks: bv(disks),
                        network,
                        ssh_keys: bv(keys.iter().map(|k| text(k)).collect()),
                        env,
                    })
                }
            ),
        any::<u64>().prop_map(|size| WorkloadSpec::Volume(Volume { size })),
        any::<u64>().prop_map(|size| WorkloadSpec::Disk(Disk { size })),
        (
            any::<[u8; 4]>(),
            0u8..=32,
            any::<[u8; 4]>(),
            0u8..=32,
            any::<bool>()
        )
            .prop_map(|(a, p, b, q, egress)| {
                WorkloadSpec::Network(Network {
                    range: Ipv4Cidr { addr: a, prefix: p },
                    subnet: Ipv4Cidr { addr: b, prefix: q },
                    egress,
                })
            }),
    ]
}

prop_compose! {
    fn deployment()(
        version in any::<u32>(),
        description in utf8::<256>(40),
        workloads in prop::collection::vec((name(), any::<u32>(), spec()), 0..6),
    ) -> Deployment {
        Deployment {
            version,
            description,
            workloads: bv(workloads
                .into_iter()
                .map(|(name, version, spec)| Workload { name, version, spec })
                .collect()),
        }
    }
}

proptest! {
    #[test]
    fn scale_round_trip(d in deployment()) {
        let bytes = d.encode();
        prop_assert_eq!(Deployment::decode(&mut &bytes[..]).unwrap(), d.clone());
        if bytes.len() <= limits::MAX_ENCODED_LEN as usize {
            prop_assert_eq!(Deployment::decode_bounded(&bytes).unwrap(), d);
        }
    }

    #[test]
    fn file_round_trip(d in deployment()) {
        let file = DeploymentFile::from_deployment(&d).unwrap();
        let yaml = file.to_yaml();
        let from_yaml = DeploymentFile::from_yaml(&yaml)
            .map_err(|e| TestCaseError::fail(format!("{e}\n{yaml}")))?;
        prop_assert_eq!(from_yaml.into_deployment(None).unwrap(), d.clone());
        let json = file.to_json();
        prop_assert_eq!(DeploymentFile::from_json(&json).unwrap().into_deployment(None).unwrap(), d);
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        if let Ok(d) = Deployment::decode_bounded(&bytes) {
            let _ = zos_contracts::validate(&d);
            prop_assert_eq!(d.encode(), bytes);
        }
    }

    #[test]
    fn mutated_encodings_never_panic(d in deployment(), at in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let mut bytes = d.encode();
        if !bytes.is_empty() {
            let i = at.index(bytes.len());
            bytes[i] = byte;
        }
        if let Ok(d) = Deployment::decode_bounded(&bytes) {
            let _ = zos_contracts::validate(&d);
        }
    }
}
