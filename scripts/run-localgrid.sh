#!/usr/bin/env bash
# Sets up what is missing, builds the chain node, and runs a local grid on the dev chain.
# For now the grid is the dev chain alone (RPC on ws://127.0.0.1:9944); the node agent and the
# registry join it as their issues land.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
source scripts/env.sh

cargo build -p zos-chain --locked
exec "$target_dir/debug/zos-chain" --dev --rpc-port "${ZOS_RPC_PORT:-9944}" "$@"
