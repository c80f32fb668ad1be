# Sourced by the bench/*.sh scripts: throwaway Redis and Postgres servers on
# 127.0.0.1, kept in one temp dir, all stopped and removed when the script exits.
#
#   . "$(dirname "$0")/servers.sh"
#   init_servers NAME   # TMP=/tmp/bench-NAME.XXXXXX; stop everything on exit
#   start_redis         # REDIS_PORT, REDIS_URL
#   start_postgres      # PG_BIN, PG_PORT, DATABASE_URL (database "postgres")
#   some_server & PIDS+=($!)   # also stopped on exit, newest first
#
# The variables are set, not exported: each script decides what its own
# processes see.

PIDS=()

# Creates $TMP and the traps that clean it up, whatever way the script ends.
init_servers() {
	TMP=$(mktemp -d "/tmp/bench-$1.XXXXXX")
	trap stop_servers EXIT
	# An interrupted or killed run must not leave servers behind either.
	trap 'exit 130' INT
	trap 'exit 143' TERM
}

# Newest first, waiting for each: a worker hands its batch back to Redis
# before Redis goes away, and apps go before the servers they use.
stop_servers() {
	local i
	for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
		kill "${PIDS[i]}" 2>/dev/null && wait "${PIDS[i]}" 2>/dev/null || true
	done
	if [ -n "${PG_BIN:-}" ]; then
		as_postgres "$PG_BIN/pg_ctl" -D "$TMP/pg" -m immediate stop >/dev/null 2>&1 || true
	fi
	wait 2>/dev/null || true
	rm -rf "$TMP"
}

# A loopback port nothing is bound to (the kernel picks it).
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Runs a check every 0.1 s until it succeeds, for at most 10 s.
wait_for() { # wait_for WHAT COMMAND...
	local what=$1
	shift
	for _ in $(seq 100); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "bench: $what did not start" >&2
	exit 1
}

# No persistence: the data only lives as long as the run.
start_redis() {
	REDIS_PORT=$(free_port)
	REDIS_URL=redis://127.0.0.1:$REDIS_PORT
	redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
		--dir "$TMP" --logfile "$TMP/redis.log" --daemonize no &
	PIDS+=($!)
	wait_for redis-server redis_cli ping
}

redis_cli() { redis-cli -p "$REDIS_PORT" "$@"; }

# Postgres refuses to run as root.
as_postgres() {
	if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# The newest installed Postgres, with its normal durable settings (fsync and
# synchronous_commit on), so the numbers are those of a real deployment.
start_postgres() {
	PG_BIN=$(dirname "$(readlink -f "$(ls -d /usr/lib/postgresql/*/bin/initdb | sort -V | tail -1)")")
	PG_PORT=$(free_port)
	DATABASE_URL=postgres://postgres@127.0.0.1:$PG_PORT/postgres
	mkdir -p "$TMP/pg"
	if [ "$(id -u)" = 0 ]; then chown postgres "$TMP" "$TMP/pg"; fi
	as_postgres "$PG_BIN/initdb" -D "$TMP/pg" -U postgres -A trust -E UTF8 --locale=C >/dev/null
	as_postgres "$PG_BIN/pg_ctl" -D "$TMP/pg" -l "$TMP/pg/log" -w start \
		-o "-p $PG_PORT -k $TMP -c listen_addresses=127.0.0.1" >/dev/null
}

# psql as the superuser, unaligned and tuples only: prints bare values.
pg_sql() { as_postgres "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -qAt "$@"; }
