#!/usr/bin/env bash
# Issue 19's load figures: `civic demo` (release build) on SQLite or
# PostgreSQL, in a fresh directory, and bench/ngsi-ld-load.py against its
# broker (batch upsert, single updates, `q=` and `near` queries, 64 in
# flight, the demo's memory). The JSON goes to stdout and to
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
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${HOME:-/root}/.cache/civic-data-hub/target}"
if [ -z "${CIVIC_BIN:-}" ]; then
    cargo build --release --locked -p civic-cli --bin civic
    CIVIC_BIN="$CARGO_TARGET_DIR/release/civic"
fi

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
dir=$(mktemp -d)
demo_pid=
cleanup() {
    [ -n "$demo_pid" ] && kill "$demo_pid" 2>/dev/null && wait "$demo_pid" 2>/dev/null
    rm -rf "$dir"
}
trap cleanup EXIT

extra=()
if [ "$backend" = postgres ]; then
    base_url="${CIVIC_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
    psql "$base_url" -qc 'DROP DATABASE IF EXISTS civic_ngsild_load' -c 'CREATE DATABASE civic_ngsild_load' >/dev/null
    extra=(--database-url "${base_url%/*}/civic_ngsild_load")
fi

RUST_LOG=warn "$CIVIC_BIN" demo --addr "127.0.0.1:$port" --data-dir "$dir" \
    --sim-people 300 --sim-days 3 "${extra[@]}" >"$dir/demo.log" 2>&1 &
demo_pid=$!
for _ in $(seq 1 120); do
    curl -sf -o /dev/null "http://127.0.0.1:$port/ngsi-ld/v1/types" && break
    kill -0 "$demo_pid" 2>/dev/null || { cat "$dir/demo.log"; exit 1; }
    sleep 1
done
mkdir -p bench/results
python3 bench/ngsi-ld-load.py "http://127.0.0.1:$port/ngsi-ld/v1" --entities "$entities" \
    --seconds "$seconds" --in-flight 64 --pid "$demo_pid" | tee "bench/results/ngsi-ld-load-$backend.json"
