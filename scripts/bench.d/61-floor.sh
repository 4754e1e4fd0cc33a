#!/usr/bin/env bash
# Ingest near the floor (issue 13), on loopback. The floor is what the hardware allows for
# "read a POST body, append it durably, answer 200": a minimal axum server
# (tests/src/bin/ingest-floor.rs) on SQLite (WAL, synchronous=FULL) and on PostgreSQL
# (synchronous_commit=on), with batched group commits like the collector's stores. Each floor
# and the collector (collector-driver serve: collect::start, the code of `ttn-lw-telemetry
# collect`, rate limits off)
# run alternately, ROUNDS times each, under the same load: wrk -t2 -c64 for SECS seconds,
# POSTing distinct valid reports (each run on a fresh database). Prints reports/s, p50, p99
# per run (with the bytes the server process wrote and the CPU it used per report; on
# PostgreSQL that leaves out the database server's own work), then per store the mean
# reports/s, the worst p99 and the ratio collector/floor of the means.
# Measured on a quiet machine (2 cores; the load generator shares them), 8 s rounds:
#   before (schema 5, 2 rounds):
#     sqlite   collector 11,291 reports/s (p99 15.5 ms), floor 64,684 (p99 13.1 ms): 0.17
#     postgres collector  8,437 reports/s (p99 11.4 ms), floor 42,109 (p99 3.1 ms):  0.20
#   after (schema 6, 3 rounds, 700,000 distinct reports so that no run repeats one):
#     sqlite   collector 52,632 reports/s (p99 54-58 ms), floor 73,587 (p99 4.6-22.7 ms): 0.72
#     postgres collector 26,985 reports/s (p99 4.4-51.5 ms), floor 47,145 (p99 6.0-51.7 ms): 0.57
#   then (schema 7: the uid index in 256 maps; PostgreSQL batches answered after a flush on a
#   second connection; each run settled, see settle), 3 rounds:
#     sqlite   collector 49,402 reports/s (p99 4.9-7.0 ms), floor 81,319 (p99 4.7-4.8 ms): 0.61
#     postgres collector 30,387 reports/s (p99 4.0-4.6 ms), floor 50,524 (p99 2.5-3.8 ms): 0.60
#   (earlier the same day, before the flusher, PostgreSQL gave 0.46-0.51 in three runs, with
#   floors of 40-47k and the collector at 20-22k.)
# p99: wrk corrects for coordinated omission (a request that took S ms adds samples for the
# requests its connection would have sent meanwhile), so one stall of all 64 connections
# weighs as much as every request of its length: one 140 ms stall in 8 s set a p99 of 50-60
# ms. The SQLite collector's stalls (10-140 ms, 3 a run) were its uid index growing (a hash map
# moves every entry at once, at 57k, 115k and 229k uids): now 256 maps that grow apart
# (uid_index.rs). The PostgreSQL rounds' 26-58 ms, floor and collector alike, came from the
# SQLite rounds' writeback and PostgreSQL's checkpoint of the previous run's database: settle.
# What closed the gap:
#   - one uid-keyed structure per report instead of three (schema 6; bytes written per report
#     on SQLite 38 KB -> 14.6 KB), and on SQLite that index kept in memory (-> 3.8 KB; 0.35 ->
#     0.72): a B-tree by uid costs a page at a random place per report, written whole to the
#     WAL and again by the checkpoint;
#   - PostgreSQL: a writer thread of its own (a round trip had waited ~0.5 ms for a turn among
#     the HTTP tasks), 2 round trips a batch with prepared statements, HOT counter updates (the
#     spreads apart; 54,000 dead rows after 8 s before);
#   - everywhere: counter deltas summed without an allocation per bump, SQLite's default page
#     cache (a commit walked all 64 MiB of the old one: 5% of the CPU), mimalloc (1.09x).
# Profile before (perf, SQLite collector, share of its CPU): commit 24% (WAL frames, fsync),
# automatic checkpoint 10%, plan 7%, pcache truncation 6%, HTTP side 42%. After: HTTP side about
# half; the commit (WAL frames and fsync) most of the writer's share.
# PostgreSQL (perf -a and log_min_duration_statement): the server's own CPU is 31-36 us a
# report against the floor's 11-12 (inserting the row and its 3 indexes about a third, the
# latest-report probe a sixth, then the commit, the counters and spreads); one backend does
# a batch at a time under the advisory lock, and 26% of both cores stood idle: the commit's WAL
# flush, about a quarter of a batch's time, held the lock. So a batch now commits with
# synchronous_commit off and is answered once a synchronous commit on a second connection has
# flushed the WAL past it (store/postgres.rs, Flusher): the same durability for every 2xx, the
# flush beside the next batch; 1.3x (20.6k -> 26.8k reports/s in three alternating pairs of
# 8 s runs of the collector alone). The floor keeps its synchronous commit: the plain program
# doing the same I/O. Dropping reports_received gained 4-7%, the primary key 3%: both are
# needed (retention, deletes by id). Sending the next batch's BEGIN,
# lock and reads right behind a batch's COMMIT on the one connection made it 10-15% slower
# (smaller batches, 38-41 us of server CPU a report): left out.
# Tried and left out: checkpoints on a thread of their own (no throughput gain, p99 no better),
# larger checkpoint intervals (p99 23-38 ms), 1 or 2 KiB pages (slower).
# Knobs: BENCH_FLOOR_SECS (8), BENCH_FLOOR_ROUNDS (2), BENCH_FLOOR_BODIES (700000),
# BENCH_CONCURRENCY (64), BENCH_FLOOR_STORES ("sqlite postgres"). Needs wrk (apt package wrk; installed when missing).
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ttn-lw-telemetry/target}"
export CARGO_RESOLVER_INCOMPATIBLE_RUST_VERSIONS=fallback
secs="${BENCH_FLOOR_SECS:-8}"
rounds="${BENCH_FLOOR_ROUNDS:-2}"
nbodies="${BENCH_FLOOR_BODIES:-700000}"
concurrency="${BENCH_CONCURRENCY:-64}"
stores="${BENCH_FLOOR_STORES:-sqlite postgres}"
threads=2
pg_admin="${TTN_TEST_PG_URL:-postgresql://postgres@127.0.0.1:5432/postgres}"

