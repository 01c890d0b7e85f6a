//! The node's host mechanisms, one module per workload kind: containers run by youki's
//! libcontainer ([`container`]), volumes as loop-mounted ext4 files ([`volume`]), VMs on QEMU's
//! microvm machine with their root shared over virtiofs ([`vm`]), and disks as sparse raw files
//! ([`disk`]).
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

mod cgroup;
mod id;
mod sys;

pub mod container;
pub mod disk;
pub mod network;
pub mod vm;
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
        send_sync::<crate::vm::Vms>();
        send_sync::<crate::vm::VmError>();
        send_sync::<crate::disk::Disks>();
    }
}
