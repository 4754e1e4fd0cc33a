#!/usr/bin/env bash
# Collector benchmark (issue 6), on loopback:
#   1. sustained ingest: a bounded load generator (fixed request count and concurrency, keep-alive
#      connections, fresh deployments) against the collector on SQLite and on PostgreSQL;
#      prints reports/s, p50 and p99 (target with SQLite: >= 5,000 reports/s, p99 < 50 ms);
#      then the same load signed (verification on: every report verified and its key pinned);
#   2. GET /api/v1/stats over 1,000,000 stored reports (bulk-seeded straight into each store:
#      20,000 deployments over 55 days) plus the hostile mix of issue 11 (900 reports with 1,024
#      frequency plan ids each that no other report has: 921,600 distinct plans), p50 and max of
#      20 runs (target < 200 ms), and the collector's peak RSS after them (VmHWM).
# Measured (2 cores shared with other builds, 1,001,900 reports + 900 hostile reports, 20 runs):
#   before issue 11 (clamped i64 counters, every counter row read per call):
#     sqlite   stats p50 1444 ms, max 1876 ms, collector RSS 237 MB after (peak 320 MB)
#     postgres stats p50 1867 ms, max 2501 ms, collector RSS 220 MB after (peak 354 MB)
#   after (top-51 rows per spread by index, sums for `other`, recent days only):
#     sqlite   stats p50 2.05 ms, max 4.0 ms, collector RSS 8.7 MB (peak 8.7 MB)
#     postgres stats p50 16.5 ms, max 118 ms, collector RSS 6.2 MB (peak 6.2 MB)
#   seeding through the store: sqlite 10,958 -> 7,975 reports/s, postgres 4,284 -> 3,742
#   reports/s (exact 128-bit counters are read, added and written back by the writer).
#   schema 6 (no `latest` table: a deployment's latest report is found in `reports` by uid)
#   made the PostgreSQL partial-day counts probe the uid index once per report of the cut-off's
#   day: stats p50 545 ms, max 805 ms. Schema 7 counts the day's later hours from counters
#   (`…_seen_hour`) and probes only the rest of the cut-off's hour, with the probe spelled in
#   the index's order (the planner picks it before ANALYZE has seen the freshly seeded table):
#     sqlite   stats p50 0.82 ms, max 3.6 ms, collector RSS 300 MB (anonymous 49 MB, the uid
#              index among it; file 251 MB: store pages mapped in by SQLite, the kernel's)
#     postgres stats p50 13.4 ms, max 59 ms, collector RSS 31 MB (anonymous 23 MB)
#     seeding through the store: sqlite 37,409 reports/s, postgres 18,005 reports/s
# Signed ingest (issue 14 §2): the same load with each of its fresh deployments signing its report
# with its own key, so the collector verifies every signature (Ed25519, ~63 µs, see the core's
# criterion bench) and pins every key (a pins row and a verified counter in the same commit).
# Measured on 2 cores shared with other builds (load average 3 to 3.5), unsigned and signed runs
# of 20,000 reports alternating three times on one collector, concurrency 64:
#   sqlite   unsigned 4,637 / 3,376 / 3,059 reports/s, signed 2,486 / 2,322 / 2,227 reports/s
#   postgres unsigned 3,299 / 3,148 / 2,887 reports/s, signed 2,390 / 2,375 / 2,440 reports/s
# (p99 35 to 67 ms unsigned, 61 to 73 ms signed.) Verification is CPU work on the same 2 cores
# as the load generator and the store. On a quiet machine (no other build), 50,000 reports each,
# after the PostgreSQL batch was pipelined (BENCH_STATS_REPORTS=0 bash scripts/bench.d/60-collect.sh):
#   sqlite   unsigned 9,502 reports/s (p99 16.8 ms), signed 5,747 reports/s (p99 22.6 ms)
#   postgres unsigned 6,144 reports/s (p99 14.0 ms), signed 4,142 reports/s (p99 21.0 ms)
# and criterion: sign_report 16.3 µs, verify_report_signature 39.4 µs (./task bench core).
# After the ingest work of issue 13 (schema 7, same command, quiet 2-core machine):
#   sqlite   unsigned 38,466 reports/s (p99 5.8 ms), signed 11,589 reports/s (p99 14.0 ms)
#   postgres unsigned 15,035 reports/s (p99 6.9 ms), signed 10,787 reports/s (p99 12.1 ms)
# Knobs: BENCH_REQUESTS (50000; 0 skips part 1), BENCH_CONCURRENCY (64), BENCH_STATS_REPORTS=0 skips part 2,
# BENCH_HOSTILE (900) hostile reports, BENCH_STORES ("sqlite postgres").
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ttn-lw-telemetry/target}"
export CARGO_RESOLVER_INCOMPATIBLE_RUST_VERSIONS=fallback
requests="${BENCH_REQUESTS:-50000}"
concurrency="${BENCH_CONCURRENCY:-64}"
stats_reports="${BENCH_STATS_REPORTS:-1000000}"
hostile="${BENCH_HOSTILE:-900}"
stores="${BENCH_STORES:-sqlite postgres}"
pg_admin="${TTN_TEST_PG_URL:-postgresql://postgres@127.0.0.1:5432/postgres}"

