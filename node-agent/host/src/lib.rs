//! The node's host drivers: containers run by youki's libcontainer and volumes as loop-mounted
//! ext4 files.
//!
//! Every host resource is named after its workload ([`WorkloadId`]): a container's id, its cgroup
//! (`/zos/<container id>` in every hierarchy), its state directories, a volume's image file and
//! mount point. Nothing is remembered in memory, so an agent that restarts finds everything again
//! by listing ([`container::Containers::list`], [`volume::Volumes::list`]).
//!
//! All calls block; call them from `spawn_blocking`. Creating a container forks, which must never
//! happen in a multi-threaded process: [`container::Containers::start`] runs a single-threaded
//! helper process (the shim, [`container::shim_main`]) that builds the container and then stays
//! as its monitor.

mod id;
mod sys;

pub mod container;
pub mod volume;

pub use id::{InvalidWorkloadId, WorkloadId};

#[cfg(test)]
mod tests {
    fn send_sync<T: Send + Sync>() {}

    #[test]
    fn drivers_are_send_and_sync() {
        send_sync::<crate::container::Containers>();
        send_sync::<crate::volume::Volumes>();
        send_sync::<crate::container::ContainerError>();
        send_sync::<crate::volume::VolumeError>();
    }
}
