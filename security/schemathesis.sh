#!/usr/bin/env bash
# Schemathesis (PyPI) against the OpenAPI document of a fresh `civic demo`:
# generated requests for every operation, anonymously and then with the
# bearer token of every demo duty, with all of Schemathesis's checks (no
# 5xx, answers as documented, schema-valid requests accepted, invalid ones
# refused, authentication not ignored, stateful links).
#
#   security/schemathesis.sh [EXAMPLES] [CIVIC]
#
# EXAMPLES: generated cases per operation and phase (default 10: the short
# run of scripts/test; bench/README.md records a long one). CIVIC: the
# binary (default: the debug build). Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

examples=${1:-10}
civic=${2:-${CARGO_TARGET_DIR:-target}/debug/civic}
version=4.32.5

if ! (command -v st >/dev/null && st --version 2>/dev/null | grep -q "$version"); then
    echo "==> installing schemathesis $version"
    python3 -m pip install --quiet --disable-pip-version-check "schemathesis==$version"
fi

work=$(mktemp -d)
"$civic" demo --addr 127.0.0.1:0 --data-dir "$work/data" >"$work/demo.out" 2>"$work/demo.err" &
demo=$!
cleanup() {
    kill "$demo" 2>/dev/null || true
    wait "$demo" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

hub=
for _ in $(seq 1 300); do
    hub=$(sed -n 's/.*running at \(http[^ ]*\).*/\1/p' "$work/demo.out" | head -n 1)
    [ -n "$hub" ] && break
    if ! kill -0 "$demo" 2>/dev/null; then
        echo "error: the demo stopped: $(tail -n 3 "$work/demo.err")" >&2
        exit 1
    fi
    sleep 0.5
done
[ -n "$hub" ] || { echo "error: the demo did not start in time" >&2; exit 1; }

# The administrator runs last: her cases close the response and reset
# others' second factors, which ends their sessions.
users=(investigator.seoul investigator.daegu approver police auditor analyst support
       mydata mydata.nhis mydata.agency citizen admin)
mapfile -t tokens < <(python3 security/tokens.py "$hub" "$work/data/demo-credentials.json" "${users[@]}")

failed=0
run() {
    local who=$1
    shift
    echo "==> schemathesis as $who ($examples examples an operation)"
    # Signing out would end the token the rest of the run uses. Some
    # bodies (a case register's CSV lines) match few of the strings
    # Hypothesis draws; with many examples its health check would call
    # that an error of the run, though the cases it does make are tested.
    if ! st --config-file security/schemathesis.toml run "$hub/api/openapi.json" --checks all --max-examples "$examples" \
        --exclude-path /api/v1/auth/logout --workers 1 --warnings off \
        --suppress-health-check=filter_too_much "$@" \
        >"$work/st.out" 2>&1; then
        failed=1
        if grep -q FAILURES "$work/st.out"; then
            sed -n '/FAILURES/,$p' "$work/st.out"
        else
            tail -n 40 "$work/st.out"
        fi
    else
        grep -E "generated|passed|failures" "$work/st.out" | tail -n 2
    fi
}

run anonymous
for i in "${!users[@]}"; do
    run "${users[$i]}" -H "Authorization: Bearer ${tokens[$i]}"
done
if [ "$failed" != 0 ]; then
    echo "schemathesis found failures" >&2
    exit 1
fi
echo "schemathesis: no failure for any duty"
