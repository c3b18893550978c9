#!/usr/bin/env bash
# Clusters in every mode, in one run (issue 17); figures in bench/README.md.
#
#   bench/clusters.sh [DIR]     # default ./bench-data
#
# 1. `civic bench eiss`: full data from the nodes (the 100,000-person
#    city, every case asked for, approved and collected), scored against
#    the descent clusters and the setting groups, beside the naive
#    same-place same-day union of the same places.
# 2. `civic bench modes`: the same city's interviews, published routes and
#    both, with and without onsets, each beside the naive union and the
#    ceiling of what its rows show.
# 3. The oracle ceiling of the descent clusters (bench/oracle_clusters.py),
#    and the bounds of the published view (bench/published_bounds.py).
# 4. `civic bench clusters`: recomputation over 100,000 cases.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-./bench-data}
cargo build --release -p civic-cli
BIN=${CARGO_TARGET_DIR:-target}/release/civic
export CIVIC_LOG=${CIVIC_LOG:-warn,sqlx=error}
for d in "$DIR/eiss" "$DIR/modes" "$DIR/clusters"; do
    rm -rf "$d/civic.db" "$d/civic.db-wal" "$d/civic.db-shm" "$d/nodes" "$d/found" \
        "$d"/hub-*.key "$d/hub-ca-key.pem" "$d/demo-credentials.json"
done
git rev-parse --short HEAD
"$BIN" bench eiss --people 100000 --days 14 --dir "$DIR/eiss" --parallel 4
mkdir -p "$DIR/modes"
# The same city: generated once.
[ -e "$DIR/modes/city" ] || ln -s "$(cd "$DIR/eiss" && pwd)/city" "$DIR/modes/city"
"$BIN" bench modes --people 100000 --days 14 --dir "$DIR/modes"
python3 bench/oracle_clusters.py "$DIR/eiss/city"
python3 bench/published_bounds.py "$DIR/eiss/city"
"$BIN" bench clusters --people 120000 --cases 100000 --dir "$DIR/clusters"
