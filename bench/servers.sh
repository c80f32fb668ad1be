# Sourced by the bench/*.sh scripts: throwaway Redis and Postgres servers on
# 127.0.0.1, kept in one temp dir, all stopped and removed when the script exits.
#
#   . "$(dirname "$0")/servers.sh"
#   init_servers NAME   # TMP=/tmp/bench-NAME.XXXXXX; stop everything on exit
#   start_redis         # REDIS_PORT, REDIS_URL
#   start_postgres      # PG_BIN, PG_PORT, DATABASE_URL (database "postgres")
#   on_stop FUNCTION    # also run at exit, after the services are stopped
#   in_background COMMAND...   # BACKGROUND_PID; not watched, killed at exit
#   start_service NAME LOG COMMAND...   # STARTED_PID; watched, stopped on exit
#   stop_service PID    # SIGTERM, wait, return its exit status
#   in_foreground COMMAND...   # a long command the watch can interrupt
#   BIN=$(release_dir)  # where `cargo build --release` put the binaries
#   median <<<"3 1 2"   # the median of numbers separated by spaces or lines
#
# A service started with start_service (Redis and Postgres included) is
# watched: if it exits before the script stops it, the script stops at once
# with its name, exit status and the end of its log, instead of waiting for
# something that will never come. The variables are set, not exported: each
# script decides what its own processes see.

PIDS=()
ON_STOP=()
HELPERS=()
declare -A SERVICE_NAME SERVICE_LOG WATCHER

# Creates $TMP and the traps that clean it up, whatever way the script ends.
init_servers() {
	TMP=$(mktemp -d "/tmp/bench-$1.XXXXXX")
	trap stop_servers EXIT
	# An interrupted or killed run must not leave servers behind either.
	trap 'exit 130' INT
	trap 'exit 143' TERM
	# A watcher saw a service die (see watch_pid).
	trap service_died USR1
}

# Newest first, waiting for each: a worker hands its batch back to Redis
# before Redis goes away, and apps go before the servers they use.
stop_servers() {
	local i
	trap '' USR1
	for i in "${WATCHER[@]}"; do kill "$i" 2>/dev/null || true; done
	if [ -n "${FOREGROUND:-}" ]; then kill "$FOREGROUND" 2>/dev/null || true; fi
	for i in "${HELPERS[@]}"; do kill "$i" 2>/dev/null || true; done
	for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
		kill "${PIDS[i]}" 2>/dev/null && wait "${PIDS[i]}" 2>/dev/null || true
	done
	for i in "${ON_STOP[@]}"; do "$i" || true; done
	if [ -d "$TMP/pg" ]; then
		as_postgres "$PG_BIN/pg_ctl" -D "$TMP/pg" -m immediate stop >/dev/null 2>&1 || true
	fi
	wait 2>/dev/null || true
	rm -rf "$TMP"
}

on_stop() { ON_STOP+=("$1"); }

# Runs a helper (a load or a probe loop) in the background; a run that stops
# early kills it rather than waiting for it to end by itself.
in_background() { # in_background COMMAND...
	"$@" &
	BACKGROUND_PID=$!
	HELPERS+=("$BACKGROUND_PID")
}

# The directory cargo puts release binaries in: honours CARGO_TARGET_DIR
# (and any cargo configuration), as `cargo build` itself does.
release_dir() {
	cargo metadata --format-version 1 --no-deps |
		python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"] + "/release")'
}

# Starts COMMAND in the background, its output appended to LOG (unless LOG
# is -), and watches it. STARTED_PID is its process id.
start_service() { # start_service NAME LOG COMMAND...
	local name=$1 log=$2
	shift 2
	if [ "$log" = - ]; then
		"$@" &
	else
		"$@" >>"$log" 2>&1 &
	fi
	STARTED_PID=$!
	PIDS+=("$STARTED_PID")
	watch_pid "$STARTED_PID" "$name" "$log"
}

# Watches a process (a child of this script, or a daemon such as Postgres):
# once it is gone, tells this script (SIGUSR1, see service_died). Checks
# every 0.1 s; a zombie counts as gone.
watch_pid() { # watch_pid PID NAME LOG
	SERVICE_NAME[$1]=$2
	SERVICE_LOG[$1]=$3
	(
		while [ -e "/proc/$1" ] && [ "$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)" != Z ]; do
			sleep 0.1
		done
		echo "$1" >"$TMP/died"
		kill -USR1 $$
	) &
	WATCHER[$1]=$!
}

