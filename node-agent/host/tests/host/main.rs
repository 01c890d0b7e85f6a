//! The host drivers on this host, for real: containers through libcontainer and the shim
//! (`zos-host-shim`), volumes on loop devices, VMs on QEMU with virtiofsd. Needs root, cgroups, loop devices and
//! `/bin/busybox` (static); a test that cannot run fails with the reason.

mod support;

mod containers;
mod networks;
mod private;
mod vms;
mod volumes;
