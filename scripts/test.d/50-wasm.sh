#!/usr/bin/env bash
# The wasm faces of the core and the Console widget (issue 5):
#   1. builds the plugin module and the browser package (scripts/wasm-test-build.sh installs what is
#      missing: wasm32 target, wasm-bindgen-cli of Cargo.lock's version, node packages, Chromium);
#   2. type-checks a consumer of the hand-written TypeScript declarations;
#   3. lints and tests the wasmtime runner and the parity suite (feature-gated, so that
#      `cargo test --workspace` does not build wasmtime);
#   4. runs the widget's browser tests in real Chromium.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/wasm-test-build.sh

echo "-- TypeScript declarations (tsc --noEmit, strict)"
web-preview/node_modules/.bin/tsc -p web-preview/test/types/tsconfig.json

echo "-- clippy: wasm crates on wasm32, wasmtime runner and parity tests"
cargo clippy -q --locked -p ttn-telemetry-wasm -p ttn-telemetry-plugin --target wasm32-unknown-unknown -- -D warnings
cargo clippy -q --locked -p ttn-lw-telemetry -p ttn-telemetry-tests --all-targets \
  --features ttn-lw-telemetry/plugin,ttn-telemetry-tests/wasm -- -D warnings

echo "-- wasmtime runner, plugin ABI, native ↔ wasmtime ↔ browser parity, preview --plugin"
cargo test --locked -p ttn-lw-telemetry -p ttn-telemetry-tests \
  --features ttn-lw-telemetry/plugin,ttn-telemetry-tests/wasm --lib --test wasm_parity --test preview_plugin

echo "-- Console widget in Chromium (playwright-core, node --test)"
(cd web-preview && node --test test/*.test.mjs)
