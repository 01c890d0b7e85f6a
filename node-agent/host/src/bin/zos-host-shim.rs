//! The shim as a program of its own, for this crate's tests and bench (the agent re-executes its
//! own binary instead): `zos-host-shim --state-root <dir> --id <container id>`.

fn main() {
    zos_host::container::shim_main(std::env::args().skip(1).collect())
}
