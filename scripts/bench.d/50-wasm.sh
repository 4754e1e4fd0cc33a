#!/usr/bin/env bash
# Budgets of the wasm builds (issue 5), measured, not asserted:
#   - browser .wasm: raw and gzipped size (budget ≤ 150 KB raw, ≤ 60 KB gzipped)
#   - building one report in Chromium vs natively (budget ≤ 3×), same inputs, same call
#   - one plugin call under wasmtime (release build of the runner)
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/wasm-test-build.sh
N="${BENCH_N:-5000}"
INPUTS=web-preview/test/fixtures/inputs.json

wasm=web-preview/pkg/ttn_telemetry_wasm_bg.wasm
raw=$(stat -c %s "$wasm"); gz=$(gzip -9 -c "$wasm" | wc -c)
praw=$(stat -c %s "$TTN_PLUGIN_WASM"); pgz=$(gzip -9 -c "$TTN_PLUGIN_WASM" | wc -c)
echo "browser wasm: $raw bytes raw, $gz bytes gzipped (budget 153600 / 61440)"
echo "plugin wasm:  $praw bytes raw, $pgz bytes gzipped (no budget)"

cargo build -q --locked --release -p ttn-telemetry-tests --bin native-report
native=$("$CARGO_TARGET_DIR/release/native-report" time "$INPUTS" "$N")
chrome=$(cd web-preview && node tools/bench-chromium.mjs "test/fixtures/inputs.json" "$N")
echo "native build_report_bytes: $native"
echo "chromium buildReport:      $chrome"
node -e 'const [a,b]=process.argv.slice(1).map(JSON.parse); console.log(`chromium/native (fastest rounds): ${(b.min_ns/a.min_ns).toFixed(2)}x, medians: ${(b.median_ns/a.median_ns).toFixed(2)}x (budget 3x)`)' "$native" "$chrome"

cargo build -q --locked --release -p ttn-telemetry-tests --features wasm --bin plugin-time
echo "plugin under wasmtime:     $("$CARGO_TARGET_DIR/release/plugin-time" "$TTN_PLUGIN_WASM" "$INPUTS" "$N")"
