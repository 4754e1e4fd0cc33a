#!/usr/bin/env bash
# Runs every benchmark and prints its figures: criterion for the core, then each
# scripts/bench.d/*.sh (database counting, daemon resources, wasm sizes, collector load, the
# collector against its ingest floor).
# Usage: scripts/bench.sh [NAME-FILTER]   e.g. scripts/bench.sh core
set -euo pipefail
cd "$(dirname "$0")/.."
filter=${1:-}
if [ -z "$filter" ] || [ "$filter" = core ]; then
  echo "== core (criterion): medians are the middle figure of each 'time:' line"
  cargo bench --locked -p ttn-telemetry-core --bench core -- --noplot 2>&1 | grep -E -B1 "time:" | grep -v -e "^--$" -e Analyzing
fi
for b in scripts/bench.d/*.sh; do
  [ -e "$b" ] || continue
  case "$b" in *"$filter"*) ;; *) continue ;; esac
  echo "== $b"
  bash "$b"
done
