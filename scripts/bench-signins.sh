#!/usr/bin/env bash
# Benchmark of the relay (release build): password grants through cloud + agent against
# direct LDAPS binds to the same domain controller, at the same concurrency. Provisions its
# own Samba forest on a free loopback address with N users, starts the cloud and one agent;
# prints throughput and p50/p99/p999 of both, the ratio (target >= 0.9x), the added latency
# (targets p50 <= 1 ms, p99 <= 5 ms), the agent's validations per CPU-second and its idle RSS
# (target <= 30 MB).
# With --directory slapd the directory is a throwaway OpenLDAP slapd instead (installed here on
# first use, its packaged service never started): the relay's own ceiling (target: >= 5,000
# validations per agent core-second).
#   bash scripts/bench-signins.sh [--users N] [--concurrency C] [--duration 20s] [--warmup 5s] [--rounds 4] [--directory samba|slapd]
#       [--cloud-threads N] [--baseline bind+read|bind]
set -euo pipefail
cd "$(dirname "$0")/.."
case " $* " in *" slapd "*) export PASSTHRU_NEED_SLAPD=1 ;; esac
bash scripts/deps.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/passthru-target}"
cargo build --release --workspace --bins --quiet
export PASSTHRU_BIN_DIR="$CARGO_TARGET_DIR/release"
exec "$PASSTHRU_BIN_DIR/passthru-bench" signins "$@"
