#!/usr/bin/env bash
# Measures the weights of the project's pallets on this machine and writes them to
# runtime-pallets/runtime/src/weights/. Run after a build (./scripts/test.sh or cargo build).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

bin="$target_dir/debug/zos-chain"
wasm=""
for name in zos_runtime.compact.compressed.wasm zos_runtime.compact.wasm zos_runtime.wasm; do
  f="$target_dir/debug/wbuild/zos-runtime/$name"
  if [ -f "$f" ]; then wasm="$f"; break; fi
done
for f in "$bin" "$wasm"; do
  [ -n "$f" ] && [ -f "$f" ] || { echo "missing the node or the runtime's wasm: run cargo build --workspace first" >&2; exit 1; }
done

for pallet in pallet_grid pallet_deployments; do
  "$bin" benchmark pallet \
    --runtime "$wasm" \
    --genesis-builder runtime \
    --pallet "$pallet" \
    --extrinsic '*' \
    --steps "${STEPS:-20}" \
    --repeat "${REPEAT:-10}" \
    --header scripts/weights-header.txt \
    --output "runtime-pallets/runtime/src/weights/$pallet.rs"
done
