use crate::{mock::*, Error, Event, FarmIdByName, Farms, NodeRegistry, NodeStatus, Nodes};
use polkadot_sdk::{
    frame_support::{assert_noop, assert_ok, dispatch::Pays},
    sp_runtime::DispatchError,
};
use zos_contracts::Capacity;

const FARMER: u64 = 1;
const NODE: u64 = 10;
const OTHER: u64 = 99;

fn cap() -> Capacity {
    Capacity {
        cpu_millis: 4000,
        mru: 8 << 30,
        sru: 100 << 30,
        hru: 0,
    }
}

fn origin(who: u64) -> RuntimeOrigin {
    RuntimeOrigin::signed(who)
}

fn farm_and_node() {
    assert_ok!(Grid::create_farm(origin(FARMER), b"farm-1".to_vec()));
    assert_ok!(Grid::approve_node(origin(FARMER), 0, NODE));
    assert_ok!(Grid::register_node(
        origin(NODE),
        0,
        cap(),
        [7; 32],
        Some(b"10.0.0.1:51820".to_vec())
    ));
}

#[test]
fn farms_are_created_with_unique_valid_names() {
    new_test_ext().execute_with(|| {
        assert_ok!(Grid::create_farm(origin(FARMER), b"farm-1".to_vec()));
        System::assert_last_event(
            Event::FarmCreated {
                farm: 0,
                owner: FARMER,
                name: b"farm-1".to_vec().try_into().unwrap(),
            }
            .into(),
        );
        assert_eq!(Farms::<Test>::get(0).unwrap().owner, FARMER);
        let name: crate::FarmName = b"farm-1".to_vec().try_into().unwrap();
        assert_eq!(FarmIdByName::<Test>::get(name), Some(0));
        assert_noop!(
            Grid::create_farm(origin(OTHER), b"farm-1".to_vec()),
            Error::<Test>::FarmNameTaken
        );
        assert_noop!(
            Grid::create_farm(origin(OTHER), b"".to_vec()),
            Error::<Test>::InvalidFarmName
        );
        assert_noop!(
            Grid::create_farm(origin(OTHER), b"my farm".to_vec()),
            Error::<Test>::InvalidFarmName
        );
        assert_noop!(
            Grid::create_farm(origin(OTHER), vec![b'a'; 65]),
            Error::<Test>::InvalidFarmName
        );
        assert_ok!(Grid::create_farm(origin(OTHER), b"farm_2".to_vec()));
        assert_eq!(Farms::<Test>::get(1).unwrap().owner, OTHER);
    });
}

#[test]
fn nodes_register_themselves_under_a_farm() {
    new_test_ext().execute_with(|| {
        assert_noop!(
            Grid::register_node(
                origin(NODE),
                0,
                cap(),
                [7; 32],
                Some(b"10.0.0.1:51820".to_vec())
            ),
            Error::<Test>::UnknownFarm
        );
        farm_and_node();
        System::assert_last_event(
            Event::NodeRegistered {
                node: NODE,
                farm: 0,
                capacity: cap(),
            }
            .into(),
        );
        let n = Nodes::<Test>::get(NODE).unwrap();
        assert_eq!((n.farm, n.capacity, n.wg_public_key), (0, cap(), [7; 32]));
        assert_eq!(n.last_seen, GENESIS_TIME);
        assert_noop!(
            Grid::register_node(
                origin(NODE),
                0,
                cap(),
                [7; 32],
                Some(b"10.0.0.1:51820".to_vec())
            ),
            Error::<Test>::NodeExists
        );
        assert_ok!(Grid::approve_node(origin(FARMER), 0, 11));
        assert_noop!(
            Grid::register_node(
                origin(11),
                0,
                Capacity::default(),
                [7; 32],
                Some(b"h:1".to_vec())
            ),
            Error::<Test>::NoCapacity
        );
        for bad in [&b"no-port"[..], b"host:0", b"host:99999", b":80", b"h o:80"] {
            assert_noop!(
                Grid::register_node(origin(11), 0, cap(), [7; 32], Some(bad.to_vec())),
                Error::<Test>::InvalidEndpoint
            );
        }
        // A node behind NAT registers without an endpoint.
        assert_ok!(Grid::register_node(origin(11), 0, cap(), [8; 32], None));
        assert_eq!(Nodes::<Test>::get(11).unwrap().endpoint, None);
        let info = <Grid as NodeRegistry<u64>>::node(&NODE).unwrap();
        assert_eq!(
            (info.farmer, info.capacity, info.status),
            (FARMER, cap(), NodeStatus::Up)
        );
        assert!(<Grid as NodeRegistry<u64>>::node(&OTHER).is_none());
    });
}

