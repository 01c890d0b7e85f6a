use crate::{
    billing, mock::*, BillingCursor, BillingQueue, Consumption, ContractState, Contracts,
    ContractsByNode, ContractsByOwner, DeletionCause, Error, Event, HoldReason, InvalidReason,
    Prices, Reserved, UpdateRefusal, Usage, WorkloadReport, WorkloadStates, WorkloadStatus,
};
use codec::{Encode, MaxEncodedLen};
use polkadot_sdk::{
    frame_support::{
        assert_noop, assert_ok,
        dispatch::Pays,
        traits::{
            fungible::{Inspect, InspectHold},
            Hooks,
        },
        BoundedVec,
    },
    sp_runtime::DispatchError,
};
use zos_contracts::{file::DeploymentFile, Capacity, Deployment, UpdateRule, ValidationErrorKind};

const IMAGE: &str =
    "127.0.0.1:5000/app@sha256:3fbc632167424a6d997e74f52b878d7cc478225cffac6bc977eedfe51c7f4e79";

/// One container of `cpu` vCPUs, `memory_gib` GiB and a 1 GiB root filesystem, and a 10 GiB
/// volume; every workload at the deployment's version.
fn deployment(version: u32, cpu: u32, memory_gib: u32) -> Deployment {
    DeploymentFile::from_yaml(&format!(
        "version: {version}
workloads:
  - name: data
    version: {version}
    volume: {{ size: 10GiB }}
  - name: web
    version: {version}
    container: {{ image: {IMAGE}, cpu: {cpu}, memory: {memory_gib}GiB, rootfs: 1GiB, mounts: [{{ volume: data, path: /data }}] }}"
    ))
    .unwrap()
    .into_deployment(None)
    .unwrap()
}

fn cap(cpu: u64, memory_gib: u64) -> Capacity {
    Capacity {
        cpu_millis: cpu * 1000,
        mru: memory_gib << 30,
        sru: 11 << 30,
        hru: 0,
    }
}

/// Per hour for `deployment(_, 1, 1)`: 1000 + 2000 + (10 + 1) * 10.
const HOURLY: u64 = 3_110;

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

/// Bills what is due now, over as many calls as the per-block bounds take.
fn bill_now() {
    while BillingCursor::<Test>::get().is_some_and(|at| at <= now()) {
        Deployments::bill_due(now());
    }
}

/// What `who` has held for `reason`.
fn held(reason: HoldReason, who: u64) -> u64 {
    Balances::balance_on_hold(&reason.into(), &who)
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
    build_and_execute(|| {
        let d = deployment(1, 1, 1);
        assert_ok!(Deployments::create_contract(signed(ALICE), NODE, d.clone()));
        let c = Contracts::<Test>::get(0).unwrap();
        let stored = crate::ContractDeployment::<Test>::get(0).unwrap();
        assert_eq!(Deployment::decode_bounded(&stored).unwrap(), d);
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
                cpu_millis: 3000,
                mru: 3 << 30,
                sru: 22 << 30,
                hru: 0
            }
        );
    });
}

