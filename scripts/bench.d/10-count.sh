#!/usr/bin/env bash
# Counting benchmark (issue 3, SPEC §4). Loads a fresh PostgreSQL database with the TTS IS
# schema and indexes, 2,000,000 end devices, 200,000 gateways, 100,000 applications, 50,000
# users and 10,000 organizations, then times on that same database, in one hyperfine run:
#   agent      `ttn-lw-telemetry preview` (release binary): connect, one snapshot, five passes
#   reference  the Go reference implementation's eleven separate queries (psql, one connection)
#   floor      one plain pass per table over the columns the counts need (psql, one connection)
# and prints medians, the ratios (targets: reference/agent >= 3, agent/floor <= 1.3) and the
# release binary's size.
#
# Environment: TTN_BENCH_PG_URL (admin URL; default TTN_TEST_PG_URL, else the local server),
# TTN_BENCH_RUNS (default 15), TTN_BENCH_KEEP=1 keeps the database afterwards, and
# TTN_BENCH_REUSE=1 times a database kept by an earlier run instead of loading it again.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ttn-lw-telemetry/target}"
export CARGO_RESOLVER_INCOMPATIBLE_RUST_VERSIONS=fallback

if [ -z "${TTN_BENCH_PG_URL:-${TTN_TEST_PG_URL:-}}" ]; then
  # shellcheck source=../setup.sh
  source scripts/setup.sh
fi
admin="${TTN_BENCH_PG_URL:-${TTN_TEST_PG_URL:-postgresql://postgres@127.0.0.1:5432/postgres}}"
source scripts/lib.sh
need hyperfine hyperfine
need psql postgresql-client

db=ttn_bench_count
export PGOPTIONS="-c client_min_messages=warning"
# The admin URL with its database name replaced (keeps user, host, port and query).
url=$(python3 - "$admin" "$db" <<'EOF'
import sys, urllib.parse as u
p = u.urlsplit(sys.argv[1])
print(u.urlunsplit(p._replace(path="/" + sys.argv[2])))
EOF
)
runs="${TTN_BENCH_RUNS:-15}"
work=$(mktemp -d /tmp/ttn-bench-count.XXXXXX)
cleanup() {
  rm -rf "$work"
  if [ "${TTN_BENCH_KEEP:-}" != 1 ]; then
    psql -X -q -d "$admin" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || echo "warning: could not drop the bench database $db" >&2
  fi
}
trap cleanup EXIT

echo "== building the release binary"
cargo build --release --locked -q -p ttn-lw-telemetry
bin="$CARGO_TARGET_DIR/release/ttn-lw-telemetry"

if [ "${TTN_BENCH_REUSE:-}" = 1 ] && psql -X -q -d "$url" -c "SELECT 1 FROM end_devices LIMIT 1" >/dev/null 2>&1; then
  echo "== reusing $db"
else
echo "== loading $db (schema, then rows, then the TTS indexes)"
start=$(date +%s)
psql -X -q -d "$admin" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db" >/dev/null
schema=host-native/sql/is-schema.postgres.sql
# Tables first, indexes after the rows: the same end state, loaded much faster.
grep -v '^CREATE .*INDEX' "$schema" | psql -X -q -v ON_ERROR_STOP=1 -d "$url"
psql -X -q -v ON_ERROR_STOP=1 -d "$url" <<'EOF'
SET TIME ZONE 'UTC';
INSERT INTO applications (application_id, created_at, updated_at, deleted_at)
  SELECT 'app-' || i, now() - interval '400 days', now(),
         CASE WHEN i % 50 = 0 THEN now() - interval '3 days' END
  FROM generate_series(1, 100000) i;
-- Users and organizations come with their accounts rows, as TTS writes them.
WITH o AS (
  INSERT INTO organizations (name, created_at, updated_at, deleted_at)
    SELECT 'Organization ' || i, now() - interval '300 days', now(),
           CASE WHEN i % 40 = 0 THEN now() - interval '9 days' END
    FROM generate_series(1, 10000) i
    RETURNING id, name, created_at, updated_at, deleted_at)
INSERT INTO accounts (created_at, updated_at, deleted_at, uid, account_id, account_type)
  SELECT created_at, updated_at, deleted_at, 'org-' || substr(name, 14), id, 'organization' FROM o;
WITH u AS (
  INSERT INTO users (primary_email_address, admin, name, created_at, updated_at, deleted_at,
                     password, password_updated_at, require_password_update, state)
    SELECT 'user' || i || '@example.com', i % 100 = 0, 'User ' || i, now() - interval '200 days', now(),
           CASE WHEN i % 60 = 0 THEN now() - interval '5 days' END,
           '', now() - interval '200 days', false, 1
    FROM generate_series(1, 50000) i
    RETURNING id, name, created_at, updated_at, deleted_at)
INSERT INTO accounts (created_at, updated_at, deleted_at, uid, account_id, account_type)
  SELECT created_at, updated_at, deleted_at, 'user-' || substr(name, 6), id, 'user' FROM u;
