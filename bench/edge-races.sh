#!/usr/bin/env bash
# The two ways a ballot's answer can be lost between the edge and vote, each
# a race between sending on a keep-alive connection and the other side
# closing it, counted on loopback: HAProxy with an edge configuration (the
# DNS-found replicas replaced by three fixed ones) in front of three release
# `vote` replicas on a throwaway Redis, driven by release `seed`.
#
# - idle: a burst of 3,000 ballots (concurrency 50), quiet for 9.95 to
#   10.0 s (cycling: just under vote's 10 s idle limit), a burst of 2,000;
#   the second burst's ballots that got no answer.
# - stop: 8,000 ballots at 800/s (concurrency 20); 3 s in, one replica gets
#   SIGTERM (with vote's SHUTDOWN_DRAIN, default its own); ballots that got
#   no answer or failed.
#
#   bench/edge-races.sh                          # edge/haproxy.cfg
#   bench/edge-races.sh OLD.cfg edge/haproxy.cfg # both, in one run
#   RUNS=20 SHUTDOWN_DRAIN=0 bench/edge-races.sh
#
# Prints one line per run (seed's own words for what went wrong) and a
# summary per configuration. Fails only if a service dies; a lost answer is
# a result, not an error. Needs: cargo, haproxy, redis-server, python3, curl.
set -euo pipefail
. "$(dirname "$0")/servers.sh"
cd "$(dirname "$0")/.."

RUNS=${RUNS:-12}
for tool in haproxy redis-server python3 curl; do
	command -v "$tool" >/dev/null || {
		echo "bench: $tool not found (apt install $tool)" >&2
		exit 1
	}
