//! Benchmarks of the deployments pallet, each at its worst case: the largest deployment the
//! chain accepts, full reports, full billing buckets.

use super::*;
use alloc::{vec, vec::Vec};
use frame_support::{
    traits::{fungible::Mutate, Get, Hooks},
    BoundedVec,
};
use polkadot_sdk::{
    frame_benchmarking::v2::*, frame_system::RawOrigin, sp_runtime::SaturatedConversion,
};
use zos_contracts::{
    limits, Container, EnvValue, EnvVar, ImageRef, Ipv4Cidr, Mount, Network, NetworkAttachment,
    RestartPolicy, Volume, Workload, WorkloadSpec,
};

fn text<const N: u32>(s: &[u8]) -> BoundedVec<u8, ConstU32<N>> {
    s.to_vec().try_into().expect("benchmark text fits; qed")
}

/// A valid deployment with every workload slot used and an encoding close to the limit, which
/// makes validation (quadratic in workloads) and storage as expensive as they get.
fn largest_deployment(version: u32) -> Deployment {
    let mut workloads = vec![
        Workload {
            name: text(b"data"),
            version: 1,
            spec: WorkloadSpec::Volume(Volume { size: 1 << 30 }),
        },
        Workload {
            name: text(b"net"),
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
            }),
        },
    ];
    let containers = limits::MAX_WORKLOADS as usize - workloads.len();
    let budget = limits::MAX_ENCODED_LEN as usize - 512;
    let padding = budget / containers - 160;
    for i in 0..containers {
        let name = alloc::format!("c{i}");
        workloads.push(Workload {
            name: text(name.as_bytes()),
            version: 1,
            spec: WorkloadSpec::Container(Container {
                image: ImageRef {
                    repository: text(b"127.0.0.1:5000/bench/app"),
                    digest: [7; 32],
                },
                entrypoint: BoundedVec::default(),
                args: vec![text(&vec![b'a'; padding])]
                    .try_into()
                    .expect("one arg; qed"),
                env: vec![EnvVar {
                    key: text(b"MODE"),
                    value: EnvValue::Plain(text(b"bench")),
                }]
                .try_into()
                .expect("one var; qed"),
                workdir: Some(text(b"/")),
                cpu_millis: 100,
                memory: 16 << 20,
                mounts: vec![Mount {
                    volume: text(b"data"),
                    path: text(b"/data"),
                    read_only: false,
                }]
                .try_into()
                .expect("one mount; qed"),
                network: Some(NetworkAttachment {
                    network: text(b"net"),
                    ip: Some([10, 1, 2, 10 + i as u8]),
                }),
                restart: RestartPolicy::Always,
            }),
        });
    }
    let d = Deployment {
        version,
        description: text(b"benchmark"),
        workloads: workloads.try_into().expect("exactly MAX_WORKLOADS; qed"),
    };
    zos_contracts::validate(&d).expect("the benchmark deployment is valid; qed");
    d
}

fn node_capacity() -> Capacity {
    Capacity {
        cru: 1 << 20,
        mru: 1 << 50,
        sru: 1 << 50,
        hru: 0,
    }
}

fn setup<T: Config>() -> (T::AccountId, T::AccountId) {
    T::BenchmarkHelper::set_time(1_700_000_000);
    let node: T::AccountId = account("node", 0, 0);
    let farmer: T::AccountId = account("farmer", 0, 0);
    T::BenchmarkHelper::register_node(&node, &farmer, node_capacity());
    (node, farmer)
}

fn fund<T: Config>(who: &T::AccountId) {
    T::Currency::set_balance(who, (1u128 << 60).saturated_into());
}

fn new_contract<T: Config>(owner: &T::AccountId, node: &T::AccountId) -> ContractId {
    fund::<T>(owner);
    let id = NextContractId::<T>::get();
    Pallet::<T>::create_contract(
        RawOrigin::Signed(owner.clone()).into(),
        node.clone(),
        largest_deployment(1),
    )
    .expect("a funded owner on a free node; qed");
    id
}

/// `n` contracts on `node`, ids `stride`, `2 * stride`, ...: copies of one created the usual way
/// (and canceled), each with a funded owner of its own. What billing and reports read and write
/// is the same as for created contracts, without validating `n` large deployments.
fn copies<T: Config>(node: &T::AccountId, n: u32, stride: u64) -> Vec<ContractId> {
    let template_owner: T::AccountId = account("owner", u32::MAX, 0);
    let template = new_contract::<T>(&template_owner, node);
    let contract = Contracts::<T>::get(template).expect("just created; qed");
    Pallet::<T>::cancel_contract(RawOrigin::Signed(template_owner).into(), template)
        .expect("the owner cancels its own contract; qed");
    (0..n)
        .map(|i| {
            let owner: T::AccountId = account("owner", i, 0);
            fund::<T>(&owner);
            let id = (u64::from(i) + 1) * stride;
            Contracts::<T>::insert(
                id,
                Contract {
                    owner: owner.clone(),
                    ..contract.clone()
                },
            );
            ContractsByNode::<T>::insert(node, id, ());
            ContractsByOwner::<T>::insert(&owner, id, ());
            id
        })
        .collect()
}

