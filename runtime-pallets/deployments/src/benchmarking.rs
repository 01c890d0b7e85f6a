//! Benchmarks of the deployments pallet, each at its worst case: the largest deployment the
//! chain accepts, full reports, every billed contract paying for consumption.

use super::*;
use alloc::{vec, vec::Vec};
use frame_support::{
    traits::{fungible::Mutate, Get},
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
                egress: true,
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
                rootfs_size: 64 << 20,
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
        cpu_millis: 1 << 30,
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

/// `n` contracts on `node`, ids 1 to `n`, due for billing at `due`: copies of one created the
/// usual way (and canceled), each with a funded owner of its own. What billing and reports read
/// and write is the same as for created contracts, without validating `n` large deployments.
fn copies<T: Config>(node: &T::AccountId, n: u32, due: u64) -> Vec<ContractId> {
    let template_owner: T::AccountId = account("owner", u32::MAX, 0);
    let template = new_contract::<T>(&template_owner, node);
    let contract = Contracts::<T>::get(template).expect("just created; qed");
    let deployment = ContractDeployment::<T>::get(template).expect("just created; qed");
    let usage = Usage::<T>::get(template);
    Pallet::<T>::cancel_contract(RawOrigin::Signed(template_owner).into(), template)
        .expect("the owner cancels its own contract; qed");
    (1..=n)
        .map(|i| {
            let owner: T::AccountId = account("owner", i, 0);
            fund::<T>(&owner);
            let id = u64::from(i);
            Contracts::<T>::insert(
                id,
                Contract {
                    owner: owner.clone(),
                    next_bill: due,
                    ..contract.clone()
                },
            );
            ContractDeployment::<T>::insert(id, deployment.clone());
            Usage::<T>::insert(id, usage.clone());
            BillingQueue::<T>::insert(due, id, ());
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
        // Every workload unsupported: the deployment is read to take their capacity off the bill.
        let reports: Vec<WorkloadReport> = largest_deployment(1)
            .workloads
            .iter()
            .map(|w| WorkloadReport {
                name: w.name.clone(),
                version: 1,
                status: WorkloadStatus::Unsupported,
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
        let reports: Vec<_> = copies::<T>(&node, n, 1_700_000_000 + T::BillingPeriod::get())
            .into_iter()
            .map(|id| (id, used))
            .collect();
        let reports: BoundedVec<_, _> = reports.try_into().expect("n is within the bound; qed");
        // An hour on: the reservation allows what is reported.
        T::BenchmarkHelper::set_time(1_700_000_000 + 3600);
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

    /// Billing in one block: `b` contracts due, each paying for its reservation and
    /// consumption, at the end of `s` seconds of the queue walked.
    #[benchmark]
    fn bill_due(
        b: Linear<0, { T::MaxBillsPerBlock::get() }>,
        s: Linear<1, { T::MaxBillingSecondsPerBlock::get() }>,
    ) {
        let (node, _) = setup::<T>();
        Prices::<T>::put(Pricing {
            cru_per_hour: 1_000,
            mru_gib_per_hour: 1_000,
            cpu_hour: 1_000,
            network_gib: 1_000,
            ..Default::default()
        });
        let start = 1_700_000_000 + T::BillingPeriod::get();
        let due = start + u64::from(s) - 1;
        let ids = copies::<T>(&node, b, due);
        let unbilled = Consumption {
            cpu_ms: 1,
            memory_peak: 1,
            net_rx: 1,
            net_tx: 1,
        };
        for id in &ids {
            Usage::<T>::mutate(id, |u| u.unbilled = unbilled);
        }
        BillingCursor::<T>::put(start);
        T::BenchmarkHelper::set_time(due);
        #[block]
        {
            Pallet::<T>::bill_due(due);
        }
        for id in ids {
            assert_eq!(Contracts::<T>::get(id).map(|c| c.last_billed), Some(due));
        }
        assert_eq!(BillingCursor::<T>::get(), Some(due + 1));
    }

    impl_benchmark_test_suite!(Pallet, crate::mock::new_test_ext(), crate::mock::Test);
}

use frame_support::traits::{ConstU32, EnsureOrigin};
