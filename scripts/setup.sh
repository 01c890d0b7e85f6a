#!/usr/bin/env bash
# Installs what a fresh machine lacks to build and test the project: system packages, rustup
# targets and components, and cargo-fuzz. Safe to run again: it only installs what is missing.
set -euo pipefail

need_apt=()
# docker-registry, busybox-static, runc and e2fsprogs: the real registry, image, container runtime
# (for the bench's baseline) and volume filesystem the agent's tests use.
for pkg in clang libclang-dev protobuf-compiler pkg-config libssl-dev make docker-registry busybox-static runc e2fsprogs; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]}"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

installed_targets=$(rustup target list --installed)
for target in wasm32v1-none wasm32-unknown-unknown; do
  grep -qx "$target" <<<"$installed_targets" || rustup target add "$target"
done
rustup component list --installed | grep -q '^rust-src' || rustup component add rust-src

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "setup: installing cargo-fuzz"
  cargo install --locked cargo-fuzz
fi
