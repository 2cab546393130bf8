#!/usr/bin/env bash
# The cloud's instructions per password grant, counted by callgrind: a figure that does not
# move with the machine's load, for A/B comparisons the CPU-time bench is too noisy for
# (docs/performance.md, "Cost of the issue 15 defences").
#   bash scripts/bench-cloud-instructions.sh [BIN_DIR]
# BIN_DIR holds release builds of passthru-cloud, passthru-agent and passthru-bench (default:
# build them). The bench runs twice against slapd (--duration 10s, then 25s) with the cloud
# under valgrind; the figure is the difference of the two runs' instructions divided by the
# difference of their grants, so set-up (registration, argon2, handshakes) cancels out.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "bench-cloud-instructions: needs valgrind (apt-get install valgrind)" >&2; exit 1; }
export PASSTHRU_NEED_SLAPD=1
bash scripts/deps.sh
if [ $# -ge 1 ]; then
    real=$(cd "$1" && pwd)
else
    export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/passthru-target}"
    cargo build --release --workspace --bins --quiet
    real="$CARGO_TARGET_DIR/release"
fi
work=$(mktemp -d /tmp/passthru-cg.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/bin" "$work/out"
cp "$real/passthru-agent" "$real/passthru-bench" "$work/bin/"
cat >"$work/bin/passthru-cloud" <<EOF
#!/usr/bin/env bash
if [ "\$1" = serve ]; then
    exec valgrind --tool=callgrind --callgrind-out-file="$work/out/cloud.%p" "$real/passthru-cloud" "\$@"
fi
exec "$real/passthru-cloud" "\$@"
EOF
chmod +x "$work/bin/passthru-cloud"

# Prints "instructions grants" of one bench run of DURATION.
measure() {
    rm -f "$work/out"/cloud.*
    PASSTHRU_BIN_DIR="$work/bin" "$work/bin/passthru-bench" signins --directory slapd --users 200 \
        --concurrency 4 --duration "$1" --rounds 1 --cloud-threads 1 >"$work/bench-$1.log" 2>&1 || {
        tail -n 20 "$work/bench-$1.log" >&2
        echo "bench-cloud-instructions: the bench failed" >&2
        exit 1
    }
    # The serving cloud's profile is the largest (earlier `serve` starts of the bench are short).
    local out
    out=$(ls -S "$work/out"/cloud.* | head -n 1)
    local total grants
    total=$(callgrind_annotate "$out" 2>/dev/null | sed -n 's/^ *\([0-9,]*\) .*PROGRAM TOTALS.*/\1/p' | head -n 1 | tr -d ,)
    grants=$(callgrind_annotate --tree=caller "$out" 2>/dev/null |
        sed -n 's/.*< .*user_tokens::{{closure}} (\([0-9,]*\)x).*/\1/p' | head -n 1 | tr -d ,)
    echo "$total $grants"
}

read -r i1 g1 < <(measure 10s)
read -r i2 g2 < <(measure 25s)
[ -n "$g1" ] && [ -n "$g2" ] && [ "$g2" -gt "$g1" ] || { echo "bench-cloud-instructions: could not count grants ($g1, $g2)" >&2; exit 1; }
echo "runs: 10 s: $g1 grants, $i1 instructions; 25 s: $g2 grants, $i2 instructions"
echo "cloud instructions per password grant: $(( (i2 - i1) / (g2 - g1) ))"
