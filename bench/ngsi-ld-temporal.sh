#!/usr/bin/env bash
# Issue 19's temporal aggregation figures: `civic demo` (release build) on
# SQLite or PostgreSQL, in a fresh directory, and
# bench/ngsi-ld-temporal.py against its broker (1,000,000 observations
# loaded through the temporal API, then aggregated, with DuckDB beside it
# as the peer and the oracle). The JSON goes to stdout and to
# bench/results/ngsi-ld-temporal-<backend>.json.
#
#   bench/ngsi-ld-temporal.sh [sqlite|postgres] [SENSORS] [PER_SENSOR]
#
# CIVIC_BIN runs a `civic` already built instead of building the release.
set -euo pipefail
cd "$(dirname "$0")/.."

backend=${1:-sqlite}
sensors=${2:-100}
per_sensor=${3:-10000}
db_name=civic_ngsild_temporal
python3 -c 'import duckdb' 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check duckdb==2.0.1
# shellcheck source=bench/ngsi-ld-demo.sh
. bench/ngsi-ld-demo.sh
extra_args=()
[ "$backend" = sqlite ] && extra_args=(--sqlite "$dir/civic.db")
mkdir -p bench/results
python3 bench/ngsi-ld-temporal.py "http://127.0.0.1:$port/ngsi-ld/v1" --sensors "$sensors" \
    --per-sensor "$per_sensor" --pid "$demo_pid" "${extra_args[@]}" \
    | tee "bench/results/ngsi-ld-temporal-$backend.json"
