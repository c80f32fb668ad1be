#!/usr/bin/env bash
# Benchmark of the vote service: a release `vote` against a throwaway Redis,
# `POST /` (vote=a) driven by wrk. Prints votes/s, latency p50/p99, how many
# ballots were queued, and the vote process's memory after the run.
#
#   bench/vote.sh                      # 10 s, 64 connections, 2 wrk threads
#   DURATION=30s CONNECTIONS=128 bench/vote.sh
#
# Needs: cargo, redis-server, redis-cli, wrk, python3. Everything runs on 127.0.0.1.
set -euo pipefail
. "$(dirname "$0")/servers.sh"
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}

for tool in redis-server redis-cli wrk python3; do
    command -v "$tool" >/dev/null || { echo "bench: $tool not found (apt install ${tool%-*})" >&2; exit 1; }
done

cargo build --release --quiet -p vote --bin vote
vote_bin=${CARGO_TARGET_DIR:-target}/release/vote

init_servers vote
start_redis

vote_port=$(free_port)
PORT=$vote_port REDIS_URL=$REDIS_URL RUST_LOG=warn "$vote_bin" 2>"$TMP/vote.log" &
vote_pid=$!
PIDS+=("$vote_pid")
wait_for vote env PORT="$vote_port" "$vote_bin" healthcheck

cat >"$TMP/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = "vote=a"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
LUA

# Other work on the machine skews the numbers; say how busy it was.
echo "load average before the run: $(cut -d' ' -f1-3 /proc/loadavg)"
cpu_ticks() { awk '{print $14 + $15}' "/proc/$vote_pid/stat"; }
ticks_before=$(cpu_ticks)
echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency POST http://127.0.0.1:$vote_port/ (vote=a)"
wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s "$TMP/post.lua" \
    "http://127.0.0.1:$vote_port/" | tee "$TMP/wrk.txt"

ticks=$(($(cpu_ticks) - ticks_before))
hz=$(getconf CLK_TCK)
rps=$(awk '/^Requests\/sec:/ {print $2}' "$TMP/wrk.txt")
p50=$(awk '$1 == "50%" {print $2}' "$TMP/wrk.txt")
p99=$(awk '$1 == "99%" {print $2}' "$TMP/wrk.txt")
failed=$(awk '/Non-2xx or 3xx responses:/ {print $NF}' "$TMP/wrk.txt")
errors=$(awk '/Socket errors:/ {print}' "$TMP/wrk.txt")
queued=$(redis_cli llen votes)
rss=$(awk '/^VmRSS:/ {printf "%.1f MB", $2 / 1024}' "/proc/$vote_pid/status")
peak=$(awk '/^VmHWM:/ {printf "%.1f MB", $2 / 1024}' "/proc/$vote_pid/status")

echo
echo "== vote: POST / for $DURATION at $CONNECTIONS connections"
echo "votes/s:      $rps"
echo "latency p50:  $p50"
echo "latency p99:  $p99"
echo "queued:       $queued ballots on Redis"
requests=$(awk '/requests in/ {print $1}' "$TMP/wrk.txt")
cpu=$(awk -v t="$ticks" -v hz="$hz" -v n="$requests" \
    'BEGIN {printf "%.1f s, %.0f us per vote", t / hz, t / hz / n * 1e6}')
echo "vote CPU:     $cpu"
echo "vote RSS:     $rss after the run (peak $peak)"
if [[ -n $failed || -n $errors ]]; then
    echo "bench: some requests failed: ${failed:+$failed non-2xx responses} $errors" >&2
    exit 1
fi
