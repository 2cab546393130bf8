#!/usr/bin/env bash
# Benchmark of the relay (release build): password grants through cloud + agent against
# direct LDAPS binds to the same domain controller, at the same concurrency. Provisions its
# own Samba forest on a free loopback address with N users, starts the cloud and one agent;
# prints throughput and p50/p99/p999 of both, the ratio (target >= 0.9x), the added latency
# (targets p50 <= 1 ms, p99 <= 5 ms), the agent's validations per CPU-second and its idle RSS
# (target <= 30 MB).
#   bash scripts/bench-signins.sh [--users N] [--concurrency C] [--duration 20s] [--warmup 5s]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/passthru-target}"
cargo build --release --workspace --bins --quiet
export PASSTHRU_BIN_DIR="$CARGO_TARGET_DIR/release"
exec "$PASSTHRU_BIN_DIR/passthru-bench" signins "$@"
