#!/usr/bin/env bash
# Benchmark of the cloud's memory per connected idle agent (release build; target <= 64 KB
# with 10,000 agents). Starts a cloud, registers the agents through the admin API, holds them
# connected over the real agent protocol (mTLS WebSocket, Welcome/Hello, heartbeats; no
# directory), and prints the cloud's RSS before and after. Each connection is one open file
# in the bench and one in the cloud: the limit is raised here for both.
#   bash scripts/bench-idle-agents.sh [--agents N] [--identities K] [--wave W] [--hold 30s] [--heartbeat S]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/passthru-target}"
cargo build --release --workspace --bins --quiet
export PASSTHRU_BIN_DIR="$CARGO_TARGET_DIR/release"
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"  # each connection: one file here, one in the cloud
exec "$PASSTHRU_BIN_DIR/passthru-bench" idle-agents "$@"
