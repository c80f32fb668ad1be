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
# The current vote is measured twice: as is, and while /metrics is scraped
# every SCRAPE_EVERY (default 1 s, far more often than Prometheus would), to
# show what metrics cost the hot path. With Sentinel and WAIT: bench/redis-ha.sh.
#
# Binaries come from $CARGO_TARGET_DIR (or target/). Each server gets WARMUP
# of load first (not counted). Needs: cargo, redis-server, redis-cli, wrk,
# python3. Everything runs on 127.0.0.1; a server that dies stops the run.
set -euo pipefail
. "$(dirname "$0")/servers.sh"
. "$(dirname "$0")/wrk.sh"
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

# One run each: name|binary|scrape (empty: no scraping).
RUNS=("vote|$BIN/vote|" "vote, scraped|$BIN/vote|scrape")
for extra in "$@"; do RUNS+=("$(basename "$extra")|$extra|"); done
for run in "${RUNS[@]}"; do
	IFS='|' read -r name vote_bin scraping <<<"$run"
	redis_cli del votes >/dev/null
	port=$(free_port)
	start_service "$name" "$TMP/${name//[^a-z]/}.log" \
		env PORT="$port" REDIS_URL="$REDIS_URL" RUST_LOG=warn "$vote_bin"
	pid=$STARTED_PID
	wait_for "$name" env PORT="$port" "$vote_bin" healthcheck
	scraper=
	if [ -n "$scraping" ]; then
		scrape "$port" &
		scraper=$!
	fi
	measure "$name" "$pid" "$port" "$REDIS_PID"
	if [ -n "$scraper" ]; then kill "$scraper"; fi
	echo "$name: $(redis_cli llen votes) ballots queued" >&2
	stop_service "$pid"
done

echo
print_rows
