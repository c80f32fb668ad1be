#!/usr/bin/env bash
# Benchmark of the vote service against a trivial HTTP server, in one run:
# wrk drives `POST /` (vote=a, no cookies: every request a new voter) first
# at seed's one-thread trivial server (seed/examples/trivial_server.rs: reads
# the request, answers `200 ok`), then at a release `vote` on a throwaway
# Redis. For each it prints requests/s, latency p50/p99 and the server's CPU
# time per request (utime + stime of the process, from /proc/PID/stat,
# before and after, divided by the requests wrk completed), and vote's ratio
# to the trivial server: the cost of a vote beyond bare HTTP on this machine.
#
#   bench/vote.sh                      # 10 s, 64 connections, 2 wrk threads
#   DURATION=30s CONNECTIONS=128 bench/vote.sh
#   bench/vote.sh /path/to/old/vote    # also that binary, in the same run
#
# The current vote is measured three times: as is; while /metrics is
# scraped every SCRAPE_EVERY (default 1 s, far more often than Prometheus
# would), to show what metrics cost the hot path; and with Sentinel
# (REDIS_SENTINELS: a replica of the same Redis and one Sentinel), where each
# ballot waits for the replica (WAIT): what that promise costs.
#
# Binaries come from $CARGO_TARGET_DIR (or target/). Each server gets WARMUP
# of load first (not counted). Needs: cargo, redis-server, redis-cli, wrk,
# python3. Everything runs on 127.0.0.1; a server that dies stops the run.
set -euo pipefail
. "$(dirname "$0")/servers.sh"
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-1s}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
SCRAPE_EVERY=${SCRAPE_EVERY:-1}

for tool in redis-server redis-cli wrk python3 curl; do
	command -v "$tool" >/dev/null || {
		echo "bench: $tool not found (apt install ${tool%-*})" >&2
		exit 1
	}
done

cargo build --release --quiet -p vote --bin vote
cargo build --release --quiet -p seed --example trivial_server
BIN=$(release_dir)

init_servers vote
start_redis

# For the run with Sentinel: a replica of that Redis and one Sentinel
# (quorum 1; no failover happens here).
mkdir "$TMP/replica" "$TMP/sentinel"
replica_port=$(free_port)
start_service redis-replica "$TMP/replica.log" \
	redis-server --port "$replica_port" --bind 127.0.0.1 --save "" --appendonly no \
	--dir "$TMP/replica" --logfile "$TMP/replica.log" --daemonize no \
	--replicaof 127.0.0.1 "$REDIS_PORT"
replicating() { redis-cli -p "$replica_port" info replication | grep -q master_link_status:up; }
wait_for redis-replica replicating
sentinel_port=$(free_port)
echo "sentinel monitor voting 127.0.0.1 $REDIS_PORT 1" >"$TMP/sentinel.conf"
start_service redis-sentinel "$TMP/sentinel.log" \
	redis-server "$TMP/sentinel.conf" --sentinel --port "$sentinel_port" --bind 127.0.0.1 \
	--dir "$TMP/sentinel" --logfile "$TMP/sentinel.log" --daemonize no
wait_for redis-sentinel redis-cli -p "$sentinel_port" ping

cat >"$TMP/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = "vote=a"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
LUA

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)
ROWS=()
TRIVIAL_CPU=