#[test]
fn nodes_update_their_own_record() {
    new_test_ext().execute_with(|| {
        assert_noop!(
            Grid::update_node(origin(NODE), cap(), [1; 32], Some(b"[::1]:51820".to_vec())),
            Error::<Test>::UnknownNode
        );
        farm_and_node();
        let bigger = Capacity {
            cpu_millis: 8000,
            ..cap()
        };
        assert_ok!(Grid::update_node(
            origin(NODE),
            bigger,
            [1; 32],
            Some(b"[::1]:51820".to_vec())
        ));
        System::assert_last_event(
            Event::NodeUpdated {
                node: NODE,
                capacity: bigger,
            }
            .into(),
        );
        let n = Nodes::<Test>::get(NODE).unwrap();
        assert_eq!(
            (
                n.capacity,
                n.wg_public_key,
                n.endpoint.as_ref().map(|e| &e[..])
            ),
            (bigger, [1; 32], Some(&b"[::1]:51820"[..]))
        );
        // Moved behind NAT: no endpoint at all, not an empty one.
        assert_ok!(Grid::update_node(origin(NODE), bigger, [1; 32], None));
        assert_eq!(Nodes::<Test>::get(NODE).unwrap().endpoint, None);
        assert_noop!(
            Grid::update_node(origin(NODE), bigger, [1; 32], Some(Vec::new())),
            Error::<Test>::InvalidEndpoint
        );
    });
}

#[test]
fn uptime_reports_are_checked_against_chain_time_and_rate_limited() {
    new_test_ext().execute_with(|| {
        farm_and_node();
        assert_noop!(
            Grid::report_uptime(origin(OTHER), 5, GENESIS_TIME),
            Error::<Test>::UnknownNode
        );
        assert_noop!(
            Grid::report_uptime(origin(NODE), 5, GENESIS_TIME + TOLERANCE + 1),
            Error::<Test>::TimestampOutOfRange
        );
        assert_noop!(
            Grid::report_uptime(origin(NODE), 5, GENESIS_TIME - TOLERANCE - 1),
            Error::<Test>::TimestampOutOfRange
        );
        let post = Grid::report_uptime(origin(NODE), 5, GENESIS_TIME + 10).unwrap();
        assert_eq!(post.pays_fee, Pays::No);
        System::assert_last_event(
            Event::UptimeReported {
                node: NODE,
                uptime: 5,
                timestamp: GENESIS_TIME + 10,
            }
            .into(),
        );

        set_time(GENESIS_TIME + MIN_INTERVAL - 1);
        assert_noop!(
            Grid::report_uptime(origin(NODE), 64, GENESIS_TIME + MIN_INTERVAL),
            Error::<Test>::ReportTooEarly
        );
        set_time(GENESIS_TIME + MIN_INTERVAL);
        assert_ok!(Grid::report_uptime(
            origin(NODE),
            65,
            GENESIS_TIME + MIN_INTERVAL
        ));
        assert_eq!(Nodes::<Test>::get(NODE).unwrap().uptime, 65);
    });
}

#[test]
fn a_silent_node_is_down_until_it_reports() {
    new_test_ext().execute_with(|| {
        farm_and_node();
        let status = || <Grid as NodeRegistry<u64>>::node(&NODE).unwrap().status;
        set_time(GENESIS_TIME + OFFLINE_AFTER);
        assert_eq!(status(), NodeStatus::Up);
        set_time(GENESIS_TIME + OFFLINE_AFTER + 1);
        assert_eq!(status(), NodeStatus::Down);
        assert_ok!(Grid::report_uptime(
            origin(NODE),
            700,
            GENESIS_TIME + OFFLINE_AFTER + 1
        ));
        assert_eq!(status(), NodeStatus::Up);
    });
}

