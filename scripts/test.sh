#!/usr/bin/env bash
# Runs every Passthru test: format and lint checks, unit tests, integration tests against real
# Samba AD forests (CORP on 127.0.0.1, FABRIKAM on 127.0.0.2), MSAL for Python against the
# cloud on 127.0.0.1:443, several cloud instances on PostgreSQL and NATS, the Debian packages
# (installed, run and purged), and finally a scan proving no test password reached the cloud
# store, any log, any agent state dir or the bus.
# Installs and starts what is missing first (PostgreSQL, nats-server, Samba...; needs root on a
# fresh machine).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

# slapd: the relay's regression guard (crates/e2e/tests/relay_guard.rs) runs the benchmark
# against a throwaway slapd. Node: the client-library tests (crates/e2e/js, `npm ci`).
PASSTHRU_NEED_MSAL=1 PASSTHRU_NEED_NODE=1 PASSTHRU_NEED_BROWSER=1 PASSTHRU_NEED_CLUSTER=1 PASSTHRU_NEED_PACKAGING=1 PASSTHRU_NEED_SLAPD=1 bash scripts/deps.sh

# Reuse a build directory outside the clone, so a fresh clone does not rebuild every crate.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/passthru-target}"
mkdir -p "$CARGO_TARGET_DIR"
bin="$CARGO_TARGET_DIR/debug"

cargo fmt --all --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
# The fuzz targets live in a workspace of their own (fuzz/, see docs/testing.md): type-check
# them here so that an API change that breaks one fails the tests, not the next fuzz run.
cargo check --manifest-path fuzz/Cargo.toml --bins --quiet
cargo build --workspace --bins --quiet
# The agent update tests' second build of the agent, with a newer version.
bash scripts/build-update-fixture.sh

root=$(mktemp -d /tmp/passthru-test.XXXXXX)
export PASSTHRU_TEST_ROOT="$root"
export PASSTHRU_BIN_DIR="$bin"
# As root, the fault suite's network case (iptables on loopback) must run, not skip.
if [ "$(id -u)" -eq 0 ]; then export PASSTHRU_FAULTS_REQUIRE_NET="${PASSTHRU_FAULTS_REQUIRE_NET:-1}"; fi
# Likewise the proxy test, which blocks the agent's direct route to the cloud with iptables.
if [ "$(id -u)" -eq 0 ]; then export PASSTHRU_PROXY_REQUIRE_NET="${PASSTHRU_PROXY_REQUIRE_NET:-1}"; fi
testbed_pid=""
cleanup() {
  if [ -n "$testbed_pid" ] && kill -0 "$testbed_pid" 2>/dev/null; then
    kill -TERM "$testbed_pid" 2>/dev/null || true
    wait "$testbed_pid" 2>/dev/null || true
  fi
  rm -rf "$root"
}
trap cleanup EXIT INT TERM

# One pair of forests for the whole run (provisioning costs ~10 s each).
"$bin/passthru-testbed" up --dir "$root/testbed" --forest both >"$root/testbed.out" 2>&1 &
testbed_pid=$!
for _ in $(seq 1 240); do
  grep -q '^READY ' "$root/testbed.out" 2>/dev/null && break
  if ! kill -0 "$testbed_pid" 2>/dev/null; then
    echo "the test bed failed to start:" >&2; tail -n 40 "$root/testbed.out" >&2; exit 1
  fi
  sleep 0.5
done
grep -q '^READY ' "$root/testbed.out" || { echo "the test bed did not become ready" >&2; tail -n 40 "$root/testbed.out" >&2; exit 1; }
export PASSTHRU_TESTBED="$root/testbed/testbed.json"

cargo test --workspace --no-fail-fast

# The Debian packages, built from the debug build: installed, checked, run as their service
# users, removed and purged (the machine is left as it was).
bash scripts/test-packages.sh

# No password, in any form, in the cloud store, logs or agent state dirs.
touch "$root/secrets.txt"
"$bin/passthru-scan" --root "$root/runs" --passwords "$PASSTHRU_TESTBED" --passwords "$root/secrets.txt"
echo "all Passthru tests passed"
