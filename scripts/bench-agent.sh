#!/usr/bin/env bash
# Benchmark of one agent's own ceiling (release build): the real agent, registered with the real
# cloud, is then driven by the load generator standing in for the cloud (the cloud's TLS files,
# mutual TLS, the agent protocol, requests sealed beforehand to the agent's HPKE key), with W
# requests in flight against a throwaway OpenLDAP slapd (or --directory samba). Prints
# validations per agent CPU-second (target >= 5,000 against slapd) and the round trip through
# the agent.
#   bash scripts/bench-agent.sh [--users N] [--window W] [--duration 20s] [--warmup 3s] [--max-rate R] [--directory slapd|samba]
set -euo pipefail
cd "$(dirname "$0")/.."
case " $* " in *" samba "*) ;; *) export PASSTHRU_NEED_SLAPD=1 ;; esac
bash scripts/deps.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/passthru-target}"
cargo build --release --workspace --bins --quiet
export PASSTHRU_BIN_DIR="$CARGO_TARGET_DIR/release"
exec "$PASSTHRU_BIN_DIR/passthru-bench" agent "$@"
