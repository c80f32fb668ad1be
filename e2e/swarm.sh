#!/usr/bin/env bash
# The stack on a real three-node Docker Swarm: docker-stack.yml deployed
# with `docker stack deploy` on one manager and two workers, each a
# container running Debian's dockerd (e2e/images/swarm-node) on a Docker
# network this script creates; the images reach the nodes by
# `docker save | docker load`. Driven from the host through the edge's
# ports, published in host mode on the manager. Checks: seed --verify and a
# websocket through the edge, scaling, a rolling update of vote under load
# to an image of the next commit (no ballot that got a 200 lost; failed
# requests reported; the pages move from one commit to the next, result's
# rolled too), a bad update
# that rolls itself back, a node drained and a node killed under load (the
# tasks rescheduled, nothing lost, time to recovery reported), and
# `docker stack rm` leaving nothing behind. Tears everything down, pass or
# fail, and prints the time of each phase.
#
# SWARM_HA=1: the HA variant instead (docker-stack.yml with
# docker-stack.ha.yml: Patroni and etcd, Redis members and Sentinels, one
# of each per node), and after the deploy the checks of e2e/swarm-ha.sh
# (the node hosting both primaries killed under load) in place of the
# plain stack's.
#
# Builds voting-vote, -worker, -result and -seed from this checkout (all
# cached after e2e/run.sh) and the base images that are missing. See
# e2e/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."

