#!/usr/bin/env bash
# Installs what a fresh machine lacks to build and test the project: system packages, rustup
# targets and components, and cargo-fuzz. Safe to run again: it only installs what is missing.
set -euo pipefail

need_apt=()
# docker-registry, busybox-static, runc and e2fsprogs: the real registry, image, container runtime
# (for the bench's baseline) and volume filesystem the agent's tests use. qemu-system-x86 runs VMs;
# libseccomp-dev and libcap-ng-dev build virtiofsd (below). wireguard-go carries private networks
# (no WireGuard module here); nftables filters a network's internet access (egress); iproute2, tcpdump
# and util-linux (nsenter) make the tests' network lab.
for pkg in clang libclang-dev protobuf-compiler pkg-config libssl-dev make docker-registry busybox-static runc e2fsprogs qemu-system-x86 libseccomp-dev libcap-ng-dev wireguard-go iproute2 tcpdump util-linux nftables; do
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

# VMs: virtiofsd (a Rust crate, not a bookworm package) and the default guest kernel, Debian's
# cloud kernel, unpacked (not installed: this machine's own kernel is not touched) where the agent
# looks by default (`[vms]` in the agent's config).
zos_opt=/opt/zos
sudo_cmd=""
[ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
if [ ! -x "$zos_opt/bin/virtiofsd" ]; then
  echo "setup: installing virtiofsd into $zos_opt/bin"
  $sudo_cmd mkdir -p "$zos_opt"
  $sudo_cmd env "PATH=$PATH" cargo install --locked virtiofsd --version 1.14.0 --root "$zos_opt"
fi
if ! ls "$zos_opt"/kernel/boot/vmlinuz-* >/dev/null 2>&1; then
  kernel_pkg=$(apt-cache depends linux-image-cloud-amd64 | sed -n 's/^ *Depends: \(linux-image-[^ ]*\)$/\1/p' | head -n1)
  [ -n "$kernel_pkg" ] || { echo "setup: no linux-image-cloud-amd64 in apt's lists" >&2; exit 1; }
  echo "setup: unpacking $kernel_pkg into $zos_opt/kernel"
  tmp=$(mktemp -d)
  (cd "$tmp" && apt-get download "$kernel_pkg" 2>/dev/null)
  $sudo_cmd mkdir -p "$zos_opt/kernel"
  $sudo_cmd dpkg-deb -x "$tmp"/"$kernel_pkg"_*.deb "$zos_opt/kernel"
  rm -rf "$tmp"
fi