-- Plans as operators set them: mostly one, some several, one listed twice, stray spaces, none.
INSERT INTO gateways (gateway_id, gateway_eui, name, frequency_plan_id, created_at, updated_at, deleted_at,
                      auto_update, status_public, location_public, schedule_downlink_late, enforce_duty_cycle)
  SELECT 'gw-' || i, lpad(to_hex(i), 16, '0'), 'Gateway ' || i,
         (ARRAY['EU_863_870_TTN', 'EU_863_870_TTN', 'EU_863_870', 'US_902_928_FSB_2', 'AU_915_928_FSB_2',
                'AS_923', 'IN_865_867', 'EU_863_870 EU_863_870_TTN', 'US_902_928_FSB_2 US_902_928_FSB_2',
                ' KR_920_923  ', NULL, 'EU_863_870_TTN'])[1 + i % 12],
         now() - interval '300 days', now(),
         CASE WHEN i % 100 = 0 THEN now() - interval '10 days' END,
         false, false, false, false, true
  FROM generate_series(1, 200000) i;
-- Devices: 15% never seen (a third of those activated), the rest seen up to 90 days ago.
INSERT INTO end_devices (application_id, device_id, join_eui, dev_eui, name, created_at, updated_at,
                         activated_at, last_seen_at)
  SELECT 'app-' || (1 + i % 100000), 'dev-' || i, '70B3D57ED0000000', lpad(to_hex(i), 16, '0'),
         'Device ' || i, now() - interval '500 days', now(),
         CASE WHEN i % 20 < 2 THEN NULL ELSE now() - (i % 97) * interval '1 day' END,
         CASE WHEN i % 20 < 3 THEN NULL
              ELSE now() - ((i::bigint * 7919) % (90 * 24 * 60)) * interval '1 minute' END
  FROM generate_series(1, 2000000) i;
EOF
grep '^CREATE .*INDEX' "$schema" | psql -X -q -v ON_ERROR_STOP=1 -d "$url"
psql -X -q -d "$url" -c "VACUUM ANALYZE" >/dev/null
echo "loaded in $(( $(date +%s) - start )) s"
fi
echo "database size: $(psql -X -At -d "$url" -c "SELECT pg_size_pretty(pg_database_size(current_database()))")"

# The reference implementation: eleven separate statements, no transaction.
cat >"$work/reference.sql" <<'EOF'
SELECT count(*) FROM applications WHERE deleted_at IS NULL;
SELECT count(*) FROM end_devices;
SELECT count(*) FROM end_devices WHERE last_seen_at IS NOT NULL;
SELECT count(*) FROM end_devices WHERE last_seen_at > now() - interval '1 day';
SELECT count(*) FROM end_devices WHERE last_seen_at > now() - interval '7 days';
SELECT count(*) FROM end_devices WHERE last_seen_at > now() - interval '1 month';
SELECT count(*) FROM gateways WHERE deleted_at IS NULL;
SELECT fp, count(*) FROM (SELECT unnest(string_to_array(coalesce(frequency_plan_id, ''), ' ')) AS fp
  FROM gateways WHERE deleted_at IS NULL) s GROUP BY fp;
SELECT count(*) FROM users WHERE deleted_at IS NULL AND admin;
SELECT count(*) FROM users WHERE deleted_at IS NULL AND NOT admin;
SELECT count(*) FROM organizations WHERE deleted_at IS NULL;
EOF
# The floor: one plain pass per table over the columns the counts need.
cat >"$work/floor.sql" <<'EOF'
SELECT count(*), count(last_seen_at) FROM end_devices;
SELECT count(*), count(frequency_plan_id) FROM gateways WHERE deleted_at IS NULL;
SELECT count(*) FROM applications WHERE deleted_at IS NULL;
SELECT count(*), count(admin) FROM users WHERE deleted_at IS NULL;
SELECT count(*) FROM organizations WHERE deleted_at IS NULL;
EOF

echo "== the agent's report on this database"
"$bin" preview --pretty --is.database-uri "$url" 2>/dev/null | sed -n '/entities_count/,$p'

echo "== timing ($runs runs each, 3 warm-ups)"
hyperfine -N --warmup 3 --runs "$runs" --export-json "$work/times.json" \
  -n agent "$bin preview --is.database-uri $url" \
  -n reference "psql -X -q -o /dev/null -d $url -f $work/reference.sql" \
  -n floor "psql -X -q -o /dev/null -d $url -f $work/floor.sql" >"$work/hyperfine.txt" 2>&1 \
  || { cat "$work/hyperfine.txt"; exit 1; }

size=$(stat -c %s "$bin")
strip -o "$work/stripped" "$bin"
stripped=$(stat -c %s "$work/stripped")
python3 - "$work/times.json" "$size" "$stripped" <<'EOF'
import json, sys
res = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
med = {k: r["median"] * 1000 for k, r in res.items()}
for k in ("agent", "reference", "floor"):
    r = res[k]
    print(f"{k:>10}: median {med[k]:8.1f} ms   (min {r['min']*1000:.1f}, max {r['max']*1000:.1f})")
speedup = med["reference"] / med["agent"]
over_floor = med["agent"] / med["floor"]
print(f"reference / agent = {speedup:.2f}x   (target >= 3)   {'OK' if speedup >= 3 else 'MISSED'}")
print(f"agent / floor     = {over_floor:.2f}x   (target <= 1.3) {'OK' if over_floor <= 1.3 else 'MISSED'}")
print(f"release binary: {int(sys.argv[2])/1e6:.2f} MB ({int(sys.argv[3])/1e6:.2f} MB stripped)")
EOF
