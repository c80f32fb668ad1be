#!/usr/bin/env bash
# The whole-stack test: the real Dockerfiles and docker-compose.yml, driven
# from the host through the published ports. Works on a fresh Debian machine
# as root (installs and starts the engine, builds the base images locally).
# Always takes the stack down, volumes included, at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

export COMPOSE_PROJECT_NAME=${COMPOSE_PROJECT_NAME:-voting-e2e}
# Patient enough for a cold start on two cores, bounded so a hang fails.
HEALTHY_WITHIN=300
CONVERGE_WITHIN=180

timings=()
phase_name=
phase_start=$SECONDS
phase() {
    end_phase
    phase_name=$1
    phase_start=$SECONDS
    printf '\n=== e2e: %s (%s)\n' "$1" "$(date -u +%H:%M:%S)"
}
end_phase() {
    if [[ -n $phase_name ]]; then
        timings+=("$(printf '%-44s %5ss' "$phase_name" $((SECONDS - phase_start)))")
    fi
    phase_name=
}
fail() {
    echo "e2e: FAILED: $*" >&2
    exit 1
}

phase "engine"
if ! command -v docker >/dev/null || ! command -v debootstrap >/dev/null ||
    ! { command -v docker-compose >/dev/null || docker compose version >/dev/null 2>&1; }; then
    [[ $(id -u) == 0 ]] || fail "docker, docker-compose and debootstrap are needed (run as root to install them)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq docker.io docker-compose debootstrap >/dev/null
fi
if ! docker info >/dev/null 2>&1; then
    echo "starting dockerd (log: /var/log/dockerd-e2e.log)"
    nohup dockerd >/var/log/dockerd-e2e.log 2>&1 &
    for _ in $(seq 60); do
        docker info >/dev/null 2>&1 && break
        sleep 1
    done
    docker info >/dev/null 2>&1 || fail "dockerd did not start; see /var/log/dockerd-e2e.log"
fi
if docker compose version >/dev/null 2>&1; then
    COMPOSE=(docker compose)
else
    COMPOSE=(docker-compose)
fi
compose() { "${COMPOSE[@]}" --profile seed "$@"; }
echo "using: ${COMPOSE[*]} ($("${COMPOSE[@]}" version --short 2>/dev/null || true))"

seed_run=
cleanup() {
    status=$?
    end_phase
    if ((status != 0)); then
        echo "--- last log lines of each service"
        compose logs --no-color --tail=40 2>&1 || true
    fi
    printf '\n=== e2e: down -v\n'
    if [[ -n $seed_run ]]; then docker rm -f "$seed_run" >/dev/null 2>&1 || true; fi
    compose down -v --remove-orphans >/dev/null 2>&1 || true
    printf '\n=== e2e: time per phase\n'
    printf '%s\n' "${timings[@]}"
    if ((status == 0)); then echo "e2e: all checks passed"; else echo "e2e: FAILED"; fi
    exit "$status"
}
trap cleanup EXIT

phase "base images (offline-images.sh)"
e2e/offline-images.sh

phase "check tool (cargo build -p e2e)"
cargo build -q -p e2e
check() { cargo run -q -p e2e -- --timeout "$CONVERGE_WITHIN" "$@"; }

phase "service images (compose build)"
compose build

phase "up -d --build, wait until healthy"
compose down -v --remove-orphans >/dev/null 2>&1 || true
compose up -d --build vote result worker redis db
container() { compose ps -q "$1"; }
state() {
    docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' "$(container "$1")"
}
wait_healthy() {
    local deadline=$((SECONDS + HEALTHY_WITHIN)) service
    for service in "$@"; do
        until [[ $(state "$service") =~ ^(healthy|running)$ ]]; do
            ((SECONDS < deadline)) || fail "$service is $(state "$service") after ${HEALTHY_WITHIN}s"
            sleep 1
        done
    done
    echo "healthy: $*"
}
wait_healthy db redis vote result worker

phase "a vote reaches the websocket"
check vote-reaches-websocket

phase "seed profile with --verify"
before=$(check tally)
compose run --rm seed
check wait-tally --since "$before" --plus a=2000 --plus b=1000

redis_cli() { compose exec -T redis redis-cli "$@" | tr -d '\r'; }
queued() { redis_cli llen votes; }

phase "tiers, and kill -9 the worker under load"
before=$(check tally)
# Slow enough to still be running while the tiers are read and the worker dies.
seed_run=$(compose run -d seed --votes=3000 --split=2:1 --concurrency=20 --rate=300 \
    --verify=http://result:5001 --timeout="${CONVERGE_WITHIN}s" http://vote:5000/)
sleep 3
[[ $(docker inspect -f '{{.State.Status}}' "$seed_run") == running ]] ||
    fail "the seed run ended before the tiers could be read"
members() {
    docker network inspect -f '{{range .Containers}}{{.Name}} {{end}}' "${COMPOSE_PROJECT_NAME}_$1" |
        tr ' ' '\n' | sed -nE "s/^${COMPOSE_PROJECT_NAME}[-_]([a-z]+)[-_].*/\1/p" | sort -u | xargs
}
front=$(members front-tier)
back=$(members back-tier)
echo "front-tier: $front"
echo "back-tier:  $back"
[[ $front == "result seed vote" ]] || fail "front-tier should hold result seed vote"
[[ $back == "db redis result vote worker" ]] || fail "back-tier should hold db redis result vote worker"
docker kill "$(container worker)" >/dev/null
echo "worker killed with $(queued) ballots queued"
sleep 5
docker start "$(container worker)" >/dev/null
echo "worker restarted"
seed_status=$(docker wait "$seed_run")
docker logs --tail=15 "$seed_run"
((seed_status == 0)) || fail "seed --verify exited $seed_status after the worker was killed"
check wait-tally --since "$before" --plus a=2000 --plus b=1000

phase "restart Redis with ballots queued"
compose stop worker
before=$(check tally)
check cast --count=500 --option=b
[[ $(queued) == 500 ]] || fail "expected 500 ballots queued, found $(queued)"
compose restart redis
wait_healthy redis
[[ $(queued) == 500 ]] || fail "after the restart $(queued) of 500 queued ballots are left"
echo "500 queued ballots survived the Redis restart"
compose start worker
check wait-tally --since "$before" --plus b=500
[[ $(queued) == 0 ]] || fail "$(queued) ballots still queued"
[[ $(redis_cli llen votes:dead) == 0 ]] || fail "valid ballots were dead-lettered"

phase "graceful stop (SIGTERM)"
services=(vote result worker redis db)
ids=()
for service in "${services[@]}"; do ids+=("$(container "$service")"); done
compose stop
for i in "${!services[@]}"; do
    code=$(docker inspect -f '{{.State.ExitCode}}' "${ids[$i]}")
    [[ $code == 0 ]] || fail "${services[$i]} exited $code on SIGTERM"
done
echo "every service exited 0 on SIGTERM"
end_phase
