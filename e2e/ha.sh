#!/usr/bin/env bash
# The HA variant (docker-compose.ha.yml: Postgres under Patroni, etcd;
# Redis with replicas and Sentinels) under seed load: the Postgres primary
# killed with SIGKILL, then cut off from the network; then the same two
# faults for the Redis primary. Prints failover time, write pause and
# failed/unknown counts for each (for Redis: vote's 503 and 504 answers and
# when it gave them); fails if a new Postgres primary takes more than 15 s
# or a Redis one more than 10 s, if any ballot answered 200 is not counted
# exactly (seed --verify), if an old primary does not come back as a
# replica, if the results websocket does not move within 20 s of a Postgres
# promotion, if a Postgres primary cut off from the others acknowledges a
# write, or if vote answers 200 through a Redis primary cut off from the
# others.
# HA_PHASES=postgres or HA_PHASES=redis runs the faults of one only (the
# whole stack still starts); CI runs all (the default).
# Reuses the images e2e/run.sh built (builds what is missing). Run it under
# the e2e lock: flock /tmp/e2e.lock e2e/ha.sh. Always takes the stack down,
# volumes included, at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

export COMPOSE_PROJECT_NAME=${COMPOSE_PROJECT_NAME:-voting-ha}
HEALTHY_WITHIN=240
CONVERGE_WITHIN=120
# The issue's bounds.
FAILOVER_WITHIN=15
WEBSOCKET_WITHIN=20
# How long the old primary may take to be a streaming replica again.
REJOIN_WITHIN=90
# The load: ballots at a rate, a share of voters voting again.
LOAD=(--votes=24000 --rate=1200 --concurrency=64 --split=1:1 --changes=0.1)
MEMBERS=(db1 db2 db3)
REDIS_MEMBERS=(redis1 redis2 redis3)
SENTINELS=(sentinel1 sentinel2 sentinel3)
# The issue's bound for a Redis replica to be promoted.
REDIS_FAILOVER_WITHIN=10
# How long the cut-off Redis primary stays cut off after the promotion.
REDIS_CUT_AFTER_PROMOTION=5
HA_PHASES=${HA_PHASES:-all}

E2E_NAME=ha
# shellcheck source=e2e/lib.sh
source e2e/lib.sh
[[ $HA_PHASES =~ ^(all|postgres|redis)$ ]] || fail "HA_PHASES must be all, postgres or redis, not '$HA_PHASES'"

phase "engine and images"
ensure_dockerd
find_compose
compose() { "${COMPOSE[@]}" -f docker-compose.yml -f docker-compose.ha.yml --profile seed "$@"; }
command -v curl >/dev/null || fail "curl needed (apt-get install curl)"
command -v python3 >/dev/null || fail "python3 needed"

seed_run=
background=()
# The Redis partition's own network (a vote replica's way to the cut-off
# primary): removed at the end whatever happened.
side_network=${COMPOSE_PROJECT_NAME}_redis-side
work=$(mktemp -d)
cleanup() {
    status=$?
    end_phase
    if ((status != 0)); then
        echo "--- last log lines of the cluster and the worker"
        compose logs --no-color --tail=30 db1 db2 db3 redis1 redis2 redis3 sentinel1 sentinel2 sentinel3 vote worker result 2>&1 || true
    fi
    printf '\n=== ha: down -v\n'
    for pid in "${background[@]}"; do kill "$pid" 2>/dev/null || true; done
    if [[ -n $seed_run ]]; then docker rm -f "$seed_run" >/dev/null 2>&1 || true; fi
    compose down -v --remove-orphans >/dev/null 2>&1 || true
    docker network rm "$side_network" >/dev/null 2>&1 || true
    rm -rf "$work"
    print_timings
    if ((status == 0)); then echo "ha: all checks passed"; else echo "ha: FAILED"; fi
    exit "$status"
}
trap cleanup EXIT

e2e/offline-images.sh
build_check_tool
compose build

phase "up: 3 etcd, 3 Patroni members, 3 Redis members, 3 Sentinels, the services"
compose down -v --remove-orphans >/dev/null 2>&1 || true
compose up -d edge vote result worker migrate redis db db1 db2 db3 etcd1 etcd2 etcd3 \
    redis1 redis2 redis3 sentinel1 sentinel2 sentinel3
