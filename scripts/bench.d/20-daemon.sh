#!/usr/bin/env bash
# Idle footprint of the agent: `ttn-lw-telemetry run` (release) with its schedule in a state
# directory and its admin listener, counting the demo's example database when a report is due
# (not while idle: the first report is due one interval, 24h, after the first start). Prints its
# resident memory (target: at most 15 MB) and the CPU time and context switches it used while
# idle over IDLE_SECONDS (default 30; target: no busy polling, i.e. about zero).
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ttn-lw-telemetry/target}"
export CARGO_RESOLVER_INCOMPATIBLE_RUST_VERSIONS=fallback
idle=${IDLE_SECONDS:-30}

cargo build --release --locked -q -p ttn-lw-telemetry
bin="$CARGO_TARGET_DIR/release/ttn-lw-telemetry"
state=$(mktemp -d)
trap 'if [ -n "${pid:-}" ] && kill -0 "$pid" 2>/dev/null; then kill "$pid"; fi; rm -rf "$state"' EXIT
# The demo makes the example database under its state directory (and sends on loopback only).
(cd "$state" && "$bin" demo >/dev/null)
(cd "$state" && exec "$bin" run --is.database-uri "sqlite:.ttn-lw-telemetry/demo/is.sqlite" \
  --telemetry.target http://127.0.0.1:9/collect --telemetry.admin.listen 127.0.0.1:0) 2>"$state/log" &
pid=$!

sleep 2
kill -0 "$pid" || { cat "$state/log"; echo "daemon died" >&2; exit 1; }
cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
switches() { awk '/^(voluntary|nonvoluntary)_ctxt_switches/ {s += $2} END {print s}' /proc/"$pid"/task/*/status; }
c0=$(cpu); s0=$(switches)
sleep "$idle"
c1=$(cpu); s1=$(switches)
rss=$(ps -o rss= -p "$pid" | tr -d ' ')
threads=$(ls /proc/"$pid"/task | wc -l)
hz=$(getconf CLK_TCK)

echo "daemon (ttn-lw-telemetry run) idle RSS: ${rss} KiB ($(( rss / 1024 )) MiB; target <= 15 MB), threads: $threads"
echo "daemon idle CPU over ${idle}s: $(( c1 - c0 )) ticks of 1/${hz}s; context switches: $(( s1 - s0 ))"
