use crate::{
    billing, mock::*, Consumption, ContractState, Contracts, ContractsByNode, ContractsByOwner,
    DeletionCause, Error, Event, InvalidReason, Prices, Reserved, Usage, WorkloadReport,
    WorkloadStates, WorkloadStatus,
};
use polkadot_sdk::{
    frame_support::{
        assert_noop, assert_ok,
        dispatch::Pays,
        traits::{fungible::Inspect, Hooks},
        BoundedVec,
    },
    sp_runtime::DispatchError,
};
use zos_contracts::{file::DeploymentFile, Capacity, Deployment, ValidationErrorKind};

const IMAGE: &str =
    "127.0.0.1:5000/app@sha256:3fbc632167424a6d997e74f52b878d7cc478225cffac6bc977eedfe51c7f4e79";

/// One container of `cpu` vCPUs and `memory_gib` GiB, and a 10 GiB volume.
fn deployment(version: u32, cpu: u32, memory_gib: u32) -> Deployment {
    DeploymentFile::from_yaml(&format!(
        "version: {version}
workloads:
  - name: data
    volume: {{ size: 10GiB }}
  - name: web
    container: {{ image: {IMAGE}, cpu: {cpu}, memory: {memory_gib}GiB, mounts: [{{ volume: data, path: /data }}] }}"
    ))
    .unwrap()
    .into_deployment(None)
    .unwrap()
}

fn cap(cpu: u64, memory_gib: u64) -> Capacity {
    Capacity {
        cru: cpu,
        mru: memory_gib << 30,
        sru: 10 << 30,
        hru: 0,
    }
}

/// Per hour for `deployment(_, 1, 1)`: 1000 + 2000 + 10 * 10.
const HOURLY: u64 = 3_100;

fn signed(who: u64) -> RuntimeOrigin {
    RuntimeOrigin::signed(who)
}

fn create(owner: u64) -> u64 {
    let id = crate::NextContractId::<Test>::get();
    assert_ok!(Deployments::create_contract(
        signed(owner),
        NODE,
        deployment(1, 1, 1)
    ));
    id
}

fn events() -> Vec<Event<Test>> {
    System::events()
        .into_iter()
        .filter_map(|r| match r.event {
            RuntimeEvent::Deployments(e) => Some(e),
            _ => None,
        })
        .collect()
}

/// Runs blocks one by one, each `secs` after the previous, until block `to`.
fn run_blocks(to: u64, secs: u64) {
    while System::block_number() < to {
        let next = System::block_number() + 1;
        System::set_block_number(next);
        set_time(now() + secs);
        Deployments::on_initialize(next);
    }
}

fn now() -> u64 {
    pallet_timestamp::Now::<Test>::get() / 1000
}

fn report(name: &str, status: WorkloadStatus) -> WorkloadReport {
    WorkloadReport {
        name: name.as_bytes().to_vec().try_into().unwrap(),
        version: 1,
        status,
        message: BoundedVec::default(),
    }
}

use polkadot_sdk::pallet_timestamp;

#[test]
fn a_contract_stores_the_whole_deployment_and_reserves_its_capacity() {
    new_test_ext().execute_with(|| {
        let d = deployment(1, 1, 1);
        assert_ok!(Deployments::create_contract(signed(ALICE), NODE, d.clone()));
        let c = Contracts::<Test>::get(0).unwrap();
        assert_eq!(Deployment::decode_bounded(&c.deployment).unwrap(), d);
        assert_eq!(c.hash, d.hash());
        assert_eq!(
            (c.owner, c.node, c.version, c.state),
            (ALICE, NODE, 1, ContractState::Active)
        );
        assert_eq!(c.capacity, cap(1, 1));
        assert_eq!(Reserved::<Test>::get(NODE), cap(1, 1));
        assert!(ContractsByNode::<Test>::contains_key(NODE, 0));
        assert!(ContractsByOwner::<Test>::contains_key(ALICE, 0));
        assert_eq!(Deployments::contracts_of_node(&NODE), vec![0]);
        System::assert_last_event(
            Event::ContractCreated {
                contract_id: 0,
                node: NODE,
                owner: ALICE,
                version: 1,
                hash: d.hash(),
            }
            .into(),
        );
        // A second one adds up.
        assert_ok!(Deployments::create_contract(
            signed(BOB),
            NODE,
            deployment(1, 2, 2)
        ));
        assert_eq!(
            Reserved::<Test>::get(NODE),
            Capacity {
                cru: 3,
                mru: 3 << 30,
                sru: 20 << 30,
                hru: 0
            }
        );
    });
}

