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
#   UPDATES=30 RESULT=/path/to/old/result bench/result.sh 10000 1000 1000
#
# The fan-out also prints result's CPU per update (utime + stime from /proc,
# over UPDATES updates, default 5). RESULT measures another result binary
# with the same clients and worker, for old against new in one session.
#
# Only loopback servers in a temp dir; everything is removed on exit.
set -euo pipefail
. "$(dirname "$0")/servers.sh"

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
BIN=$(release_dir)
# RESULT=/path/to/another/result measures that binary with the same clients.
RESULT=${RESULT:-$BIN/result}
WORKER=$BIN/worker
CLIENT=$BIN/examples/result_bench

init_servers result
start_redis
start_postgres
PORT=$(free_port)
export REDIS_URL DATABASE_URL RUST_LOG=warn

start_service result "$TMP/result.log" env PORT="$PORT" SHUTDOWN_DRAIN=0 "$RESULT"
RESULT_PID=$STARTED_PID
start_service worker "$TMP/worker.log" env PORT=0 "$WORKER"
for _ in $(seq 300); do
	curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break
	sleep 0.1
done
curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null || {
	echo "result never became ready" >&2
	exit 1
}

echo "$(nproc) cores; postgres fsync=$(pg_sql -c 'SHOW fsync'); result, worker and clients share the machine"
in_foreground "$CLIENT" --port "$PORT" latency --redis-url "$REDIS_URL" --ballots "$BALLOTS" --rate "$RATE"
in_foreground "$CLIENT" --port "$PORT" fanout --database-url "$DATABASE_URL" --clients "$CLIENTS" --updates "${UPDATES:-5}" --pid "$RESULT_PID"

# Graceful shutdown with every client gone: SIGTERM, exit status 0.
status=0
stop_service "$RESULT_PID" || status=$?
echo "result exited with status $status after SIGTERM"
[ "$status" = 0 ]
