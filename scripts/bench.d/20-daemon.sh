#!/usr/bin/env bash
# Idle footprint of the agent's daemon: the run loop, the schedule (state directory) and the
# admin listener, as built by examples/mini_agent.rs (release). Prints its resident memory
# (target: at most 15 MB) and the CPU time and context switches it used while idle over
# IDLE_SECONDS (default 30; target: no busy polling, i.e. about zero).
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ttn-lw-telemetry/target}"
export CARGO_RESOLVER_INCOMPATIBLE_RUST_VERSIONS=fallback
idle=${IDLE_SECONDS:-30}

cargo build --release --locked -q -p ttn-lw-telemetry --example mini_agent
bin="$CARGO_TARGET_DIR/release/examples/mini_agent"
state=$(mktemp -d)
MINI_AGENT_STATE_DIR="$state/state" MINI_AGENT_INTERVAL_MS=86400000 \
  MINI_AGENT_ADMIN=127.0.0.1:0 "$bin" 2>"$state/log" &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$state"' EXIT

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

echo "daemon idle RSS: ${rss} KiB ($(( rss / 1024 )) MiB; target <= 15 MB), threads: $threads"
echo "daemon idle CPU over ${idle}s: $(( c1 - c0 )) ticks of 1/${hz}s; context switches: $(( s1 - s0 ))"
