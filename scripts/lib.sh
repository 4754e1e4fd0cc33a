# Sourced by the other scripts: the one place that installs packages and starts services.
#   need CMD PKG...         installs the Debian packages PKG when the command CMD is missing
#   apt_install PKG...      installs Debian packages (apt-get update once per shell)
#   need_rust_targets T...  adds the rustup targets that are missing
#   start_postgres          exports TTN_TEST_PG_URL (unless set): see below
#   start_redis             exports TTN_TEST_REDIS_URL (unless set): see below
# Nothing here skips: what cannot be had stops the caller with a message saying what to do.

: "${ttn_apt_updated:=}"
apt_install() {
  if [ -z "$ttn_apt_updated" ]; then apt-get update -qq; ttn_apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}

need() {
  command -v "$1" >/dev/null || apt_install "${@:2}"
}

need_rust_targets() {
  local installed t
  installed=$(rustup target list --installed)
  for t in "$@"; do
    grep -qx "$t" <<<"$installed" || rustup target add "$t"
  done
}

ttn_pg_ready() { pg_isready -q -h 127.0.0.1 -p "$1" 2>/dev/null; }
ttn_port_taken() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# PostgreSQL: the server on 127.0.0.1:5432 if it answers; else the packaged cluster, started;
# else a throwaway cluster of our own. That one lives in a fixed directory (TTN_PG_DIR, default
# ~/.cache/ttn-lw-telemetry/postgres; under the postgres user's home when running as root, since
# the server then runs as postgres) with its port in `port`, and it is reused while it runs: a
# second run neither collides with it nor starts another. `pg_ctl -D DIR/data stop` stops it.
start_postgres() {
  need pg_isready postgresql
  [ -n "${TTN_TEST_PG_URL:-}" ] && return
  if ! ttn_pg_ready 5432 && [ -d /etc/postgresql ]; then
    if ! pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start; then
      echo "note: the packaged PostgreSQL cluster did not start; using a throwaway cluster instead" >&2
    fi
    for _ in $(seq 20); do ttn_pg_ready 5432 && break; sleep 0.5; done
  fi
  if ttn_pg_ready 5432; then
    export TTN_TEST_PG_URL="postgresql://postgres@127.0.0.1:5432/postgres"
    return
  fi
  local pgbin dir port as_pg=()
  pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
  [ -n "$pgbin" ] || { echo "PostgreSQL server binaries are missing: apt-get install postgresql" >&2; exit 1; }
  if [ "$(id -u)" = 0 ]; then
    as_pg=(runuser -u postgres --)
    dir="${TTN_PG_DIR:-$(getent passwd postgres | cut -d: -f6)/ttn-lw-telemetry-throwaway}"
  else
    dir="${TTN_PG_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ttn-lw-telemetry/postgres}"
  fi
  "${as_pg[@]}" mkdir -p "$dir"
  port=""
  if [ -f "$dir/port" ]; then port=$(cat "$dir/port"); fi
  if [ -n "$port" ] && ttn_pg_ready "$port"; then
    echo "reusing the throwaway PostgreSQL cluster in $dir" >&2
  else
    [ -f "$dir/data/PG_VERSION" ] || "${as_pg[@]}" "$pgbin/initdb" -D "$dir/data" -U postgres -A trust >/dev/null
    # Its old port if still free, else the first free one from 55432 on.
    if [ -z "$port" ] || ttn_port_taken "$port"; then
      port=55432
      while ttn_port_taken "$port"; do port=$((port + 1)); done
    fi
    "${as_pg[@]}" "$pgbin/pg_ctl" -D "$dir/data" -l "$dir/log" -w start \
      -o "-p $port -k $dir -c listen_addresses=127.0.0.1" >/dev/null \
      || { echo "the throwaway PostgreSQL cluster in $dir did not start: see $dir/log" >&2; exit 1; }
    echo "$port" | "${as_pg[@]}" tee "$dir/port" >/dev/null
    echo "started a throwaway PostgreSQL cluster in $dir on port $port (stop: pg_ctl -D $dir/data stop)" >&2
  fi
  export TTN_TEST_PG_URL="postgresql://postgres@127.0.0.1:$port/postgres"
}

# Redis: the one on 127.0.0.1:6379 (started when none answers), keeping nothing on disk.
start_redis() {
  need redis-server redis-server redis-tools
  [ -n "${TTN_TEST_REDIS_URL:-}" ] && return
  if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    redis-server --port 6379 --bind 127.0.0.1 --save '' --appendonly no --daemonize yes >/dev/null
    for _ in $(seq 20); do redis-cli -p 6379 ping >/dev/null 2>&1 && break; sleep 0.25; done
  fi
  redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null || { echo "Redis does not answer on 127.0.0.1:6379 and could not be started" >&2; exit 1; }
  export TTN_TEST_REDIS_URL="redis://127.0.0.1:6379"
}

# Starts a server (a command that prints `listening URL` once bound) in the background, its
# output in OUT, and waits for that line (10 s at most): sets $pid and $url, or shows the
# output and fails.
serve_bg() { # serve_bg OUT COMMAND [ARGS...]
  local out=$1
  shift
  "$@" >"$out" 2>&1 &
  pid=$!
  url=""
  for _ in $(seq 100); do
    url=$(sed -n 's/^listening //p' "$out")
    [ -n "$url" ] && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "$1 did not start:" >&2
  cat "$out" >&2
  exit 1
}

# Stops the server serve_bg started (SIGTERM) and waits for it: it must exit 0 or by that
# signal (status 143); any other status fails the step.
stop_bg() {
  local rc=0
  kill "$pid"
  wait "$pid" 2>/dev/null || rc=$?
  pid=""
  case "$rc" in
    0 | 143) ;;
    *) echo "the server exited with status $rc" >&2; exit 1 ;;
  esac
}
