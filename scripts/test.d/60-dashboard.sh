#!/usr/bin/env bash
# The collector's Telemetry Dashboard in real Chromium (issue 6), on the embedded store and on
# PostgreSQL. Seeds a collector with 40 days of reports (straight into its store) plus a few over
# HTTP: from 5 deployments (= k, the collector's default k-anonymity threshold) with the
# frequency-plan id `<script>alert(1)</script>`, which must show as text, and from 4 (k − 1)
# with the plan id RARE_PLAN_K_MINUS_1, which must appear nowhere public. Then runs
# host-native/tests/collect-dashboard with node's test runner (node >= 20). Screenshots:
# ${ARTIFACTS_DIR:-/tmp/ttn-artifacts}/dashboard.png and dashboard-postgres.png.
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ttn-lw-telemetry/target}"
export CARGO_RESOLVER_INCOMPATIBLE_RUST_VERSIONS=fallback

source scripts/lib.sh
need chromium chromium
need node nodejs
need npm npm
need psql postgresql-client

dir=host-native/tests/collect-dashboard
(cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)

cargo build --locked -q -p ttn-telemetry-tests --bin collector-driver
bin="$CARGO_TARGET_DIR/debug/collector-driver"

work=$(mktemp -d /tmp/ttn-dashboard.XXXXXX)
pid=""
pg_admin="${TTN_TEST_PG_URL:-postgresql://postgres@127.0.0.1:5432/postgres}"
pg_db="ttn_dashboard_test_$$"
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null
  wait
  psql -q "$pg_admin" -c "DROP DATABASE IF EXISTS $pg_db" >/dev/null 2>&1 || echo "warning: could not drop the test database $pg_db" >&2
  rm -rf "$work"
}
trap cleanup EXIT
psql -q "$pg_admin" -c "CREATE DATABASE $pg_db" >/dev/null || {
  echo "PostgreSQL is unreachable at $pg_admin: start it or set TTN_TEST_PG_URL" >&2; exit 1; }

# The same test on the embedded store and on PostgreSQL.
for store in sqlite postgres; do
  if [ $store = sqlite ]; then db="sqlite:$work/collector.sqlite3"; shot=dashboard.png
  else db="${pg_admin%/*}/$pg_db"; shot=dashboard-postgres.png; fi
  echo "-- dashboard on $store"
  "$bin" seed --database-uri "$db" --deployments 60 --days 40 --cli 8
  serve_bg "$work/serve.out" "$bin" serve --listen 127.0.0.1:0 --database-uri "$db"
  "$bin" post --addr "$url" --count 5 --start 1000 --plan '<script>alert(1)</script>'
  "$bin" post --addr "$url" --count 4 --start 2000 --plan 'RARE_PLAN_K_MINUS_1'
  (cd "$dir" && COLLECTOR_URL="$url/" SCREENSHOT=$shot node --test dashboard.test.mjs)
  stop_bg
  echo "dashboard screenshot ($store): ${ARTIFACTS_DIR:-/tmp/ttn-artifacts}/$shot"
done