# Stops watching PID, sends it SIGTERM and returns its exit status.
stop_service() { # stop_service PID
	local status=0
	unwatch "$1"
	kill -TERM "$1" 2>/dev/null || true
	wait "$1" || status=$?
	return "$status"
}

unwatch() {
	if [ -n "${WATCHER[$1]:-}" ]; then
		kill "${WATCHER[$1]}" 2>/dev/null || true
		wait "${WATCHER[$1]}" 2>/dev/null || true
		unset "WATCHER[$1]"
	fi
}

service_died() {
	local pid status=unknown name="a service" log=-
	pid=$(cat "$TMP/died" 2>/dev/null) || pid=
	if [ -n "$pid" ]; then
		wait "$pid" 2>/dev/null && status=0 || status=$?
		# Not ours to reap (a daemon): its status is not ours to know.
		[ "$status" = 127 ] && status=unknown
		name=${SERVICE_NAME[$pid]:-$name}
		log=${SERVICE_LOG[$pid]:-$log}
	fi
	echo "bench: $name (pid $pid) exited (status $status) while the benchmark ran" >&2
	if [ "$log" != - ] && [ -s "$log" ]; then
		echo "--- last lines of $log:" >&2
		tail -n 10 "$log" >&2
	fi
	exit 1
}

# Runs a long command so that a watched service's death interrupts it at
# once (bash runs a trap only between commands, or during `wait`). Returns
# the command's status.
in_foreground() { # in_foreground COMMAND...
	local status=0
	"$@" &
	FOREGROUND=$!
	wait "$FOREGROUND" || status=$?
	FOREGROUND=
	return "$status"
}

# The median of the numbers on stdin (separated by spaces or newlines).
median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# A loopback port nothing is bound to (the kernel picks it).
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Runs a check every 0.1 s until it succeeds, for at most WAIT_SECONDS
# (default 10) s.
wait_for() { # [WAIT_SECONDS=N] wait_for WHAT COMMAND...
	local what=$1 seconds=${WAIT_SECONDS:-10}
	shift
	for _ in $(seq $((seconds * 10))); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "bench: $what: not within $seconds s" >&2
	exit 1
}

# No persistence: the data only lives as long as the run.
start_redis() {
	REDIS_PORT=$(free_port)
	REDIS_URL=redis://127.0.0.1:$REDIS_PORT
	start_service redis-server "$TMP/redis.log" \
		redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
		--dir "$TMP" --logfile "$TMP/redis.log" --daemonize no
	wait_for redis-server redis_cli ping
}

redis_cli() { redis-cli -p "$REDIS_PORT" "$@"; }

# Postgres refuses to run as root.
as_postgres() {
	if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# PG_BIN: the newest installed Postgres's binaries.
find_postgres() {
	PG_BIN=$(dirname "$(readlink -f "$(ls -d /usr/lib/postgresql/*/bin/initdb | sort -V | tail -1)")")
}

# The newest installed Postgres, with its normal durable settings (fsync and
# synchronous_commit on), so the numbers are those of a real deployment.
start_postgres() {
	find_postgres
	PG_PORT=$(free_port)
	DATABASE_URL=postgres://postgres@127.0.0.1:$PG_PORT/postgres
	mkdir -p "$TMP/pg"
	if [ "$(id -u)" = 0 ]; then chown postgres "$TMP" "$TMP/pg"; fi
	as_postgres "$PG_BIN/initdb" -D "$TMP/pg" -U postgres -A trust -E UTF8 --locale=C >/dev/null
	as_postgres "$PG_BIN/pg_ctl" -D "$TMP/pg" -l "$TMP/pg/log" -w start \
		-o "-p $PG_PORT -k $TMP -c listen_addresses=127.0.0.1" >/dev/null
	watch_pid "$(head -1 "$TMP/pg/postmaster.pid")" postgres "$TMP/pg/log"
}

# psql as the superuser, unaligned and tuples only: prints bare values.
pg_sql() { as_postgres "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -qAt "$@"; }