#[test]
fn creating_a_contract_refuses_what_cannot_run() {
    new_test_ext().execute_with(|| {
        let mut bad = deployment(1, 1, 1);
        bad.workloads[1].name = bad.workloads[0].name.clone();
        assert_noop!(
            Deployments::create_contract(signed(ALICE), NODE, bad),
            Error::<Test>::InvalidDeployment(InvalidReason(ValidationErrorKind::DuplicateName))
        );
        assert_noop!(
            Deployments::create_contract(signed(ALICE), 77, deployment(1, 1, 1)),
            Error::<Test>::UnknownNode
        );
        // More memory than the node has: 8 GiB.
        assert_noop!(
            Deployments::create_contract(signed(ALICE), NODE, deployment(1, 1, 9)),
            Error::<Test>::InsufficientCapacity
        );
        assert_ok!(Deployments::create_contract(
            signed(ALICE),
            NODE,
            deployment(1, 2, 6)
        ));
        assert_noop!(
            Deployments::create_contract(signed(BOB), NODE, deployment(1, 1, 3)),
            Error::<Test>::InsufficientCapacity
        );
        assert_noop!(
            Deployments::create_contract(signed(POOR), NODE, deployment(1, 1, 1)),
            Error::<Test>::InsufficientBalance
        );
        set_time(GENESIS_TIME + OFFLINE_AFTER + 1);
        assert_noop!(
            Deployments::create_contract(signed(ALICE), NODE, deployment(1, 1, 1)),
            Error::<Test>::NodeDown
        );
    });
}

#[test]
fn only_the_owner_updates_and_the_version_must_grow() {
    new_test_ext().execute_with(|| {
        let id = create(ALICE);
        assert_noop!(
            Deployments::update_contract(signed(BOB), id, deployment(2, 1, 1)),
            Error::<Test>::NotOwner
        );
        assert_noop!(
            Deployments::update_contract(signed(ALICE), 9, deployment(2, 1, 1)),
            Error::<Test>::ContractNotFound
        );
        assert_noop!(
            Deployments::update_contract(signed(ALICE), id, deployment(1, 2, 2)),
            Error::<Test>::VersionNotGrowing
        );
        assert_noop!(
            Deployments::update_contract(signed(ALICE), id, deployment(2, 1, 9)),
            Error::<Test>::InsufficientCapacity
        );
        let d = deployment(2, 2, 3);
        assert_ok!(Deployments::update_contract(signed(ALICE), id, d.clone()));
        let c = Contracts::<Test>::get(id).unwrap();
        assert_eq!((c.version, c.hash, c.capacity), (2, d.hash(), cap(2, 3)));
        assert_eq!(Reserved::<Test>::get(NODE), cap(2, 3));
        System::assert_last_event(
            Event::ContractUpdated {
                contract_id: id,
                node: NODE,
                owner: ALICE,
                version: 2,
                hash: d.hash(),
            }
            .into(),
        );
        // Shrinking gives capacity back.
        assert_ok!(Deployments::update_contract(
            signed(ALICE),
            id,
            deployment(3, 1, 1)
        ));
        assert_eq!(Reserved::<Test>::get(NODE), cap(1, 1));
    });
}

