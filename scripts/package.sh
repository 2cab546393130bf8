#!/usr/bin/env bash
# Builds the Debian packages passthru-cloud and passthru-agent (cargo-deb; the metadata is in
# [package.metadata.deb] of crates/cloud/Cargo.toml and crates/agent/Cargo.toml, the unit,
# maintainer scripts and sample configuration in crates/*/debian/) from a release build,
# and prints the path of each package it wrote, one a line.
#
#   bash scripts/package.sh [OUT_DIR]      # default OUT_DIR: $CARGO_TARGET_DIR/debian
#
# Install them with `apt install ./passthru-cloud_*.deb` (docs/operations.md, "Installing
# from packages"). Installs cargo-deb first when it is missing (a few minutes, once).
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/passthru-target}"
out="${1:-$CARGO_TARGET_DIR/debian}"
mkdir -p "$out"

if ! command -v cargo-deb >/dev/null 2>&1; then
  echo "package: installing cargo-deb (cargo install --locked)" >&2
  # Its own build dir: not the workspace's.
  env -u CARGO_TARGET_DIR cargo install cargo-deb --locked --quiet >&2
fi

# One release build of both binaries (the workspace's release profile: fat LTO).
cargo build --release --locked -p passthru-cloud -p passthru-agent --bins >&2

for package in passthru-cloud passthru-agent; do
  # cargo-deb prints the path of the package it wrote on stdout.
  written=$(cargo deb -p "$package" --no-build --locked --output "$out")
  deb=$(printf '%s\n' "$written" | tail -n 1)
  [ -f "$deb" ] || { echo "package: cargo deb wrote no package for $package" >&2; exit 1; }
  echo "$deb"
done
