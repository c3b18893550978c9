#!/usr/bin/env bash
# Times `civic sim generate` at the issue's target size (100,000 people ×
# 14 days) and prints wall time, peak memory, rows and bytes written.
#   bench/sim.sh [PEOPLE] [DAYS] [OUT]
set -euo pipefail
cd "$(dirname "$0")/.."
people=${1:-100000}
days=${2:-14}
out=${3:-$(mktemp -d)/city}
cargo build --release --quiet
rm -rf "$out"
/usr/bin/time -f 'wall %e s, peak memory %M KiB' \
    "${CARGO_TARGET_DIR:-target}/release/civic" sim generate --people "$people" --days "$days" --seed 1 --out "$out"
du -sh "$out" | awk '{print "written", $1}'
python3 - "$out/summary.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
for k in ["people", "days", "towers", "venues", "stops", "phones", "cards", "pings", "transactions", "taps", "visits", "infections", "cases", "clusters"]:
    print(f"{k:>12}: {s[k]:,}")
PY
echo "nproc: $(nproc)"