#[benchmarks]
mod benchmarks {
    use super::*;

    #[benchmark]
    fn create_contract() {
        let (node, _) = setup::<T>();
        let owner: T::AccountId = whitelisted_caller();
        fund::<T>(&owner);
        let d = largest_deployment(1);
        #[extrinsic_call]
        _(RawOrigin::Signed(owner), node, d);
        assert!(Contracts::<T>::contains_key(0));
    }

    #[benchmark]
    fn update_contract() {
        let (node, _) = setup::<T>();
        let owner: T::AccountId = whitelisted_caller();
        let id = new_contract::<T>(&owner, &node);
        Usage::<T>::insert(
            id,
            UsageRecord {
                unbilled: Consumption {
                    cpu_ms: 1,
                    memory_peak: 1,
                    net_rx: 1,
                    net_tx: 1,
                },
                ..Default::default()
            },
        );
        #[extrinsic_call]
        _(RawOrigin::Signed(owner), id, largest_deployment(2));
        assert_eq!(Contracts::<T>::get(id).map(|c| c.version), Some(2));
    }

    #[benchmark]
    fn cancel_contract() {
        let (node, _) = setup::<T>();
        let owner: T::AccountId = whitelisted_caller();
        let id = new_contract::<T>(&owner, &node);
        T::BenchmarkHelper::set_time(1_700_000_000 + T::BillingPeriod::get());
        #[extrinsic_call]
        _(RawOrigin::Signed(owner), id);
        assert!(!Contracts::<T>::contains_key(id));
    }

    #[benchmark]
    fn report_workloads() {
        let (node, _) = setup::<T>();
        let id = new_contract::<T>(&account("owner", 0, 0), &node);
        let reports: Vec<WorkloadReport> = largest_deployment(1)
            .workloads
            .iter()
            .map(|w| WorkloadReport {
                name: w.name.clone(),
                version: 1,
                status: WorkloadStatus::Error,
                message: text(&[b'e'; MAX_REPORT_MESSAGE_LEN as usize]),
            })
            .collect();
        let reports: BoundedVec<_, _> = reports.try_into().expect("one per workload; qed");
        #[extrinsic_call]
        _(RawOrigin::Signed(node), id, 1, reports);
        assert!(WorkloadStates::<T>::contains_key(id));
    }

    #[benchmark]
    fn report_consumption(n: Linear<1, { T::MaxReportContracts::get() }>) {
        let (node, _) = setup::<T>();
        let used = Consumption {
            cpu_ms: 1_000,
            memory_peak: 1 << 20,
            net_rx: 1 << 20,
            net_tx: 1 << 20,
        };
        let reports: Vec<_> = copies::<T>(&node, n, 1)
            .into_iter()
            .map(|id| (id, used))
            .collect();
        let reports: BoundedVec<_, _> = reports.try_into().expect("n is within the bound; qed");
        #[extrinsic_call]
        _(RawOrigin::Signed(node), reports);
        assert_eq!(Usage::<T>::get(1).total, used);
    }

    #[benchmark]
    fn set_pricing() -> Result<(), BenchmarkError> {
        let origin =
            T::AdminOrigin::try_successful_origin().map_err(|_| BenchmarkError::Weightless)?;
        let pricing = Pricing {
            cru_per_hour: 1,
            ..Default::default()
        };
        #[extrinsic_call]
        _(origin as T::RuntimeOrigin, pricing);
        assert_eq!(Prices::<T>::get(), pricing);
        Ok(())
    }

    /// Billing of one full bucket, every contract due and paying.
    #[benchmark]
    fn bill_bucket(n: Linear<0, { T::MaxContractsPerBucket::get() }>) {
        let (node, _) = setup::<T>();
        Prices::<T>::put(Pricing {
            cru_per_hour: 1_000,
            mru_gib_per_hour: 1_000,
            ..Default::default()
        });
        let buckets = u64::from(T::BillingBuckets::get().max(1));
        let ids = copies::<T>(&node, n, buckets);
        let unbilled = Consumption {
            cpu_ms: 1,
            memory_peak: 1,
            net_rx: 1,
            net_tx: 1,
        };
        for id in &ids {
            Usage::<T>::insert(
                id,
                UsageRecord {
                    unbilled,
                    ..Default::default()
                },
            );
        }
        BillingBucket::<T>::insert(
            0,
            BoundedVec::try_from(ids.clone()).expect("n is within the bound; qed"),
        );
        T::BenchmarkHelper::set_time(1_700_000_000 + T::BillingPeriod::get());
        let block: BlockNumberFor<T> = (buckets as u32).into();
        #[block]
        {
            Pallet::<T>::on_initialize(block);
        }
        for id in ids {
            assert_eq!(
                Contracts::<T>::get(id).map(|c| c.last_billed),
                Some(1_700_000_000 + T::BillingPeriod::get())
            );
        }
    }

    impl_benchmark_test_suite!(Pallet, crate::mock::new_test_ext(), crate::mock::Test);
}

use frame_support::traits::{ConstU32, EnsureOrigin};
use frame_system::pallet_prelude::BlockNumberFor;