source scripts/lib.sh
need wrk wrk
cargo build --release --locked -q -p ttn-telemetry-tests --bin ingest-floor --bin collector-driver
bin="$CARGO_TARGET_DIR/release/ingest-floor"
driver="$CARGO_TARGET_DIR/release/collector-driver"
work=$(mktemp -d /tmp/ttn-bench-floor.XXXXXX)
pid=""
dbs=()
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null
  wait
  for d in "${dbs[@]}"; do psql -q "$pg_admin" -c "DROP DATABASE IF EXISTS $d" >/dev/null 2>&1 || echo "warning: could not drop the bench database $d" >&2; done
  rm -rf "$work"
}
trap cleanup EXIT

"$bin" bodies --count "$nbodies" >"$work/bodies"
run=0
fresh() { # fresh STORE -> sets $db to a new SQLite file or PostgreSQL database URI
  run=$((run + 1))
  if [ "$1" = sqlite ]; then db="$work/run$run.sqlite3"; return; fi
  local name="ttn_bench_floor_${run}_$$"
  psql -q "$pg_admin" -c "CREATE DATABASE $name" >/dev/null || {
    echo "PostgreSQL is unreachable at $pg_admin: start it or set TTN_TEST_PG_URL" >&2; exit 1; }
  dbs+=("$name")
  db="${pg_admin%/*}/$name"
}

# Puts the previous runs' writes on disk before a run starts, so that no run's fsyncs wait
# behind another's writeback (the page cache's, and PostgreSQL's checkpoint of the last run's
# database): without it, the PostgreSQL rounds after the SQLite ones (a GB of dirty pages each)
# had p99s of 26-58 ms, floor and collector alike, against 3-6 ms when run alone.
settle() {
  [ "$1" = postgres ] && psql -q "$pg_admin" -c CHECKPOINT >/dev/null
  sync
}

measure() { # measure STORE WHAT ROUND -> appends "rps p50 p99" to $work/STORE.WHAT
  local store=$1 what=$2 url=""
  fresh "$store"
  settle "$store"
  case "$what.$store" in
    floor.sqlite) serve_bg "$work/serve.out" "$bin" sqlite --path "$db" ;;
    floor.postgres) serve_bg "$work/serve.out" "$bin" postgres --uri "$db" ;;
    collector.sqlite) serve_bg "$work/serve.out" "$driver" serve --no-rate-limit --database-uri "sqlite:$db" ;;
    # sslmode=disable: the floor talks plain TCP to PostgreSQL, so the collector does too (its
    # default, libpq's prefer, would use TLS where the server offers it: work the floor skips).
    collector.postgres) serve_bg "$work/serve.out" "$driver" serve --no-rate-limit --database-uri "$db?sslmode=disable" ;;
  esac
  local out
  out=$(wrk -t"$threads" -c"$concurrency" -d"${secs}s" --timeout 10s -s scripts/bench.d/wrk-post.lua "$url" -- "$work/bodies" "$threads")
  # What the server process did for it: bytes written (all files: WAL, checkpoints) and CPU
  # time (user + system), per report. They explain a ratio (see the store docs).
  local wchar ticks
  wchar=$(awk '/^wchar:/ { print $2 }' "/proc/$pid/io")
  ticks=$(awk '{ print $14 + $15 }' "/proc/$pid/stat")
  stop_bg
  read -r _ n dur p50 p99 errors <<<"$(grep '^RESULT' <<<"$out")"
  [ "$errors" = 0 ] || { echo "$what on $store: $errors failed or non-2xx requests" >&2; echo "$out" >&2; tail -n 5 "$work/serve.out" >&2; exit 1; }
  local rps
  rps=$(awk -v n="$n" -v d="$dur" 'BEGIN { printf "%.0f", n / d }')
  local per
  per=$(awk -v w="$wchar" -v t="$ticks" -v n="$n" -v hz="$(getconf CLK_TCK)" \
    'BEGIN { printf "%.0f B written, %.0f us CPU per report", w / n, t * 1e6 / hz / n }')
  printf '%-8s %-9s round %s: %7s reports/s, p50 %6.2f ms, p99 %6.2f ms (%s requests in %.1f s; %s)%s\n' \
    "$store" "$what" "$3" "$rps" "$p50" "$p99" "$n" "$dur" "$per" \
    "$([ "$n" -gt "$nbodies" ] && echo ", bodies reused: raise BENCH_FLOOR_BODIES")"
  echo "$rps $p50 $p99" >>"$work/$store.$what"
}

echo "wrk -t$threads -c$concurrency -d${secs}s, $nbodies distinct reports, $rounds rounds each, alternating"
for store in $stores; do
  for r in $(seq "$rounds"); do
    measure "$store" floor "$r"
    measure "$store" collector "$r"
  done
done
for store in $stores; do
  paste "$work/$store.collector" "$work/$store.floor" | awk -v s="$store" '
    { c += $1; f += $4; k++; if ($3 > cp) cp = $3; if ($6 > fp) fp = $6 }
    END { printf "%-8s collector %.0f reports/s (worst p99 %.2f ms), floor %.0f reports/s (worst p99 %.2f ms): collector/floor = %.2f\n",
      s, c / k, cp, f / k, fp, c / f }'
done