#[test]
fn nodes_are_removed_by_themselves_or_their_farmer_when_free() {
    new_test_ext().execute_with(|| {
        farm_and_node();
        assert_noop!(
            Grid::remove_node(origin(OTHER), NODE),
            Error::<Test>::NotNodeOrFarmer
        );
        assert_noop!(
            Grid::remove_node(origin(FARMER), OTHER),
            Error::<Test>::UnknownNode
        );
        MockUsage::set_busy(NODE, true);
        assert_noop!(
            Grid::remove_node(origin(NODE), NODE),
            Error::<Test>::NodeHasContracts
        );
        MockUsage::set_busy(NODE, false);
        assert_ok!(Grid::remove_node(origin(FARMER), NODE));
        System::assert_last_event(
            Event::NodeRemoved {
                node: NODE,
                farm: 0,
            }
            .into(),
        );
        assert!(Nodes::<Test>::get(NODE).is_none());

        // The approval was used up by the first registration.
        assert_noop!(
            Grid::register_node(origin(NODE), 0, cap(), [7; 32], Some(b"h:1".to_vec())),
            Error::<Test>::NodeNotApproved
        );
        assert_ok!(Grid::approve_node(origin(FARMER), 0, NODE));
        assert_ok!(Grid::register_node(
            origin(NODE),
            0,
            cap(),
            [7; 32],
            Some(b"h:1".to_vec())
        ));
        assert_ok!(Grid::remove_node(origin(NODE), NODE));
    });
}

#[test]
fn farms_are_removed_by_their_owner_when_empty() {
    new_test_ext().execute_with(|| {
        farm_and_node();
        assert_noop!(
            Grid::remove_farm(origin(FARMER), 5),
            Error::<Test>::UnknownFarm
        );
        assert_noop!(
            Grid::remove_farm(origin(OTHER), 0),
            Error::<Test>::NotFarmOwner
        );
        assert_noop!(
            Grid::remove_farm(origin(FARMER), 0),
            Error::<Test>::FarmHasNodes
        );
        assert_ok!(Grid::remove_node(origin(NODE), NODE));
        assert_ok!(Grid::remove_farm(origin(FARMER), 0));
        System::assert_last_event(Event::FarmRemoved { farm: 0 }.into());
        // The name is free again.
        assert_ok!(Grid::create_farm(origin(OTHER), b"farm-1".to_vec()));
    });
}

#[test]
fn the_admin_removes_any_free_node_or_empty_farm() {
    new_test_ext().execute_with(|| {
        farm_and_node();
        assert_noop!(
            Grid::force_remove_node(origin(FARMER), NODE),
            DispatchError::BadOrigin
        );
        assert_noop!(
            Grid::force_remove_farm(RuntimeOrigin::root(), 0),
            Error::<Test>::FarmHasNodes
        );
        MockUsage::set_busy(NODE, true);
        assert_noop!(
            Grid::force_remove_node(RuntimeOrigin::root(), NODE),
            Error::<Test>::NodeHasContracts
        );
        MockUsage::set_busy(NODE, false);
        assert_ok!(Grid::force_remove_node(RuntimeOrigin::root(), NODE));
        assert_noop!(
            Grid::force_remove_farm(origin(FARMER), 0),
            DispatchError::BadOrigin
        );
        assert_ok!(Grid::force_remove_farm(RuntimeOrigin::root(), 0));
        assert!(Farms::<Test>::get(0).is_none());
    });
}

#[test]
fn farm_ids_do_not_wrap() {
    new_test_ext().execute_with(|| {
        crate::NextFarmId::<Test>::put(u32::MAX);
        assert_noop!(
            Grid::create_farm(origin(FARMER), b"last".to_vec()),
            Error::<Test>::FarmIdOverflow
        );
    });
}