wait_healthy etcd1 etcd2 etcd3 db1 db2 db3 db redis1 redis2 redis3 sentinel1 sentinel2 sentinel3 \
    redis vote result worker edge
STATS=http://$(address "$(container edge)" back-tier):8404
# The members' and the worker's containers, looked up once: compose ps
# takes about a second, too slow for the loops below. (The ids stay through
# kill, start, disconnect and connect.)
declare -A id
for service in "${MEMBERS[@]}" "${REDIS_MEMBERS[@]}" "${SENTINELS[@]}" vote worker; do
    id[$service]=$(container "$service")
done

# --- The cluster as Patroni sees it, from the host over the back tier.
# GET a Patroni REST path ($2) of member $1 (no answer: empty).
rest() {
    local ip
    ip=$(address "${id[$1]}" back-tier)
    [[ -n $ip ]] || return 0
    curl -fsS --max-time 2 "http://$ip:8008$2" 2>/dev/null || true
}
# /cluster as one line per member: "name role state timeline", from the
# first member that answers other than $1 (the one cut off, if any).
members() {
    local m answer
    for m in "${MEMBERS[@]}"; do
        [[ $m == "${1:-}" ]] && continue
        answer=$(rest "$m" /cluster)
        [[ -n $answer ]] || continue
        cluster_members <<<"$answer"
        return 0
    done
}
leader() { members "${1:-}" | awk '$2 == "leader" && $3 == "running" { print $1 }'; }
# Waits up to $2 s for a leader other than $1 (it holds the leader key: it
# has promoted itself); prints its name.
wait_new_leader() {
    local old=$1 deadline=$((SECONDS + $2)) new
    while ((SECONDS < deadline)); do
        new=$(members "$old" | awk '$2 == "leader" { print $1 }')
        if [[ -n $new && $new != "$old" ]]; then
            echo "$new"
            return 0
        fi
        sleep 0.2
    done
    fail "no new leader within $2 s of losing $old: $(members "$old" | xargs)"
}
# Waits up to $REJOIN_WITHIN s until member $1 replicates from the leader
# on the leader's timeline.
wait_replica() {
    local m=$1 deadline=$((SECONDS + REJOIN_WITHIN)) line
    while ((SECONDS < deadline)); do
        line=$(members | awk -v m="$m" '$1 == m')
        lead_tl=$(members | awk '$2 == "leader" { print $4 }')
        if [[ $line =~ ^$m\ (replica|sync_standby)\ (running|streaming)\ ([0-9]+)$ ]] &&
            [[ ${BASH_REMATCH[3]} == "$lead_tl" ]]; then
            echo "$line"
            return 0
        fi
        sleep 1
    done
    fail "$m is not a replica on the leader's timeline after ${REJOIN_WITHIN}s: $(members | xargs)"
}
# Waits until there is a leader and every other member replicates from it.
wait_cluster() {
    local deadline=$((SECONDS + REJOIN_WITHIN)) lead m
    until lead=$(leader) && [[ -n $lead ]]; do
        ((SECONDS < deadline)) || fail "no leader within ${REJOIN_WITHIN}s: $(members | xargs)"
        sleep 1
    done
    for m in "${MEMBERS[@]}"; do
        if [[ $m != "$lead" ]]; then wait_replica "$m" >/dev/null; fi
    done
}
# What member $1's Patroni says its own role is, asked inside its container
# (so it answers while cut off): primary (role master and Postgres running:
# a demoting member keeps role master while its Postgres shuts down),
# otherwise role/state (replica/running, master/stopping, ...), or down.
own_role() {
    docker exec "${id[$1]}" python3 -c '
import json, urllib.request
me = json.load(urllib.request.urlopen("http://127.0.0.1:8008/patroni", timeout=1))
role, state = me["role"], me.get("state", "-")
print("primary" if role in ("master", "primary") and state == "running" else role + "/" + state)' 2>/dev/null ||
        echo down
}
# Whether member $1's Postgres takes writes (not in recovery): t, f, or -.
writable() {
    local answer
    answer=$(docker exec "${id[$1]}" psql -h /var/run/postgresql -U postgres -d postgres -qAtX \
        -c "SET statement_timeout = 1000; SELECT NOT pg_is_in_recovery()" 2>/dev/null) || answer=-
    echo "${answer:--}"
}

