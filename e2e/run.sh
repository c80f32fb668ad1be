#!/usr/bin/env bash
# The whole-stack test: the real Dockerfile and docker-compose.yml, driven
# from the host through the edge's published ports, with several vote and
# result replicas behind it, and the monitoring profile (Prometheus and its
# exporters) watching it. Works on a fresh Debian machine as root
# (installs and starts the engine, builds the base images locally).
# Always takes the stack down, volumes included, at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

export COMPOSE_PROJECT_NAME=${COMPOSE_PROJECT_NAME:-voting-e2e}
VOTE_REPLICAS=3
RESULT_REPLICAS=2
# Patient enough for a cold start on two cores, bounded so a hang fails.
HEALTHY_WITHIN=300
CONVERGE_WITHIN=180
# Prometheus (profile monitoring), as published; the check tool reads it.
export PROMETHEUS_URL=http://127.0.0.1:${PROMETHEUS_PORT:-9090}
# The edge's limit per client address (requests per 10 s). Every check
# from the host reaches the edge from one address (the Docker network's
# gateway), and together they send up to about 1,000 requests in 10 s (the
# half-open connections' phase); above that, the limit's own phase floods.
export EDGE_RATE_LIMIT=2000
# The commit every image is built from and every service must tell
# (docker-compose.yml passes it to the build).
GIT_COMMIT=${GIT_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
export GIT_COMMIT

E2E_NAME=e2e
# shellcheck source=e2e/lib.sh
source e2e/lib.sh

phase "engine"
need=()
command -v docker >/dev/null || need+=(docker.io)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v docker-compose >/dev/null || docker compose version >/dev/null 2>&1 || need+=(docker-compose)
# The browser check drives the results page in headless Chromium.
command -v chromium >/dev/null || need+=(chromium)
command -v chromedriver >/dev/null || need+=(chromium-driver)
# ss and nsenter count a replica's connections inside its container.
command -v ss >/dev/null || need+=(iproute2)
command -v nsenter >/dev/null || need+=(util-linux)
# curl reads the console page of the monitoring profile's Prometheus and
# flips a replica's readiness switch on its own port.
command -v curl >/dev/null || need+=(curl)
install_packages "${need[@]}"
ensure_dockerd
find_compose
compose() { "${COMPOSE[@]}" --profile seed --profile monitoring "$@"; }
# 1,100 half-open connections need as many file descriptors here.
hard=$(ulimit -Hn)
if [[ $hard == unlimited ]] || ((hard > 65536)); then hard=65536; fi
ulimit -Sn "$hard"

seed_run=
background=()
cleanup() {
    status=$?
    end_phase
    if ((status != 0)); then
        echo "--- last log lines of each service"
        compose logs --no-color --tail=40 2>&1 || true
    fi
    printf '\n=== e2e: down -v\n'
    for pid in "${background[@]}"; do kill "$pid" 2>/dev/null || true; done
    if [[ -n $seed_run ]]; then docker rm -f "$seed_run" >/dev/null 2>&1 || true; fi
    compose down -v --remove-orphans >/dev/null 2>&1 || true
    print_timings
    if ((status == 0)); then echo "e2e: all checks passed"; else echo "e2e: FAILED"; fi
    exit "$status"
}
trap cleanup EXIT

phase "base images (offline-images.sh)"
e2e/offline-images.sh

phase "check tool (cargo build -p e2e)"
build_check_tool

phase "service images (compose build)"
compose build

phase "up: $VOTE_REPLICAS vote and $RESULT_REPLICAS result replicas behind the edge"
compose down -v --remove-orphans >/dev/null 2>&1 || true
compose up -d --scale vote=$VOTE_REPLICAS --scale result=$RESULT_REPLICAS \
    edge vote result worker migrate redis db prometheus redis-exporter postgres-exporter
wait_healthy db redis vote result worker edge prometheus redis-exporter postgres-exporter
# The stats port is not published: the host reaches it on the back tier.
STATS=http://$(address "$(container edge)" back-tier):8404
echo "edge stats: $STATS/stats"
in_rotation() { check in-rotation --stats "$STATS" --vote "$1" --result "$2"; }
in_rotation $VOTE_REPLICAS $RESULT_REPLICAS
[[ $(containers vote | wc -l) == "$VOTE_REPLICAS" ]] || fail "expected $VOTE_REPLICAS vote containers"
published=$(docker ps --filter "label=com.docker.compose.project=$COMPOSE_PROJECT_NAME" \
    --format '{{.Label "com.docker.compose.service"}} {{.Ports}}' | grep -- '->' | cut -d' ' -f1 | sort -u | xargs)
[[ $published == "edge prometheus" ]] ||
    fail "only the edge and prometheus should publish ports; these do: $published"
# Prometheus has no login: on the host's loopback only (MONITORING_BIND).
prometheus_bound=$(docker port "$(container prometheus)" 9090/tcp | xargs)
[[ $prometheus_bound == "127.0.0.1:${PROMETHEUS_PORT:-9090}" ]] ||
    fail "Prometheus should be published on 127.0.0.1 only, not on $prometheus_bound"
echo "published: the edge on every interface, Prometheus on $prometheus_bound"

phase "the edge: public routes only (/metrics, /readyz, /version... 404)"
check public-routes

phase "every service tells its build ($GIT_COMMIT): /version, the pages"
# /version on each replica's own port, on the back tier (the edge does not
# serve it); both pages through the edge, every replica.
for service_port in vote:5000 result:5001 worker:5002; do
    for id in $(containers "${service_port%:*}"); do
        check version --url "http://$(address "$id" back-tier):${service_port#*:}" \
            --service "${service_port%:*}" --commit "$GIT_COMMIT"
    done
done
check builds --page vote --requests 12 --expect-commit "$GIT_COMMIT"
check builds --page result --requests 8 --expect-commit "$GIT_COMMIT"

phase "database roles: each service as its own, none as the superuser"
# migrate ran once as the owner and exited 0; the worker, result replicas
# and the exporter are connected as their roles (db/postgres-roles.sh).
[[ $(docker inspect -f '{{.State.Status}} {{.State.ExitCode}}' "$(container migrate)") == "exited 0" ]] ||
    fail "migrate did not exit 0: $(compose logs --no-color migrate | tail -5)"
connected() {
    compose exec -T db psql -qAt -U "${POSTGRES_USER:-postgres}" -d "${POSTGRES_DB:-postgres}" \
        -c "SELECT string_agg(DISTINCT usename, ' ' ORDER BY usename) FROM pg_stat_activity
            WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()" | tr -d '\r'
}
expected_roles="voting_exporter voting_result voting_worker"
roles_connected() { [[ $(connected) == "$expected_roles" ]]; }
deadline=$((SECONDS + 30))
until roles_connected; do
    ((SECONDS < deadline)) || fail "connected to Postgres: $(connected); expected $expected_roles"
    sleep 1
done
owners=$(compose exec -T db psql -qAt -U "${POSTGRES_USER:-postgres}" -d "${POSTGRES_DB:-postgres}" \
    -c "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'" | tr -d '\r')
[[ $owners == voting_owner ]] || fail "the schema's tables should belong to voting_owner, not $owners"
echo "migrate exited 0; the tables belong to voting_owner; connected: $(connected)"

phase "monitoring: every scrape target up"
check targets-up --expect vote=$VOTE_REPLICAS --expect result=$RESULT_REPLICAS --expect worker=1 \
    --expect edge=1 --expect redis=1 --expect postgres=1 --expect prometheus=1
# The exporter's target answers even when it cannot log in: pg_up says it did
# (as voting_exporter).
check_within 60 prom-at-least --min 1 'min(pg_up)'

phase "a vote reaches the websocket (through the edge)"
check vote-reaches-websocket

phase "each vote replica answers through the edge"
expect=()
for id in $(containers vote); do expect+=(--expect "$(docker inspect -f '{{.Config.Hostname}}' "$id")"); done
check served-by --requests 30 "${expect[@]}"

phase "seed profile (3,000 ballots) with --verify, shares; the scale kept"
before=$(check tally)
servers_before=$(check edge-servers --stats "$STATS" --backend vote)
# As the README says to run it.
compose run --rm seed
check wait-tally --since "$before" --plus a=2000 --plus b=1000
check shares --stats "$STATS" --since "$servers_before" --min-share 0.10
# `up seed` scaled vote and result back to one replica each while seed had
# a depends_on; now neither way touches them.
compose up seed
[[ $(containers vote | wc -l) == "$VOTE_REPLICAS" && $(containers result | wc -l) == "$RESULT_REPLICAS" ]] ||
    fail "running the seed profile changed the scale: $(containers vote | wc -l) vote, $(containers result | wc -l) result replicas"
in_rotation $VOTE_REPLICAS $RESULT_REPLICAS
check wait-tally --since "$before" --plus a=4000 --plus b=2000
# No worker or vote replica has restarted yet, so their counters cover the
# whole run: every ballot in the tally, seed's 3,000 included, was queued
# by a vote replica and applied by the worker.
total=$(check tally | sed -E 's/.*"total": *([0-9]+).*/\1/')
check_within 60 prom-at-least --min "$total" 'sum(worker_ballots_applied_total)'
check_within 60 prom-at-least --min "$total" 'sum(vote_ballots_total{outcome="queued"})'

phase "no idle connection to a vote replica outlives its client's"
# Once a client's connections have closed, the edge's connections to the
# replicas must have closed with them (edge/haproxy.cfg, "Keep-alive
# without races"). HAProxy's shared pool kept dozens idle until vote closed
# them itself at 10 s, and a ballot sent on one just then got no answer.
# Only the edge's connections count (Prometheus keeps its own to scrape
# /metrics); its health checks open one now and then: the least of 5 looks.
check cast --count=200 --option=a
sleep 1
edge_ips=$(addresses "$(container edge)")
from_edge() {
    awk -v ips="$edge_ips" 'BEGIN { n = split(ips, a, " "); for (i = 1; i <= n; i++) edge[a[i]] = 1 }
        { split($NF, peer, ":"); if (peer[1] in edge) count++ } END { print count + 0 }'
}
for id in $(containers vote); do
    pid=$(docker inspect -f '{{.State.Pid}}' "$id")
    least=
    for _ in 1 2 3 4 5; do
        open=$(nsenter -t "$pid" -n ss -Htn state established '( sport = :5000 )' | from_edge)
        if [[ -z $least ]] || ((open < least)); then least=$open; fi
        sleep 0.2
    done
    ((least == 0)) || fail "vote $(docker inspect -f '{{.Config.Hostname}}' "$id") still has $least connections from the edge open after its clients left"
done
echo "every vote replica's connections from the edge closed with their clients'"

phase "results page in Chromium, live through the edge"
check browser-live --more 9

phase "a per-client limit at the edge: one address floods, another votes"
# Two client addresses from the host: its addresses on the two networks
# (the gateways), reaching the edge's public ports at its address on each.
edge_front=$(address "$(container edge)" front-tier)
edge_back=$(address "$(container edge)" back-tier)
"$E2E" --timeout "$CONVERGE_WITHIN" --vote-url "http://$edge_back:5000" --result-url "http://$edge_back:5001" \
    rate-limit --limit "$EDGE_RATE_LIMIT" --max-requests $((EDGE_RATE_LIMIT * 10)) --flood-url "http://$edge_front:5000"
# Prometheus scrapes the replicas on the back tier, past the edge.
check targets-up --expect vote=$VOTE_REPLICAS --expect result=$RESULT_REPLICAS --expect worker=1 \
    --expect edge=1 --expect redis=1 --expect postgres=1 --expect prometheus=1

phase "monitoring: every Grafana dashboard query returns data"
# A rate needs two scrapes of a series that moved in between: waits for them.
check_within 60 panels-have-data --dashboard monitoring/grafana/dashboards/voting.json --range 600

# redis-cli in the Redis container as one of its users (redis/users.acl),
# with the password from that user's secret there: redis_cli_as vote ...
redis_cli_as() {
    local user=$1
    shift
    compose exec -T redis sh -c 'REDISCLI_AUTH=$(cat "/run/secrets/redis_$0_password") exec redis-cli --user "$0" "$@"' \
        "$user" "$@" | tr -d '\r'
}
redis_cli() { redis_cli_as admin "$@"; }
queued() { redis_cli llen votes; }

phase "Redis: no access without a user; each service's user only its role"
[[ $(compose exec -T redis redis-cli ping | tr -d '\r') == NOAUTH* ]] ||
    fail "Redis answers a client without a user"
for refused in "vote lrange votes 0 -1" "vote del votes" "worker flushall" "worker config get maxmemory"; do
    # shellcheck disable=SC2086 # the user and the command's words
    answer=$(redis_cli_as $refused)
    [[ $answer == NOPERM* ]] || fail "redis user ${refused%% *} may run '${refused#* }': $answer"
done
[[ $(redis_cli_as vote ping) == PONG ]] || fail "vote's Redis user cannot log in"
echo "without a user: NOAUTH; vote may not LRANGE or DEL votes, the worker may not FLUSHALL or CONFIG"
psql_db() { compose exec -T db psql -q -v ON_ERROR_STOP=1 -U "${POSTGRES_USER:-postgres}" -d "${POSTGRES_DB:-postgres}" "$@"; }

phase "tiers; kill -9 the worker with a batch in flight"
before=$(check tally)
seed_in_background 1000 --votes=6000 --split=2:1 --concurrency=20 --rate=600
members() {
    docker network inspect -f '{{range $id, $c := .Containers}}{{$id}} {{end}}' "${COMPOSE_PROJECT_NAME}_$1" |
        xargs docker inspect -f '{{index .Config.Labels "com.docker.compose.service"}}' | sort -u | xargs
}
front=$(members front-tier)
back=$(members back-tier)
echo "front-tier: $front"
echo "back-tier:  $back"
[[ $front == "edge result seed vote" ]] || fail "front-tier should hold edge result seed vote"
tiers="db edge postgres-exporter prometheus redis redis-exporter result vote worker"
[[ $back == "$tiers" ]] || fail "back-tier should hold $tiers"
# A batch in flight: taken from the queue, not yet committed. A lock on the
# votes table holds the worker's commit for 2 s while ballots pile up; the
# lock is let go and at once taken again, so the worker commits that batch,
# takes a full one from the pile, and its commit waits again: the worker is
# killed with that batch in flight.
processing_lists() { redis_cli --scan --pattern 'votes:processing:*' | xargs; }
in_flight() {
    local list count=0
    for list in $(processing_lists); do count=$((count + $(redis_cli llen "$list"))); done
    echo "$count"
}
worker=$(container worker)
# The lock must meet ballots already flowing, or no batch fills while it
# holds: the seed container can take seconds to start on a busy machine.
clock=$(redis_cli get votes:clock)
deadline=$((SECONDS + 60))
until [[ $(redis_cli get votes:clock) != "$clock" ]]; do
    ((SECONDS < deadline)) || fail "the seed queued nothing within 60 s"
    sleep 0.1
done
psql_db -c "BEGIN; LOCK TABLE votes IN EXCLUSIVE MODE; SELECT pg_sleep(2); COMMIT;
    BEGIN; LOCK TABLE votes IN EXCLUSIVE MODE; SELECT pg_sleep(8); COMMIT;" >/dev/null &
lock_pid=$!
background+=("$lock_pid")
deadline=$((SECONDS + 8))
until (($(in_flight) >= 100)); do
    ((SECONDS < deadline)) || fail "no batch of 100 or more in flight within 8 s ($(in_flight) taken)"
    sleep 0.1
done
# The take may still be filling the batch; its commit waits for the lock.
sleep 0.3
docker kill "$worker" >/dev/null
lists=$(processing_lists)
echo "worker killed (SIGKILL) with $(in_flight) ballots in flight ($lists) and $(queued) queued"
wait "$lock_pid" || fail "the lock on votes could not be taken"
sleep 1
docker start "$worker" >/dev/null
echo "worker restarted"
seed_finish
((seed_status == 0)) || fail "seed --verify exited $seed_status after the worker was killed"
check wait-tally --since "$before" --plus a=4000 --plus b=2000
# The restarted worker hands the dead one's batch back once its heartbeat
# has expired (HEARTBEAT_TTL, 10 s; up to about twice that); counted again,
# it must change nothing.
deadline=$((SECONDS + 60))
until [[ $(redis_cli exists $lists) == 0 ]]; do
    ((SECONDS < deadline)) || fail "the killed worker's batch ($lists) was not handed back within 60 s"
    sleep 1
done
echo "the killed worker's batch was handed back $((60 - deadline + SECONDS))s after the tally was exact"
check wait-tally --since "$before" --plus a=4000 --plus b=2000

phase "stop a vote replica under load"
before=$(check tally)
seed_in_background 2000 --votes=8000 --split=1:1 --concurrency=20 --rate=800
victim=$(container vote)
ips=()
for ip in $(addresses "$victim"); do ips+=(--ip "$ip"); done
slot=$(check server-name --stats "$STATS" "${ips[@]}")
docker stop "$victim" >/dev/null &
stop_pid=$!
background+=("$stop_pid")
check drain --stats "$STATS" --name "$slot" --within 5
wait "$stop_pid"
seed_finish
consistent=$(printf '%s\n' "$seed_out" | grep '^consistent' || true)
[[ -n $consistent ]] || fail "seed --verify did not find every accepted ballot counted"
seed_counts
echo "while the replica drained: $failed failed, $unknown unknown outcome ($requests)"
# It says it is not ready and serves on until the edge has taken it out
# (SHUTDOWN_DRAIN), then stops: no request is on its way to it by then.
((failed + unknown == 0)) ||
    fail "$failed failed and $unknown unknown-outcome requests while a replica drained (target 0)"
docker start "$victim" >/dev/null
in_rotation $VOTE_REPLICAS $RESULT_REPLICAS

phase "readiness switch: a vote replica out of the edge and back, under load"
# POST /readyz/disable on the replica's own port (the back tier; the edge
# answers 404 to it, see "public routes" above): its /readyz answers 503,
# the edge takes it out with no request failing, and it serves what it has.
before=$(check tally)
seed_in_background 1000 --votes=6000 --split=1:1 --concurrency=20 --rate=600
victim=$(containers vote | sed -n 2p)
victim_ip=$(address "$victim" back-tier)
ips=()
for ip in $(addresses "$victim"); do ips+=(--ip "$ip"); done
slot=$(check server-name --stats "$STATS" "${ips[@]}")
curl -fsS -X POST "http://$victim_ip:5000/readyz/disable"
check drain --stats "$STATS" --name "$slot" --within 5
[[ $(curl -s -o /dev/null -w '%{http_code}' "http://$victim_ip:5000/readyz") == 503 ]] ||
    fail "vote $victim_ip answers /readyz with 200 while switched off"
curl -fsS -X POST "http://$victim_ip:5000/readyz/enable"
in_rotation $VOTE_REPLICAS $RESULT_REPLICAS
seed_finish
requests=$(printf '%s\n' "$seed_out" | sed -n 's/^requests *//p')
failed=$(printf '%s\n' "$requests" | grep -oE '[0-9]+ failed' | cut -d' ' -f1 || true)
unknown=$(printf '%s\n' "$requests" | grep -oE '[0-9]+ unknown' | cut -d' ' -f1 || true)
echo "while the replica was switched off: ${failed:-0} failed, ${unknown:-0} unknown outcome"
((seed_status == 0 && ${failed:-0} + ${unknown:-0} == 0)) ||
    fail "seed exited $seed_status with ${failed:-0} failed, ${unknown:-0} unknown requests while a replica was switched off (target 0)"
check wait-tally --since "$before" --plus a=3000 --plus b=3000
# Back in rotation, it answers again: each replica serves some of 30 pages.
check served-by --requests 30 "${expect[@]}"

phase "demo fault: a vote replica refusing half the votes (VoteRefusingBallots fires, nothing lost)"
# One more replica, with DEMO_REFUSE_FRACTION (the others are kept as they
# are). seed votes on it directly (not through the edge, which would pass a
# 503 on to another replica): about half its ballots get 503, and every one
# that got a 200 must be counted, no more.
DEMO_REFUSE_FRACTION=0.5 compose up -d --no-deps --no-recreate --scale vote=$((VOTE_REPLICAS + 1)) vote
faulty=
for id in $(containers vote); do
    if docker inspect -f '{{range .Config.Env}}{{println .}}{{end}}' "$id" | grep -qx 'DEMO_REFUSE_FRACTION=0.5'; then
        faulty=$id
    fi
done
[[ -n $faulty ]] || fail "no vote replica has DEMO_REFUSE_FRACTION=0.5"
wait_healthy vote
before=$(check tally)
seed_run=$(compose run -d --no-deps seed --verify=http://edge:5081 --timeout="${CONVERGE_WITHIN}s" \
    --votes=2400 --split=1:1 --concurrency=4 --rate=20 "http://$(address "$faulty" front-tier):5000/")
# A minute and more of refusals: the alert's `for`.
check_within 240 alert VoteRefusingBallots
seed_finish
requests=$(printf '%s\n' "$seed_out" | sed -n 's/^requests *//p')
refused=$(printf '%s\n' "$seed_out" | sed -n 's/^failures *//p' | grep -oE 'HTTP 503: [0-9]+' | cut -d' ' -f3 || true)
failed=$(printf '%s\n' "$requests" | grep -oE '[0-9]+ failed' | cut -d' ' -f1 || true)
unknown=$(printf '%s\n' "$requests" | grep -oE '[0-9]+ unknown' | cut -d' ' -f1 || true)
grep -q '^consistent   after' <<<"$seed_out" ||
    fail "seed --verify did not find exactly the accepted ballots counted"
((${refused:-0} > 0 && ${failed:-0} == ${refused:-0} && ${unknown:-0} == 0)) ||
    fail "expected only 503s among the failures: ${failed:-0} failed (${refused:-0} HTTP 503), ${unknown:-0} unknown"
echo "${refused} of 2400 ballots refused (503), the rest counted exactly"
# The replica counted each as refused, the metric the alert reads.
check_within 60 prom-at-least --min "$refused" 'sum(vote_ballots_total{outcome="refused"})'
docker stop "$faulty" >/dev/null
docker rm "$faulty" >/dev/null
in_rotation $VOTE_REPLICAS $RESULT_REPLICAS

phase "1,100 half-open connections at :5000"
before=$(check tally)
# 800 of them with the head sent and the body begun: more than the 3 vote
# replicas' 768 slots, so the edge must hold them itself.
check half-open --connections 1100 --slow-bodies 800 --votes 10 --within-ms 1000 --cut-within 15
check wait-tally --since "$before" --plus a=10

phase "a websocket idle for 60 s, then its result replica stops"
ws_out=$(mktemp)
check websocket-idle --stats "$STATS" --idle 60 >"$ws_out" 2>&1 &
ws_pid=$!
background+=("$ws_pid")
deadline=$((SECONDS + 120))
until grep -q '^replica ' "$ws_out"; do
    kill -0 "$ws_pid" 2>/dev/null || { cat "$ws_out"; fail "the websocket check ended early"; }
    ((SECONDS < deadline)) || { cat "$ws_out"; fail "the websocket check never named its replica"; }
    sleep 1
done
ip=$(sed -n 's/^replica //p' "$ws_out")
victim=
for id in $(containers result); do
    if [[ " $(addresses "$id") " == *" $ip "* ]]; then victim=$id; fi
done
[[ -n $victim ]] || fail "no result replica has address $ip"
docker stop "$victim" >/dev/null
wait "$ws_pid" || { cat "$ws_out"; fail "the websocket did not survive"; }
cat "$ws_out"
rm -f "$ws_out"
docker start "$victim" >/dev/null
in_rotation $VOTE_REPLICAS $RESULT_REPLICAS

phase "restart Redis with ballots queued (WorkerDown fires, resolves), then under load"
compose stop worker
before=$(check tally)
check cast --count=500 --option=b
[[ $(queued) == 500 ]] || fail "expected 500 ballots queued, found $(queued)"
compose restart redis
wait_healthy redis
[[ $(queued) == 500 ]] || fail "after the restart $(queued) of 500 queued ballots are left"
echo "500 queued ballots survived the Redis restart"
# The stopped worker's target has left Prometheus's DNS discovery; the
# alert allows 30 s more.
check_within 120 alert WorkerDown
# The console page lists it (its own alerts section: the same on the
# upstream and the offline Prometheus image).
# (A here-string: grep -q leaving a pipe early would fail the pipeline.)
grep -q '<td>WorkerDown</td>' <<<"$(curl -fsS "$PROMETHEUS_URL/consoles/voting.html")" ||
    fail "the console page does not list the firing WorkerDown"
compose start worker
check wait-tally --since "$before" --plus b=500
check_within 60 alert --resolved WorkerDown
# Under load: Redis restarts while ballots stream in. Ballots refused
# (503: vote, or the edge with no ready replica) or unconfirmed (504) are
# counted by seed; every ballot that got a 200 must be counted.
in_rotation $VOTE_REPLICAS $RESULT_REPLICAS
seed_in_background 1000 --votes=4000 --split=1:1 --concurrency=10 --rate=400
compose restart redis
wait_healthy redis
seed_finish
grep -q '^consistent' <<<"$seed_out" ||
    fail "after a Redis restart under load, seed --verify did not find every accepted ballot"
[[ $(queued) == 0 ]] || fail "$(queued) ballots still queued"
[[ $(redis_cli llen votes:dead) == 0 ]] || fail "valid ballots were dead-lettered"

phase "graceful stop (each service's stop signal)"
ids=$(compose ps -q)
compose stop
exporters=0
for id in $ids; do
    code=$(docker inspect -f '{{.State.ExitCode}}' "$id")
    name=$(docker inspect -f '{{.Name}}' "$id")
    service=$(docker inspect -f '{{index .Config.Labels "com.docker.compose.service"}}' "$id")
    # The exporters handle no stop signal: as PID 1 they exit 2 at once.
    # They hold no state.
    if [[ $service == *-exporter && $code == 2 ]]; then
        exporters=$((exporters + 1))
        continue
    fi
    [[ $code == 0 ]] || fail "${name#/} exited $code on its stop signal"
done
echo "every container ($(($(echo "$ids" | wc -l) - exporters)), exporters aside) exited 0 on its stop signal"
end_phase
