//! Benchmarks of the grid pallet's calls, each at its worst case.

use super::*;
use alloc::vec;
use frame_support::traits::UnixTime;
use polkadot_sdk::{frame_benchmarking::v2::*, frame_system::RawOrigin};

fn capacity() -> Capacity {
    Capacity {
        cpu_millis: 64_000,
        mru: 256 << 30,
        sru: 4 << 40,
        hru: 16 << 40,
    }
}

fn endpoint() -> Option<alloc::vec::Vec<u8>> {
    let mut e = vec![b'a'; MAX_ENDPOINT_LEN as usize - 6];
    e.extend_from_slice(b":51820");
    Some(e)
}

fn farm_and_node<T: Config>() -> (T::AccountId, T::AccountId) {
    let farmer: T::AccountId = account("farmer", 0, 0);
    let node: T::AccountId = account("node", 0, 0);
    Pallet::<T>::create_farm(
        RawOrigin::Signed(farmer.clone()).into(),
        b"bench-farm".to_vec(),
    )
    .expect("fresh farm name; qed");
    Pallet::<T>::approve_node(RawOrigin::Signed(farmer.clone()).into(), 0, node.clone())
        .expect("the farm's owner approves; qed");
    Pallet::<T>::register_node(
        RawOrigin::Signed(node.clone()).into(),
        0,
        capacity(),
        [1; 32],
        endpoint(),
    )
    .expect("fresh node; qed");
    (farmer, node)
}

#[benchmarks]
mod benchmarks {
    use super::*;

    #[benchmark]
    fn create_farm() {
        let caller: T::AccountId = whitelisted_caller();
        let name = vec![b'f'; MAX_FARM_NAME_LEN as usize];
        #[extrinsic_call]
        _(RawOrigin::Signed(caller), name);
        assert!(Farms::<T>::contains_key(0));
    }

    #[benchmark]
    fn register_node() {
        let farmer: T::AccountId = account("farmer", 0, 0);
        Pallet::<T>::create_farm(
            RawOrigin::Signed(farmer.clone()).into(),
            b"bench-farm".to_vec(),
        )
        .expect("fresh farm name; qed");
        let node: T::AccountId = whitelisted_caller();
        Pallet::<T>::approve_node(RawOrigin::Signed(farmer).into(), 0, node.clone())
            .expect("the farm's owner approves; qed");
        #[extrinsic_call]
        _(
            RawOrigin::Signed(node.clone()),
            0,
            capacity(),
            [1; 32],
            endpoint(),
        );
        assert!(Nodes::<T>::contains_key(&node));
    }

    #[benchmark]
    fn update_node() {
        let (_, node) = farm_and_node::<T>();
        #[extrinsic_call]
        _(
            RawOrigin::Signed(node.clone()),
            capacity(),
            [2; 32],
            endpoint(),
        );
        assert_eq!(
            Nodes::<T>::get(&node).map(|n| n.wg_public_key),
            Some([2; 32])
        );
    }

    #[benchmark]
    fn report_uptime() {
        let (_, node) = farm_and_node::<T>();
        let now = T::UnixTime::now().as_secs();
        #[extrinsic_call]
        _(RawOrigin::Signed(node.clone()), 3600, now);
        assert_eq!(Nodes::<T>::get(&node).map(|n| n.uptime), Some(3600));
    }

    #[benchmark]
    fn remove_node() {
        let (farmer, node) = farm_and_node::<T>();
        #[extrinsic_call]
        _(RawOrigin::Signed(farmer), node.clone());
        assert!(!Nodes::<T>::contains_key(&node));
    }

    #[benchmark]
    fn remove_farm() {
        let (farmer, node) = farm_and_node::<T>();
        Pallet::<T>::remove_node(RawOrigin::Signed(node.clone()).into(), node)
            .expect("node carries no contract; qed");
        #[extrinsic_call]
        _(RawOrigin::Signed(farmer), 0);
        assert!(!Farms::<T>::contains_key(0));
    }

    #[benchmark]
    fn approve_node() {
        let farmer: T::AccountId = whitelisted_caller();
        Pallet::<T>::create_farm(
            RawOrigin::Signed(farmer.clone()).into(),
            b"bench-farm".to_vec(),
        )
        .expect("fresh farm name; qed");
        let node: T::AccountId = account("node", 0, 0);
        #[extrinsic_call]
        _(RawOrigin::Signed(farmer), 0, node.clone());
        assert!(NodeApprovals::<T>::contains_key(0, &node));
    }

    #[benchmark]
    fn report_down() {
        let (_, node) = farm_and_node::<T>();
        #[extrinsic_call]
        _(RawOrigin::Signed(node.clone()));
        assert!(Nodes::<T>::get(&node).is_some_and(|n| n.down_since.is_some()));
    }

    #[benchmark]
    fn set_hypervisor() {
        let (_, node) = farm_and_node::<T>();
        #[extrinsic_call]
        _(RawOrigin::Signed(node.clone()), Some(Hypervisor::Tcg));
        assert_eq!(NodeHypervisors::<T>::get(&node), Some(Hypervisor::Tcg));
    }

    impl_benchmark_test_suite!(Pallet, crate::mock::new_test_ext(), crate::mock::Test);
}