# Everything this script creates on the host is named after this prefix.
PREFIX=${SWARM_PREFIX:-voting-swarm}
NODE_IMAGE=voting-swarm-node:bookworm
NODES=("$PREFIX-1" "$PREFIX-2" "$PREFIX-3")
MANAGER=${NODES[0]}
STACK=voting
VOTE_REPLICAS=3
APP_IMAGES=(voting-vote voting-worker voting-result voting-seed)
# The commit the images are built from (as e2e/run.sh builds them, so the
# build is cached), and the "next" one the rolling update rolls out: the
# same sources built with another commit, which the pages must then show.
GIT_COMMIT=${GIT_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
NEXT_COMMIT=$GIT_COMMIT-next
NEXT_IMAGES=(voting-vote:next voting-result:next)
BASE_IMAGES=(haproxy:2.6-bookworm redis:7-bookworm postgres:15-bookworm)
HA=${SWARM_HA:-}
# The HA cluster's images (docker-compose.ha.yml builds the same), on every node.
HA_IMAGES=()
# The base images only the manager runs (the edge, db, redis).
MANAGER_IMAGES=("${BASE_IMAGES[@]}")
if [[ -n $HA ]]; then
    # A Redis member and a Sentinel on every node; no single redis.
    HA_IMAGES=(voting-patroni voting-etcd redis:7-bookworm)
    MANAGER_IMAGES=(haproxy:2.6-bookworm postgres:15-bookworm)
    # No rolling update to a next commit in the HA checks.
    NEXT_IMAGES=()
fi
# Bounds: patient enough for two busy cores, short enough that a hang fails.
DAEMON_WITHIN=60
CONVERGE_WITHIN=240
SEED_TIMEOUT=60
# Inside the nodes: address pools that cannot clash with the host's networks.
NODE_BRIDGE=10.212.0.1/24
NODE_POOL=10.212.0.0/16
SWARM_POOL=10.211.0.0/16

E2E_NAME=swarm
# shellcheck source=e2e/lib.sh
source e2e/lib.sh
notes=()
note() {
    echo "$*"
    notes+=("$*")
}
# Runs `docker ARGS` on a node.
on() {
    local node=$1
    shift
    docker exec -i "$node" docker "$@"
}
manager() { on "$MANAGER" "$@"; }
node_ip() { docker inspect -f "{{(index .NetworkSettings.Networks \"$PREFIX\").IPAddress}}" "$1"; }
# Polls COMMAND every second until it succeeds; fails after SECONDS.
wait_for() {
    local within=$1 what=$2 deadline=$((SECONDS + $1))
    shift 2
    until "$@"; do
        ((SECONDS < deadline)) || fail "$what: not within ${within}s"
        sleep 1
    done
}

seed_run=
cleanup() {
    status=$?
    end_phase
    if ((status != 0)) && docker exec "$MANAGER" true 2>/dev/null; then
        echo "--- services and tasks"
        manager service ls 2>&1 || true
        manager stack ps --no-trunc "$STACK" 2>&1 | head -40 || true
        local service
        for service in edge vote result worker migrate redis db \
            ${HA:+db1 db2 db3 etcd1 etcd2 etcd3 redis1 redis2 redis3 sentinel1 sentinel2 sentinel3}; do
            echo "--- last log lines of $service"
            manager service logs --tail 15 --no-task-ids "${STACK}_$service" 2>&1 | tail -15 || true
        done
    fi
    printf '\n=== swarm: tear down\n'
    if [[ -n $seed_run ]]; then docker rm -f "$seed_run" >/dev/null 2>&1 || true; fi
    # SWARM_HA's websocket log, if a failure left it running.
    if [[ -n ${ws_pid:-} ]]; then kill "$ws_pid" 2>/dev/null || true; fi
    local node
    for node in "${NODES[@]}"; do
        docker rm -f "$node" >/dev/null 2>&1 || true
        docker volume rm "$node" >/dev/null 2>&1 || true
    done
    docker network rm "$PREFIX" >/dev/null 2>&1 || true
    rm -f "${images_tar:-}" "${base_tar:-}"
    print_timings
    if ((${#notes[@]})); then
        printf '\n=== swarm: results\n'
        printf '%s\n' "${notes[@]}"
    fi
    if ((status == 0)); then echo "swarm: all checks passed"; else echo "swarm: FAILED"; fi
    exit "$status"
}
trap cleanup EXIT

phase "engine"
need=()
command -v docker >/dev/null || need+=(docker.io)
command -v debootstrap >/dev/null || need+=(debootstrap)
install_packages "${need[@]}"
ensure_dockerd
# Leftovers of an interrupted run.
for node in "${NODES[@]}"; do
    docker rm -f "$node" >/dev/null 2>&1 || true
    docker volume rm "$node" >/dev/null 2>&1 || true
done
docker rm -f "$PREFIX-seed" >/dev/null 2>&1 || true
docker network rm "$PREFIX" >/dev/null 2>&1 || true

phase "images (built or reused)"
# apt inside the builds goes through the host's proxy, if it has one.
proxy_args=()
for name in HTTP_PROXY HTTPS_PROXY NO_PROXY http_proxy https_proxy no_proxy; do
    if [[ -n ${!name:-} ]]; then proxy_args+=(--build-arg "$name=${!name}"); fi
done
have() { docker image inspect "$1" >/dev/null 2>&1; }
missing=()
for image in debian:bookworm-slim "${BASE_IMAGES[@]}"; do have "$image" || missing+=("$image"); done
if ((${#missing[@]})); then
    echo "building ${missing[*]} (e2e/offline-images.sh)"
    e2e/offline-images.sh
fi
# The service images from this checkout: after e2e/run.sh (or compose
# build) every layer is cached and this takes seconds.
for image in "${APP_IMAGES[@]}"; do
    docker build -q --build-arg "GIT_COMMIT=$GIT_COMMIT" --target "${image#voting-}" -t "$image" . >/dev/null
done
# The next version: only the workspace's own crates are rebuilt.
for image in "${NEXT_IMAGES[@]}"; do
    target=${image#voting-}
    docker build -q --build-arg "GIT_COMMIT=$NEXT_COMMIT" --target "${target%:next}" -t "$image" . >/dev/null
done
# The seed runs from the host's Docker: by the image's id, which another
# build of this machine retagging voting-seed meanwhile cannot change.
SEED_IMAGE=$(docker image inspect -f '{{.Id}}' voting-seed)
if [[ -n $HA ]]; then
    docker build -q -t voting-patroni "${proxy_args[@]}" -f db/patroni/Dockerfile db >/dev/null
    docker build -q -t voting-etcd "${proxy_args[@]}" db/etcd >/dev/null
fi
if ! have "$NODE_IMAGE"; then
    echo "building $NODE_IMAGE (Debian's docker.io)"
    docker build -q -t "$NODE_IMAGE" "${proxy_args[@]}" e2e/images/swarm-node >/dev/null
fi
for image in "${APP_IMAGES[@]}" "${NEXT_IMAGES[@]}" "${HA_IMAGES[@]}" "${BASE_IMAGES[@]}" "$NODE_IMAGE"; do
    printf '%-28s %s\n' "$image" "$(docker image inspect -f '{{.Id}} {{.Created}}' "$image" | cut -c8-19,72-)"
done

phase "check tool (cargo build -p e2e)"
cargo build -q -p e2e
E2E=${CARGO_TARGET_DIR:-$PWD/target}/debug/e2e

phase "three nodes: one manager, two workers"
docker network create "$PREFIX" >/dev/null
# Not --privileged: that asks for every capability, and a Docker that lacks
# one itself (here CAP_SYS_RESOURCE) cannot grant it. Every other one, no
# seccomp or AppArmor profile, /proc unmasked and all devices do the same.
# The manager gets the repository, read-only: the stack file and the files
# its configs are made from.
for node in "${NODES[@]}"; do
    extra=()
    if [[ $node == "$MANAGER" ]]; then extra=(-v "$PWD:/src:ro"); fi
    docker run -d --name "$node" --hostname "$node" --network "$PREFIX" \
        --cap-add ALL --cap-drop SYS_RESOURCE \
        --security-opt seccomp=unconfined --security-opt apparmor=unconfined \
        --security-opt systempaths=unconfined --device-cgroup-rule 'a *:* rwm' \
        --tmpfs /run --tmpfs /tmp -v "$node:/var/lib/docker" "${extra[@]}" \
        "$NODE_IMAGE" dockerd --storage-driver=overlay2 \
        --bip "$NODE_BRIDGE" --default-address-pool "base=$NODE_POOL,size=24" >/dev/null
done
for node in "${NODES[@]}"; do
    wait_for "$DAEMON_WITHIN" "dockerd on $node answering" on "$node" version -f '{{.Server.Version}}' >/dev/null 2>&1
done
echo "dockerd $(on "$MANAGER" version -f '{{.Server.Version}}'), storage driver $(on "$MANAGER" info -f '{{.Driver}}')"
manager swarm init --advertise-addr "$(node_ip "$MANAGER")" --default-addr-pool "$SWARM_POOL" >/dev/null
token=$(manager swarm join-token -q worker)
for node in "${NODES[@]:1}"; do
    on "$node" swarm join --token "$token" "$(node_ip "$MANAGER"):2377" >/dev/null
done
ready_nodes() { [[ $(manager node ls --format '{{.Status}}' | grep -c Ready) == "${#NODES[@]}" ]]; }
wait_for 60 "all three nodes Ready" ready_nodes
# Postgres, Redis and the edge (and so the published ports) on the manager;
# vote, result and worker anywhere. HA: one Postgres, etcd and Redis member
# and one Sentinel on each node instead (voting.member=1 on the manager).
if [[ -n $HA ]]; then
    for i in "${!NODES[@]}"; do
        manager node update --label-add "voting.member=$((i + 1))" "${NODES[$i]}" >/dev/null
    done
    manager node update --label-add voting.edge=true "$MANAGER" >/dev/null
else
    manager node update --label-add voting.db=true --label-add voting.redis=true \
        --label-add voting.edge=true "$MANAGER" >/dev/null
fi
manager node ls

phase "images to the nodes (docker save | docker load)"
images_tar=$(mktemp /var/tmp/$PREFIX-images.XXXXXX)
base_tar=$(mktemp /var/tmp/$PREFIX-base.XXXXXX)
docker save -o "$images_tar" "${APP_IMAGES[@]}" "${NEXT_IMAGES[@]}" "${HA_IMAGES[@]}"
docker save -o "$base_tar" "${MANAGER_IMAGES[@]}"
for node in "${NODES[@]}"; do
    on "$node" load -q <"$images_tar" >/dev/null
done
# Only the manager runs db, redis and the edge (node labels; HA: the edge).
manager load -q <"$base_tar" >/dev/null
echo "$(du -h "$images_tar" | cut -f1) to each node, $(du -h "$base_tar" | cut -f1) more to the manager"
rm -f "$images_tar" "$base_tar"

phase "deploy: the secrets, docker stack deploy, every task healthy"
# The stack's external secrets: the superuser's password and one for each
# role (db/postgres-roles.sh), each random, as an operator makes them.
SECRETS=(postgres_password postgres_owner_password postgres_worker_password
    postgres_result_password postgres_exporter_password)
# HA: Patroni's own users, and Redis's replica and sentinel users
# (docker-stack.ha.yml).
if [[ -n $HA ]]; then
    SECRETS+=(patroni_replication_password patroni_rewind_password patroni_restapi_password
        redis_replica_password redis_sentinel_password)
fi
passwords=()
for secret in "${SECRETS[@]}"; do
    password=$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')
    passwords+=("$password")
    printf '%s' "$password" | manager secret create "$secret" - >/dev/null
done
# The operator's own Redis passwords, as docker-stack.yml asks for them.
redis_users=(vote worker admin)
declare -A redis_password
for user in "${redis_users[@]}"; do
    redis_password[$user]=$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')
    printf '%s' "${redis_password[$user]}" | manager secret create "redis_${user}_password" - >/dev/null
done
# The seed runs and checks below come from outside the swarm, each from one
# address, thousands of ballots at full speed: the edge's per-client limit
# is raised out of their way (e2e/run.sh tests the limit).
stack_files=(-c docker-stack.yml)
if [[ -n $HA ]]; then stack_files+=(-c docker-stack.ha.yml); fi
deploy() {
    docker exec -w /src -e EDGE_RATE_LIMIT=1000000000 -e "DB_REPLICAS=${HA:+0}" -e "REDIS_REPLICAS=${HA:+0}" "$MANAGER" \
        docker stack deploy --resolve-image never \
        "${stack_files[@]}" "$STACK"
}
deploy
# Running tasks that Docker reports healthy (or that have no healthcheck),
# per service: "name running/desired"; `migrate` runs once, to completion.
converged() {
    local service desired running
    grep -q '^Complete' <<<"$(manager service ps --format '{{.CurrentState}}' "${STACK}_migrate")" || return 1
    for service in $(manager service ls -q --filter "label=com.docker.stack.namespace=$STACK"); do
        [[ $(manager service inspect -f '{{.Spec.Name}}' "$service") != "${STACK}_migrate" ]] || continue
        desired=$(manager service inspect -f '{{.Spec.Mode.Replicated.Replicas}}' "$service")
        running=$(manager service ps --filter desired-state=running --format '{{.CurrentState}}' "$service" |
            grep -c '^Running' || true)
        ((running == desired)) || return 1
    done
    healthy_containers
}
# Every container of the stack on every live node is healthy.
healthy_containers() {
    local node states
    for node in "${live_nodes[@]}"; do
        states=$(on "$node" ps --filter "label=com.docker.stack.namespace=$STACK" --format '{{.Status}}')
        if grep -qE 'starting|unhealthy' <<<"$states"; then return 1; fi
    done
}
live_nodes=("${NODES[@]}")
wait_for "$CONVERGE_WITHIN" "every service of the stack running and healthy" converged
manager service ls --format '{{.Name}} {{.Mode}} {{.Replicas}}'

VOTE_URL=http://$(node_ip "$MANAGER"):5000
RESULT_URL=http://$(node_ip "$MANAGER"):5001
check() { "$E2E" --vote-url "$VOTE_URL" --result-url "$RESULT_URL" --timeout "$CONVERGE_WITHIN" "$@"; }
# The edge's stats as CSV, read inside its container (port 8404 is not
# published, and the host cannot reach the overlay networks).
edge_stats() {
    local edge
    edge=$(manager ps -q --filter "label=com.docker.swarm.service.name=${STACK}_edge" | sed -n 1p)
    [[ -n $edge ]] || return 1
    manager exec "$edge" bash -c 'exec 3<>/dev/tcp/127.0.0.1/8404
        printf "GET /stats;csv HTTP/1.0\r\n\r\n" >&3; cat <&3'
}
# How many servers of BACKEND the edge has UP.
servers_up() {
    edge_stats 2>/dev/null | awk -F, -v backend="$1" \
        '$1 == backend && $2 != "BACKEND" && $2 != "FRONTEND" && $18 == "UP" { n++ } END { print n + 0 }'
}
in_rotation() {
    local vote=$1 result=$2
    rotation() { [[ $(servers_up vote) == "$vote" && $(servers_up result) == "$result" ]]; }
    wait_for "$CONVERGE_WITHIN" "$vote vote and $result result replicas UP at the edge" rotation
    echo "in the edge's rotation: $vote vote, $result result"
}
in_rotation 2 2

# A seed run from the host's Docker, on the nodes' network, through the
# edge, verifying against the result service: in the background ($seed_run)
# until seed_finish.
seed_start() {
    seed_run=$(docker run -d --name "$PREFIX-seed" --network "$PREFIX" "$SEED_IMAGE" \
        --verify="$RESULT_URL" --timeout="${SEED_TIMEOUT}s" "$@" "$VOTE_URL/")
}
# Waits until the tally has grown by $1 since $before: a load has begun.
seed_loading() {
    local first=$1 start
    start=$(total "$before")
    grown() {
        [[ $(docker inspect -f '{{.State.Status}}' "$seed_run") == running ]] ||
            fail "the seed run ended before the step it loads"
        (($(total "$(check tally)") >= start + first))
    }
    wait_for 60 "the seed run's first $first ballots counted" grown
}
total() { sed -nE 's/.*"total":([0-9]+).*/\1/p' <<<"$1"; }
# Waits for it; its output in $seed_out, its exit status in $seed_status,
# failed and unknown-outcome requests in $failed and $unknown.
seed_finish() {
    seed_status=$(timeout $((SEED_TIMEOUT * 3 + 120)) docker wait "$seed_run") ||
        fail "the seed run did not end"
    seed_out=$(docker logs "$seed_run" 2>&1)
    docker rm -f "$seed_run" >/dev/null
    seed_run=
    printf '%s\n' "$seed_out" | grep -E '^(requests|failures|unknown|failing|votes|throughput|latency|consistent|seed:)' || true
    local requests
    requests=$(printf '%s\n' "$seed_out" | sed -n 's/^requests *//p')
    failed=$(grep -oE '[0-9]+ failed' <<<"$requests" | cut -d' ' -f1 || true)
    unknown=$(grep -oE '[0-9]+ unknown' <<<"$requests" | cut -d' ' -f1 || true)
    failed=${failed:-0}
    unknown=${unknown:-0}
    grep -q '^consistent' <<<"$seed_out" ||
        fail "seed --verify did not find every ballot that got a 200 counted"
}

if [[ -n $HA ]]; then
    # shellcheck source=e2e/swarm-ha.sh
    source e2e/swarm-ha.sh
    exit 0
fi

phase "what the swarm runs: endpoints, ports, networks, secret, configs"
for service in edge vote result worker redis db; do
    printf '%-7s endpoint %-5s on %s\n' "$service" \
        "$(manager service inspect -f '{{.Spec.EndpointSpec.Mode}}' "${STACK}_$service")" \
        "$(manager service ps -f desired-state=running --format '{{.Node}}' "${STACK}_$service" | sort | xargs)"
done
for service in vote result worker redis db; do
    [[ $(manager service inspect -f '{{.Spec.EndpointSpec.Mode}}' "${STACK}_$service") == dnsrr ]] ||
        fail "$service should have endpoint_mode dnsrr"
done
ports() {
    manager service inspect -f \
        '{{if .Spec.EndpointSpec}}{{range .Spec.EndpointSpec.Ports}}{{.PublishedPort}}/{{.PublishMode}} {{end}}{{end}}' "$1"
}
published=$(for service in $(manager service ls --format '{{.Name}}'); do
    if [[ -n $(ports "$service") ]]; then echo "$service"; fi
done | xargs)
[[ $published == "${STACK}_edge" ]] || fail "only the edge should publish ports; these do: $published"
[[ $(ports "${STACK}_edge") == "5000/host 5001/host " ]] || fail "the edge should publish 5000 and 5001 in host mode"
for network in front-tier back-tier; do
    [[ $(manager network inspect -f '{{.Driver}} {{.Scope}}' "${STACK}_$network") == "overlay swarm" ]] ||
        fail "${STACK}_$network should be a swarm overlay network"
done
# The passwords are in no service's environment, only in the secrets' files.
# (A here-string: grep -q leaving a pipe early would fail the pipeline.)
specs=$(manager service inspect "${STACK}_db" "${STACK}_worker" "${STACK}_result" "${STACK}_migrate")
for password in "${passwords[@]}"; do
    if grep -qF "$password" <<<"$specs"; then
        fail "a database password shows in a service's spec"
    fi
done
# Each service holds only its own role's secret.
secrets_of() {
    manager service inspect -f '{{range .Spec.TaskTemplate.ContainerSpec.Secrets}}{{.SecretName}} {{end}}' "${STACK}_$1"
}
[[ $(secrets_of worker | tr ' ' '\n' | sort | xargs) == "postgres_worker_password redis_worker_password" ]] ||
    fail "worker holds secrets $(secrets_of worker)"
[[ $(secrets_of result) == "postgres_result_password " ]] || fail "result holds secrets $(secrets_of result)"
[[ $(secrets_of migrate) == "postgres_owner_password " ]] || fail "migrate holds secrets $(secrets_of migrate)"
# The services connect as their roles, none as the superuser.
db_task=$(manager ps -q --filter "label=com.docker.swarm.service.name=${STACK}_db" | sed -n 1p)
connected=$(manager exec "$db_task" psql -qAt -U "${POSTGRES_USER:-postgres}" -d "${POSTGRES_DB:-postgres}" \
    -c "SELECT string_agg(DISTINCT usename, ' ' ORDER BY usename) FROM pg_stat_activity
        WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()")
[[ $connected == "voting_result voting_worker" ]] ||
    fail "the services should connect as voting_result and voting_worker; connected: $connected"
for user in "${redis_users[@]}"; do
    if grep -qF "${redis_password[$user]}" <<<"$(manager service inspect "${STACK}_redis" "${STACK}_vote" "${STACK}_worker")"; then
        fail "redis user $user's password shows in a service's spec"
    fi
done
# Redis refuses a client without a user, and vote's user may not read the queue.
redis_container=$(manager ps -q --filter "label=com.docker.swarm.service.name=${STACK}_redis" | sed -n 1p)
redis_as() {
    manager exec "$redis_container" sh -c 'REDISCLI_AUTH=$(cat "/run/secrets/redis_$0_password") exec redis-cli --user "$0" "$@"' "$@" |
        tr -d '\r'
}
[[ $(manager exec "$redis_container" redis-cli ping | tr -d '\r') == NOAUTH* ]] || fail "Redis answers a client without a user"
[[ $(redis_as vote lrange votes 0 -1) == NOPERM* ]] || fail "vote's Redis user may read the queue"
[[ $(redis_as vote ping) == PONG ]] || fail "vote's Redis user cannot log in"
echo "endpoints dnsrr behind the edge; only the edge publishes (5000, 5001 in host mode); tiers are overlay networks; the passwords are only in the secrets; connected as: $connected; Redis needs a user, vote's may not read the queue"

phase "the edge: public routes only (/metrics, /readyz... 404)"
check public-routes

phase "a vote reaches the websocket; each vote replica answers"
check vote-reaches-websocket
vote_hosts() {
    local node id
    for node in "${live_nodes[@]}"; do
        for id in $(on "$node" ps -q --filter "label=com.docker.swarm.service.name=${STACK}_vote"); do
            echo "--expect $(on "$node" inspect -f '{{.Config.Hostname}}' "$id")"
        done
    done
}
# shellcheck disable=SC2046 # one --expect HOST pair per replica
check served-by --requests 20 $(vote_hosts)

phase "seed --verify through the edge (3,000 ballots, 2:1)"
before=$(check tally)
seed_start --votes=3000 --concurrency=50 --split=2:1
seed_finish
((seed_status == 0)) || fail "seed exited $seed_status"
check wait-tally --since "$before" --plus a=2000 --plus b=1000

phase "scale vote to $VOTE_REPLICAS"
manager service scale --detach "${STACK}_vote=$VOTE_REPLICAS" >/dev/null
wait_for "$CONVERGE_WITHIN" "vote at $VOTE_REPLICAS replicas" converged
in_rotation "$VOTE_REPLICAS" 2

# The tasks of SERVICE that should be running, one "task-id node" a line.
tasks() { manager service ps -f desired-state=running --format '{{.ID}} {{.Node}}' "${STACK}_$1"; }
update_state() { manager service inspect -f '{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}' "${STACK}_$1"; }

phase "rolling update of vote to the next commit under load"
check builds --page vote --requests 9 --expect-commit "$GIT_COMMIT"
before=$(check tally)
old_tasks=$(tasks vote | cut -d' ' -f1 | sort)
seed_start --votes=12000 --concurrency=20 --split=1:1 --rate=200
seed_loading 500
update_start=$SECONDS
manager service update --detach --no-resolve-image --image voting-vote:next "${STACK}_vote" >/dev/null
# What the vote page says while the update rolls: one look a second.
shown=()
updated() {
    local look
    look=$(check builds --page vote --requests 1) && shown+=("$(grep -oE 'commit [^ ]+' <<<"$look")")
    [[ $(update_state vote) == completed ]]
}
wait_for "$CONVERGE_WITHIN" "the rolling update of vote completed" updated
update_took=$((SECONDS - update_start))
# The vote page's commit, one look a second, runs of the same collapsed.
moved=$(printf '%s\n' "${shown[@]}" | uniq -c | awk '{ printf "%s%s %s x%d", (NR > 1 ? " -> " : ""), $2, $3, $1 }')
echo "the vote page during the update: $moved"
check builds --page vote --requests 9 --expect-commit "$NEXT_COMMIT"
new_tasks=$(tasks vote | cut -d' ' -f1 | sort)
[[ -z $(comm -12 <(echo "$old_tasks") <(echo "$new_tasks")) ]] || fail "some vote tasks were not replaced"
[[ $(docker inspect -f '{{.State.Status}}' "$seed_run") == running ]] ||
    echo "warning: the seed run ended before the update did"
seed_finish
note "rolling update of vote ($VOTE_REPLICAS replicas, start-first) from commit $GIT_COMMIT to $NEXT_COMMIT: ${update_took}s; during it: $failed failed, $unknown unknown outcome of 12,000; every ballot that got a 200 counted; the page showed $moved"
((failed + unknown == 0)) || fail "$failed failed and $unknown unknown-outcome requests during the rolling update (target 0)"
in_rotation "$VOTE_REPLICAS" 2

phase "rolling update of result to the next commit"
check builds --page result --requests 6 --expect-commit "$GIT_COMMIT"
manager service update --detach --no-resolve-image --image voting-result:next "${STACK}_result" >/dev/null
result_updated() { [[ $(update_state result) == completed ]]; }
wait_for "$CONVERGE_WITHIN" "the rolling update of result completed" result_updated
check builds --page result --requests 6 --expect-commit "$NEXT_COMMIT"
in_rotation "$VOTE_REPLICAS" 2
check vote-reaches-websocket

phase "a broken update of vote rolls itself back"
spec_before=$(manager service inspect -f '{{json .Spec.TaskTemplate.ContainerSpec.Env}}' "${STACK}_vote")
rollback_start=$SECONDS
# REDIS_URL that cannot parse: each new task exits 2 at start.
manager service update --detach --env-add REDIS_URL=nope "${STACK}_vote" >/dev/null
rolled_back() { [[ $(update_state vote) == rollback_completed ]]; }
wait_for "$CONVERGE_WITHIN" "the broken update of vote rolled back" rolled_back
[[ $(manager service inspect -f '{{json .Spec.TaskTemplate.ContainerSpec.Env}}' "${STACK}_vote") == "$spec_before" ]] ||
    fail "vote's spec is not the one before the broken update"
wait_for "$CONVERGE_WITHIN" "vote back at $VOTE_REPLICAS healthy replicas" converged
note "a broken update of vote (REDIS_URL=nope) rolled back by itself in $((SECONDS - rollback_start))s"
before=$(check tally)
check cast --count 20 --option a
check wait-tally --since "$before" --plus a=20
in_rotation "$VOTE_REPLICAS" 2

# A node other than the manager that runs a worker task.
worker_node() {
    tasks worker | cut -d' ' -f2 | grep -vx "$MANAGER" | sed -n 1p
}
# Every service back at its replicas, none on NODE, all healthy; the edge
# with every vote and result replica in rotation.
recovered_without() {
    local gone=$1 service desired running
    for service in vote result worker; do
        desired=$(manager service inspect -f '{{.Spec.Mode.Replicated.Replicas}}' "${STACK}_$service")
        running=$(manager service ps -f desired-state=running --format '{{.Node}} {{.CurrentState}}' "${STACK}_$service" |
            grep -v "^$gone " | grep -c ' Running' || true)
        ((running == desired)) || return 1
    done
    healthy_containers &&
        [[ $(servers_up vote) == "$VOTE_REPLICAS" && $(servers_up result) == 2 ]]
}

# Picks the node (not the manager) running a worker as $victim, starts a
# seed run of 8,000 ballots split $2 and waits until it loads, then does $1
# ("draining" or "killing") to the node; from then on only the other nodes
# count as live.
under_load_on_worker_node() {
    before=$(check tally)
    victim=$(worker_node)
    [[ -n $victim ]] || fail "no worker task on a worker node"
    echo "$1 $victim: $(manager node ps -f desired-state=running --format '{{.Name}}' "$victim" | sed 's/\.[0-9]*$//' | sort | xargs)"
    seed_start --votes=8000 --concurrency=20 --split="$2" --rate=200
    seed_loading 500
    live_nodes=()
    for node in "${NODES[@]}"; do [[ $node == "$victim" ]] || live_nodes+=("$node"); done
}

phase "drain the node running a worker, under load"
under_load_on_worker_node draining 2:1
drain_start=$SECONDS
manager node update --availability drain "$victim" >/dev/null
wait_for "$CONVERGE_WITHIN" "the drained node's tasks running elsewhere" recovered_without "$victim"
drain_took=$((SECONDS - drain_start))
[[ -z $(manager node ps -q -f desired-state=running "$victim") ]] || fail "$victim still has tasks"
seed_finish
note "drained $victim under load: tasks rescheduled and in rotation in ${drain_took}s; $failed failed, $unknown unknown outcome of 8,000; every ballot that got a 200 counted"
manager node update --availability active "$victim" >/dev/null
live_nodes=("${NODES[@]}")

phase "kill the node running a worker (docker kill), under load"
under_load_on_worker_node killing 1:2
kill_start=$SECONDS
docker kill "$victim" >/dev/null
node_down() { [[ $(manager node inspect -f '{{.Status.State}}' "$victim") == down ]]; }
wait_for "$CONVERGE_WITHIN" "the swarm marking $victim down" node_down
down_after=$((SECONDS - kill_start))
wait_for "$CONVERGE_WITHIN" "the killed node's tasks running elsewhere" recovered_without "$victim"
recovery=$((SECONDS - kill_start))
seed_finish
note "killed $victim under load: marked down after ${down_after}s, every task running elsewhere and in rotation after ${recovery}s; $failed failed, $unknown unknown outcome of 8,000; every ballot that got a 200 counted"
# The node comes back (its dockerd and swarm state are on its volume).
docker start "$victim" >/dev/null
wait_for 120 "$victim back and Ready" ready_nodes
live_nodes=("${NODES[@]}")

phase "docker stack rm leaves nothing behind"
manager stack rm "$STACK" >/dev/null
# Containers on every node, then what the stack owned on the manager.
leftovers() {
    local node
    for node in "${NODES[@]}"; do
        on "$node" ps -aq --filter "label=com.docker.stack.namespace=$STACK"
        on "$node" network ls -q --filter "label=com.docker.stack.namespace=$STACK"
    done
    manager service ls -q
    manager config ls -q
    manager secret ls -q --filter "label=com.docker.stack.namespace=$STACK"
}
nothing_left() { [[ -z $(leftovers) ]]; }
wait_for 120 "no service, task container, network or config of the stack left" nothing_left
# Kept on purpose, as for any stack: the external secret and the volumes.
manager secret rm "${SECRETS[@]}" >/dev/null
for user in "${redis_users[@]}"; do manager secret rm "redis_${user}_password" >/dev/null; done
for node in "${NODES[@]}"; do
    volumes=$(on "$node" volume ls -q --filter "label=com.docker.stack.namespace=$STACK")
    if [[ -n $volumes ]]; then
        # shellcheck disable=SC2086 # one name a line
        on "$node" volume rm $volumes >/dev/null
        echo "removed volumes on $node: $(echo $volumes)"
    fi
    [[ -z $(on "$node" ps -aq) ]] || fail "containers left on $node: $(on "$node" ps -a)"
done
echo "nothing left: no service, container, network, config; secret and volumes removed"
end_phase
