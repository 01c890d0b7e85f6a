//! The image store against a real registry (Debian's `docker-registry`, started per test on a
//! free loopback port) and real overlayfs mounts. Needs root.

mod slow;
mod support;

mod dedup;
mod gc;
mod integrity;
mod limits;
mod overlay;
mod pull;
mod verify;
mod whiteout;