# Loads the server PID on PORT and appends its row to ROWS.
measure() { # measure NAME PID PORT
	local name=$1 pid=$2 port=$3 out="$TMP/wrk-$1.txt"
	local url="http://127.0.0.1:$port/"
	in_foreground wrk -t"$THREADS" -c"$CONNECTIONS" -d"$WARMUP" -s "$TMP/post.lua" "$url" >/dev/null
	local load before redis_before
	load=$(cut -d' ' -f1 /proc/loadavg)
	before=$(cpu_ticks "$pid")
	redis_before=$(cpu_ticks "$REDIS_PID")
	in_foreground wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s "$TMP/post.lua" "$url" >"$out"
	local ticks=$(($(cpu_ticks "$pid") - before))
	local redis_ticks=$(($(cpu_ticks "$REDIS_PID") - redis_before))
	local requests rps p50 p99 failed errors rss
	requests=$(awk '/requests in/ {print $1}' "$out")
	rps=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' "$out")
	p50=$(awk '$1 == "50%" {print $2}' "$out")
	p99=$(awk '$1 == "99%" {print $2}' "$out")
	failed=$(awk '/Non-2xx or 3xx responses:/ {print $NF}' "$out")
	errors=$(awk '/Socket errors:/ {print}' "$out")
	rss=$(awk '/^VmHWM:/ {printf "%.1f MB", $2 / 1024}' "/proc/$pid/status")
	if [[ -n $failed || -n $errors ]]; then
		cat "$out" >&2
		echo "bench: $name: some requests failed: ${failed:+$failed non-2xx responses} $errors" >&2
		exit 1
	fi
	local cpu ratio redis_cpu=-
	cpu=$(awk -v t="$ticks" -v hz="$HZ" -v n="$requests" 'BEGIN {printf "%.1f", t / hz / n * 1e6}')
	if [ -z "$TRIVIAL_CPU" ]; then
		TRIVIAL_CPU=$cpu
		ratio=1
	else
		ratio=$(awk -v a="$cpu" -v b="$TRIVIAL_CPU" 'BEGIN {printf "%.2f", a / b}')
		redis_cpu=$(awk -v t="$redis_ticks" -v hz="$HZ" -v n="$requests" 'BEGIN {printf "%.1f", t / hz / n * 1e6}')
	fi
	ROWS+=("$(printf '%-16s %5s %9s %9s %9s %9s %8s %8s %9s' \
		"$name" "$load" "$rps" "$p50" "$p99" "$cpu" "${ratio}x" "$redis_cpu" "$rss")")
}

trivial_port=$(free_port)
start_service trivial_server "$TMP/trivial.log" "$BIN/examples/trivial_server" "$trivial_port"
trivial_pid=$STARTED_PID
wait_for trivial_server python3 -c "import socket; socket.create_connection(('127.0.0.1', $trivial_port))"
REDIS_PID=$(redis_cli info server | awk -F: '/^process_id/ {print $2}' | tr -d '\r')

echo "$(nproc) cores; wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency, POST / vote=a, after $WARMUP of warm-up each"
measure trivial_server "$trivial_pid" "$trivial_port"
stop_service "$trivial_pid" || true

# Scrapes /metrics on PORT every SCRAPE_EVERY seconds until killed.
scrape() { # scrape PORT
	while sleep "$SCRAPE_EVERY"; do
		curl -sf -o /dev/null "http://127.0.0.1:$1/metrics" || echo "bench: a scrape failed" >&2
	done
}

# One run each: name|binary|scrape (empty: no scraping)|REDIS_SENTINELS.
RUNS=("vote|$BIN/vote||" "vote, scraped|$BIN/vote|scrape|"
	"vote, WAIT|$BIN/vote||127.0.0.1:$sentinel_port")
for extra in "$@"; do RUNS+=("$(basename "$extra")|$extra||"); done
for run in "${RUNS[@]}"; do
	IFS='|' read -r name vote_bin scraping sentinels <<<"$run"
	redis_cli del votes >/dev/null
	port=$(free_port)
	start_service "$name" "$TMP/${name//[^a-z]/}.log" \
		env PORT="$port" REDIS_URL="$REDIS_URL" ${sentinels:+REDIS_SENTINELS=$sentinels} \
		RUST_LOG=warn "$vote_bin"
	pid=$STARTED_PID
	wait_for "$name" env PORT="$port" "$vote_bin" healthcheck
	scraper=
	if [ -n "$scraping" ]; then
		scrape "$port" &
		scraper=$!
	fi
	measure "$name" "$pid" "$port"
	if [ -n "$scraper" ]; then kill "$scraper"; fi
	echo "$name: $(redis_cli llen votes) ballots queued" >&2
	stop_service "$pid"
done

echo
printf '%-16s %5s %9s %9s %9s %9s %8s %8s %9s\n' \
	server load req/s p50 p99 "CPU/req" ratio "redis/req" "peak RSS"
printf '%-16s %5s %9s %9s %9s %9s %8s %8s %9s\n' "" "" "" "" "" "(us)" "" "(us)" ""
printf '%s\n' "${ROWS[@]}"
