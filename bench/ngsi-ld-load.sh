#!/usr/bin/env bash
# Issue 19's load figures: `civic demo` (release build) on SQLite or
# PostgreSQL, in a fresh directory, and the load driver
# (crates/cli/examples/ngsi_load.rs, release build) against its broker
# (batch upsert, single updates, `q=` and `near` queries, 64 in flight,
# the demo's memory). The JSON goes to stdout and to
# bench/results/ngsi-ld-load-<backend>.json.
#
#   bench/ngsi-ld-load.sh [sqlite|postgres] [ENTITIES] [SECONDS]
#
# CIVIC_BIN runs a `civic` already built instead of building the release.
set -euo pipefail
cd "$(dirname "$0")/.."

backend=${1:-sqlite}
entities=${2:-100000}
seconds=${3:-15}
db_name=civic_ngsild_load
# shellcheck source=bench/ngsi-ld-demo.sh
. bench/ngsi-ld-demo.sh
mkdir -p bench/results
cargo build --release --locked -p civic-cli --example ngsi_load
"$CARGO_TARGET_DIR/release/examples/ngsi_load" --broker "http://127.0.0.1:$port/ngsi-ld/v1" \
    --entities "$entities" --seconds "$seconds" --in-flight 64 --pid "$demo_pid" \
    | tee "bench/results/ngsi-ld-load-$backend.json"
