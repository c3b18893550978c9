#!/usr/bin/env bash
# Public MyData's transfers (issue 8), on SQLite and on PostgreSQL side by
# side in one run: each transfer timed from the citizen's consent to the
# package decrypted and verified at the agency; at CONCURRENCY and at half
# of it in flight (throughput, latency under load) and one at a time
# (latency alone).
#   bench/mydata.sh [TRANSFERS] [CONCURRENCY] [POSTGRES_URL_WITHOUT_DB]
set -euo pipefail
cd "$(dirname "$0")/.."
transfers=${1:-5000}
concurrency=${2:-128}
pg=${3:-postgres://postgres@127.0.0.1}
cargo build --release --quiet -p civic-cli
civic="${CARGO_TARGET_DIR:-target}/release/civic"
work=$(mktemp -d)
run() { # name, transfers, concurrency, [database]
    local dir="$work/$1" url=()
    if [ -n "${4:-}" ]; then
        psql "$pg/postgres" -q -c "DROP DATABASE IF EXISTS $4" -c "CREATE DATABASE $4" >/dev/null
        url=(--database-url "$pg/$4")
    fi
    "$civic" bench mydata --transfers "$2" --concurrency "$3" --dir "$dir" "${url[@]}" 2>/dev/null | tail -1
}
half=$((concurrency / 2))
run sqlite "$transfers" "$concurrency"
run postgres "$transfers" "$concurrency" bench_mydata
run sqlite-half "$transfers" "$half"
run postgres-half "$transfers" "$half" bench_mydata_half
run sqlite-1 500 1
run postgres-1 500 1 bench_mydata_1
echo "nproc: $(nproc)"
rm -rf "$work"
