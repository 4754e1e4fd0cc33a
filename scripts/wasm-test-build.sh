# Sourced by scripts/test.d/50-wasm.sh and scripts/bench.d/50-wasm.sh: the widget's package
# (scripts/wasm-build.sh), then what the wasm tests and benchmarks also need, installing what is
# missing:
#   - Chromium                  → /usr/bin/chromium
#   - the plugin module         → $TTN_PLUGIN_WASM
#   - the native-report binary  → $NATIVE_REPORT
#   - the agent (embedding pkg) → $TTN_AGENT
source scripts/wasm-build.sh

[ -x /usr/bin/chromium ] || apt_install chromium

cargo build -q --locked -p ttn-telemetry-plugin --profile wasm --target wasm32-unknown-unknown
export TTN_PLUGIN_WASM="$CARGO_TARGET_DIR/wasm32-unknown-unknown/wasm/ttn_telemetry_plugin.wasm"

cargo build -q --locked -p ttn-telemetry-tests --bin native-report
export NATIVE_REPORT="$CARGO_TARGET_DIR/debug/native-report"

cargo build -q --locked -p ttn-lw-telemetry --bin ttn-lw-telemetry
export TTN_AGENT="$CARGO_TARGET_DIR/debug/ttn-lw-telemetry"
