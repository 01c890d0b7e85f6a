#!/usr/bin/env bash
# Sets up what is missing, then builds the workspace once and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
  echo "test: the node agent's tests run containers and mount volumes: run as root" >&2
  exit 1
fi
./scripts/setup.sh
source scripts/env.sh

step() { printf '\n== %s\n' "$*"; }
log=$(mktemp)
trap 'rm -f "$log"' EXIT

step "build (one dev profile for the node, the tests and the benches)"
cargo build --workspace --all-targets --locked

step "tests"
cargo test --workspace --locked --no-fail-fast 2>&1 | tee "$log"

step "zos-contracts builds for wasm32-unknown-unknown without std"
cargo build -p zos-contracts --no-default-features --target wasm32-unknown-unknown --locked

step "fuzz: decode + validate, 30 seconds"
(cd contracts/fuzz && cargo fuzz run --sanitizer none decode_validate -- -max_total_time=30 -rss_limit_mb=2048)

# One line for the whole run: the sum of cargo's per-binary results.
awk '/^test result:/ { p += $4; f += $6 } END { printf "\nsummary: %d passed, %d failed\n", p, f }' "$log"