#[test]
fn cancel_bills_up_to_now_and_frees_everything() {
    new_test_ext().execute_with(|| {
        let id = create(ALICE);
        assert_noop!(
            Deployments::cancel_contract(signed(BOB), id),
            Error::<Test>::NotOwner
        );
        assert_noop!(
            Deployments::cancel_contract(signed(ALICE), 5),
            Error::<Test>::ContractNotFound
        );
        set_time(GENESIS_TIME + HOUR / 2);
        assert_ok!(Deployments::cancel_contract(signed(ALICE), id));
        assert_eq!(Balances::balance(&ALICE), START_BALANCE - HOURLY / 2);
        assert_eq!(Balances::balance(&FARMER), 1 + HOURLY / 2);
        assert!(Contracts::<Test>::get(id).is_none());
        assert!(!ContractsByNode::<Test>::contains_key(NODE, id));
        assert!(!ContractsByOwner::<Test>::contains_key(ALICE, id));
        assert!(!Reserved::<Test>::contains_key(NODE));
        assert!(crate::BillingBucket::<Test>::get(Deployments::bucket_of(id)).is_empty());
        System::assert_last_event(
            Event::ContractCanceled {
                contract_id: id,
                node: NODE,
                owner: ALICE,
            }
            .into(),
        );
        // The node can leave now.
        assert_ok!(Grid::remove_node(signed(NODE), NODE));
    });
}

#[test]
fn a_node_with_contracts_cannot_leave() {
    new_test_ext().execute_with(|| {
        create(ALICE);
        assert_noop!(
            Grid::remove_node(signed(NODE), NODE),
            pallet_grid::Error::<Test>::NodeHasContracts
        );
    });
}

#[test]
fn workload_reports_come_from_the_contract_node_at_a_bounded_rate() {
    new_test_ext().execute_with(|| {
        let id = create(ALICE);
        let states: BoundedVec<_, _> = vec![
            report("data", WorkloadStatus::Ok),
            report("web", WorkloadStatus::Ok),
        ]
        .try_into()
        .unwrap();
        assert_noop!(
            Deployments::report_workloads(signed(ALICE), id, 1, states.clone()),
            Error::<Test>::NotContractNode
        );
        assert_noop!(
            Deployments::report_workloads(signed(NODE), 42, 1, states.clone()),
            Error::<Test>::ContractNotFound
        );
        assert_noop!(
            Deployments::report_workloads(signed(NODE), id, 2, states.clone()),
            Error::<Test>::UnknownVersion
        );
        let twice: BoundedVec<_, _> = vec![
            report("web", WorkloadStatus::Ok),
            report("web", WorkloadStatus::Error),
        ]
        .try_into()
        .unwrap();
        assert_noop!(
            Deployments::report_workloads(signed(NODE), id, 1, twice),
            Error::<Test>::DuplicateWorkloadReport
        );
        let post = Deployments::report_workloads(signed(NODE), id, 1, states.clone()).unwrap();
        assert_eq!(post.pays_fee, Pays::No);
        System::assert_last_event(
            Event::WorkloadsReported {
                contract_id: id,
                node: NODE,
                version: 1,
            }
            .into(),
        );
        let stored = WorkloadStates::<Test>::get(id).unwrap();
        assert_eq!(
            (stored.version, stored.at, stored.workloads),
            (1, GENESIS_TIME, states.clone())
        );

        assert_noop!(
            Deployments::report_workloads(signed(NODE), id, 1, states.clone()),
            Error::<Test>::ReportTooEarly
        );
        // An update is answered at once.
        assert_ok!(Deployments::update_contract(
            signed(ALICE),
            id,
            deployment(2, 1, 1)
        ));
        assert_ok!(Deployments::report_workloads(
            signed(NODE),
            id,
            2,
            states.clone()
        ));
        set_time(GENESIS_TIME + REPORT_INTERVAL);
        assert_ok!(Deployments::report_workloads(signed(NODE), id, 2, states));
    });
}

