#!/usr/bin/env bash
# Builds the update tests' fixture: a second passthru-agent with a newer version string
# (the build-time override PASSTHRU_AGENT_VERSION_OVERRIDE, read in crates/agent/src/main.rs),
# copied to $CARGO_TARGET_DIR/update-fixture/passthru-agent (without its debug sections, to
# keep uploads small), then the normal build again so that $CARGO_TARGET_DIR/debug holds the
# normal agent. Only the agent's main.rs is compiled again each time (cargo tracks the
# variable), so this costs two links. crates/e2e/tests/agent_update.rs publishes the fixture.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/passthru-target}"
bin="$CARGO_TARGET_DIR/debug/passthru-agent"
out="$CARGO_TARGET_DIR/update-fixture"

base=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' Cargo.toml | head -n 1)
IFS=. read -r major minor patch <<<"${base%%-*}"
version="${PASSTHRU_UPDATE_FIXTURE_VERSION:-$major.$minor.$((patch + 1))-update}"

# The same command as scripts/test.sh, so that nothing else is built with other features.
PASSTHRU_AGENT_VERSION_OVERRIDE="$version" cargo build --workspace --bins --quiet
mkdir -p "$out"
cp "$bin" "$out/passthru-agent.tmp"
if command -v strip >/dev/null; then strip --strip-debug "$out/passthru-agent.tmp"; fi
mv "$out/passthru-agent.tmp" "$out/passthru-agent"
cargo build --workspace --bins --quiet

got=$("$out/passthru-agent" --version)
[ "$got" = "passthru-agent $version" ] || { echo "the fixture reports '$got', not $version" >&2; exit 1; }
normal=$("$bin" --version)
[ "$normal" = "passthru-agent $base" ] || { echo "the normal build reports '$normal', not $base" >&2; exit 1; }
echo "update fixture: $out/passthru-agent ($version; the normal build is $base)"
