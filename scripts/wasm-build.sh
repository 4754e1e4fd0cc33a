# Sourced by scripts/test.d/50-wasm.sh and scripts/bench.d/50-wasm.sh: installs what the wasm
# builds and browser tests need (skipping what is present), then builds
#   - the plugin module        → $TTN_PLUGIN_WASM
#   - the browser package      → web-preview/pkg (wasm-bindgen --target web, then wasm-opt -Oz)
#   - the native-report binary → $NATIVE_REPORT
#   - the agent (embedding pkg) → $TTN_AGENT
# Expects to run from the repository root with CARGO_TARGET_DIR set (./task sets it).
set -euo pipefail
: "${CARGO_TARGET_DIR:=$HOME/.cache/ttn-lw-telemetry/target}"
export CARGO_TARGET_DIR CARGO_RESOLVER_INCOMPATIBLE_RUST_VERSIONS=fallback

rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown

wasm_apt_updated=""
wasm_apt_install() {
  if [ -z "$wasm_apt_updated" ]; then apt-get update -qq; wasm_apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}
command -v node >/dev/null && command -v npm >/dev/null || wasm_apt_install nodejs npm
[ -x /usr/bin/chromium ] || wasm_apt_install chromium

# wasm-bindgen-cli must be exactly the wasm-bindgen version in Cargo.lock. Installed unlocked:
# its own lock names a webpki-roots release the registry mirror lacks (TOOLCHAIN.md).
wb_version=$(awk '$0 == "name = \"wasm-bindgen\"" { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
[ -n "$wb_version" ] || { echo "wasm-bindgen is not in Cargo.lock" >&2; exit 1; }
if [ "$(wasm-bindgen --version 2>/dev/null)" != "wasm-bindgen $wb_version" ]; then
  echo "installing wasm-bindgen-cli $wb_version (a few minutes, once)"
  cargo install -q wasm-bindgen-cli --version "$wb_version"
fi

# Node packages of web-preview: playwright-core, typescript, binaryen (wasm-opt; never Debian's
# binaryen, whose modules fail in Chromium). Reinstalled only when the lock file changed.
if ! cmp -s web-preview/package-lock.json web-preview/node_modules/.ttn-installed-lock 2>/dev/null; then
  (cd web-preview && npm ci --no-audit --no-fund --loglevel=error)
  cp web-preview/package-lock.json web-preview/node_modules/.ttn-installed-lock
fi

cargo build -q --locked -p ttn-telemetry-wasm -p ttn-telemetry-plugin --profile wasm --target wasm32-unknown-unknown
wasm_out="$CARGO_TARGET_DIR/wasm32-unknown-unknown/wasm"
export TTN_PLUGIN_WASM="$wasm_out/ttn_telemetry_plugin.wasm"

rm -rf web-preview/pkg
wasm-bindgen --target web --out-dir web-preview/pkg "$wasm_out/ttn_telemetry_wasm.wasm"
# --converge repeats -Oz until it stops shrinking; the stripped sections are not needed to run.
web-preview/node_modules/.bin/wasm-opt -Oz --converge --strip-debug --strip-producers --strip-target-features \
  web-preview/pkg/ttn_telemetry_wasm_bg.wasm -o web-preview/pkg/ttn_telemetry_wasm_bg.wasm
export TTN_WEB_PKG="$PWD/web-preview/pkg"

cargo build -q --locked -p ttn-telemetry-tests --bin native-report
export NATIVE_REPORT="$CARGO_TARGET_DIR/debug/native-report"

# The agent, built after web-preview/pkg so that it embeds the widget's wasm (host-native/build.rs)
# for its Console page.
cargo build -q --locked -p ttn-lw-telemetry --bin ttn-lw-telemetry
export TTN_AGENT="$CARGO_TARGET_DIR/debug/ttn-lw-telemetry"
