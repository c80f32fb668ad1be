#!/usr/bin/env bash
# What the edge (HAProxy) costs a vote, in one run: the compose stack with
# REPLICAS vote replicas behind the edge; seed, in a container on the
# front tier, casts VOTES ballots at CONCURRENCY through the edge
# (http://edge:5000/) and straight at one vote replica (its address on the
# front-tier network), ROUNDS times each, alternating. Prints votes/s and
# seed's p99 for each target: the median over the rounds, and every round.
#
#   bench/edge.sh                         # 20000 votes, concurrency 50, 3 rounds, 1 replica
#   VOTES=50000 CONCURRENCY=100 ROUNDS=5 REPLICAS=2 bench/edge.sh
#
# The worker is stopped while it runs, so the ballots wait in Redis and the
# CPU goes to the path measured (as in bench/system.sh, step 1). Needs Docker
# and compose (v2 or Debian's v1), and the images (the base images from
# e2e/offline-images.sh on a machine without a registry; the services' are
# built here if missing). Its own compose project, published on random host
# ports, taken down with its volumes at the end, whatever happens.
set -euo pipefail
# median
. "$(dirname "$0")/servers.sh"
cd "$(dirname "$0")/.."

VOTES=${VOTES:-20000}
CONCURRENCY=${CONCURRENCY:-50}
ROUNDS=${ROUNDS:-3}
REPLICAS=${REPLICAS:-1}
export COMPOSE_PROJECT_NAME=${COMPOSE_PROJECT_NAME:-voting-bench-edge}
# Nothing here goes through the host's ports: let Docker pick free ones.
export VOTE_PORT=${VOTE_PORT:-0} RESULT_PORT=${RESULT_PORT:-0}
# The one seed container is one client address: the edge's per-client
# limit is raised out of the way, so what is measured is the public port
# with its per-client count (a table lookup per request), not refusals.
export EDGE_RATE_LIMIT=${EDGE_RATE_LIMIT:-1000000000}

if docker compose version >/dev/null 2>&1; then
	COMPOSE=(docker compose)
else
	COMPOSE=(docker-compose)
fi
compose() { "${COMPOSE[@]}" --profile seed "$@"; }
fail() {
	echo "bench/edge.sh: $*" >&2
	exit 1
}
cleanup() {
	compose down -v --remove-orphans >/dev/null 2>&1 || true
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "building and starting the stack ($REPLICAS vote replicas)..." >&2
log=$(mktemp)
trap 'cleanup; rm -f "$log"' EXIT
compose build vote result worker seed >"$log" 2>&1 || fail "compose build failed: $(tail -5 "$log")"
compose up -d --scale vote="$REPLICAS" edge vote result worker redis db >"$log" 2>&1 ||
	fail "compose up failed: $(tail -5 "$log")"
deadline=$((SECONDS + 180))
until [[ $(docker inspect -f '{{.State.Health.Status}}' "$(compose ps -q edge)") == healthy ]]; do
	((SECONDS < deadline)) || fail "the edge is not healthy after 180 s"
	sleep 1
done
compose stop worker >/dev/null 2>&1
vote=$(compose ps -q vote | sed -n 1p)
direct=$(docker inspect -f "{{with index .NetworkSettings.Networks \"${COMPOSE_PROJECT_NAME}_front-tier\"}}{{.IPAddress}}{{end}}" "$vote")
[[ -n $direct ]] || fail "no front-tier address for the vote replica"

declare -A throughput p99
# One seed run at $2; its votes/s and p99 appended to the lists of $1.
measure() {
	local out
	out=$(timeout 300 "${COMPOSE[@]}" --profile seed run --rm --no-deps seed \
		--votes "$VOTES" --concurrency "$CONCURRENCY" --timeout 30s "$2" 2>/dev/null) ||
		fail "seed against $2 failed: $(printf '%s\n' "$out" | tail -3)"
	throughput[$1]+="$(awk '/^throughput/ { print $2 }' <<<"$out") "
	p99[$1]+="$(sed -nE 's/^latency.*p99 ([0-9.]+) ms.*/\1/p' <<<"$out") "
}
# Warm-up (not counted): connections, caches, Redis's first allocations.
"${COMPOSE[@]}" --profile seed run --rm --no-deps seed --votes 2000 --concurrency "$CONCURRENCY" \
	http://edge:5000/ >/dev/null 2>&1 || fail "the warm-up run failed"
for round in $(seq "$ROUNDS"); do
	echo "round $round/$ROUNDS: $VOTES votes direct to $direct, then through the edge..." >&2
	measure direct "http://$direct:5000/"
	measure edge http://edge:5000/
done

printf '\n%s vote replica(s) behind the edge, %s cores, %s votes per run, concurrency %s, %s rounds\n' \
	"$REPLICAS" "$(nproc)" "$VOTES" "$CONCURRENCY" "$ROUNDS"
printf '| %-34s | %-9s | %-12s | %-44s |\n' target "votes/s" "p99 (ms)" "every round: votes/s / p99 ms"
printf '|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..36})" "$(printf -- '-%.0s' {1..11})" \
	"$(printf -- '-%.0s' {1..14})" "$(printf -- '-%.0s' {1..46})"
for target in direct edge; do
	read -ra t <<<"${throughput[$target]}"
	read -ra p <<<"${p99[$target]}"
	rounds=()
	for i in "${!t[@]}"; do rounds+=("${t[$i]} / ${p[$i]}"); done
	label="direct to one vote replica"
	[[ $target == edge ]] && label="through the edge (HAProxy)"
	printf '| %-34s | %-9s | %-12s | %-44s |\n' "$label" \
		"$(median <<<"${throughput[$target]}")" "$(median <<<"${p99[$target]}")" "$(printf '%s; ' "${rounds[@]}" | sed 's/; $//')"
done