#[test]
fn a_node_joins_a_farm_only_with_its_farmers_approval() {
    new_test_ext().execute_with(|| {
        assert_ok!(Grid::create_farm(origin(FARMER), b"farm-1".to_vec()));
        // A stranger's node cannot attach itself to the farm.
        assert_noop!(
            Grid::register_node(origin(NODE), 0, cap(), [7; 32], Some(b"h:1".to_vec())),
            Error::<Test>::NodeNotApproved
        );
        // Only the farm's owner approves.
        assert_noop!(
            Grid::approve_node(origin(OTHER), 0, NODE),
            Error::<Test>::NotFarmOwner
        );
        assert_noop!(
            Grid::approve_node(origin(FARMER), 7, NODE),
            Error::<Test>::UnknownFarm
        );
        assert_ok!(Grid::approve_node(origin(FARMER), 0, NODE));
        System::assert_last_event(
            Event::NodeApproved {
                farm: 0,
                node: NODE,
            }
            .into(),
        );
        // An approval for one farm does not open another.
        assert_ok!(Grid::create_farm(origin(OTHER), b"farm-2".to_vec()));
        assert_noop!(
            Grid::register_node(origin(NODE), 1, cap(), [7; 32], Some(b"h:1".to_vec())),
            Error::<Test>::NodeNotApproved
        );
        assert_ok!(Grid::register_node(
            origin(NODE),
            0,
            cap(),
            [7; 32],
            Some(b"h:1".to_vec())
        ));
        assert!(!crate::NodeApprovals::<Test>::contains_key(0, NODE));
        assert_noop!(
            Grid::approve_node(origin(FARMER), 0, NODE),
            Error::<Test>::NodeExists
        );
    });
}

#[test]
fn downtime_counts_what_a_node_said_and_what_it_was_silent() {
    new_test_ext().execute_with(|| {
        farm_and_node();
        let info = || <Grid as NodeRegistry<u64>>::node(&NODE).unwrap();
        assert_eq!(info().downtime, 0);

        // Said down at +100: down from then until its next report.
        set_time(GENESIS_TIME + 100);
        assert_ok!(Grid::report_down(origin(NODE)));
        System::assert_last_event(
            Event::NodeWentDown {
                node: NODE,
                at: GENESIS_TIME + 100,
            }
            .into(),
        );
        assert_noop!(Grid::report_down(origin(NODE)), Error::<Test>::AlreadyDown);
        set_time(GENESIS_TIME + 400);
        assert_eq!((info().status, info().downtime), (NodeStatus::Down, 300));
        assert_ok!(Grid::report_uptime(origin(NODE), 5, GENESIS_TIME + 400));
        assert_eq!((info().status, info().downtime), (NodeStatus::Up, 300));

        // Silent: up for OFFLINE_AFTER after its report, then down until it reports again.
        let back = GENESIS_TIME + 400 + OFFLINE_AFTER + 500;
        set_time(back);
        assert_eq!((info().status, info().downtime), (NodeStatus::Down, 800));
        assert_ok!(Grid::report_uptime(origin(NODE), 5, back));
        set_time(back + 60);
        assert_eq!((info().status, info().downtime), (NodeStatus::Up, 800));
        assert_noop!(Grid::report_down(origin(OTHER)), Error::<Test>::UnknownNode);
    });
}

#[test]
fn only_a_registered_node_says_how_it_runs_vms_and_it_goes_with_the_node() {
    use crate::{Hypervisor, NodeHypervisors};
    new_test_ext().execute_with(|| {
        // A stranger's account is no node.
        assert_noop!(
            Grid::set_hypervisor(origin(OTHER), Some(Hypervisor::Kvm)),
            Error::<Test>::UnknownNode
        );
        farm_and_node();
        assert_ok!(Grid::set_hypervisor(origin(NODE), Some(Hypervisor::Tcg)));
        System::assert_last_event(
            Event::NodeHypervisorSet {
                node: NODE,
                hypervisor: Some(Hypervisor::Tcg),
            }
            .into(),
        );
        assert_eq!(NodeHypervisors::<Test>::get(NODE), Some(Hypervisor::Tcg));
        // Saying the same again is refused (and pays its fee).
        assert_noop!(
            Grid::set_hypervisor(origin(NODE), Some(Hypervisor::Tcg)),
            Error::<Test>::HypervisorUnchanged
        );
        assert_ok!(Grid::set_hypervisor(origin(NODE), None));
        assert_eq!(NodeHypervisors::<Test>::get(NODE), None);
        assert_ok!(Grid::set_hypervisor(origin(NODE), Some(Hypervisor::Kvm)));
        assert_ok!(Grid::remove_node(origin(FARMER), NODE));
        assert_eq!(
            NodeHypervisors::<Test>::get(NODE),
            None,
            "gone with the node"
        );
    });
}
