# Sourced by bench/ngsi-ld.sh, bench/ngsi-ld-load.sh and bench/ngsi-ld-temporal.sh: builds the
# release `civic` unless CIVIC_BIN names one, and starts `civic demo` on
# a free port in a fresh directory, on SQLite or on a fresh PostgreSQL
# database ($backend, $db_name); sets $port, $dir, $demo_pid, and stops
# the demo on exit (with $sampler_pid, if the caller sets one).
# $demo_args (an array, if the caller sets one) go to `civic demo`.
# With BROKER=serve, `civic serve` runs instead: the hub as deployed, with
# no demo institutions, city or sensors, its tenants made on first use
# and open (CIVIC_CITY_IMPLICIT_TENANTS) and its helpers on loopback
# reachable (CIVIC_CITY_EGRESS_PRIVATE), as the ETSI suite expects, and
# anonymous callers not counted (CIVIC_CITY_ANONYMOUS_REQUESTS_PER_MINUTE;
# the load is anonymous).

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
    psql "$base_url" -qc "DROP DATABASE IF EXISTS $db_name" -c "CREATE DATABASE $db_name" >/dev/null
    extra=(--database-url "${base_url%/*}/$db_name")
fi

if [ "${BROKER:-demo}" = serve ]; then
    serve_env=(CIVIC_LOG=warn CIVIC_ADDR="127.0.0.1:$port" CIVIC_DATA_DIR="$dir"
        CIVIC_CITY_IMPLICIT_TENANTS=true CIVIC_CITY_EGRESS_PRIVATE=true
        CIVIC_CITY_ANONYMOUS_REQUESTS_PER_MINUTE=0)
    [ "$backend" = postgres ] && serve_env+=(CIVIC_DATABASE_URL="${extra[1]}")
    env "${serve_env[@]}" "$CIVIC_BIN" serve >"$dir/demo.log" 2>&1 &
else
    CIVIC_LOG=warn "$CIVIC_BIN" demo --addr "127.0.0.1:$port" --data-dir "$dir" \
        --sim-people 300 --sim-days 3 "${extra[@]}" ${demo_args[@]+"${demo_args[@]}"} >"$dir/demo.log" 2>&1 &
fi
demo_pid=$!
for _ in $(seq 1 120); do
    curl -sf -o /dev/null "http://127.0.0.1:$port/ngsi-ld/v1/types" && break
    kill -0 "$demo_pid" 2>/dev/null || { cat "$dir/demo.log"; exit 1; }
    sleep 1
done
