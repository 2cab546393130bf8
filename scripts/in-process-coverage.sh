#!/usr/bin/env bash
# Which source files of the cloud crate (crates/cloud/src/**/*.rs) no in-process test executes.
#
# "In-process" means the tests of `cargo test -p passthru-cloud --lib --tests`: the unit tests
# and crates/cloud/tests/*.rs, which need no Samba forest and no network. They are built with
# source-based coverage (-C instrument-coverage) in a target dir of their own (so the normal
# build is not invalidated), run, and a file counts as tested if at least one of its lines is
# executed by any of them. Each file lands in one of:
#   untested   has code, none of it executed                 (one line each; counted in N)
#   code-free  compiled into the tests, but no coverage record: only types, consts, derives
#   not-built  in no test binary (e.g. behind a feature such as "fuzzing")
#   binary     main.rs: the CLI entry point, not part of the lib tests
# Summary: N untested of M files that have code (main.rs, code-free and not-built excluded).
#
# The profiles are read with the llvm-profdata/llvm-cov shipped with the rustc toolchain
# (rustup component llvm-tools): the raw profile format follows rustc's own LLVM, and older
# system tools (e.g. /usr/bin, LLVM 14) cannot read it.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
src=crates/cloud/src
out="${PASSTHRU_COV_DIR:-/var/tmp/passthru-cov}"
llvm="$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin"
[ -x "$llvm/llvm-cov" ] || { echo "no $llvm/llvm-cov: rustup component add llvm-tools" >&2; exit 1; }

export RUSTFLAGS="-C instrument-coverage"
# Instrumented build scripts and proc macros write profiles too: keep them out of the tree.
export LLVM_PROFILE_FILE="$out/build-prof/%m.profraw"
rm -rf "$out/prof" "$out/build-prof" && mkdir -p "$out/prof"

# Build the test binaries (lib unit tests, bin unit tests, tests/*.rs), then run exactly those
# (from the package dir, as cargo test does), so profiles and binaries match even if the
# source changes meanwhile.
json=$(nice cargo test -p passthru-cloud --lib --tests --target-dir "$out" --no-run --message-format=json-render-diagnostics)
# (Test harnesses are in deps/; the executable listed outside it is the plain binary.)
mapfile -t bins < <(grep -o '"executable":"[^"]*/deps/[^"]*"' <<<"$json" | sed 's/^"executable":"//; s/"$//' | sort -u)
[ "${#bins[@]}" -gt 0 ] || { echo "no test binaries built" >&2; exit 1; }
for b in "${bins[@]}"; do
  (cd crates/cloud && LLVM_PROFILE_FILE="$out/prof/%p-%m.profraw" nice "$b" -q >&2) ||
    echo "warning: tests failed in $b; coverage is that of the tests that ran" >&2
done

"$llvm/llvm-profdata" merge -sparse "$out"/prof/*.profraw -o "$out/cloud.profdata"
objects=()
for b in "${bins[@]}"; do objects+=(-object "$b"); done
"$llvm/llvm-cov" export -format=lcov -instr-profile "$out/cloud.profdata" "${objects[@]}" >"$out/cloud.lcov"

# Per file: lines hit (LH) in the coverage export, relative to the repo.
declare -A hit
while read -r f h; do hit[$f]=$h; done < <(
  awk -v p="$repo/" '/^SF:/ { f = substr($0, 4); if (index(f, p) == 1) f = substr(f, length(p) + 1) } /^LH:/ { print f, substr($0, 4) }' "$out/cloud.lcov" |
    grep "^$src/")
# Files compiled into some test binary (from rustc's dep-info next to each binary).
declare -A built
for b in "${bins[@]}"; do
  while read -r f; do built[$f]=1; done < <(sed -n "s|^\($repo/\)\?\($src/.*\.rs\):.*|\2|p" "$b.d")
done

untested=0 total=0
while read -r f; do
  if [ "$f" = "$src/main.rs" ]; then echo "binary     $f (not counted; lines hit: ${hit[$f]:-none})"
  elif [ -z "${built[$f]:-}" ]; then echo "not-built  $f"
  elif [ -z "${hit[$f]:-}" ]; then echo "code-free  $f"
  else
    total=$((total + 1))
    if [ "${hit[$f]}" -eq 0 ]; then
      untested=$((untested + 1))
      printf 'untested   %s (%s lines)\n' "$f" "$(wc -l <"$f")"
    fi
  fi
done < <(find "$src" -name '*.rs' | sort)
echo "cloud files with no in-process test: $untested of $total"
