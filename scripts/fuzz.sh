#!/usr/bin/env bash
# Builds the cargo-fuzz targets of the core on stable Rust (the coverage instrumentation that
# cargo-fuzz would add is passed as stable -C flags) and runs each for a bounded number of
# inputs, seeded with the golden corpus. Usage: scripts/fuzz.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-20000}
target_dir="${CARGO_TARGET_DIR:-$PWD/target}/fuzz"
flags="--cfg fuzzing -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4"
flags+=" -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table"
flags+=" -Cllvm-args=-sanitizer-coverage-trace-compares -Cdebug-assertions -Coverflow-checks"
# An explicit --target (this machine's own) keeps the flags off build scripts and proc macros.
host=$(rustc -vV | sed -n 's/^host: //p')
[ -n "$host" ] || { echo "rustc -vV names no host target" >&2; exit 1; }
RUSTFLAGS="$flags" cargo build --locked --release --manifest-path core/fuzz/Cargo.toml \
  --target-dir "$target_dir" --target "$host"
corpus=$(mktemp -d)
trap 'rm -rf "$corpus"' EXIT
cp tests/golden/*.expected tests/golden/*.inputs.json "$corpus"/
# A seed for verify_signature: the two header values of the signature profile (docs/signing.md).
printf '%s\n%s' 'ttn=("@method" "@target-uri" "content-digest");created=1700000000;keyid="AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA";alg="ed25519"' \
  'ttn=:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==:' >"$corpus/signature.txt"
for t in parse_report build_inputs verify_signature; do
  "$target_dir/$host/release/$t" -runs="$runs" -max_total_time=30 -max_len=4096 "$corpus" 2>&1 | tail -n 2
done
