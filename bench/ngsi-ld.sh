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
# bench/results/ngsi-ld-<backend>.txt. BROKER=serve runs it against
# `civic serve` instead of the demo (bench/ngsi-ld-demo.sh), the figures
# to bench/results/ngsi-ld-<backend>-serve.txt.
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

db_name=civic_ngsild
# The suite wants a broker whose default tenant holds only what it
# makes: the demo's city sensors stay off.
demo_args=(--city-sensors false)
# The suite's paging cases (020_13, 020_14, 021_15, 021_16) want 20
# instances of an attribute cut and 5 not: its README asks the broker to
# be configured so. Deployments keep the default (10,000).
export CIVIC_CITY_TEMPORAL_INSTANCES=19
# shellcheck source=bench/ngsi-ld-demo.sh
. bench/ngsi-ld-demo.sh
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
    echo "${BROKER:-demo} resident memory: $((start_kib / 1024)) MiB before the suite, peak $((peak_kib / 1024)) MiB while it ran"
} | tee "bench/results/ngsi-ld-$backend${BROKER:+-$BROKER}.txt"
exit $status
