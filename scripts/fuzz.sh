#!/usr/bin/env bash
# Fuzzing with cargo-fuzz (libFuzzer) on the stable toolchain; see docs/testing.md, "Fuzzing".
#   bash scripts/fuzz.sh list                    the targets
#   bash scripts/fuzz.sh TARGET SECONDS [ARG..]  runs TARGET for SECONDS (0: no time limit) and
#                                                prints how many inputs it executed; ARGs go to
#                                                libFuzzer as they are (-runs=10000000, -jobs=2)
# PASSTHRU_FUZZ_SANITIZER: none (the default) or address (AddressSanitizer, which needs
# RUSTC_BOOTSTRAP=1 on a stable toolchain: set here, and built in its own target dir).
# The cryptographic arithmetic crates are built without compare tracing (fuzz/tools/rustc-wrapper.sh
# says which and why); PASSTHRU_FUZZ_TRACE_ALL=1 builds them with it, in a target dir of its own.
# Inputs: the committed seeds in fuzz/corpus/TARGET are read; what the fuzzer finds goes to
# fuzz/target/corpus/TARGET (not committed). A crash is written under fuzz/artifacts/TARGET/
# and makes the script fail; replay it with `cargo fuzz run TARGET FILE` (same flags).
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
    sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz from crates.io" >&2
    cargo install cargo-fuzz --locked
fi

case "${1:-}" in
    list)
        cargo fuzz list
        exit 0
        ;;
    "" | -h | --help) usage ;;
esac
[ $# -ge 2 ] || usage
target=$1
seconds=$2
shift 2
[[ $seconds =~ ^[0-9]+$ ]] || { echo "fuzz.sh: SECONDS must be a whole number, not '$seconds'" >&2; exit 2; }
targets=$(cargo fuzz list)
if ! grep -qx -- "$target" <<<"$targets"; then
    echo "fuzz.sh: no target '$target'; the targets are:" >&2
    echo "$targets" >&2
    exit 2
fi

sanitizer=${PASSTHRU_FUZZ_SANITIZER:-none}
target_dir=fuzz/target
case "$sanitizer" in
    none) ;;
    address)
        export RUSTC_BOOTSTRAP=1
        target_dir=fuzz/target/asan
        ;;
    *) echo "fuzz.sh: PASSTHRU_FUZZ_SANITIZER is none or address, not '$sanitizer'" >&2; exit 2 ;;
esac

if [ "${PASSTHRU_FUZZ_TRACE_ALL:-0}" = 1 ]; then
    target_dir=$target_dir/trace-all
else
    export RUSTC_WRAPPER="$PWD/fuzz/tools/rustc-wrapper.sh"
fi

work=fuzz/target/corpus/$target
mkdir -p "$work" "fuzz/corpus/$target" fuzz/target/logs
log=fuzz/target/logs/$target.log
echo "fuzz.sh: building $target (sanitizer $sanitizer)" >&2
cargo fuzz build --sanitizer "$sanitizer" --target-dir "$target_dir" "$target"
echo "fuzz.sh: running $target for ${seconds}s (log: $log)" >&2
status=0
cargo fuzz run --sanitizer "$sanitizer" --target-dir "$target_dir" "$target" "$work" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -timeout=10 -print_final_stats=1 "$@" >"$log" 2>&1 || status=$?

runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
time_s=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -n 1)
if [ "$status" -ne 0 ]; then
    tail -n 40 "$log" >&2
    echo "fuzz.sh: $target FAILED after ${runs:-?} executions; the input is under fuzz/artifacts/$target/" >&2
    exit "$status"
fi
rate=""
if [ -n "${runs:-}" ] && [ -n "${time_s:-}" ] && [ "$time_s" -gt 0 ]; then
    rate=" ($((runs / time_s)) per second)"
fi
echo "$target: ${runs:-?} executions in ${time_s:-?} s${rate}, no crash"
