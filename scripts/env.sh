# Sourced by the scripts. The target directory is set in .cargo/config.toml (outside the clone, so
# warm runs share it); CARGO_TARGET_DIR overrides it.
target_dir="${CARGO_TARGET_DIR:-/var/cache/zos-os/target}"
mkdir -p "$target_dir"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
