#!/usr/bin/env bash
# Benchmark of directory sync (release build): the initial sync of N users (target: 20,000
# in <= 60 s) and how soon an incremental change in AD shows in the cloud (target: <= the
# sync interval + 2 s). Provisions its own Samba forest on a free loopback address, adds the
# users (not measured), starts the cloud and one syncing agent; prints the ratios reached.
#   bash scripts/bench-sync.sh [--users N] [--interval S] [--changes K] [--connections C]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/passthru-target}"
cargo build --release --workspace --bins --quiet
export PASSTHRU_BIN_DIR="$CARGO_TARGET_DIR/release"
exec "$PASSTHRU_BIN_DIR/passthru-sync-bench" "$@"
