#!/usr/bin/env bash
# The collector's Telemetry Dashboard in real Chromium (issue 6). Seeds a collector with 40 days
# of reports (straight into its store) plus a few over HTTP, one with the frequency-plan id
# `<script>alert(1)</script>`, then runs host-native/tests/collect-dashboard with node's test
# runner. Screenshot: ${ARTIFACTS_DIR:-/tmp/ttn-artifacts}/dashboard.png.
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ttn-lw-telemetry/target}"
export CARGO_RESOLVER_INCOMPATIBLE_RUST_VERSIONS=fallback

apt_updated=""
need() {
  command -v "$1" >/dev/null && return
  if [ -z "$apt_updated" ]; then apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${@:2}"
}
need chromium chromium
need node nodejs
need npm npm

dir=host-native/tests/collect-dashboard
(cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)

cargo build --locked -q -p ttn-lw-telemetry --example collector
bin="$CARGO_TARGET_DIR/debug/examples/collector"

work=$(mktemp -d /tmp/ttn-dashboard.XXXXXX)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

db="sqlite:$work/collector.sqlite3"
"$bin" seed --database-uri "$db" --deployments 60 --days 40 --cli 8
"$bin" serve --listen 127.0.0.1:0 --database-uri "$db" >"$work/serve.out" 2>&1 &
pid=$!
url=""
for _ in $(seq 100); do
  url=$(sed -n 's/^listening //p' "$work/serve.out")
  [ -n "$url" ] && break
  kill -0 "$pid" 2>/dev/null || { cat "$work/serve.out" >&2; exit 1; }
  sleep 0.1
done
[ -n "$url" ] || { echo "the collector did not start" >&2; cat "$work/serve.out" >&2; exit 1; }
"$bin" post --addr "$url" --count 5 --start 1000 --plan '<script>alert(1)</script>'

(cd "$dir" && COLLECTOR_URL="$url/" node --test dashboard.test.mjs)
echo "dashboard screenshot: ${ARTIFACTS_DIR:-/tmp/ttn-artifacts}/dashboard.png"
