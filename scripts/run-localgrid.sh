#!/usr/bin/env bash
# Sets up what is missing, builds, and runs a local grid on this machine (as root): a dev chain on
# ws://127.0.0.1:9944, an OCI registry on 127.0.0.1:5000 with a busybox image, the farm
# `localgrid`, and one node agent registered under it, ready for a deployment from examples/.
# Ctrl-C stops it and removes what it made.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
source scripts/env.sh

if [ "$(id -u)" -ne 0 ]; then
  echo "run-localgrid: the node agent runs containers and mounts volumes: run as root" >&2
  exit 1
fi
# One package per build: each reuses the artifacts of its own earlier builds (building them
# together would unify features differently and rebuild much of polkadot-sdk).
cargo build -p zos-chain --locked
cargo build -p zos-agent --locked
cargo build -p zosctl --locked
cargo build -p zos-e2e --bin zos-localgrid --locked
exec "$target_dir/debug/zos-localgrid" "$@"