phase "the cluster: one leader, a synchronous standby, the services' roles"
wait_cluster
members | sed 's/^/  /'
primary=$(leader)
[[ -n $primary ]] || fail "no leader: $(members | xargs)"
[[ $(members | awk '$2 == "sync_standby"' | wc -l) -ge 1 ]] || fail "no synchronous standby: $(members | xargs)"
roles=$(docker exec "${id[$primary]}" psql -h /var/run/postgresql -U postgres -d postgres -qAtX \
    -c "SELECT string_agg(rolname, ' ' ORDER BY rolname) FROM pg_roles WHERE rolname LIKE 'voting\_%'")
[[ $roles == "voting_exporter voting_owner voting_result voting_worker" ]] ||
    fail "the cluster's roles are '$roles'"
[[ $(docker inspect -f '{{.State.Status}} {{.State.ExitCode}}' "$(container migrate)") == "exited 0" ]] ||
    fail "migrate did not exit 0 on the cluster"
settings=$(rest "$primary" /config | python3 -c '
import json, sys
c = json.load(sys.stdin)
print(" ".join(f"{k}={c.get(k)}" for k in ("ttl", "loop_wait", "retry_timeout", "synchronous_mode", "synchronous_mode_strict")))')
echo "leader $primary; roles: $roles; $settings"
check vote-reaches-websocket

# One fault under load: $1 names it (kill or partition). Starts the
# websocket log, the worker sampler and the seed, applies the fault to the
# leader, waits for a new one, heals, and checks.
under_load() {
    local fault=$1 old new t_fault t_new failover pause ws_moved ws_pid sampler_pid line
    local ws_log=$work/ws-$fault.log applied_log=$work/applied-$fault.log
    old=$(leader)
    [[ -n $old ]] || fail "no leader before the $fault"
    : >"$applied_log"
    sample_applied "$applied_log" "http://$(address "${id[worker]}" back-tier):5002/metrics" &
    sampler_pid=$!
    background+=("$sampler_pid")
    # The tool itself in the background, not a function's subshell: killing
    # that would leave the tool running, holding the e2e lock's descriptor.
    "$E2E" websocket-log --for 150 >"$ws_log" &
    ws_pid=$!
    background+=("$ws_pid")
    seed_in_background 3000 "${LOAD[@]}"

    t_fault=$(now)
    case $fault in
        kill)
            docker kill -s KILL "${id[$old]}" >/dev/null
            echo "leader $old killed (SIGKILL)"
            ;;
        partition)
            cut_off "$old"
            ;;
    esac
    new=$(wait_new_leader "$old" $((FAILOVER_WITHIN + 15)))
    t_new=$(now)
    failover=$(since "$t_fault" "$t_new")
    echo "new leader $new $failover s after the $fault"
    case $fault in
        kill)
            docker start "${id[$old]}" >/dev/null
            ;;
        partition)
            wait "$probe_pid" || true
            echo "a write on $old while cut off: $(cat "$work/probe")"
            [[ $(cat "$work/probe") != acknowledged ]] ||
                fail "$old acknowledged a write while cut off from its standbys"
            wait "$watch_pid" || true
            # When the cut-off primary stopped calling itself one, and how
            # long two members did (it could acknowledge nothing meanwhile).
            demoted=$(awk -v m="$old=primary" 'index($0, m) == 0 { print $1; exit }' "$work/roles.log")
            both=$(awk -v m="$old=primary" 'index($0, m) && gsub(/=primary/, "&") > 1' "$work/roles.log" | wc -l)
            if [[ -n $demoted ]]; then
                echo "$old demoted itself $(since "$t_fault" "$demoted") s after the cut; samples with two members calling themselves primary: $both of $(wc -l <"$work/roles.log")"
            else
                echo "$old still called itself primary 60 s after the cut ($both samples with two); reconnecting it"
            fi
            reconnect "$old"
            ;;
    esac
    line=$(wait_replica "$old")
    echo "$old is back as a replica: $line ($(since "$t_fault" "$(now)") s after the $fault)"
    compose logs --no-color "$old" 2>/dev/null | grep -iE 'pg_rewind|rewind' | tail -n 3 | sed 's/^/  /' || true

    seed_finish
    seed_counts
    kill "$sampler_pid" 2>/dev/null || true
    pause=$(write_pause "$applied_log" "$t_fault" "$(now)")
    ws_moved=$(moved_after "$ws_log" "$t_new")
    kill "$ws_pid" 2>/dev/null || true
    wait "$ws_pid" 2>/dev/null || true
    printf '%s: failover %s s, write pause %s s (worker), %s failed, %s unknown (%s); websocket moved %s s after the promotion\n' \
        "$fault" "$failover" "$pause" "$failed" "$unknown" "$requests" "${ws_moved:-never}" | tee -a "$work/summary"
    ((seed_status == 0)) || fail "seed --verify exited $seed_status after the $fault"
    grep -q '^consistent' <<<"$seed_out" || fail "seed --verify did not find every accepted ballot counted"
    python3 -c "import sys; sys.exit(float(sys.argv[1]) > float(sys.argv[2]))" "$failover" "$FAILOVER_WITHIN" ||
        fail "failover took $failover s (limit $FAILOVER_WITHIN s)"
    [[ -n $ws_moved ]] || fail "the results websocket never moved after the promotion"
    python3 -c "import sys; sys.exit(float(sys.argv[1]) > float(sys.argv[2]))" "$ws_moved" "$WEBSOCKET_WITHIN" ||
        fail "the results websocket moved only $ws_moved s after the promotion (limit $WEBSOCKET_WITHIN s)"
}

