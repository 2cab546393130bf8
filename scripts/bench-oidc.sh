#!/usr/bin/env bash
# Benchmark of the OpenID Connect paths (release build): cloud CPU per full code + PKCE
# sign-in through pass-through (target <= 2 ms), and refresh grants per second (target
# >= 2,000/s). Starts its own Samba forest, cloud and agent; prints the ratios reached.
#   bash scripts/bench-oidc.sh [--signins N] [--concurrency N] [--seconds N]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/passthru-target}"
cargo build --release --workspace --bins --quiet
export PASSTHRU_BIN_DIR="$CARGO_TARGET_DIR/release"
exec "$PASSTHRU_BIN_DIR/passthru-oidc-bench" "$@"