source scripts/lib.sh
cargo build --release --locked -q -p ttn-telemetry-tests --bin collector-driver
bin="$CARGO_TARGET_DIR/release/collector-driver"
work=$(mktemp -d /tmp/ttn-bench-collect.XXXXXX)
pid=""
dbs=()
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null
  wait
  for d in "${dbs[@]}"; do psql -q "$pg_admin" -c "DROP DATABASE IF EXISTS $d" >/dev/null 2>&1 || echo "warning: could not drop the bench database $d" >&2; done
  rm -rf "$work"
}
trap cleanup EXIT

pg_db() { # creates a fresh database, prints its URI
  local name="ttn_bench_collect_$1_$$"
  psql -q "$pg_admin" -c "CREATE DATABASE $name" >/dev/null || {
    echo "PostgreSQL is unreachable at $pg_admin: start it or set TTN_TEST_PG_URL" >&2; exit 1; }
  dbs+=("$name")
  echo "${pg_admin%/*}/$name"
}

serve() { # serve URI -> sets $url
  serve_bg "$work/serve.out" "$bin" serve --listen 127.0.0.1:0 --database-uri "$1" --no-rate-limit
}

if [ "$requests" != 0 ]; then
for store in $stores; do
  if [ $store = sqlite ]; then uri="sqlite:$work/load.sqlite3"; else uri=$(pg_db load); fi
  serve "$uri"
  "$bin" load --addr "$url" --requests 2000 --concurrency "$concurrency" >/dev/null # warm-up
  printf '%-9s ' "$store"; "$bin" load --addr "$url" --requests "$requests" --concurrency "$concurrency"
  # Issue 14 §2: the same load, each deployment signing its report (the collector verifies each
  # signature and pins each key).
  printf '%-9s ' "$store"; "$bin" load --addr "$url" --requests "$requests" --concurrency "$concurrency" --signed
  stop_bg
done
fi

[ "$stats_reports" = 0 ] && exit 0
days=55
deployments=$(( stats_reports * 11 / 10 / days ))
for store in $stores; do
  if [ $store = sqlite ]; then uri="sqlite:$work/stats.sqlite3"; else uri=$(pg_db stats); fi
  printf '%-9s ' "$store"; "$bin" seed --database-uri "$uri" --deployments "$deployments" --days $days --cli 1000 --hostile "$hostile"
  serve "$uri"
  printf '%-9s ' "$store"; "$bin" stats-time --addr "$url" --runs 20
  # RssFile is the store's file pages mapped in (SQLite reads through mmap): the kernel's to
  # drop; RssAnon is the collector's own memory.
  printf '%-9s collector RSS after the stats runs: %s (peak %s; anonymous %s, file %s)\n' "$store" \
    "$(awk '/^VmRSS/ {print $2, $3}' /proc/$pid/status)" "$(awk '/^VmHWM/ {print $2, $3}' /proc/$pid/status)" \
    "$(awk '/^RssAnon/ {print $2, $3}' /proc/$pid/status)" "$(awk '/^RssFile/ {print $2, $3}' /proc/$pid/status)"
  stop_bg
done
