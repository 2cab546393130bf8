#!/usr/bin/env bash
# RUSTC_WRAPPER for the fuzz builds (scripts/fuzz.sh sets it): compiles the constant-time
# cryptographic arithmetic crates without libFuzzer's compare tracing, everything else as
# cargo-fuzz asks. Why: in those crates every comparison is field or block arithmetic on
# secret-independent data that no mutation can steer, yet the trace hooks made up 38% of
# envelope_open's time (perf, 2026-12-07). Edge coverage stays on for them, and compare
# tracing stays on for our code and every parser. docs/testing.md, "Fuzzing", says more.
set -euo pipefail
rustc=$1
shift
crate=""
prev=""
for arg in "$@"; do
    if [ "$prev" = "--crate-name" ]; then
        crate=$arg
        break
    fi
    prev=$arg
done
case "$crate" in
    curve25519_dalek | x25519_dalek | p256 | p384 | primeorder | elliptic_curve | crypto_bigint | \
        sha2 | sha1 | hmac | hkdf | chacha20 | chacha20poly1305 | poly1305 | aes | aes_gcm | \
        ghash | polyval | universal_hash | cipher | subtle)
        args=()
        for arg in "$@"; do
            [ "$arg" = "-Cllvm-args=-sanitizer-coverage-trace-compares" ] || args+=("$arg")
        done
        exec "$rustc" "${args[@]}"
        ;;
esac
exec "$rustc" "$@"
