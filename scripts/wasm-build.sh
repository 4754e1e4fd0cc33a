# Sourced by ./task (test and demo, before anything that embeds the widget) and by
# scripts/wasm-test-build.sh: builds the Console widget's package, web-preview/pkg
# (wasm-bindgen --target web, then wasm-opt -Oz), installing what that needs when missing
# (wasm32 target, wasm-bindgen-cli of Cargo.lock's version, node and the node packages).
# host-native/build.rs embeds web-preview/pkg into the agent, so this runs first; the package is
# replaced only when its bytes change, so an unchanged widget does not rebuild the agent.
# Exports TTN_WEB_PKG. Expects to run from the repository root.
set -euo pipefail
: "${CARGO_TARGET_DIR:=$HOME/.cache/ttn-lw-telemetry/target}"
export CARGO_TARGET_DIR CARGO_RESOLVER_INCOMPATIBLE_RUST_VERSIONS=fallback
source scripts/lib.sh

need_rust_targets wasm32-unknown-unknown
need node nodejs
need npm npm

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

cargo build -q --locked -p ttn-telemetry-wasm --profile wasm --target wasm32-unknown-unknown
wasm_pkg_new=$(mktemp -d /tmp/ttn-web-pkg.XXXXXX)
wasm-bindgen --target web --out-dir "$wasm_pkg_new" \
  "$CARGO_TARGET_DIR/wasm32-unknown-unknown/wasm/ttn_telemetry_wasm.wasm"
# --converge repeats -Oz until it stops shrinking; the stripped sections are not needed to run.
web-preview/node_modules/.bin/wasm-opt -Oz --converge --strip-debug --strip-producers --strip-target-features \
  "$wasm_pkg_new/ttn_telemetry_wasm_bg.wasm" -o "$wasm_pkg_new/ttn_telemetry_wasm_bg.wasm"
if diff -r -q "$wasm_pkg_new" web-preview/pkg >/dev/null 2>&1; then
  rm -rf "$wasm_pkg_new"
else
  rm -rf web-preview/pkg
  mv "$wasm_pkg_new" web-preview/pkg
  chmod 755 web-preview/pkg
fi
export TTN_WEB_PKG="$PWD/web-preview/pkg"
