#!/usr/bin/env bash
# The ETSI NGSI-LD conformance suite (../shared/ngsi-ld-test-suite, through
# ../shared/ngsi-ld-conformance/run.sh) against the broker of `civic demo`,
# on SQLite or PostgreSQL, sampling the demo's resident memory while the
# suite runs (issue 19's target: <= 64 MiB for the broker's part).
#
#   bench/ngsi-ld.sh [sqlite|postgres] [TESTS...]
#
# TESTS are suite paths (default: the areas the broker implements; `all`
# for the whole suite). CIVIC_BIN runs a `civic` already built (e.g. the
# debug one) instead of building the release. The summary goes to stdout,
# the suite's files to /tmp/ngsi-ld-conformance-results, the figures to
# bench/results/ngsi-ld-<backend>.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

backend=${1:-sqlite}
shift || true
if [ $# -eq 0 ]; then
    set -- TP/NGSI-LD/CommonBehaviours \
        TP/NGSI-LD/ContextInformation/Provision/Entities \
        TP/NGSI-LD/ContextInformation/Provision/EntityAttributes \
        TP/NGSI-LD/ContextInformation/Provision/BatchEntities \
        TP/NGSI-LD/ContextInformation/Provision/PurgeEntities \
        TP/NGSI-LD/ContextInformation/Consumption/Entity \
        TP/NGSI-LD/ContextInformation/Consumption/Discovery \
        TP/NGSI-LD/jsonldContext
elif [ "$1" = all ]; then
    set -- TP/NGSI-LD
fi

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${HOME:-/root}/.cache/civic-data-hub/target}"
if [ -z "${CIVIC_BIN:-}" ]; then
    cargo build --release --locked -p civic-cli --bin civic
    CIVIC_BIN="$CARGO_TARGET_DIR/release/civic"
fi

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
dir=$(mktemp -d)
demo_pid=
sampler_pid=
cleanup() {
    [ -n "$sampler_pid" ] && kill "$sampler_pid" 2>/dev/null
    [ -n "$demo_pid" ] && kill "$demo_pid" 2>/dev/null && wait "$demo_pid" 2>/dev/null
    rm -rf "$dir"
}
trap cleanup EXIT

extra=()
if [ "$backend" = postgres ]; then
    base_url="${CIVIC_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
    psql "$base_url" -qc 'DROP DATABASE IF EXISTS civic_ngsild' -c 'CREATE DATABASE civic_ngsild' >/dev/null
    extra=(--database-url "${base_url%/*}/civic_ngsild")
fi

RUST_LOG=warn "$CIVIC_BIN" demo --addr "127.0.0.1:$port" --data-dir "$dir" \
    --sim-people 300 --sim-days 3 "${extra[@]}" >"$dir/demo.log" 2>&1 &
demo_pid=$!
for _ in $(seq 1 120); do
    curl -sf -o /dev/null "http://127.0.0.1:$port/ngsi-ld/v1/types" && break
    kill -0 "$demo_pid" 2>/dev/null || { cat "$dir/demo.log"; exit 1; }
    sleep 1
done
rss() { awk '/VmRSS/ {print $2}' "/proc/$demo_pid/status" 2>/dev/null || echo 0; }
start_kib=$(rss)
(peak=0; while kill -0 "$demo_pid" 2>/dev/null; do
    r=$(rss); [ "${r:-0}" -gt "$peak" ] && peak=$r && echo "$peak" >"$dir/peak"
    sleep 1
done) &
sampler_pid=$!

status=0
CORE_CONTEXT=https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld \
    TESTS="$*" BROKER_URL="http://127.0.0.1:$port" \
    ../shared/ngsi-ld-conformance/run.sh | tee "$dir/run.log" | grep -E '^(  OVERALL|  [A-Za-z]|RESULT|Per )' || status=$?
peak_kib=$(cat "$dir/peak" 2>/dev/null || echo 0)
mkdir -p bench/results
{
    echo "backend=$backend commit=$(git rev-parse --short HEAD) binary=$CIVIC_BIN"
    echo "tests: $*"
    grep -E '^(  OVERALL|Per |  [A-Za-z])' /tmp/ngsi-ld-conformance-results/summary.txt 2>/dev/null || true
    grep -E '^RESULT' "$dir/run.log" || true
    echo "demo resident memory: $((start_kib / 1024)) MiB before the suite, peak $((peak_kib / 1024)) MiB while it ran"
} | tee "bench/results/ngsi-ld-$backend.txt"
exit $status
