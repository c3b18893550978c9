#!/usr/bin/env bash
# The load test (issue 16): USERS people of mixed duties against the demo
# for MINUTES, each from its own loopback address, with a pause of up to
# THINK_MS between requests; 0 errors, p99 < 200 ms and no memory growth
# pass it.
#
#   bench/load.sh [MINUTES=10] [USERS=200] [THINK_MS=1000] [sqlite|postgres]
#
# Builds the release `civic` and the load driver
# (crates/cli/examples/load.rs), starts `civic demo` in a fresh directory
# (on PostgreSQL with the fourth argument `postgres`, at
# $CIVIC_TEST_POSTGRES_URL, database civic_load made anew), runs the driver
# against it sampling the demo's memory, and stops the demo. The figures go
# to stdout and, as JSON, to bench/results/load-*.json.
set -euo pipefail
cd "$(dirname "$0")/.."

minutes=${1:-10}
users=${2:-200}
think=${3:-1000}
backend=${4:-sqlite}

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${HOME:-/root}/.cache/civic-data-hub/target}"
cargo build --release --locked -p civic-cli --bin civic --example load
civic="$CARGO_TARGET_DIR/release/civic"
driver="$CARGO_TARGET_DIR/release/examples/load"

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
    psql "$base_url" -qc 'DROP DATABASE IF EXISTS civic_load' -c 'CREATE DATABASE civic_load' >/dev/null
    extra=(--database-url "${base_url%/*}/civic_load")
fi

echo "==> starting the demo ($backend) in $dir"
"$civic" demo --addr 127.0.0.1:0 --data-dir "$dir" "${extra[@]}" >"$dir/demo.out" 2>"$dir/demo.log" &
demo_pid=$!
url=
for _ in $(seq 1 600); do
    url=$(sed -n 's/.*running at \(http[^ ]*\).*/\1/p' "$dir/demo.out" | head -n 1)
    [ -n "$url" ] && break
    kill -0 "$demo_pid" 2>/dev/null || { cat "$dir/demo.log" >&2; exit 1; }
    sleep 1
done
[ -n "$url" ] || { echo "error: the demo did not start" >&2; exit 1; }
echo "==> the demo is at $url (pid $demo_pid)"

mkdir -p bench/results
out="bench/results/load-$backend-${users}u-${minutes}m-${think}ms.json"
"$driver" --url "$url" --credentials "$dir/demo-credentials.json" \
    --users "$users" --minutes "$minutes" --think-ms "$think" \
    --pid "$demo_pid" --json "$out"
echo "==> figures in $out"
