# Sourced by bench/vote.sh and bench/redis-ha.sh (after servers.sh and
# init_servers): wrk drives `POST /` (vote=a, no cookies: every request a new
# voter) at a server on loopback, and a row of figures is kept per run.
#
#   DURATION WARMUP CONNECTIONS THREADS    wrk's settings (WARMUP not counted)
#   measure NAME PID PORT [REDIS_PIDS]     appends a row to ROWS; sets RPS, P99,
#                                          CPU (us per request) of this run
#   print_rows                             the table
#
# CPU per request is the server's utime + stime (/proc/PID/stat), before and
# after, divided by the requests wrk completed; "redis/req" the same for the
# Redis processes named (all of them summed: a primary and its replica).
# "ratio" is CPU per request relative to the first row. Any failed request
# (non-2xx or socket error) stops the run.

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)
ROWS=()
BASE_CPU=

measure() { # measure NAME PID PORT [REDIS_PIDS]
	local name=$1 pid=$2 port=$3 redis_pids=${4:-} out="$TMP/wrk-${1//[^a-zA-Z0-9]/_}.txt"
	local url="http://127.0.0.1:$port/"
	[ -e "$TMP/post.lua" ] || cat >"$TMP/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = "vote=a"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
LUA
	in_foreground wrk -t"$THREADS" -c"$CONNECTIONS" -d"$WARMUP" -s "$TMP/post.lua" "$url" >/dev/null
	local load before redis_before=0 redis_after=0 p
	load=$(cut -d' ' -f1 /proc/loadavg)
	before=$(cpu_ticks "$pid")
	for p in $redis_pids; do redis_before=$((redis_before + $(cpu_ticks "$p"))); done
	in_foreground wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s "$TMP/post.lua" "$url" >"$out"
	local ticks=$(($(cpu_ticks "$pid") - before))
	for p in $redis_pids; do redis_after=$((redis_after + $(cpu_ticks "$p"))); done
	local requests p50 failed errors rss
	requests=$(awk '/requests in/ {print $1}' "$out")
	RPS=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' "$out")
	p50=$(awk '$1 == "50%" {print $2}' "$out")
	P99=$(awk '$1 == "99%" {print $2}' "$out")
	failed=$(awk '/Non-2xx or 3xx responses:/ {print $NF}' "$out")
	errors=$(awk '/Socket errors:/ {print}' "$out")
	rss=$(awk '/^VmHWM:/ {printf "%.1f MB", $2 / 1024}' "/proc/$pid/status")
	if [[ -n $failed || -n $errors ]]; then
		cat "$out" >&2
		echo "bench: $name: some requests failed: ${failed:+$failed non-2xx responses} $errors" >&2
		exit 1
	fi
	local ratio redis_cpu=-
	CPU=$(awk -v t="$ticks" -v hz="$HZ" -v n="$requests" 'BEGIN {printf "%.1f", t / hz / n * 1e6}')
	if [ -z "$BASE_CPU" ]; then BASE_CPU=$CPU; fi
	ratio=$(awk -v a="$CPU" -v b="$BASE_CPU" 'BEGIN {printf "%.2f", a / b}')
	if [ -n "$redis_pids" ]; then
		redis_cpu=$(awk -v t="$((redis_after - redis_before))" -v hz="$HZ" -v n="$requests" 'BEGIN {printf "%.1f", t / hz / n * 1e6}')
	fi
	ROWS+=("$(printf '%-16s %5s %9s %9s %9s %9s %8s %8s %9s' \
		"$name" "$load" "$RPS" "$p50" "$P99" "$CPU" "${ratio}x" "$redis_cpu" "$rss")")
}

print_rows() {
	printf '%-16s %5s %9s %9s %9s %9s %8s %8s %9s\n' \
		server load req/s p50 p99 "CPU/req" ratio "redis/req" "peak RSS"
	printf '%-16s %5s %9s %9s %9s %9s %8s %8s %9s\n' "" "" "" "" "" "(us)" "" "(us)" ""
	printf '%s\n' "${ROWS[@]}"
}