done
configs=("$@")
((${#configs[@]})) || configs=(edge/haproxy.cfg)

cargo build --release --quiet -p vote -p seed
BIN=$(release_dir)
init_servers edge-races
start_redis

# The edge configuration with fixed replicas on loopback instead of Docker's
# DNS, and its ports moved to free ones: EDGE_PORT (vote's), VOTE_PORTS;
# without the in-stack ports (5080, 5081).
loopback_config() { # loopback_config IN OUT
	python3 - "$1" "$2" "$EDGE_PORT" "$RESULT_PORT" "$STATS_PORT" "${VOTE_PORTS[@]}" <<'EOF'
import re, sys
src, dst, edge, result, stats, *votes = sys.argv[1:]
cfg = open(src).read()
cfg = re.sub(r"\nresolvers docker\n(    .*\n|\n)*?(?=defaults)", "\n", cfg)
cfg = re.sub(r"\n    default-server [^\n]*resolvers docker[^\n]*", "", cfg)
servers = "".join(f"    server vote{i} 127.0.0.1:{p} maxconn 256\n" for i, p in enumerate(votes))
cfg = re.sub(r"    server-template vote [^\n]*\n", servers, cfg)
cfg = re.sub(r"    server-template result [^\n]*\n", "", cfg)
cfg = cfg.replace("bind :5000", f"bind 127.0.0.1:{edge}")
cfg = cfg.replace("bind :5001", f"bind 127.0.0.1:{result}")
cfg = cfg.replace("bind :8404", f"bind 127.0.0.1:{stats}")
cfg = re.sub(r"    bind :508[01] [^\n]*\n", "", cfg)
cfg = cfg.replace("log stdout format raw local0", "log stderr format raw local0")
open(dst, "w").write(cfg)
EOF
}

EDGE_PORT=$(free_port)
RESULT_PORT=$(free_port)
STATS_PORT=$(free_port)
VOTE_PORTS=("$(free_port)" "$(free_port)" "$(free_port)")
EDGE_URL=http://127.0.0.1:$EDGE_PORT/
VOTE_PIDS=()

start_votes() {
	local port
	VOTE_PIDS=()
	for port in "${VOTE_PORTS[@]}"; do
		start_service "vote :$port" "$TMP/vote-$port.log" \
			env PORT="$port" REDIS_URL="$REDIS_URL" RUST_LOG=warn \
			${SHUTDOWN_DRAIN:+SHUTDOWN_DRAIN=$SHUTDOWN_DRAIN} "$BIN/vote"
		VOTE_PIDS+=("$STARTED_PID")
	done
}
stop_votes() {
	local pid
	for pid in "${VOTE_PIDS[@]}"; do
		unwatch "$pid"
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
}
# Waits until the edge answers a vote page through every replica.
edge_ready() {
	local deadline=$((SECONDS + 20))
	until [ "$(curl -s -o /dev/null -w '%{http_code}' "$EDGE_URL")" = 200 ] &&
		[ "$(curl -s "http://127.0.0.1:$STATS_PORT/stats;csv" | grep -c '^vote,vote[0-9],.*,UP,')" = 3 ]; do
		((SECONDS < deadline)) || {
			echo "bench: the edge did not take all three replicas within 20 s" >&2
			exit 1
		}
		sleep 0.2
	done
}
# seed exits 1 when a request failed: here that is a result to count.
seed() { "$BIN/seed" "$@" "$EDGE_URL" 2>&1 || true; }
# Requests of one seed run that failed or got no answer, from its summary.
outcome() { # outcome SEED_OUTPUT
	local requests failed unknown
	requests=$(sed -n 's/^requests *//p' <<<"$1")
	failed=$(grep -oE '[0-9]+ failed' <<<"$requests" | cut -d' ' -f1 || true)
	unknown=$(grep -oE '[0-9]+ unknown' <<<"$requests" | cut -d' ' -f1 || true)
	echo "$((${failed:-0} + ${unknown:-0}))"
}
kinds() { { grep -E '^(failures|unknown) ' <<<"$1" || true; } | sed 's/ (sent, not confirmed.*//; s/  */ /g' | xargs; }

for config in "${configs[@]}"; do
	[ -r "$config" ] || {
		echo "bench: cannot read $config" >&2
		exit 1
	}
	loopback_config "$config" "$TMP/haproxy.cfg"
	haproxy -c -q -f "$TMP/haproxy.cfg" || {
		echo "bench: $config does not load once made loopback-only" >&2
		exit 1
	}
	start_votes
	# Every client here is 127.0.0.1: no per-client limit (the races
	# measured are between the edge and the replicas).
	start_service haproxy "$TMP/haproxy.log" env EDGE_RATE_LIMIT=1000000000 haproxy -f "$TMP/haproxy.cfg"
	edge_pid=$STARTED_PID
	edge_ready
	echo "== $config: idle ($RUNS runs: burst, just under 10 s quiet, burst)"
	idle_lost=0 idle_hit=0
	gaps=(9.95 9.96 9.97 9.98 9.99 10.0)
	for ((run = 0; run < RUNS; run++)); do
		seed --votes 3000 --concurrency 50 >/dev/null
		gap=${gaps[run % ${#gaps[@]}]}
		sleep "$gap"
		out=$(seed --votes 2000 --concurrency 50)
		lost=$(outcome "$out")
		idle_lost=$((idle_lost + lost))
		((lost == 0)) || idle_hit=$((idle_hit + 1))
		printf 'idle %2d (%ss): %s lost %s\n' "$run" "$gap" "$lost" "$(kinds "$out")"
	done
	echo "== $config: stop ($RUNS runs: a replica stopped under 800 ballots/s)"
	stop_lost=0 stop_hit=0
	for ((run = 0; run < RUNS; run++)); do
		out=$TMP/stop.out
		seed --votes 8000 --concurrency 20 --rate 800 >"$out" &
		load=$!
		sleep 3
		victim=${VOTE_PIDS[0]}
		unwatch "$victim"
		kill -TERM "$victim"
		wait "$load" || true
		wait "$victim" 2>/dev/null || true
		lost=$(outcome "$(cat "$out")")
		stop_lost=$((stop_lost + lost))
		((lost == 0)) || stop_hit=$((stop_hit + 1))
		printf 'stop %2d: %s lost %s\n' "$run" "$lost" "$(kinds "$(cat "$out")")"
		VOTE_PIDS=("${VOTE_PIDS[@]:1}")
		stop_votes
		start_votes
		edge_ready
	done
	summary+=("$config: idle: $idle_lost answers lost in $idle_hit of $RUNS runs; stop: $stop_lost lost or failed in $stop_hit of $RUNS runs")
	stop_votes
	unwatch "$edge_pid"
	kill "$edge_pid" 2>/dev/null || true
	wait "$edge_pid" 2>/dev/null || true
done
echo
printf '%s\n' "${summary[@]}"
