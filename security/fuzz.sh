#!/usr/bin/env bash
# Fuzzes every parser that takes outside input with cargo-fuzz (libFuzzer,
# AddressSanitizer, debug assertions on, so an overflow is a crash):
#
#   security/fuzz.sh SECONDS [TARGET…]
#
# SECONDS per target (scripts/test runs a smoke of 20; bench/README.md
# records an hour each). Targets (fuzz/fuzz_targets): node_files,
# case_files, exchange, sdjwt, jwe, json_bodies; default all. Each starts
# from fuzz/seeds/TARGET and the corpus kept between runs
# ($FUZZ_CORPUS, default ~/.cache/civic-data-hub/fuzz-corpus). A crash
# leaves its input in fuzz/artifacts/TARGET and fails the run.
#
# cargo-fuzz needs nightly flags (-Zsanitizer); RUSTC_BOOTSTRAP=1 lets the
# machine's stable toolchain take them. Builds go to their own target
# directory: the instrumented crates never mix with the main build.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:?usage: security/fuzz.sh SECONDS [TARGET…]}
shift
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(node_files case_files exchange sdjwt jwe json_bodies)

version=0.13.2
if ! cargo fuzz --version 2>/dev/null | grep -q "$version"; then
    echo "==> installing cargo-fuzz $version"
    cargo install --quiet --locked cargo-fuzz --version "$version"
fi

export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-${HOME:-/root}/.cache/civic-data-hub/fuzz-target}"
corpus_root="${FUZZ_CORPUS:-${HOME:-/root}/.cache/civic-data-hub/fuzz-corpus}"
(cd fuzz && cargo fuzz build -O >/dev/null)

status=0
for target in "${targets[@]}"; do
    corpus="$corpus_root/$target"
    mkdir -p "$corpus" "fuzz/artifacts/$target"
    log=$(mktemp)
    echo "==> fuzzing $target for ${seconds}s"
    if (cd fuzz && cargo fuzz run -O "$target" "$corpus" "seeds/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
        -artifact_prefix="artifacts/$target/") >"$log" 2>&1; then
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
        cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1)
        echo "    $target: ${runs:-?} inputs in ${seconds}s, ${cov:-cov: ?}, 0 crashes"
    else
        status=1
        echo "    $target: CRASH" >&2
        grep -E "panicked|ERROR: AddressSanitizer|ERROR: libFuzzer|Test unit written|SUMMARY" "$log" | head -n 8 >&2
    fi
    rm -f "$log"
done
exit "$status"
