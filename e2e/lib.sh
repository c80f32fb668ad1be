# Shared by e2e/run.sh, e2e/ha.sh and e2e/swarm.sh (sourced): phases with their times,
# failing with one line, and a Docker engine that answers.
# The sourcing script sets E2E_NAME (the prefix of its output lines).

timings=()
phase_name=
phase_start=$SECONDS
# Starts the phase named $1, ending the one before.
phase() {
    end_phase
    phase_name=$1
    phase_start=$SECONDS
    printf '\n=== %s: %s (%s)\n' "$E2E_NAME" "$1" "$(date -u +%H:%M:%S)"
}
end_phase() {
    if [[ -n $phase_name ]]; then
        timings+=("$(printf '%-62s %5ss' "$phase_name" $((SECONDS - phase_start)))")
    fi
    phase_name=
}
print_timings() {
    printf '\n=== %s: time per phase\n' "$E2E_NAME"
    printf '%s\n' "${timings[@]}"
}
fail() {
    echo "$E2E_NAME: FAILED: $*" >&2
    exit 1
}

# Installs the Debian packages named (those missing, checked by the caller)
# with apt-get, as root.
install_packages() {
    (($#)) || return 0
    [[ $(id -u) == 0 ]] || fail "$* needed (run as root to install them)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "$@" >/dev/null
}

# Starts dockerd in the background unless one answers already.
ensure_dockerd() {
    docker info >/dev/null 2>&1 && return 0
    echo "starting dockerd (log: /var/log/dockerd-e2e.log)"
    nohup dockerd >/var/log/dockerd-e2e.log 2>&1 &
    for _ in $(seq 60); do
        docker info >/dev/null 2>&1 && return 0
        sleep 1
    done
    fail "dockerd did not start; see /var/log/dockerd-e2e.log"
}

# --- The compose stack (run.sh, ha.sh). The sourcing script defines
# compose() (the command with its files and profiles, from $COMPOSE) and
# sets COMPOSE_PROJECT_NAME, HEALTHY_WITHIN and CONVERGE_WITHIN (seconds),
# and STATS (the edge's stats URL) once the stack is up.

# Compose v2 if the engine has it, else v1 (Debian's docker-compose): COMPOSE.
find_compose() {
    if docker compose version >/dev/null 2>&1; then
        COMPOSE=(docker compose)
    else
        COMPOSE=(docker-compose)
    fi
    echo "using: ${COMPOSE[*]} ($("${COMPOSE[@]}" version --short 2>/dev/null || true))"
}

# The check tool (the e2e crate): check and check_within run it.
build_check_tool() {
    cargo build -q -p e2e
    E2E=${CARGO_TARGET_DIR:-$PWD/target}/debug/e2e
}
check() { "$E2E" --timeout "$CONVERGE_WITHIN" "$@"; }
check_within() {
    local seconds=$1
    shift
    "$E2E" --timeout "$seconds" "$@"
}

containers() { compose ps -q "$1"; }
# sed, not head: head leaves early and docker dies of SIGPIPE (pipefail).
container() { containers "$1" | sed -n 1p; }
state() {
    docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' "$1"
}
wait_healthy() {
    local deadline=$((SECONDS + HEALTHY_WITHIN)) service id
    for service in "$@"; do
        for id in $(containers "$service"); do
            until [[ $(state "$id") =~ ^(healthy|running)$ ]]; do
                ((SECONDS < deadline)) || fail "$service ($id) is $(state "$id") after ${HEALTHY_WITHIN}s"
                sleep 1
            done
        done
    done
    echo "healthy: $*"
}
# A container's address on one of the stack's networks.
address() {
    docker inspect -f "{{with index .NetworkSettings.Networks \"${COMPOSE_PROJECT_NAME}_$2\"}}{{.IPAddress}}{{end}}" "$1"
}
addresses() { docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}' "$1"; }

# Starts a bounded seed run in the background (its container's id in
# $seed_run), through the edge, verifying against the tally; returns once
# the edge has passed on its first $1 ballots.
seed_in_background() {
    local first=$1 sent
    shift
    sent=$(check traffic --stats "$STATS")
    seed_run=$(compose run -d --no-deps seed --verify=http://edge:5081 \
        --timeout="${CONVERGE_WITHIN}s" "$@" http://edge:5080/)
    check wait-traffic --stats "$STATS" --above $((sent + first)) >/dev/null
    [[ $(docker inspect -f '{{.State.Status}}' "$seed_run") == running ]] ||
        fail "the seed run ended before the step it loads"
}
# Waits for it; its output in $seed_out, its exit status in $seed_status.
seed_finish() {
    seed_status=$(timeout $((CONVERGE_WITHIN + 120)) docker wait "$seed_run") ||
        fail "the seed run did not end"
    seed_out=$(docker logs "$seed_run" 2>&1)
    docker rm -f "$seed_run" >/dev/null
    seed_run=
    printf '%s\n' "$seed_out" | grep -E '^(target|requests|failures|unknown|votes|throughput|latency|consistent|seed:)' || true
}

# From the finished run's $seed_out: its requests line in $requests, and
# how many failed and how many had an unknown outcome in $failed, $unknown.
seed_counts() {
    requests=$(printf '%s\n' "$seed_out" | sed -n 's/^requests *//p')
    failed=$(printf '%s\n' "$requests" | grep -oE '[0-9]+ failed' | cut -d' ' -f1 || true)
    unknown=$(printf '%s\n' "$requests" | grep -oE '[0-9]+ unknown' | cut -d' ' -f1 || true)
    failed=${failed:-0}
    unknown=${unknown:-0}
}

# --- Patroni clusters and failover figures (ha.sh, swarm.sh with SWARM_HA=1).
# Patroni's GET /cluster (JSON on stdin) as one line per member:
# "name role state timeline".
cluster_members() {
    python3 -c '
import json, sys
for m in json.load(sys.stdin)["members"]:
    print(m["name"], m["role"], m["state"], m.get("timeline", "-"))'
}
now() { date +%s.%N; }
# The worker's applied-ballots counter from its /metrics at URL $2, sampled
# every 0.1 s into $1 as "<unix time> <count>" until killed (at most 3,000
# samples): the write pause (below) is the longest time it stood still.
sample_applied() { sample_metrics "$2" "$1" worker_ballots_applied_total; }
since() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$@"; }
# The longest stretch between $2 and $3 (unix times) in log $1 in which
# the count (column $4 of "<time> <count> ...", 1 unless given) did not
# grow, in seconds.
write_pause() {
    python3 - "$@" <<'PY'
import sys
path, start, end = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
column = int(sys.argv[4]) if len(sys.argv) > 4 else 1
rows = []
for line in open(path):
    parts = line.split()
    if len(parts) > column:
        rows.append((float(parts[0]), float(parts[column])))
longest, last_t, last_n = 0.0, None, None
for t, n in rows:
    if last_n is None or n > last_n:
        if last_t is not None and last_t <= end and t >= start:
            longest = max(longest, t - last_t)
        last_t, last_n = t, n
print(f"{longest:.1f}")
PY
}
# Samples the Prometheus text at URL $1 every 0.1 s into $2 as "<unix
# time> <value> ...", a value for each series named after them (as the text
# spells them; 0 while absent), until killed (or 3,000 samples).
sample_metrics() {
    local url=$1 log=$2
    shift 2
    for _ in $(seq 3000); do
        printf '%s%s\n' "$(now)" "$(curl -fsS --max-time 1 "$url" 2>/dev/null | awk -v want="$*" '
            BEGIN { n = split(want, series, " ") }
            { value[$1] = $2 }
            END { for (i = 1; i <= n; i++) printf " %s", (series[i] in value) ? value[series[i]] : 0 }')" >>"$log"
        sleep 0.1
    done
}
# From a sample_metrics log $1: how much its column $2 (1: the first
# series) grew after $3 (unix time), and when it first and last grew, in
# seconds after $3: "N FIRST LAST" (FIRST and LAST "-" if it never grew).
growth_after() {
    python3 - "$@" <<'PY'
import sys
path, column, at = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
base, grew, first, last, prev = None, 0.0, None, None, None
for line in open(path):
    parts = line.split()
    if len(parts) <= column:
        continue
    t, n = float(parts[0]), float(parts[column])
    if t <= at or base is None:
        base = n
    else:
        grew = n - base
        if prev is not None and n > prev:
            first = t - at if first is None else first
            last = t - at
    prev = n
show = lambda s: "-" if s is None else f"{s:.1f}"
print(f"{grew:.0f} {show(first)} {show(last)}")
PY
}
# From websocket log $1 ("<unix ms> <total>"): seconds from $2 (unix time)
# to the first tally above the last one before $2; empty if none.
moved_after() {
    python3 - "$@" <<'PY'
import sys
path, at = sys.argv[1], float(sys.argv[2]) * 1000
before = None
for line in open(path):
    t, total = map(int, line.split())
    if t <= at:
        before = total
    elif before is None or total > before:
        print(f"{(t - at) / 1000:.1f}")
        break
PY
}
