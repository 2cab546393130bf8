#!/usr/bin/env bash
# Several cloud instances (PostgreSQL store, NATS bus) against one on SQLite, release build,
# against a throwaway slapd (so that the cloud's own cost shows). Three passes back to back,
# each: `signins --store sqlite`, `--store postgres` (one instance), `--store postgres
# --instances 2`, `--instances 3`; then the medians of the three passes:
#   1. cloud CPU per password grant, PostgreSQL / SQLite (target <= 1.3x), one instance each;
#      also with PostgreSQL's own server processes counted;
#   2. added p50 of a sign-in sent to instance 2 (the agent is connected to instance 1)
#      against one sent to instance 1, alternating slices (target <= 0.5 ms);
#   3. sign-ins per cloud CPU-second with 1, 2 and 3 instances (target: flat);
# and per grant: PostgreSQL statements, round trips and bytes, NATS messages and bytes.
# Every run's whole output is kept in the log directory printed at the start.
#   bash scripts/bench-instances.sh --summarize DIR        # the medians again, from an earlier run's outputs
#   bash scripts/bench-instances.sh [--passes 3] [signins options, e.g. --users 200 --duration 9s --rounds 3]
set -euo pipefail
cd "$(dirname "$0")/.."
# The number after a line's label, e.g. `field "cloud CPU per grant" FILE`.
field() { awk -v l="$1" 'index($0, l) == 1 {split(substr($0, length(l) + 1), a, " "); print a[1]; exit}' "$2" | tr -d '+,'; }
median() { sort -g | awk '{a[NR]=$1} END {if (NR==0) print "?"; else if (NR%2) print a[(NR+1)/2]; else printf "%.4g\n", (a[NR/2]+a[NR/2+1])/2}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b>0) printf "%.3f\n", a/b; else print "?"}'; }
passes=3
if [ "${1:-}" = --passes ]; then passes=$2; shift 2; fi
# --summarize DIR: only the medians, from the outputs of an earlier run in DIR.
logs=
if [ "${1:-}" = --summarize ]; then logs=$2; shift 2; fi
if [ -z "$logs" ]; then
export PASSTHRU_NEED_CLUSTER=1 PASSTHRU_NEED_SLAPD=1
bash scripts/deps.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/passthru-target}"
nice cargo build --release --workspace --bins --quiet
export PASSTHRU_BIN_DIR="$CARGO_TARGET_DIR/release"
bench="$PASSTHRU_BIN_DIR/passthru-bench"
opts=(--directory slapd --users 200 --duration 9s --warmup 3s --rounds 3)
[ $# -gt 0 ] && opts+=("$@")
logs=$(mktemp -d /tmp/passthru-bench-instances.XXXXXX)
echo "bench-instances: $(date -u +%FT%TZ), ${passes} passes, options: ${opts[*]}; outputs in $logs"


for pass in $(seq 1 "$passes"); do
  # 6 clients (spread evenly over 1, 2 or 3 instances); the cross-instance latency also with
  # 1 client, where no grant waits behind another.
  for shape in "sqlite 1 6" "postgres 1 6" "postgres 2 6" "postgres 3 6" "postgres 2 1"; do
    set -- $shape
    out="$logs/pass$pass-$1-$2.txt"
    [ "$3" = 6 ] || out="$logs/pass$pass-$1-$2-c$3.txt"
    echo "pass $pass: --store $1 --instances $2 --concurrency $3 (load $(cut -d' ' -f1-3 /proc/loadavg))"
    "$bench" signins "${opts[@]}" --store "$1" --instances "$2" --concurrency "$3" >"$out" 2>"$out.err" \
      || { echo "failed; see $out and $out.err" >&2; tail -5 "$out.err" >&2; exit 1; }
    grep -E "^(cloud CPU|  \+ PostgreSQL|added p50 cross|sign-ins per cloud|  with PostgreSQL|PostgreSQL|NATS|machine load)" "$out" | sed 's/^/    /'
  done
done
fi

echo
echo "medians of $passes passes ($(date -u +%F), load at the end $(cut -d' ' -f1-3 /proc/loadavg)):"
for pass in $(seq 1 "$passes"); do
  s=$(field "cloud CPU per grant" "$logs/pass$pass-sqlite-1.txt")
  p=$(field "cloud CPU per grant" "$logs/pass$pass-postgres-1.txt")
  pp=$(field "  + PostgreSQL's CPU" "$logs/pass$pass-postgres-1.txt")
  echo "$(ratio "$p" "$s") $(ratio "$pp" "$s") $s $p $pp"
done >"$logs/cpu.txt"
r=$(awk '{print $1}' "$logs/cpu.txt" | median)
rp=$(awk '{print $2}' "$logs/cpu.txt" | median)
pass_miss() { awk -v v="$1" -v t="$2" 'BEGIN {print (v != "?" && v <= t) ? "PASS" : "MISS"}'; }
echo "cloud CPU per grant, PostgreSQL / SQLite   ${r}x (target <= 1.3x) $(pass_miss "$r" 1.3)   (per pass: $(awk '{printf "%s ms / %s ms = %sx; ", $4, $3, $1}' "$logs/cpu.txt"))"
echo "  with PostgreSQL's server processes       ${rp}x (per pass: $(awk '{printf "%s ms / %s ms = %sx; ", $5, $3, $2}' "$logs/cpu.txt"))"
a=$(for pass in $(seq 1 "$passes"); do field "added p50 cross-instance" "$logs/pass$pass-postgres-2.txt"; done | median)
echo "added p50 cross-instance, 6 clients       ${a} ms (target <= 0.5 ms) $(pass_miss "$a" 0.5)   (per pass: $(for pass in $(seq 1 "$passes"); do printf '%s ' "$(field "added p50 cross-instance" "$logs/pass$pass-postgres-2.txt")"; done)ms)"
a=$(for pass in $(seq 1 "$passes"); do field "added p50 cross-instance" "$logs/pass$pass-postgres-2-c1.txt"; done | median)
echo "added p50 cross-instance, 1 client        ${a} ms (target <= 0.5 ms) $(pass_miss "$a" 0.5)   (per pass: $(for pass in $(seq 1 "$passes"); do printf '%s ' "$(field "added p50 cross-instance" "$logs/pass$pass-postgres-2-c1.txt")"; done)ms)"
for n in 1 2 3; do
  v=$(for pass in $(seq 1 "$passes"); do field "sign-ins per cloud core-s" "$logs/pass$pass-postgres-$n.txt"; done | median)
  w=$(for pass in $(seq 1 "$passes"); do field "  with PostgreSQL + NATS" "$logs/pass$pass-postgres-$n.txt"; done | median)
  echo "sign-ins per cloud core-s, $n instance(s)   ${v} (with PostgreSQL + NATS CPU: ${w}; CPU-seconds from /proc, not pinned per instance: approximate on 2 cores)"
done
v=$(for pass in $(seq 1 "$passes"); do field "sign-ins per cloud core-s" "$logs/pass$pass-sqlite-1.txt"; done | median)
echo "sign-ins per cloud core-s, SQLite          ${v}"
# PostgreSQL's line of the grants at instance 1 (or at instance 2): statements, round trips,
# bytes to and from the server, its processes' CPU.
pgline() { grep -m"$2" "^PostgreSQL per grant" "$1" | tail -1 | sed -E 's/^PostgreSQL per grant +([0-9.]+) statements.*; ([0-9.]+) round trips.*; ([0-9]+) bytes to and ([0-9]+) bytes from.*its processes ([0-9.]+) ms CPU.*/\1 \2 \3 \4 \5/'; }
for shape in "1 1 instance 1, one instance" "2 1 instance 1, two instances" "2 2 instance 2 (cross), two instances" "3 1 instance 1, three instances"; do
  set -- $shape
  f() { for pass in $(seq 1 "$passes"); do pgline "$logs/pass$pass-postgres-$1.txt" "$2" | awk -v k="$3" '{print $k}'; done | median; }
  echo "PostgreSQL per grant at ${*:3}: $(f "$1" "$2" 1) statements, $(f "$1" "$2" 2) round trips, $(f "$1" "$2" 3) bytes to / $(f "$1" "$2" 4) bytes from the server, $(f "$1" "$2" 5) ms of PostgreSQL CPU (medians)"
done
for n in 2 3; do
  m=$(for pass in $(seq 1 "$passes"); do field "NATS per cross grant" "$logs/pass$pass-postgres-$n.txt"; done | median)
  b=$(for pass in $(seq 1 "$passes"); do grep -m1 "^NATS per cross grant" "$logs/pass$pass-postgres-$n.txt" | sed -E 's/.*msgs in \(([0-9]+) bytes\).*/\1/'; done | median)
  echo "NATS per cross-instance grant, $n instances: $m messages in, $b bytes in (medians; as many out)"
done
echo "every run's output: $logs"
