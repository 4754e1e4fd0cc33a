# Sourced by ./task test and the benchmarks: installs what the tests need on a fresh machine of
# this kind, and makes sure PostgreSQL and Redis answer on loopback. Exports where they are:
#   TTN_TEST_PG_URL     admin connection URL (tests create their own databases through it)
#   TTN_TEST_REDIS_URL  redis://host:port (tests use their own key namespaces)
# It never skips: when something cannot be had, it stops with a message saying what to do.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

need_rust_targets thumbv7em-none-eabihf wasm32-unknown-unknown
# The golden vectors' independent oracle (tests/golden/oracle.py, run by tests/tests/golden.rs).
need python3 python3
start_postgres
echo "PostgreSQL: ${TTN_TEST_PG_URL}"
start_redis
echo "Redis: ${TTN_TEST_REDIS_URL}"
