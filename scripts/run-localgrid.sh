#!/usr/bin/env bash
# Sets up what is missing, builds, and runs a local grid on this machine (as root): a dev chain on
# ws://127.0.0.1:9944, an OCI registry on 127.0.0.1:5000 with a busybox image, the farm
# `localgrid`, and one node agent registered under it, ready for a deployment from examples/.
# Ctrl-C (or SIGTERM, SIGHUP) stops it and removes what it made. Ports and the state folder are
# set by ZOS_RPC_PORT, ZOS_REGISTRY_PORT and ZOS_LOCALGRID_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
# Before the set-up and the build: the launcher takes no arguments.
case "${1:-}" in
  "") ;;
  -h|--help) sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "run-localgrid: unexpected arguments: $* (see --help)" >&2; exit 2 ;;
esac
if [ "$(id -u)" -ne 0 ]; then
  echo "run-localgrid: the node agent runs containers and mounts volumes: run as root" >&2
  exit 1
fi
./scripts/setup.sh
source scripts/env.sh
# The very build test.sh makes (the whole workspace, every target): features unify alike, so the
# two commands compile polkadot-sdk once between them, in either order.
cargo build --workspace --all-targets --locked
exec "$target_dir/debug/zos-localgrid"
