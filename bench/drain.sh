# Sourced by bench/worker.sh and bench/postgres-ha.sh (after servers.sh):
# a known set of ballots queued in the bench's Redis, timed through release
# workers into a Postgres database, and the result checked exactly.
#
#   BALLOTS VOTERS      ballots queued per drain, from that many voters
#   BATCH_SIZE          the workers' BATCH_SIZE
#   LIMIT_SECONDS       give up on a drain after this long
#   WORKER              the worker binary
#   drain DATABASE_URL SQL WORKERS   # SQL: a command running psql on that database
#                                    # (-qAt, arguments appended); sets DRAIN_RATE

# Voter v casts BALLOTS / VOTERS ballots, queued round by round. For even
# voters the last one queued is the latest cast; for odd voters the first one
# queued is, so the worker must compare cast_at rather than trust queue order.
preload() {
	local rounds=$((BALLOTS / VOTERS))
	redis_cli FLUSHALL >/dev/null
	awk -v ballots="$BALLOTS" -v voters="$VOTERS" -v rounds="$rounds" 'BEGIN {
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

# Ballots not yet committed: queued, or taken into a worker's processing list.
in_flight() {
	redis_cli EVAL "return redis.call('LLEN', 'votes') + #redis.call('KEYS', 'votes:processing:*')" 0
}

drain() { # drain DATABASE_URL SQL WORKERS
	local url=$1 sql=$2 workers=$3 pids=() rss=0 rounds=$((BALLOTS / VOTERS))
	((rounds * VOTERS == BALLOTS)) || {
		echo "BALLOTS must be a multiple of VOTERS" >&2
		exit 2
	}
	# A worker creates the schema first, so the timing covers draining only.
	start_service "setup worker" "$TMP/worker-setup.log" env REDIS_URL="$REDIS_URL" \
		DATABASE_URL="$url" PORT=0 RUST_LOG=warn "$WORKER"
	local setup=$STARTED_PID
	for _ in $(seq 600); do
		[ "$($sql -c "SELECT to_regclass('tallies') IS NOT NULL")" = t ] && break
		sleep 0.1
	done
	stop_service "$setup"
	preload
	local start end
	start=$(date +%s.%N)
	for i in $(seq "$workers"); do
		start_service "worker $i of $workers" "$TMP/worker-$i.log" env REDIS_URL="$REDIS_URL" \
			DATABASE_URL="$url" PORT=0 BATCH_SIZE="$BATCH_SIZE" RUST_LOG=warn "$WORKER"
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

	# The winning vote of voter v, matching preload.
	local expected="SELECT 'v' || v AS id,
	  (ARRAY['a','b','c'])[((v + CASE WHEN v % 2 = 0 THEN $rounds - 1 ELSE 0 END) % 3) + 1] AS vote
	  FROM generate_series(0, $VOTERS - 1) v"
	local wrong mismatched tallies
	wrong=$($sql -c "SELECT count(*) FROM ($expected) e FULL JOIN votes x USING (id)
		WHERE e.vote IS DISTINCT FROM x.vote")
	mismatched=$($sql -c "SELECT count(*) FROM (SELECT vote, count FROM tallies WHERE count <> 0) t
		FULL JOIN (SELECT vote, count(*) AS count FROM votes GROUP BY vote) g USING (vote)
		WHERE t.count IS DISTINCT FROM g.count")
	tallies=$($sql -c "SELECT string_agg(vote || '=' || count, ' ' ORDER BY vote) FROM tallies")
	DRAIN_RATE=$(awk -v n="$BALLOTS" -v s="$start" -v e="$end" 'BEGIN { printf "%.0f", n / (e - s) }')
	awk -v w="$workers" -v n="$BALLOTS" -v s="$start" -v e="$end" -v rss="$rss" -v t="$tallies" 'BEGIN {
		printf "%d worker(s): %d ballots in %.2f s = %.0f ballots/s; peak RSS per worker %.1f MiB; tallies %s\n",
			w, n, e - s, n / (e - s), rss / 1024, t }'
	if [ "$wrong" != 0 ] || [ "$mismatched" != 0 ] || [ "$(redis_cli LLEN votes:dead)" != 0 ]; then
		echo "FAILED: $wrong voters wrong, $mismatched tallies differ from GROUP BY, $(redis_cli LLEN votes:dead) dead letters" >&2
		exit 1
	fi
	echo "  exact: every voter's latest ballot stored, tallies == GROUP BY == expected"
}
