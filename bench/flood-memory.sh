#!/usr/bin/env bash
# Memory after connection floods: release builds of vote and result (on a
# throwaway Redis and Postgres) take ROUNDS rounds of CONNECTIONS half-open
# connections each (every one sends the start of a request head and then
# nothing), held until the service cuts them (its 10 s head timeout), then
# IDLE seconds with no traffic. Prints each service's RSS at the start and
# after each round's idle: memory a flood took should come back.
#
#   bench/flood-memory.sh                  # 6 rounds of 2,000, 60 s idle
#   ROUNDS=3 IDLE=5 bench/flood-memory.sh
#   bench/flood-memory.sh /path/to/old/release   # also that build's vote
#                                                # and result, side by side
#
# Every build's services are flooded in the same round, so one run takes
# ROUNDS * (about 12 s + IDLE). A build is a directory holding `vote` and
# `result` (an executable script there that `exec`s the real binary works
# too: the pid stays the service's). Needs: cargo, redis-server, Postgres,
# python3. Everything runs on 127.0.0.1; a service that dies stops the run.
set -euo pipefail
. "$(dirname "$0")/servers.sh"
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-6}
CONNECTIONS=${CONNECTIONS:-2000}
IDLE=${IDLE:-60}
# The start of a request head that never ends.
HEAD=${HEAD:-'GET / HTTP/1.1\r\nHost: bench\r\n'}

for tool in redis-server redis-cli python3 curl; do
	command -v "$tool" >/dev/null || {
		echo "bench: $tool not found (apt install ${tool%-*})" >&2
		exit 1
	}
done

cargo build --release --quiet -p vote -p result --bins
BUILDS=("$(release_dir)" "$@")
SERVICES=$((2 * ${#BUILDS[@]}))
# This script holds every connection of a round at once.
ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((SERVICES * CONNECTIONS + 100)) ]; then
	echo "bench: ulimit -n is $(ulimit -n); $SERVICES services of $CONNECTIONS connections need $((SERVICES * CONNECTIONS + 100))" >&2
	exit 2
fi

init_servers flood-memory
start_redis
start_postgres
export REDIS_URL DATABASE_URL RUST_LOG=warn

NAMES=()
PIDS_BY_NAME=()
PORTS=()
for i in "${!BUILDS[@]}"; do
	build=${BUILDS[i]}
	label=new
	[ "$i" = 0 ] || label="old$i"
	[ "${#BUILDS[@]}" != 1 ] || label=
	for service in vote result; do
		name=$service${label:+ $label}
		port=$(free_port)
		start_service "$name" "$TMP/$service-$i.log" env PORT="$port" "$build/$service"
		NAMES+=("$name")
		PIDS_BY_NAME+=("$STARTED_PID")
		PORTS+=("$port")
		wait_for "$name" curl -sf "http://127.0.0.1:$port/healthz"
	done
done

rss_mb() { awk '/^VmRSS:/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }

# Opens CONNECTIONS connections to each port, sends HEAD on each, and waits
# (at most 60 s) until the services have closed every one of them.
flood() { # flood PORT...
	python3 - "$CONNECTIONS" "$HEAD" "$@" <<'PY'
import selectors, socket, sys, time
count, head, ports = int(sys.argv[1]), sys.argv[2], [int(p) for p in sys.argv[3:]]
head = head.encode().decode("unicode_escape").encode()
held = selectors.DefaultSelector()
for port in ports:
    for _ in range(count):
        connection = socket.create_connection(("127.0.0.1", port), timeout=10)
        connection.sendall(head)
        held.register(connection, selectors.EVENT_READ)
deadline = time.monotonic() + 60
while held.get_map() and time.monotonic() < deadline:
    for key, _ in held.select(1):
        try:
            more = key.fileobj.recv(65536)
        except OSError:
            more = b""
        if not more:  # closed by the service
            held.unregister(key.fileobj)
            key.fileobj.close()
left = len(held.get_map())
if left:
    sys.exit(f"bench: {left} connections still open after 60 s")
PY
}

row() { # row LABEL
	local line cells=() pid
	for pid in "${PIDS_BY_NAME[@]}"; do cells+=("$(rss_mb "$pid")"); done
	line=$(printf '%-10s' "$1")
	for cell in "${cells[@]}"; do line+=$(printf ' %12s' "$cell"); done
	echo "$line"
}

echo "$(nproc) cores; $ROUNDS rounds of $CONNECTIONS half-open connections to each service, $IDLE s idle after each; RSS in MB"
header=$(printf '%-10s' round)
for name in "${NAMES[@]}"; do header+=$(printf ' %12s' "$name"); done
echo "$header"
row start
for round in $(seq "$ROUNDS"); do
	in_foreground flood "${PORTS[@]}"
	sleep "$IDLE"
	row "$round"
done
peak=$(printf '%-10s' peak)
for pid in "${PIDS_BY_NAME[@]}"; do
	peak+=$(printf ' %12s' "$(awk '/^VmHWM:/ {printf "%.1f", $2 / 1024}' "/proc/$pid/status")")
done
echo "$peak"
