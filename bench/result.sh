#!/usr/bin/env bash
# Benchmarks of the result service (release builds), against a throwaway
# Redis and a throwaway Postgres with its normal durable settings:
#   1. ballot-to-screen latency: ballots RPUSHed at RATE/s flow through the
#      real worker; each is timed from RPUSH to the first websocket message
#      whose total includes it (target p99 < 100 ms);
#   2. fan-out: CLIENTS websockets held open, single votes committed; time for
#      one update to reach every client, and the service's RSS (target < 150 MB).
#
#   bench/result.sh [BALLOTS] [RATE] [CLIENTS]     (defaults 10000 1000 5000)
#
# Only loopback servers in a temp dir; everything is removed on exit.
set -euo pipefail

BALLOTS=${1:-10000}
RATE=${2:-1000}
CLIENTS=${3:-5000}

cd "$(dirname "$0")/.."
# Each client holds a socket in this process and one in the service.
ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((CLIENTS + 1000)) ]; then
	echo "ulimit -n is $(ulimit -n); $CLIENTS clients need $((CLIENTS + 1000))" >&2
	exit 2
fi
cargo build --release --quiet -p result -p worker --bins
cargo build --release --quiet -p result --example result_bench
RESULT=$PWD/target/release/result
WORKER=$PWD/target/release/worker
CLIENT=$PWD/target/release/examples/result_bench

PG_BIN=$(dirname "$(readlink -f "$(ls -d /usr/lib/postgresql/*/bin/initdb | sort -V | tail -1)")")
TMP=$(mktemp -d /tmp/bench-result.XXXXXX)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
REDIS_PORT=$(free_port)
PG_PORT=$(free_port)
PORT=$(free_port)
PIDS=()

as_postgres() {
	if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

cleanup() {
	for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
	as_postgres "$PG_BIN/pg_ctl" -D "$TMP/pg" -m immediate stop >/dev/null 2>&1 || true
	wait 2>/dev/null || true
	rm -rf "$TMP"
}
trap cleanup EXIT

redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
	--dir "$TMP" --logfile "$TMP/redis.log" --daemonize no &
PIDS+=($!)

mkdir -p "$TMP/pg"
[ "$(id -u)" = 0 ] && chown postgres "$TMP" "$TMP/pg"
as_postgres "$PG_BIN/initdb" -D "$TMP/pg" -U postgres -A trust -E UTF8 --locale=C >/dev/null
as_postgres "$PG_BIN/pg_ctl" -D "$TMP/pg" -l "$TMP/pg/log" -w start \
	-o "-p $PG_PORT -k $TMP -c listen_addresses=127.0.0.1" >/dev/null

export REDIS_URL=redis://127.0.0.1:$REDIS_PORT
export DATABASE_URL=postgres://postgres@127.0.0.1:$PG_PORT/postgres
export RUST_LOG=warn

PORT=$PORT "$RESULT" &
RESULT_PID=$!
PIDS+=("$RESULT_PID")
"$WORKER" &
PIDS+=($!)
for _ in $(seq 300); do
	curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break
	sleep 0.1
done
curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null || {
	echo "result never became ready" >&2
	exit 1
}

echo "$(nproc) cores; postgres fsync=$(as_postgres "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -qAt -c 'SHOW fsync'); result, worker and clients share the machine"
"$CLIENT" --port "$PORT" latency --redis-url "$REDIS_URL" --ballots "$BALLOTS" --rate "$RATE"
"$CLIENT" --port "$PORT" fanout --database-url "$DATABASE_URL" --clients "$CLIENTS" --pid "$RESULT_PID"

# Graceful shutdown with every client gone: SIGTERM, exit status 0.
kill -TERM "$RESULT_PID"
status=0
wait "$RESULT_PID" || status=$?
echo "result exited with status $status after SIGTERM"
[ "$status" = 0 ]