#[test]
fn creating_a_contract_refuses_what_cannot_run() {
    build_and_execute(|| {
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
    build_and_execute(|| {
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
    build_and_execute(|| {
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
        assert_eq!(BillingQueue::<Test>::iter().count(), 0);
        assert_eq!(held(HoldReason::StorageDeposit, ALICE), 0);
        assert_eq!(held(HoldReason::BillingReserve, ALICE), 0);
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
    build_and_execute(|| {
        create(ALICE);
        assert_noop!(
            Grid::remove_node(signed(NODE), NODE),
            pallet_grid::Error::<Test>::NodeHasContracts
        );
    });
}

#[test]
fn workload_reports_come_from_the_contract_node_at_a_bounded_rate() {
    build_and_execute(|| {
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

        let error: BoundedVec<_, _> = vec![
            report("data", WorkloadStatus::Ok),
            report("web", WorkloadStatus::Error),
        ]
        .try_into()
        .unwrap();
        assert_noop!(
            Deployments::report_workloads(signed(NODE), id, 1, error.clone()),
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
        assert_ok!(Deployments::report_workloads(signed(NODE), id, 2, error));
    });
}

#[test]
fn consumption_is_reported_for_all_contracts_at_once_and_billed() {
    build_and_execute(|| {
        let a = create(ALICE);
        let b = create(BOB);
        // Within what one vCPU and 1 MiB/s allow over the hour.
        set_time(GENESIS_TIME + HOUR / 2);
        let used = Consumption {
            cpu_ms: 1_800_000,
            memory_peak: 1 << 20,
            net_rx: 1 << 30,
            net_tx: 1 << 29,
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
        set_time(GENESIS_TIME + HOUR);
        assert_ok!(Deployments::report_consumption(
            signed(NODE),
            reports(vec![(a, used)])
        ));
        let usage = Usage::<Test>::get(a);
        assert_eq!(usage.unbilled.cpu_ms, 3_600_000);
        assert_eq!(usage.total.net_rx, 2 << 30);

        // At its bill, contract `a` pays an hour of reservation plus a CPU hour and 3 GiB.
        let consumption_cost = billing::consumption_cost(&prices(), &usage.unbilled) as u64;
        assert_eq!(consumption_cost, 600 + 3 * 100);
        bill_now();
        assert_eq!(
            Balances::balance(&ALICE)
                + held(HoldReason::StorageDeposit, ALICE)
                + held(HoldReason::BillingReserve, ALICE),
            START_BALANCE - HOURLY - consumption_cost
        );
        assert_eq!(Usage::<Test>::get(a).unbilled, Consumption::default());
        assert_eq!(Usage::<Test>::get(a).total.cpu_ms, 3_600_000);
    });
}

#[test]
fn only_the_admin_sets_prices() {
    build_and_execute(|| {
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
    build_and_execute(|| {
        crate::NextContractId::<Test>::put(u64::MAX);
        assert_noop!(
            Deployments::create_contract(signed(ALICE), NODE, deployment(1, 1, 1)),
            Error::<Test>::ContractIdOverflow
        );
    });
}

/// Free balance plus what the pallet holds: what an owner has in all.
fn total(who: u64) -> u64 {
    Balances::balance(&who)
        + held(HoldReason::StorageDeposit, who)
        + held(HoldReason::BillingReserve, who)
}

fn billed_to(id: u64) -> u64 {
    events()
        .iter()
        .filter_map(|e| match e {
            Event::ContractBilled {
                contract_id,
                amount,
                ..
            } if *contract_id == id => Some(*amount),
            _ => None,
        })
        .sum()
}

#[test]
fn billing_charges_exact_amounts_across_many_blocks() {
    build_and_execute(|| {
        let id = create(ALICE);
        // One block every 5 minutes for 3 hours and a bit: the contract is billed each hour.
        run_blocks(1 + 38, 300);
        assert_eq!(now(), GENESIS_TIME + 38 * 300);
        let c = Contracts::<Test>::get(id).unwrap();
        assert_eq!(c.last_billed, GENESIS_TIME + 3 * HOUR);
        assert_eq!(c.next_bill, GENESIS_TIME + 4 * HOUR);
        assert_eq!(billed_to(id), 3 * HOURLY);
        assert_eq!(total(ALICE), START_BALANCE - 3 * HOURLY);
        assert_eq!(Balances::balance(&FARMER), 1 + 3 * HOURLY);
    });
}

#[test]
fn unpaid_contracts_go_through_grace_then_deletion_and_a_top_up_resumes_them() {
    build_and_execute(|| {
        // BOB can pay two hours from his free balance, and holds the first hour besides.
        let id = create(BOB);
        let reserve = held(HoldReason::BillingReserve, BOB);
        assert_eq!(reserve, HOURLY);
        assert_ok!(Balances::transfer_allow_death(
            signed(BOB),
            ALICE,
            Balances::balance(&BOB) - 2 * HOURLY
        ));

        set_time(GENESIS_TIME + HOUR);
        bill_now();
        assert_eq!(
            Contracts::<Test>::get(id).unwrap().state,
            ContractState::Active
        );
        assert_eq!(Balances::balance(&BOB), HOURLY);

        set_time(GENESIS_TIME + 2 * HOUR);
        bill_now();
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
        bill_now();
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

        // Broke again, and nothing comes: deleted when the grace period is over, and what is
        // owed by then is paid from the reserve before anything is forgiven.
        assert_ok!(Balances::transfer_allow_death(
            signed(BOB),
            ALICE,
            Balances::balance(&BOB) - 1
        ));
        set_time(GENESIS_TIME + 4 * HOUR);
        bill_now();
        assert_eq!(
            Contracts::<Test>::get(id).unwrap().state,
            ContractState::GracePeriod {
                since: GENESIS_TIME + 4 * HOUR
            }
        );
        set_time(GENESIS_TIME + 4 * HOUR + GRACE - 1);
        bill_now();
        assert!(Contracts::<Test>::get(id).is_some());
        let farmer_before = Balances::balance(&FARMER);
        set_time(GENESIS_TIME + 4 * HOUR + GRACE);
        bill_now();
        assert!(Contracts::<Test>::get(id).is_none());
        System::assert_has_event(
            Event::ContractDeleted {
                contract_id: id,
                node: NODE,
                owner: BOB,
                cause: DeletionCause::OutOfFunds,
            }
            .into(),
        );
        // Three hours were owed (one at the start of grace, two during it): the storage deposit
        // (returned first) and the reserve paid what they could; only the rest is forgiven.
        let deposit = deposit_of_default();
        assert_eq!(Balances::balance(&FARMER) - farmer_before, HOURLY + deposit);
        System::assert_has_event(
            Event::DebtForgiven {
                contract_id: id,
                owner: BOB,
                // Each bill rounds down: the grace hours were billed at 1 s before the end
                // (7199 s) and at the end (1 s).
                amount: 2 * HOURLY - deposit - 1,
            }
            .into(),
        );
        assert_eq!(held(HoldReason::BillingReserve, BOB), 0);
        assert_eq!(held(HoldReason::StorageDeposit, BOB), 0);
        assert!(!Reserved::<Test>::contains_key(NODE));
        assert!(!ContractsByNode::<Test>::contains_key(NODE, id));
    });
}

fn tiny() -> Deployment {
    DeploymentFile::from_yaml("workloads: [{ name: v, volume: { size: 1MiB } }]")
        .unwrap()
        .into_deployment(None)
        .unwrap()
}

fn workloads(list: &[(&str, WorkloadStatus)]) -> BoundedVec<WorkloadReport, ConstU32<32>> {
    list.iter()
        .map(|(n, s)| report(n, *s))
        .collect::<Vec<_>>()
        .try_into()
        .unwrap()
}

use polkadot_sdk::frame_support::traits::ConstU32;

// ---- No free spam ----

#[test]
fn empty_and_unchanged_reports_are_refused_and_refusals_pay() {
    build_and_execute(|| {
        let id = create(ALICE);
        let empty = BoundedVec::default();
        let refused = Deployments::report_consumption(signed(NODE), empty).unwrap_err();
        assert_eq!(refused.error, Error::<Test>::EmptyReport.into());
        assert_eq!(refused.post_info.pays_fee, Pays::Yes);
        assert_noop!(
            Deployments::report_workloads(signed(NODE), id, 1, BoundedVec::default()),
            Error::<Test>::EmptyReport
        );
        let ok = workloads(&[("data", WorkloadStatus::Ok), ("web", WorkloadStatus::Ok)]);
        assert_ok!(Deployments::report_workloads(
            signed(NODE),
            id,
            1,
            ok.clone()
        ));
        // The same states again, even after the interval, say nothing new.
        set_time(GENESIS_TIME + REPORT_INTERVAL);
        let refused = Deployments::report_workloads(signed(NODE), id, 1, ok.clone()).unwrap_err();
        assert_eq!(refused.error, Error::<Test>::EmptyReport.into());
        assert_eq!(refused.post_info.pays_fee, Pays::Yes);
        // A stranger's report on the contract is refused, and pays.
        let refused = Deployments::report_workloads(signed(BOB), id, 1, ok).unwrap_err();
        assert_eq!(
            (refused.error, refused.post_info.pays_fee),
            (Error::<Test>::NotContractNode.into(), Pays::Yes)
        );
    });
}

#[test]
fn workload_reports_are_rate_limited_whatever_version_they_name() {
    build_and_execute(|| {
        let id = create(ALICE);
        for v in 2..=4 {
            assert_ok!(Deployments::update_contract(
                signed(ALICE),
                id,
                deployment(v, 1, 1)
            ));
        }
        let ok = workloads(&[("data", WorkloadStatus::Ok), ("web", WorkloadStatus::Ok)]);
        let err = workloads(&[("data", WorkloadStatus::Ok), ("web", WorkloadStatus::Error)]);
        assert_ok!(Deployments::report_workloads(
            signed(NODE),
            id,
            1,
            ok.clone()
        ));
        // Walking up the versions one free report at a time is not allowed: only the current
        // version answers the update at once.
        assert_noop!(
            Deployments::report_workloads(signed(NODE), id, 2, ok.clone()),
            Error::<Test>::ReportTooEarly
        );
        assert_ok!(Deployments::report_workloads(
            signed(NODE),
            id,
            4,
            ok.clone()
        ));
        assert_noop!(
            Deployments::report_workloads(signed(NODE), id, 4, err.clone()),
            Error::<Test>::ReportTooEarly
        );
        // Older than the last accepted one: refused, whenever.
        set_time(GENESIS_TIME + REPORT_INTERVAL);
        assert_noop!(
            Deployments::report_workloads(signed(NODE), id, 3, err.clone()),
            Error::<Test>::StaleReport
        );
        assert_ok!(Deployments::report_workloads(signed(NODE), id, 4, err));
    });
}

// ---- No one can jam contract creation; a million contracts ----

#[test]
fn no_full_bucket_blocks_creation_and_every_contract_is_billed() {
    build_and_execute(|| {
        // More contracts than 4 buckets of 3 held, created in one second.
        let owners = [ALICE, BOB];
        let ids: Vec<u64> = (0..26)
            .map(|i| {
                let owner = owners[i % 2];
                let id = crate::NextContractId::<Test>::get();
                assert_ok!(Deployments::create_contract(signed(owner), NODE, tiny()));
                id
            })
            .collect();
        set_time(GENESIS_TIME + HOUR);
        bill_now();
        for id in ids {
            let c = Contracts::<Test>::get(id).unwrap();
            assert_eq!(
                (c.last_billed, c.next_bill),
                (GENESIS_TIME + HOUR, GENESIS_TIME + 2 * HOUR)
            );
        }
    });
}

#[test]
fn a_block_bills_a_bounded_number_of_contracts_and_walks_a_bounded_time() {
    build_and_execute(|| {
        for _ in 0..7 {
            assert_ok!(Deployments::create_contract(signed(ALICE), NODE, tiny()));
        }
        // Seven contracts fall due in one second; each block bills at most three.
        set_time(GENESIS_TIME + HOUR - 1);
        bill_now();
        set_time(GENESIS_TIME + HOUR);
        let billed = || {
            (0..7)
                .filter(|id| Contracts::<Test>::get(id).unwrap().last_billed == now())
                .count()
        };
        let weight = Deployments::on_initialize(2);
        assert_eq!(billed(), MAX_BILLS as usize);
        assert_eq!(weight, <() as crate::WeightInfo>::bill_due(MAX_BILLS, 1));
        Deployments::on_initialize(3);
        assert_eq!(billed(), 6);
        Deployments::on_initialize(4);
        assert_eq!(billed(), 7);
        assert_eq!(BillingCursor::<Test>::get(), Some(now() + 1));

        // A chain that stood still for a day catches up MAX_SECONDS of the queue per block.
        set_time(now() + 24 * HOUR);
        let (_, seconds) = Deployments::bill_due(now());
        assert_eq!(seconds, MAX_SECONDS);
        assert_eq!(
            BillingCursor::<Test>::get(),
            Some(GENESIS_TIME + HOUR + 1 + u64::from(MAX_SECONDS))
        );
        bill_now();
        assert_eq!(billed(), 7);
    });
}

#[test]
fn a_million_live_contracts_bill_within_the_block_bound() {
    build_and_execute(|| {
        let template = create(ALICE);
        let contract = Contracts::<Test>::get(template).unwrap();
        // Contracts due over the next hour: 100 000 here, a million with
        // ZOS_LIVE_CONTRACTS=1000000 (about two and a half minutes in the dev profile).
        let live: u64 = std::env::var("ZOS_LIVE_CONTRACTS")
            .map(|v| v.parse().expect("ZOS_LIVE_CONTRACTS is a number"))
            .unwrap_or(100_000);
        for id in 1..live {
            let next_bill = GENESIS_TIME + 1 + id % HOUR;
            Contracts::<Test>::insert(
                id,
                crate::Contract {
                    next_bill,
                    ..contract.clone()
                },
            );
            BillingQueue::<Test>::insert(next_bill, id, ());
        }
        set_time(GENESIS_TIME + 2);
        let started = std::time::Instant::now();
        let weight = Deployments::on_initialize(2);
        let took = started.elapsed();
        let bound = <() as crate::WeightInfo>::bill_due(MAX_BILLS, MAX_SECONDS);
        assert!(weight.all_lte(bound), "{weight:?} over {bound:?}");
        // Due at seconds 1 and 2: about 2 * live / HOUR, of which the block bills MAX_BILLS.
        let billed: Vec<u64> = (1..live)
            .filter(|id| Contracts::<Test>::get(id).unwrap().last_billed == now())
            .collect();
        assert_eq!(billed.len(), MAX_BILLS as usize);
        println!(
            "{live} live contracts: one block billed {MAX_BILLS} in {took:?}, weight {weight:?}"
        );
        // Only the test's own contract stays for the invariants check.
        for id in 1..live {
            let c = Contracts::<Test>::take(id).unwrap();
            BillingQueue::<Test>::remove(c.next_bill, id);
        }
    });
}

#[test]
fn storage_is_paid_by_a_deposit_held_and_returned_at_the_end() {
    build_and_execute(|| {
        let d = deployment(1, 1, 1);
        let id = create(ALICE);
        let bytes = crate::ContractDeployment::<Test>::get(id).unwrap().len() as u64
            + 2 * WorkloadReport::max_encoded_len() as u64;
        let deposit = DEPOSIT_BASE + DEPOSIT_PER_BYTE * bytes;
        assert_eq!(held(HoldReason::StorageDeposit, ALICE), deposit);
        assert_eq!(Deployments::deposit_for(&d, d.encode().len()), deposit);
        // A larger deployment holds more; a smaller one gives back.
        let mut larger = deployment(2, 1, 1);
        larger.description = vec![b'x'; 200].try_into().unwrap();
        assert_ok!(Deployments::update_contract(signed(ALICE), id, larger));
        assert_eq!(held(HoldReason::StorageDeposit, ALICE), deposit + 200 + 1);
        assert_ok!(Deployments::update_contract(
            signed(ALICE),
            id,
            deployment(3, 1, 1)
        ));
        assert_eq!(held(HoldReason::StorageDeposit, ALICE), deposit);
        assert_ok!(Deployments::cancel_contract(signed(ALICE), id));
        assert_eq!(held(HoldReason::StorageDeposit, ALICE), 0);
    });
}

#[test]
fn a_group_owner_holds_its_deposit_the_same_way() {
    build_and_execute(|| {
        use polkadot_sdk::pallet_multisig;
        let group = pallet_multisig::Pallet::<Test>::multi_account_id(&[ALICE, BOB], 2);
        assert_ok!(Balances::transfer_allow_death(
            signed(ALICE),
            group,
            10 * HOURLY + 10_000
        ));
        let call: RuntimeCall = crate::Call::<Test>::create_contract {
            node: NODE,
            deployment: deployment(1, 1, 1),
        }
        .into();
        let max_weight = polkadot_sdk::frame_support::weights::Weight::from_parts(1 << 40, 1 << 30);
        assert_ok!(Multisig::as_multi(
            signed(ALICE),
            2,
            vec![BOB],
            None,
            Box::new(call.clone()),
            max_weight
        ));
        let timepoint = Multisig::timepoint();
        assert_ok!(Multisig::as_multi(
            signed(BOB),
            2,
            vec![ALICE],
            Some(timepoint),
            Box::new(call),
            max_weight
        ));
        let c = Contracts::<Test>::get(0).unwrap();
        assert_eq!(c.owner, group);
        assert_eq!(held(HoldReason::StorageDeposit, group), c.deposit);
        assert_eq!(held(HoldReason::BillingReserve, group), HOURLY);
        assert_eq!(held(HoldReason::StorageDeposit, ALICE), 0);
    });
}

#[test]
fn owners_and_nodes_have_a_limit_of_live_contracts() {
    build_and_execute(|| {
        for _ in 0..PER_OWNER {
            assert_ok!(Deployments::create_contract(signed(ALICE), NODE, tiny()));
        }
        assert_noop!(
            Deployments::create_contract(signed(ALICE), NODE, tiny()),
            Error::<Test>::TooManyOwnerContracts
        );
        for _ in PER_OWNER..PER_NODE {
            assert_ok!(Deployments::create_contract(signed(BOB), NODE, tiny()));
        }
        assert_noop!(
            Deployments::create_contract(signed(BOB), NODE, tiny()),
            Error::<Test>::TooManyNodeContracts
        );
        // Ending one makes room again.
        assert_ok!(Deployments::cancel_contract(signed(ALICE), 0));
        assert_ok!(Deployments::create_contract(signed(BOB), NODE, tiny()));
    });
}

// ---- No one can drain an owner or squat a node ----

#[test]
fn consumption_beyond_the_reservation_is_refused() {
    build_and_execute(|| {
        // One vCPU and 1 GiB, reported on after 100 seconds: at most 105 s of CPU (with the
        // headroom), 1 GiB of memory and 105 MiB of traffic.
        let id = create(ALICE);
        set_time(GENESIS_TIME + 100);
        let limit = 1000 * (100 + billing::ALLOWANCE_HEADROOM_SECS);
        let report = |c: Consumption| -> BoundedVec<_, _> { vec![(id, c)].try_into().unwrap() };
        let fair = Consumption {
            cpu_ms: limit,
            memory_peak: 1 << 30,
            net_rx: NET_PER_SEC * 50,
            net_tx: NET_PER_SEC * 55,
        };
        assert_noop!(
            Deployments::report_consumption(
                signed(NODE),
                report(Consumption {
                    cpu_ms: limit + 1,
                    ..fair
                })
            ),
            Error::<Test>::CpuOverReservation
        );
        assert_noop!(
            Deployments::report_consumption(
                signed(NODE),
                report(Consumption {
                    memory_peak: (1 << 30) + 1,
                    ..fair
                })
            ),
            Error::<Test>::MemoryOverReservation
        );
        assert_noop!(
            Deployments::report_consumption(
                signed(NODE),
                report(Consumption {
                    net_tx: NET_PER_SEC * 55 + 1,
                    ..fair
                })
            ),
            Error::<Test>::NetworkOverBound
        );
        assert_ok!(Deployments::report_consumption(signed(NODE), report(fair)));
        // All of it was used: a minute later, a minute's worth is all that fits.
        set_time(GENESIS_TIME + 160);
        assert_noop!(
            Deployments::report_consumption(
                signed(NODE),
                report(Consumption {
                    cpu_ms: 60_001,
                    ..Default::default()
                })
            ),
            Error::<Test>::CpuOverReservation
        );
        assert_ok!(Deployments::report_consumption(
            signed(NODE),
            report(Consumption {
                cpu_ms: 60_000,
                ..Default::default()
            })
        ));
    });
}

#[test]
fn creating_holds_the_first_billing_period_so_one_balance_backs_one_contract() {
    build_and_execute(|| {
        let first_period = Deployments::reserve_for(&cap(1, 1));
        assert_eq!(first_period, HOURLY);
        // Enough for one contract's deposit and first period, not for two.
        let d = deployment(1, 1, 1);
        let deposit = Deployments::deposit_for(&d, d.encode().len());
        assert_ok!(Balances::transfer_allow_death(
            signed(ALICE),
            POOR,
            deposit + HOURLY + HOURLY / 2
        ));
        assert_ok!(Deployments::create_contract(signed(POOR), NODE, d.clone()));
        assert_eq!(held(HoldReason::BillingReserve, POOR), HOURLY);
        assert_noop!(
            Deployments::create_contract(signed(POOR), NODE, d),
            Error::<Test>::InsufficientBalance
        );
    });
}

#[test]
fn debt_at_cancel_is_settled_from_what_is_held_before_anything_is_forgiven() {
    build_and_execute(|| {
        let id = create(BOB);
        // BOB empties his free balance; half an hour later he cancels.
        assert_ok!(Balances::transfer_allow_death(
            signed(BOB),
            ALICE,
            Balances::balance(&BOB) - 1
        ));
        set_time(GENESIS_TIME + HOUR / 2);
        let farmer = Balances::balance(&FARMER);
        assert_ok!(Deployments::cancel_contract(signed(BOB), id));
        // The deposit came back and paid; nothing was forgiven; the rest of the reserve came back.
        assert_eq!(Balances::balance(&FARMER) - farmer, HOURLY / 2);
        assert!(!events()
            .iter()
            .any(|e| matches!(e, Event::DebtForgiven { .. })));
        assert_eq!(total(BOB), 1 + deposit_of_default() + HOURLY - HOURLY / 2);
    });
}

fn deposit_of_default() -> u64 {
    let d = deployment(1, 1, 1);
    Deployments::deposit_for(&d, d.encode().len())
}

#[test]
fn time_a_node_is_down_is_not_billed() {
    build_and_execute(|| {
        let id = create(ALICE);
        // Up 20 minutes, said down for 30, up again for the last 10 of the hour.
        set_time(GENESIS_TIME + 20 * 60);
        assert_ok!(Grid::report_down(signed(NODE)));
        set_time(GENESIS_TIME + 50 * 60);
        assert_ok!(Grid::report_uptime(signed(NODE), 1, now()));
        set_time(GENESIS_TIME + HOUR);
        bill_now();
        assert_eq!(billed_to(id), HOURLY / 2);

        // Silent past OFFLINE_AFTER: billed up to OFFLINE_AFTER after its last report.
        set_time(GENESIS_TIME + 50 * 60 + OFFLINE_AFTER + HOUR);
        bill_now();
        let hours_up = (OFFLINE_AFTER - 10 * 60) / HOUR; // 10 minutes already billed
        assert_eq!(
            billed_to(id),
            HOURLY / 2 + HOURLY * (OFFLINE_AFTER - 10 * 60) / HOUR
        );
        assert!(hours_up > 0);
    });
}

#[test]
fn workloads_the_node_cannot_run_are_not_billed() {
    build_and_execute(|| {
        let id = create(ALICE);
        // After half an hour the node says it cannot run the container: only the 10 GiB
        // volume is billed from then on.
        set_time(GENESIS_TIME + HOUR / 2);
        assert_ok!(Deployments::report_workloads(
            signed(NODE),
            id,
            1,
            workloads(&[
                ("data", WorkloadStatus::Ok),
                ("web", WorkloadStatus::Unsupported)
            ])
        ));
        assert_eq!(
            Contracts::<Test>::get(id).unwrap().unsupported,
            Capacity {
                sru: 1 << 30,
                ..cap(1, 1)
            }
        );
        set_time(GENESIS_TIME + HOUR);
        bill_now();
        let volume_hourly = 10 * 10;
        assert_eq!(billed_to(id), HOURLY / 2 + volume_hourly / 2);
    });
}

// ---- Capacity in the units users ask for ----

#[test]
fn cpu_is_reserved_in_the_thousandths_a_deployment_asks_for() {
    build_and_execute(|| {
        let small = |cpu: &str| {
            DeploymentFile::from_yaml(&format!(
                "workloads: [{{ name: c, container: {{ image: {IMAGE}, cpu: {cpu}, memory: 16MiB }} }}]"
            ))
            .unwrap()
            .into_deployment(None)
            .unwrap()
        };
        // A 4-vCPU node: a 0.5 and then 35 containers of 0.1 fit; a 36th does not.
        assert_ok!(Deployments::create_contract(
            signed(ALICE),
            NODE,
            small("0.5")
        ));
        for i in 0..29u32 {
            let owner = if i < 19 { ALICE } else { BOB };
            assert_ok!(Deployments::create_contract(
                signed(owner),
                NODE,
                small("0.1")
            ));
        }
        assert_eq!(Reserved::<Test>::get(NODE).cpu_millis, 500 + 29 * 100);
        assert_noop!(
            Deployments::create_contract(signed(BOB), NODE, small("0.7")),
            Error::<Test>::InsufficientCapacity
        );
        // A tenth of a vCPU pays a tenth of the vCPU price.
        assert_eq!(
            Deployments::reserve_for(&Capacity {
                cpu_millis: 100,
                ..Default::default()
            }),
            100
        );
    });
}

// ---- Updates that the node would not apply are refused ----

#[test]
fn an_update_that_changes_a_workload_without_raising_its_version_is_refused() {
    build_and_execute(|| {
        let id = create(ALICE);
        // Version 2 of the deployment with the container changed, its own version still 1.
        let mut d = deployment(2, 2, 1);
        d.workloads[1].version = 1;
        assert_noop!(
            Deployments::update_contract(signed(ALICE), id, d),
            Error::<Test>::UpdateRefused(UpdateRefusal {
                rule: UpdateRule::SpecChangedWithoutVersion,
                workload: 1,
            })
        );
    });
}

#[test]
fn an_update_that_shrinks_a_volume_is_refused() {
    build_and_execute(|| {
        let id = create(ALICE);
        let mut d = deployment(2, 1, 1);
        let zos_contracts::WorkloadSpec::Volume(v) = &mut d.workloads[0].spec else {
            panic!("the first workload is the volume")
        };
        v.size = 1 << 30;
        assert_noop!(
            Deployments::update_contract(signed(ALICE), id, d),
            Error::<Test>::UpdateRefused(UpdateRefusal {
                rule: UpdateRule::Shrink,
                workload: 0,
            })
        );
    });
}

/// A deployment with one network workload of each `(name, range, subnet)`, at `version`.
fn networks(version: u32, nets: &[(&str, &str, &str)]) -> Deployment {
    let mut yaml = format!("version: {version}\nworkloads:\n");
    for (name, range, subnet) in nets {
        yaml.push_str(&format!(
            "  - name: {name}\n    version: {version}\n    network: {{ range: {range}, subnet: {subnet} }}\n"
        ));
    }
    DeploymentFile::from_yaml(&yaml)
        .unwrap()
        .into_deployment(None)
        .unwrap()
}

fn net_name(name: &str) -> zos_contracts::Name {
    name.as_bytes().to_vec().try_into().unwrap()
}

/// `(node, contract, subnet, port offset)` of each member of `owner`'s network `name`.
fn members(owner: u64, name: &str) -> Vec<(u64, u64, String, u16)> {
    crate::Networks::<Test>::get(owner, net_name(name))
        .map(|r| {
            r.members
                .iter()
                .map(|m| (m.node, m.contract_id, m.subnet.to_string(), m.port_offset))
                .collect()
        })
        .unwrap_or_default()
}

const NODE2: u64 = 11;
const NODE3: u64 = 12;

#[test]
fn a_network_is_one_owners_contracts_of_one_name_and_refuses_members_that_would_clash() {
    build_and_execute(|| {
        register(NODE2, FARMER, node_capacity());
        register(NODE3, FARMER, node_capacity());
        let net = |range, subnet| networks(1, &[("net", range, subnet)]);
        let a = crate::NextContractId::<Test>::get();
        assert_ok!(Deployments::create_contract(
            signed(ALICE),
            NODE,
            net("10.20.0.0/16", "10.20.1.0/24")
        ));
        assert_ok!(Deployments::create_contract(
            signed(ALICE),
            NODE2,
            net("10.20.0.0/16", "10.20.2.0/24")
        ));
        assert_eq!(
            members(ALICE, "net"),
            vec![
                (NODE, a, "10.20.1.0/24".into(), 0),
                (NODE2, a + 1, "10.20.2.0/24".into(), 0)
            ]
        );
        assert!(events().contains(&Event::NetworkMemberJoined {
            owner: ALICE,
            network: net_name("net"),
            node: NODE2,
            contract_id: a + 1,
            subnet: zos_contracts::Ipv4Cidr {
                addr: [10, 20, 2, 0],
                prefix: 24
            },
            port_offset: 0,
        }));

        // Each of these would break the network for the members already in it.
        for (node, range, subnet, error) in [
            (
                NODE3,
                "10.30.0.0/16",
                "10.30.3.0/24",
                Error::<Test>::NetworkRangeMismatch,
            ),
            (
                NODE3,
                "10.20.0.0/16",
                "10.20.1.128/25",
                Error::<Test>::NetworkSubnetOverlap,
            ),
            (
                NODE3,
                "10.20.0.0/16",
                "10.20.0.0/20",
                Error::<Test>::NetworkSubnetOverlap,
            ),
            (
                NODE2,
                "10.20.0.0/16",
                "10.20.3.0/24",
                Error::<Test>::NetworkAlreadyOnNode,
            ),
        ] {
            assert_noop!(
                Deployments::create_contract(signed(ALICE), node, net(range, subnet)),
                error
            );
        }

        // Another owner's network of the same name and range is another network; on a node
        // already in Alice's, it takes the next WireGuard port slot.
        let b = crate::NextContractId::<Test>::get();
        assert_ok!(Deployments::create_contract(
            signed(BOB),
            NODE,
            net("10.20.0.0/16", "10.20.1.0/24")
        ));
        assert_eq!(
            members(BOB, "net"),
            vec![(NODE, b, "10.20.1.0/24".into(), 1)]
        );
        assert_eq!(members(ALICE, "net").len(), 2);
    });
}

#[test]
fn members_follow_their_contracts_updates_and_ends_and_free_their_port_slots() {
    build_and_execute(|| {
        register(NODE2, FARMER, node_capacity());
        let a = crate::NextContractId::<Test>::get();
        assert_ok!(Deployments::create_contract(
            signed(ALICE),
            NODE,
            networks(
                1,
                &[
                    ("net", "10.20.0.0/16", "10.20.1.0/24"),
                    ("db", "192.168.0.0/16", "192.168.1.0/24")
                ]
            )
        ));
        let b = crate::NextContractId::<Test>::get();
        assert_ok!(Deployments::create_contract(
            signed(ALICE),
            NODE2,
            networks(1, &[("net", "10.20.0.0/16", "10.20.2.0/24")])
        ));
        assert_eq!(
            members(ALICE, "db"),
            vec![(NODE, a, "192.168.1.0/24".into(), 1)]
        );

        // An update may move a member to a free subnet, not onto another member's.
        System::reset_events();
        assert_noop!(
            Deployments::update_contract(
                signed(ALICE),
                a,
                networks(
                    2,
                    &[
                        ("net", "10.20.0.0/16", "10.20.2.0/25"),
                        ("db", "192.168.0.0/16", "192.168.1.0/24")
                    ]
                )
            ),
            Error::<Test>::NetworkSubnetOverlap
        );
        assert_ok!(Deployments::update_contract(
            signed(ALICE),
            a,
            networks(2, &[("net", "10.20.0.0/16", "10.20.9.0/24")])
        ));
        assert_eq!(
            members(ALICE, "net"),
            vec![
                (NODE, a, "10.20.9.0/24".into(), 0),
                (NODE2, b, "10.20.2.0/24".into(), 0)
            ]
        );
        // Dropping the db network took its member and the network with it.
        assert_eq!(members(ALICE, "db"), vec![]);
        let evs = events();
        assert!(evs.contains(&Event::NetworkMemberChanged {
            owner: ALICE,
            network: net_name("net"),
            node: NODE,
            contract_id: a,
            subnet: zos_contracts::Ipv4Cidr {
                addr: [10, 20, 9, 0],
                prefix: 24
            },
        }));
        assert!(evs.contains(&Event::NetworkMemberLeft {
            owner: ALICE,
            network: net_name("db"),
            node: NODE,
            contract_id: a,
        }));

        // A sole member may change the range; one with peers may not.
        assert_noop!(
            Deployments::update_contract(
                signed(ALICE),
                b,
                networks(2, &[("net", "10.30.0.0/16", "10.30.2.0/24")])
            ),
            Error::<Test>::NetworkRangeMismatch
        );
        assert_ok!(Deployments::cancel_contract(signed(ALICE), a));
        assert!(events().contains(&Event::NetworkMemberLeft {
            owner: ALICE,
            network: net_name("net"),
            node: NODE,
            contract_id: a,
        }));
        assert_ok!(Deployments::update_contract(
            signed(ALICE),
            b,
            networks(2, &[("net", "10.30.0.0/16", "10.30.2.0/24")])
        ));
        assert_eq!(
            members(ALICE, "net"),
            vec![(NODE2, b, "10.30.2.0/24".into(), 0)]
        );

        // NODE's slots are free again: its next network listens on the endpoint's own port.
        assert!(crate::NodeNetworkSlots::<Test>::get(NODE).is_none());
        let c = crate::NextContractId::<Test>::get();
        assert_ok!(Deployments::create_contract(
            signed(BOB),
            NODE,
            networks(1, &[("x", "10.0.0.0/8", "10.1.0.0/16")])
        ));
        assert_eq!(members(BOB, "x"), vec![(NODE, c, "10.1.0.0/16".into(), 0)]);
    });
}

#[test]
fn a_contract_deleted_for_want_of_funds_leaves_its_networks() {
    build_and_execute(|| {
        let id = crate::NextContractId::<Test>::get();
        let yaml = "version: 1
workloads:
  - name: data
    version: 1
    volume: { size: 10GiB }
  - name: net
    version: 1
    network: { range: 10.20.0.0/16, subnet: 10.20.1.0/24 }";
        let d = DeploymentFile::from_yaml(yaml)
            .unwrap()
            .into_deployment(None)
            .unwrap();
        assert_ok!(Deployments::create_contract(signed(BOB), NODE, d));
        assert_ok!(Balances::transfer_allow_death(
            signed(BOB),
            ALICE,
            Balances::balance(&BOB) - 1
        ));
        set_time(GENESIS_TIME + 2 * HOUR);
        bill_now();
        set_time(GENESIS_TIME + 2 * HOUR + GRACE);
        bill_now();
        assert!(Contracts::<Test>::get(id).is_none());
        assert_eq!(members(BOB, "net"), vec![]);
        assert!(crate::NodeNetworkSlots::<Test>::get(NODE).is_none());
        assert!(events().contains(&Event::NetworkMemberLeft {
            owner: BOB,
            network: net_name("net"),
            node: NODE,
            contract_id: id,
        }));
    });
}

#[test]
fn a_node_takes_part_in_a_bounded_number_of_networks() {
    build_and_execute(|| {
        for i in 0..crate::MAX_NODE_NETWORKS as u16 {
            assert!(matches!(crate::Pallet::<Test>::take_slot(&NODE), Ok(s) if s == i));
        }
        assert!(matches!(
            crate::Pallet::<Test>::take_slot(&NODE),
            Err(Error::<Test>::NodeNetworksFull)
        ));
        crate::NodeNetworkSlots::<Test>::remove(NODE);
    });
}
