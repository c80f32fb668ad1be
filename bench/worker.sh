#!/usr/bin/env bash
# Drain benchmark for the worker: 1,000,000 ballots from 500,000 voters are
# queued in a throwaway Redis, then timed through one release worker and
# again through three, into a throwaway Postgres with its normal durable
# settings (fsync and synchronous_commit on). Checks the tallies are exact
# and every voter's latest ballot won, and prints ballots/s and worker RSS.
#
#   bench/worker.sh [BALLOTS] [VOTERS]     (defaults 1000000 500000)
#   BATCH_SIZE=5000 WORKERS="1 2 3" bench/worker.sh
#
# Only loopback servers in a temp dir; everything is removed on exit.
set -euo pipefail
. "$(dirname "$0")/servers.sh"

BALLOTS=${1:-1000000}
VOTERS=${2:-500000}
BATCH_SIZE=${BATCH_SIZE:-1000}
WORKERS=${WORKERS:-1 3} # one timed run per count of concurrent workers
LIMIT_SECONDS=${LIMIT_SECONDS:-600} # give up on a drain after this long
ROUNDS=$((BALLOTS / VOTERS))
((ROUNDS * VOTERS == BALLOTS)) || {
	echo "BALLOTS must be a multiple of VOTERS" >&2
	exit 2
}

cd "$(dirname "$0")/.."
cargo build --release -p worker --quiet
# WORKER=/path/to/another/worker measures that binary instead.
WORKER=${WORKER:-$(release_dir)/worker}

init_servers worker
start_redis
start_postgres

echo "postgres: $(pg_sql -d postgres -c 'SHOW fsync'), synchronous_commit=$(pg_sql -d postgres -c 'SHOW synchronous_commit'); redis $(redis-server --version | awk '{print $3}')"

# Voter v casts ROUNDS ballots, queued round by round. For even voters the
# last one queued is the latest cast; for odd voters the first one queued is,
# so the worker must compare cast_at rather than trust queue order.
preload() {
	redis_cli FLUSHALL >/dev/null
	awk -v ballots="$BALLOTS" -v voters="$VOTERS" -v rounds="$ROUNDS" 'BEGIN {
		split("a b c", opt, " "); per = 1000
		for (start = 0; start < ballots; start += per) {
			n = (ballots - start < per) ? ballots - start : per
			printf "*%d\r\n$5\r\nRPUSH\r\n$5\r\nvotes\r\n", n + 2
			for (i = start; i < start + n; i++) {
				v = i % voters; r = int(i / voters)
				# Built as text: some awks print %d of 16 digits as 2^31-1.
				cast = sprintf("1700000000%06d", (v % 2 == 0) ? r : rounds - 1 - r)
				body = sprintf("{\"voter_id\":\"v%d\",\"vote\":\"%s\",\"cast_at\":%s}", v, opt[(v + r) % 3 + 1], cast)
				printf "$%d\r\n%s\r\n", length(body), body
			}
		}
	}' | redis_cli --pipe >/dev/null
	[ "$(redis_cli LLEN votes)" = "$BALLOTS" ] || {
		echo "preload failed" >&2
		exit 1
	}
}

# The winning vote of voter v, as SQL, matching preload.
EXPECTED="SELECT 'v' || v AS id,
  (ARRAY['a','b','c'])[((v + CASE WHEN v % 2 = 0 THEN $ROUNDS - 1 ELSE 0 END) % 3) + 1] AS vote
  FROM generate_series(0, $VOTERS - 1) v"

in_flight() {
	redis_cli EVAL "return redis.call('LLEN', 'votes') + #redis.call('KEYS', 'votes:processing:*')" 0
}

run() { # run WORKERS
	local workers=$1 db="bench_$1" pids=() rss=0
	pg_sql -d postgres -c "CREATE DATABASE $db"
	# A worker creates the schema first, so the timing covers draining only.
	start_service "setup worker" "$TMP/worker-setup-$db.log" env REDIS_URL="$REDIS_URL" \
		DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/$db" PORT=0 RUST_LOG=warn "$WORKER"
	local setup=$STARTED_PID
	until [ "$(pg_sql -d "$db" -c "SELECT to_regclass('tallies') IS NOT NULL")" = t ]; do sleep 0.1; done
	stop_service "$setup"
	preload
	local start end
	start=$(date +%s.%N)
	for i in $(seq "$workers"); do
		start_service "worker $i of $workers" "$TMP/worker-$i-$db.log" env REDIS_URL="$REDIS_URL" \
			DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/$db" PORT=0 \
			BATCH_SIZE="$BATCH_SIZE" RUST_LOG=warn "$WORKER"
		pids+=("$STARTED_PID")
	done
	local deadline=$(($(date +%s) + LIMIT_SECONDS))
	while [ "$(in_flight)" != 0 ]; do
		if [ "$(date +%s)" -gt "$deadline" ]; then
			echo "not drained after ${LIMIT_SECONDS}s" >&2
			exit 1
		fi
		sleep 0.02
	done
	end=$(date +%s.%N)
	for pid in "${pids[@]}"; do
		rss=$(awk -v r="$rss" '/VmHWM/ { print (r > $2) ? r : $2 }' "/proc/$pid/status")
	done
	for pid in "${pids[@]}"; do stop_service "$pid"; done

	local wrong mismatched tallies
	wrong=$(pg_sql -d "$db" -c "SELECT count(*) FROM ($EXPECTED) e FULL JOIN votes x USING (id)
		WHERE e.vote IS DISTINCT FROM x.vote")
	mismatched=$(pg_sql -d "$db" -c "SELECT count(*) FROM (SELECT vote, count FROM tallies WHERE count <> 0) t
		FULL JOIN (SELECT vote, count(*) AS count FROM votes GROUP BY vote) g USING (vote)
		WHERE t.count IS DISTINCT FROM g.count")
	tallies=$(pg_sql -d "$db" -c "SELECT string_agg(vote || '=' || count, ' ' ORDER BY vote) FROM tallies")
	awk -v w="$workers" -v n="$BALLOTS" -v s="$start" -v e="$end" -v rss="$rss" -v t="$tallies" 'BEGIN {
		printf "%d worker(s): %d ballots in %.2f s = %.0f ballots/s; peak RSS per worker %.1f MiB; tallies %s\n",
			w, n, e - s, n / (e - s), rss / 1024, t }'
	if [ "$wrong" != 0 ] || [ "$mismatched" != 0 ] || [ "$(redis_cli LLEN votes:dead)" != 0 ]; then
		echo "FAILED: $wrong voters wrong, $mismatched tallies differ from GROUP BY, $(redis_cli LLEN votes:dead) dead letters" >&2
		exit 1
	fi
	echo "  exact: every voter's latest ballot stored, tallies == GROUP BY == expected"
}

echo "$BALLOTS ballots from $VOTERS voters, BATCH_SIZE=$BATCH_SIZE, $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
for workers in $WORKERS; do run "$workers"; done