# Cuts member $1 off every network (recorded in $cut_networks); tries a
# write on it (in $work/probe: it must not be acknowledged, with
# synchronous_mode_strict and its standbys out of reach); every member's own
# role is sampled
# every 0.3 s (in $work/roles.log) until it has demoted itself and another
# leads, or 60 s.
cut_off() {
    local m=$1 net
    cut_networks=$(docker inspect -f '{{range $name, $net := .NetworkSettings.Networks}}{{$name}} {{end}}' "${id[$m]}")
    for net in $cut_networks; do docker network disconnect "$net" "${id[$m]}"; done
    echo "leader $m cut off from $cut_networks"
    # A transactional logical message writes WAL, so its commit waits for
    # the synchronous standby (a transaction that wrote no WAL, such as one
    # that only took an id with txid_current(), commits without waiting).
    # Not a temporary table: dropping it when the backend exits is another
    # commit waiting for the standby, and that wait held the cut-off
    # member's shutdown (its demotion) until the network came back.
    # In the background, so the failover is timed meanwhile.
    (
        if timeout 5 docker exec "${id[$m]}" psql -h /var/run/postgresql -U postgres -d postgres -qAtX \
            -c "SELECT pg_logical_emit_message(true, 'ha', 'probe')" >/dev/null 2>&1; then
            echo acknowledged
        else
            echo "not acknowledged within 5 s"
        fi
    ) >"$work/probe" &
    probe_pid=$!
    background+=("$probe_pid")
    : >"$work/roles.log"
    (
        deadline=$((SECONDS + 60))
        while ((SECONDS < deadline)); do
            line=""
            for member in "${MEMBERS[@]}"; do line+="$member=$(own_role "$member") "; done
            echo "$(date +%s.%N) $line" >>"$work/roles.log"
            if [[ $line != *"$m=primary"* && $line == *=primary* ]]; then exit 0; fi
            sleep 0.3
        done
    ) &
    watch_pid=$!
    background+=("$watch_pid")
}
reconnect() {
    local m=$1 net
    # Written while cut off, before it knew: the isolated member's Postgres
    # must not have been writable while the new leader was.
    echo "$m while cut off: writable=$(writable "$m") ($(own_role "$m"))"
    for net in $cut_networks; do docker network connect --alias "$m" "$net" "${id[$m]}"; done
    echo "$m reconnected"
}

if [[ $HA_PHASES != redis ]]; then
    phase "kill -9 of the primary under load"
    under_load kill

    phase "the primary cut off from the others under load"
    wait_cluster
    under_load partition
fi

if [[ $HA_PHASES != postgres ]]; then
    source e2e/ha-redis.sh
fi

end_phase
printf '\n=== ha: summary\n'
cat "$work/summary"
