#!/usr/bin/env bash
# The Passthru quickstart: installs what is missing (Samba AD DC), builds, then runs the demo:
# a throwaway AD forest with demo users, the cloud on https://127.0.0.1:443, one agent.
# Ctrl-C stops everything and removes the throwaway directory.
#   PASSTHRU_DEMO_LISTEN  where the cloud listens (default 127.0.0.1:443; MSAL needs 443)
#   PASSTHRU_DEMO_IP      loopback address of the demo forest's DC (default 127.0.0.1)
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/deps.sh
if [ -z "${PASSTHRU_BIN_DIR:-}" ]; then
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/passthru-target}"
  echo "demo: building (the first build takes a few minutes) ..."
  cargo build --workspace --bins --quiet
  export PASSTHRU_BIN_DIR="$CARGO_TARGET_DIR/debug"
fi
exec "$PASSTHRU_BIN_DIR/passthru-demo"
