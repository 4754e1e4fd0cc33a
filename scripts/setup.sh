# Sourced by ./task: installs what the tests need on a fresh machine of this kind, and makes
# sure PostgreSQL and Redis answer on loopback. Exports where they are:
#   TTN_TEST_PG_URL     admin connection URL (tests create their own databases through it)
#   TTN_TEST_REDIS_URL  redis://host:port (tests use their own key namespaces)
# It never skips: when something cannot be had, it stops with a message saying what to do.

need_targets=(thumbv7em-none-eabihf wasm32-unknown-unknown)
installed=$(rustup target list --installed)
for t in "${need_targets[@]}"; do
  grep -qx "$t" <<<"$installed" || rustup target add "$t"
done

apt_updated=""
apt_install() {
  if [ -z "$apt_updated" ]; then apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}

# PostgreSQL: use the one on 127.0.0.1:5432 if it answers; else start the packaged cluster;
# else initdb a throwaway cluster on a free port.
pg_ready() { pg_isready -q -h "$1" -p "$2" 2>/dev/null; }
command -v pg_isready >/dev/null || apt_install postgresql
if [ -z "${TTN_TEST_PG_URL:-}" ]; then
  if ! pg_ready 127.0.0.1 5432 && [ -d /etc/postgresql ]; then
    if ! pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start; then
      echo "note: the packaged PostgreSQL cluster did not start; using a throwaway cluster instead" >&2
    fi
    for _ in $(seq 20); do pg_ready 127.0.0.1 5432 && break; sleep 0.5; done
  fi
  if pg_ready 127.0.0.1 5432; then
    export TTN_TEST_PG_URL="postgresql://postgres@127.0.0.1:5432/postgres"
  else
    pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
    [ -n "$pgbin" ] || { echo "PostgreSQL server binaries are missing: apt-get install postgresql" >&2; exit 1; }
    pgdir=$(mktemp -d /tmp/ttn-pg.XXXXXX)
    if [ "$(id -u)" = 0 ]; then chown postgres "$pgdir"; fi
    as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
    as_pg "$pgbin/initdb" -D "$pgdir/data" -U postgres -A trust >/dev/null
    as_pg "$pgbin/pg_ctl" -D "$pgdir/data" -o "-p 55432 -k $pgdir -c listen_addresses=127.0.0.1" -l "$pgdir/log" -w start >/dev/null
    export TTN_TEST_PG_URL="postgresql://postgres@127.0.0.1:55432/postgres"
  fi
fi
echo "PostgreSQL: ${TTN_TEST_PG_URL}"

# Redis: the one on 127.0.0.1:6379, else a throwaway instance that keeps nothing on disk.
command -v redis-server >/dev/null || apt_install redis-server redis-tools
if [ -z "${TTN_TEST_REDIS_URL:-}" ]; then
  if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    redis-server --port 6379 --bind 127.0.0.1 --save '' --appendonly no --daemonize yes >/dev/null
    for _ in $(seq 20); do redis-cli -p 6379 ping >/dev/null 2>&1 && break; sleep 0.25; done
  fi
  redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null || { echo "Redis does not answer on 127.0.0.1:6379 and could not be started" >&2; exit 1; }
  export TTN_TEST_REDIS_URL="redis://127.0.0.1:6379"
fi
echo "Redis: ${TTN_TEST_REDIS_URL}"