#[test]
fn consumption_is_reported_for_all_contracts_at_once_and_billed() {
    new_test_ext().execute_with(|| {
        let a = create(ALICE);
        let b = create(BOB);
        let used = Consumption {
            cpu_ms: 3_600_000,
            memory_peak: 1 << 20,
            net_rx: 1 << 30,
            net_tx: 1 << 30,
        };
        let reports =
            |list: Vec<(u64, Consumption)>| -> BoundedVec<_, _> { list.try_into().unwrap() };
        assert_noop!(
            Deployments::report_consumption(signed(ALICE), reports(vec![(a, used)])),
            Error::<Test>::NotContractNode
        );
        assert_noop!(
            Deployments::report_consumption(signed(NODE), reports(vec![(a, used), (a, used)])),
            Error::<Test>::DuplicateContractReport
        );
        assert_noop!(
            Deployments::report_consumption(signed(NODE), reports(vec![(a, used), (99, used)])),
            Error::<Test>::ContractNotFound
        );
        let post =
            Deployments::report_consumption(signed(NODE), reports(vec![(a, used), (b, used)]))
                .unwrap();
        assert_eq!(post.pays_fee, Pays::No);
        System::assert_last_event(
            Event::ConsumptionReported {
                node: NODE,
                contracts: 2,
            }
            .into(),
        );
        assert_noop!(
            Deployments::report_consumption(signed(NODE), reports(vec![(a, used)])),
            Error::<Test>::ReportTooEarly
        );
        set_time(GENESIS_TIME + REPORT_INTERVAL);
        assert_ok!(Deployments::report_consumption(
            signed(NODE),
            reports(vec![(a, used)])
        ));
        let usage = Usage::<Test>::get(a);
        assert_eq!(usage.unbilled.cpu_ms, 7_200_000);
        assert_eq!(usage.total.net_rx, 2 << 30);

        // At its bill, contract `a` pays an hour of reservation plus 2 CPU hours and 4 GiB.
        let consumption_cost = billing::consumption_cost(&prices(), &usage.unbilled) as u64;
        assert_eq!(consumption_cost, 2 * 600 + 4 * 100);
        set_time(GENESIS_TIME + HOUR);
        Deployments::bill_bucket(Deployments::bucket_of(a), now());
        assert_eq!(
            Balances::balance(&ALICE),
            START_BALANCE - HOURLY - consumption_cost
        );
        assert_eq!(Usage::<Test>::get(a).unbilled, Consumption::default());
        assert_eq!(Usage::<Test>::get(a).total.cpu_ms, 7_200_000);
    });
}

#[test]
fn billing_charges_exact_amounts_across_many_blocks() {
    new_test_ext().execute_with(|| {
        let id = create(ALICE);
        // One block every 10 minutes for 3 hours and a bit: each contract's bucket comes round
        // every BUCKETS blocks, and it is billed once its hour has passed.
        run_blocks(1 + 19, 600);
        assert_eq!(now(), GENESIS_TIME + 19 * 600);
        let billed: u64 = events()
            .iter()
            .filter_map(|e| match e {
                Event::ContractBilled {
                    contract_id,
                    amount,
                    owner,
                    farmer,
                } if *contract_id == id => {
                    assert_eq!((*owner, *farmer), (ALICE, FARMER));
                    Some(*amount)
                }
                _ => None,
            })
            .sum();
        // Bucket 0 comes round at blocks 4, 8, 12, 16 (times 1800, 4200, 6600, 9000 s after
        // creation): billed at 4200 s and again at 9000 s, each pro rata and rounded down.
        assert_eq!(
            Contracts::<Test>::get(id).unwrap().last_billed,
            GENESIS_TIME + 9000
        );
        assert_eq!(billed, HOURLY * 4200 / HOUR + HOURLY * 4800 / HOUR);
        assert_eq!(billed, 3_616 + 4_133);
        assert_eq!(Balances::balance(&ALICE), START_BALANCE - billed);
        assert_eq!(Balances::balance(&FARMER), 1 + billed);
    });
}

