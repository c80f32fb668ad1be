#!/usr/bin/env bash
# Whole-system benchmark: release builds of vote, worker, result and seed
# against a throwaway Redis and a throwaway Postgres (its normal, durable
# settings), all on this machine's loopback. Prints one table:
#   - votes/s the vote service accepts (seed, worker stopped so it has the CPU);
#   - ballots/s the worker applies (it drains the queue those votes left);
#   - votes/s and time to consistency with the whole stack running
#     (`seed --verify`: from the last response to /api/tally showing them all);
#   - ballot-to-websocket latency: POST / to the first websocket message
#     that includes the ballot, at a steady rate (seed/examples/ballot_latency.rs);
#   - each process's peak RSS.
#
#   bench/system.sh [VOTES] [CONCURRENCY]     (defaults 50000 50)
#
# Everything it starts is stopped and its temp dir removed on exit.
set -euo pipefail
. "$(dirname "$0")/servers.sh"

VOTES=${1:-50000}
CONCURRENCY=${2:-50}
LATENCY_BALLOTS=1000
LATENCY_RATE=200

cd "$(dirname "$0")/.."
for tool in redis-server redis-cli curl python3 /usr/bin/time; do
	command -v "$tool" >/dev/null || { echo "bench/system.sh needs $tool" >&2; exit 2; }
done
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 ||
	{ echo "bench/system.sh needs PostgreSQL: apt-get install postgresql" >&2; exit 2; }
echo "building release binaries..." >&2
cargo build --release --quiet -p vote -p worker -p result -p seed --bins
cargo build --release --quiet -p seed --example ballot_latency
BIN=$(release_dir)

init_servers system
VOTE_PORT=$(free_port)
RESULT_PORT=$(free_port)
VOTE_URL=http://127.0.0.1:$VOTE_PORT/
RESULT_URL=http://127.0.0.1:$RESULT_PORT/

fail() {
	echo "bench/system.sh: $*" >&2
	for log in "$TMP"/{vote,worker,result}.log; do
		[ -s "$log" ] && { echo "--- end of $log" >&2; tail -5 "$log" >&2; }
	done
	exit 1
}

# Polls a URL until it answers 2xx, for at most 30 s.
wait_ready() {
	for _ in $(seq 300); do
		curl -sf "$1" >/dev/null && return 0
		sleep 0.1
	done
	fail "$1 never answered"
}

now() { date +%s.%N; }

# Peak resident memory of a running process, in MB.
peak_rss_mb() { awk '/^VmHWM/ { printf "%.0f", $2 / 1024 }' "/proc/$1/status"; }

tally_total() {
	curl -sf "${RESULT_URL}api/tally" | grep -o '"total":[0-9]*' | cut -d: -f2
}

start_redis
start_postgres
export REDIS_URL DATABASE_URL RUST_LOG=warn

start_service vote "$TMP/vote.log" env PORT="$VOTE_PORT" "$BIN/vote"
VOTE_PID=$STARTED_PID
start_service result "$TMP/result.log" env PORT="$RESULT_PORT" "$BIN/result"
RESULT_PID=$STARTED_PID
wait_ready "${VOTE_URL}readyz"
wait_ready "${RESULT_URL}readyz"

# 1. The vote service alone: the worker is not running yet, so the votes wait
#    in Redis and the vote service has the CPU to itself (with seed).
echo "1/4 seed: $VOTES votes, concurrency $CONCURRENCY, no worker..." >&2
in_foreground /usr/bin/time -f %M -o "$TMP/seed.rss" "$BIN/seed" --votes "$VOTES" --concurrency "$CONCURRENCY" \
	"$VOTE_URL" >"$TMP/seed1.out" 2>"$TMP/seed1.err" ||
	fail "seed failed: $(tail -1 "$TMP/seed1.err")"
VOTE_ALONE=$(awk '/^throughput/ { print $2 }' "$TMP/seed1.out")

# 2. The worker drains the queue those votes left.
echo "2/4 worker: draining $VOTES queued ballots..." >&2
started=$(now)
start_service worker "$TMP/worker.log" env PORT=0 "$BIN/worker"
WORKER_PID=$STARTED_PID
deadline=$((SECONDS + 300))
until [ "$(tally_total || echo 0)" -ge "$VOTES" ]; do
	[ $SECONDS -lt $deadline ] || fail "the worker did not apply $VOTES ballots within 300 s"
	sleep 0.01
done
WORKER_RATE=$(awk -v n="$VOTES" -v a="$started" -v b="$(now)" 'BEGIN { printf "%.0f", n / (b - a) }')

# 3. Everything running: vote, worker and result share the machine.
echo "3/4 seed --verify: $VOTES more votes, whole stack running..." >&2
in_foreground "$BIN/seed" --votes "$VOTES" --concurrency "$CONCURRENCY" --timeout 120s --verify "$RESULT_URL" \
	"$VOTE_URL" >"$TMP/seed3.out" 2>"$TMP/seed3.err" ||
	fail "seed --verify failed: $(tail -1 "$TMP/seed3.err")"
VOTE_STACK=$(awk '/^throughput/ { print $2 }' "$TMP/seed3.out")
CONSISTENT=$(awk '/^consistent/ { print $3 " s" }' "$TMP/seed3.out")
LATENCY_SEED=$(sed -n 's/^latency *//p' "$TMP/seed3.out")

# 4. One ballot at a time from the vote page to the result websocket.
echo "4/4 ballot-to-websocket latency: $LATENCY_BALLOTS ballots at $LATENCY_RATE/s..." >&2
in_foreground "$BIN/examples/ballot_latency" --vote "$VOTE_URL" --result "$RESULT_URL" \
	--ballots "$LATENCY_BALLOTS" --rate "$LATENCY_RATE" >"$TMP/latency.out" || fail "ballot_latency failed"
LATENCY_WS=$(cat "$TMP/latency.out")

SEED_RSS=$(awk '{ printf "%.0f", $1 / 1024 }' "$TMP/seed.rss")
FSYNC=$(pg_sql -c 'SHOW fsync')

printf '\nwhole system on %s cores, %s votes per run, concurrency %s, postgres fsync=%s\n' \
	"$(nproc)" "$VOTES" "$CONCURRENCY" "$FSYNC"
printf '| %-48s | %-64s |\n' "measure" "result"
printf '|%s|%s|\n' "$(printf -- '-%.0s' {1..50})" "$(printf -- '-%.0s' {1..66})"
row() { printf '| %-48s | %-64s |\n' "$1" "$2"; }
row "votes/s accepted by vote (worker stopped)" "$VOTE_ALONE"
row "ballots/s applied by worker (draining queue)" "$WORKER_RATE"
row "votes/s accepted by vote (whole stack running)" "$VOTE_STACK"
row "seed request latency (whole stack running)" "$LATENCY_SEED"
row "time to consistency (last vote to /api/tally)" "$CONSISTENT"
row "ballot-to-websocket latency (POST / to message)" "$LATENCY_WS"
row "peak RSS: vote / worker / result / seed" \
	"$(peak_rss_mb "$VOTE_PID") / $(peak_rss_mb "$WORKER_PID") / $(peak_rss_mb "$RESULT_PID") / $SEED_RSS MB"
