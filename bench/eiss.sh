#!/usr/bin/env bash
# The epidemic investigation benchmarks (issue 6); figures in bench/README.md.
#
#   bench/eiss.sh [DIR]     # default ./bench-data
#
# 1. `civic bench eiss`: a 100,000-person city over 14 days, the demo's
#    nodes filled from it, every confirmed case asked for, approved by the
#    approver and the police, collected, its route, contacts and cluster
#    built; times per case from the last approval; scored by the scorer.
# 2. `civic bench clusters`: 100,000 cases' published routes in one
#    response, their clusters recomputed.
# 3. The ceiling of cluster recovery on this city's truth (an oracle).
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-./bench-data}
cargo build --release -p civic-cli
BIN=${CARGO_TARGET_DIR:-target}/release/civic
export CIVIC_LOG=${CIVIC_LOG:-warn,sqlx=error}
# A fresh hub and nodes each run (the cities are kept: same seed, same city).
for d in "$DIR/eiss" "$DIR/clusters"; do
    rm -rf "$d/civic.db" "$d/civic.db-wal" "$d/civic.db-shm" "$d/nodes" "$d/found" \
        "$d"/hub-*.key "$d/hub-ca-key.pem" "$d/demo-credentials.json"
done
"$BIN" bench eiss --people 100000 --days 14 --dir "$DIR/eiss" --parallel 4
"$BIN" bench clusters --people 120000 --cases 100000 --dir "$DIR/clusters"
python3 bench/oracle_clusters.py "$DIR/eiss/city"