#[test]
fn unpaid_contracts_go_through_grace_then_deletion_and_a_top_up_resumes_them() {
    new_test_ext().execute_with(|| {
        // BOB can pay about one hour and a half.
        let id = create(BOB);
        assert_ok!(Balances::transfer_allow_death(
            signed(BOB),
            ALICE,
            START_BALANCE - 2 * HOURLY
        ));
        let bucket = Deployments::bucket_of(id);

        set_time(GENESIS_TIME + HOUR);
        Deployments::bill_bucket(bucket, now());
        assert_eq!(
            Contracts::<Test>::get(id).unwrap().state,
            ContractState::Active
        );
        assert_eq!(Balances::balance(&BOB), HOURLY);

        set_time(GENESIS_TIME + 2 * HOUR);
        Deployments::bill_bucket(bucket, now());
        let c = Contracts::<Test>::get(id).unwrap();
        assert_eq!(
            c.state,
            ContractState::GracePeriod {
                since: GENESIS_TIME + 2 * HOUR
            }
        );
        assert_eq!(c.unpaid, HOURLY);
        System::assert_last_event(
            Event::GracePeriodStarted {
                contract_id: id,
                node: NODE,
                owner: BOB,
                unpaid: HOURLY,
            }
            .into(),
        );

        // A top-up: the next bill takes what is owed plus the new hour and resumes.
        assert_ok!(Balances::transfer_allow_death(
            signed(ALICE),
            BOB,
            10 * HOURLY
        ));
        set_time(GENESIS_TIME + 3 * HOUR);
        Deployments::bill_bucket(bucket, now());
        let c = Contracts::<Test>::get(id).unwrap();
        assert_eq!((c.state, c.unpaid), (ContractState::Active, 0));
        System::assert_last_event(
            Event::GracePeriodEnded {
                contract_id: id,
                node: NODE,
                owner: BOB,
                paid: 2 * HOURLY,
            }
            .into(),
        );
        assert_eq!(Balances::balance(&BOB), HOURLY + 10 * HOURLY - 2 * HOURLY);

        // Broke again, and nothing comes: deleted when the grace period is over.
        assert_ok!(Balances::transfer_allow_death(
            signed(BOB),
            ALICE,
            Balances::balance(&BOB) - 1
        ));
        set_time(GENESIS_TIME + 4 * HOUR);
        Deployments::bill_bucket(bucket, now());
        assert_eq!(
            Contracts::<Test>::get(id).unwrap().state,
            ContractState::GracePeriod {
                since: GENESIS_TIME + 4 * HOUR
            }
        );
        set_time(GENESIS_TIME + 4 * HOUR + GRACE - 1);
        Deployments::bill_bucket(bucket, now());
        assert!(Contracts::<Test>::get(id).is_some());
        set_time(GENESIS_TIME + 4 * HOUR + GRACE);
        Deployments::bill_bucket(bucket, now());
        assert!(Contracts::<Test>::get(id).is_none());
        System::assert_last_event(
            Event::ContractDeleted {
                contract_id: id,
                node: NODE,
                owner: BOB,
                cause: DeletionCause::OutOfFunds,
            }
            .into(),
        );
        assert!(!Reserved::<Test>::contains_key(NODE));
        assert!(!ContractsByNode::<Test>::contains_key(NODE, id));
    });
}

#[test]
fn buckets_bound_the_number_of_contracts() {
    new_test_ext().execute_with(|| {
        // Contracts 0, 4, 8 fill bucket 0.
        for _ in 0..(BUCKETS * PER_BUCKET) {
            assert_ok!(Deployments::create_contract(signed(ALICE), NODE, tiny()));
        }
        assert_noop!(
            Deployments::create_contract(signed(ALICE), NODE, tiny()),
            Error::<Test>::TooManyContracts
        );
        assert_ok!(Deployments::cancel_contract(signed(ALICE), 4));
        // The next id lands in bucket 0 again, where there is room now.
        assert_ok!(Deployments::create_contract(signed(ALICE), NODE, tiny()));
    });
}

fn tiny() -> Deployment {
    DeploymentFile::from_yaml("workloads: [{ name: v, volume: { size: 1MiB } }]")
        .unwrap()
        .into_deployment(None)
        .unwrap()
}

#[test]
fn only_the_admin_sets_prices() {
    new_test_ext().execute_with(|| {
        let p = crate::Pricing {
            cru_per_hour: 7,
            ..prices()
        };
        assert_noop!(
            Deployments::set_pricing(signed(ALICE), p),
            DispatchError::BadOrigin
        );
        assert_ok!(Deployments::set_pricing(RuntimeOrigin::root(), p));
        assert_eq!(Prices::<Test>::get(), p);
        System::assert_last_event(Event::PricingSet { pricing: p }.into());
    });
}

#[test]
fn contract_ids_do_not_wrap() {
    new_test_ext().execute_with(|| {
        crate::NextContractId::<Test>::put(u64::MAX);
        assert_noop!(
            Deployments::create_contract(signed(ALICE), NODE, deployment(1, 1, 1)),
            Error::<Test>::ContractIdOverflow
        );
    });
}
