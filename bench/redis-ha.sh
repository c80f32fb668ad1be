#!/usr/bin/env bash
# Benchmark of Redis with Sentinel (README, "Redis with Sentinel"), on
# loopback: every Redis started by redis/start.sh with the shipped users and
# throwaway passwords, as the stack starts them. Prints, in one run:
#
# 1. What the promise costs vote (a 200 only once a replica has the ballot,
#    WAIT): bench/vote.sh's method (wrk, `POST /`, CPU per vote from /proc)
#    against a release vote on a single Redis (`--appendonly yes`, the plain
#    stack's) and against one with REDIS_SENTINELS set, on a primary with
#    one replica (`--appendonly yes --min-replicas-to-write 1
#    --min-replicas-max-lag 10`) and three Sentinels; alternating, ROUNDS (3)
#    times each. votes/s, p99 and vote's CPU per vote (and the Redis
#    members', summed): medians, and WAIT/single.
# 2. Failover, FAILOVERS (3) times: a second replica joins, then the primary
#    is killed (SIGKILL) while a vote POST is sent every 0.05 s. Prints the
#    time from the kill until the Sentinels name a new primary that accepts
#    a script that writes (as the queue script) and until vote answers 200 again (the new primary
#    ran the queue script and a replica has the ballot), and vote's other
#    answers meanwhile (503 certainly not queued, 504 unconfirmed). The
#    Sentinels' settings are redis/start.sh's defaults (quorum 2,
#    down-after 5000 ms, failover-timeout 20000 ms): most of a failover is
#    the 5 s before a silent primary counts as down. The killed member is
#    started again and must be a replica of the new primary before the next.
#
#   bench/redis-ha.sh
#   ROUNDS=5 FAILOVERS=5 DURATION=20s bench/redis-ha.sh
#
# Needs redis-server (7), redis-cli, wrk, curl, python3. The figures are
# wall-clock on whatever else the machine runs: compare them within one run.
set -euo pipefail
. "$(dirname "$0")/servers.sh"
. "$(dirname "$0")/wrk.sh"
cd "$(dirname "$0")/.."
E2E_NAME=redis-ha
# now, since, fail
. e2e/lib.sh

DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-1s}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-3}
FAILOVERS=${FAILOVERS:-3}
MASTER=voting

for tool in redis-server redis-cli wrk curl python3; do
	command -v "$tool" >/dev/null || fail "$tool not found (apt install ${tool%-*})"
done

cargo build --release --quiet -p vote --bin vote
VOTE=$(release_dir)/vote

init_servers redis-ha
SECRETS=$TMP/secrets
mkdir "$SECRETS"
for user in vote worker admin replica sentinel; do
	head -c 18 /dev/urandom | base64 | tr '+/' '-_' >"$SECRETS/redis_${user}_password"
done
ADMIN=$(cat "$SECRETS/redis_admin_password")
as_admin() { REDISCLI_AUTH=$ADMIN redis-cli --user admin -p "$@"; }

declare -A PORT ARGS PID
# Starts (or starts again) Redis member NAME with the stack's start script.
start_member() { # start_member NAME [REDIS_ARGS...] (ARGS are kept for a restart)
	local name=$1
	shift
	if [ -z "${PORT[$name]:-}" ]; then
		PORT[$name]=$(free_port)
		ARGS[$name]="$*"
		mkdir "$TMP/$name"
	fi
	# shellcheck disable=SC2086 # ARGS: words without spaces
	start_service "$name" "$TMP/$name.log" env REDIS_SECRETS_DIR="$SECRETS" \
		REDIS_ACLFILE="$TMP/$name/users.acl" sh redis/start.sh redis-server \
		--port "${PORT[$name]}" --bind 127.0.0.1 --dir "$TMP/$name" \
		--logfile "$TMP/$name.log" --daemonize no ${ARGS[$name]}
	PID[$name]=$STARTED_PID
	wait_for "$name" as_admin "${PORT[$name]}" ping
}
start_sentinel() { # start_sentinel NAME PRIMARY_PORT
	PORT[$1]=$(free_port)
	mkdir "$TMP/$1"
	start_service "$1" "$TMP/$1.log" env REDIS_SECRETS_DIR="$SECRETS" \
		REDIS_ACLFILE="$TMP/$1/users.acl" REDIS_SENTINEL_CONF="$TMP/$1/sentinel.conf" \
		REDIS_MASTER_NAME="$MASTER" REDIS_PRIMARY="127.0.0.1:$2" \
		sh redis/start.sh redis-server --sentinel --port "${PORT[$1]}" --bind 127.0.0.1 \
		--dir "$TMP/$1" --logfile "$TMP/$1.log" --daemonize no
	PID[$1]=$STARTED_PID
	wait_for "$1" as_admin "${PORT[$1]}" ping
}
# Waits up to 60 s for COMMAND to succeed.
wait_long() { WAIT_SECONDS=60 wait_for "$@"; }

SENTINELS=(sentinel1 sentinel2 sentinel3)
GUARD="--min-replicas-to-write 1 --min-replicas-max-lag 10"
start_member single --appendonly yes
start_member redis1 --appendonly yes $GUARD
start_member redis2 --appendonly yes $GUARD --replicaof 127.0.0.1 "${PORT[redis1]}"
for s in "${SENTINELS[@]}"; do start_sentinel "$s" "${PORT[redis1]}"; done
sentinel_list=
for s in "${SENTINELS[@]}"; do sentinel_list+="${sentinel_list:+,}127.0.0.1:${PORT[$s]}"; done

# The port of the primary as a Sentinel names it.
named_primary() { as_admin "${PORT[sentinel1]}" SENTINEL GET-MASTER-ADDR-BY-NAME "$MASTER" 2>/dev/null | sed -n 2p; }
replicating() { # replicating MEMBER PRIMARY_PORT: a replica of it, link up
	local info
	info=$(as_admin "${PORT[$1]}" INFO replication 2>/dev/null | tr -d '\r')
	grep -q "^master_port:$2$" <<<"$info" && grep -q '^master_link_status:up$' <<<"$info"
}
# Every Sentinel sees REPLICAS replicas of the primary, none down, and the two other Sentinels.
sentinels_know() { # sentinels_know REPLICAS
	local s
	for s in "${SENTINELS[@]}"; do
		[ "$(as_admin "${PORT[$s]}" SENTINEL REPLICAS "$MASTER" | grep -cx 'flags')" = "$1" ] || return 1
		! as_admin "${PORT[$s]}" SENTINEL REPLICAS "$MASTER" | grep -q 's_down' || return 1
		[ "$(as_admin "${PORT[$s]}" SENTINEL SENTINELS "$MASTER" | grep -cx 'flags')" = 2 ] || return 1
	done
}
wait_long "redis2 replicating" replicating redis2 "${PORT[redis1]}"
wait_long "the Sentinels knowing the replica" sentinels_know 1

start_vote() { # start_vote NAME REDIS_PORT [REDIS_SENTINELS]: VOTE_PID, VOTE_PORT
	VOTE_PORT=$(free_port)
	start_service "vote ($1)" "$TMP/vote-$1.log" env PORT="$VOTE_PORT" \
		REDIS_URL="redis://vote@127.0.0.1:$2" REDIS_PASSWORD_FILE="$SECRETS/redis_vote_password" \
		${3:+REDIS_SENTINELS=$3} RUST_LOG=warn "$VOTE"
	VOTE_PID=$STARTED_PID
	wait_for "vote ($1)" env PORT="$VOTE_PORT" "$VOTE" healthcheck
}

# --- 1. vote on a single Redis against vote with WAIT.
echo "$(nproc) cores shared with whatever else runs; wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency, POST / vote=a, after $WARMUP of warm-up each; $ROUNDS rounds, alternating"
declare -A rps=([single]= [WAIT]=) p99=([single]= [WAIT]=) cpu=([single]= [WAIT]=)
for r in $(seq "$ROUNDS"); do
	for mode in single WAIT; do
		if [ "$mode" = single ]; then
			members=single
			start_vote single "${PORT[single]}"
		else
			members="redis1 redis2"
			start_vote WAIT "${PORT[redis1]}" "$sentinel_list"
		fi
		as_admin "${PORT[${members%% *}]}" DEL votes >/dev/null # on the primary
		redis_pids=
		for m in $members; do redis_pids+=" ${PID[$m]}"; done
		measure "vote, $mode" "$VOTE_PID" "$VOTE_PORT" "$redis_pids"
		rps[$mode]+=" $RPS"
		p99[$mode]+=" $(awk '{ v = $1 + 0 } /us$/ { v /= 1000 } /[0-9]s$/ && !/ms$/ && !/us$/ { v *= 1000 } END { print v }' <<<"$P99")"
		cpu[$mode]+=" $CPU"
		stop_service "$VOTE_PID"
	done
done
echo
print_rows

# --- 2. Failover: a second replica, then the primary killed, FAILOVERS times.
echo
echo "== kill -9 of the primary (primary and two replicas), a vote POST every 0.05 s, $FAILOVERS times"
start_member redis3 --appendonly yes $GUARD --replicaof 127.0.0.1 "${PORT[redis1]}"
wait_long "redis3 replicating" replicating redis3 "${PORT[redis1]}"
wait_long "the Sentinels knowing both replicas" sentinels_know 2
start_vote failover "${PORT[redis1]}" "$sentinel_list"
member_on() { local m; for m in redis1 redis2 redis3; do if [ "${PORT[$m]}" = "$1" ]; then echo "$m"; fi; done; }

# Posts a vote every 0.05 s until $TMP/stop exists (at most 120 s): one
# line "<unix time sent> <unix time answered> <status>" per request in LOG.
probe() { # probe LOG
	local sent code
	for _ in $(seq 2400); do
		[ -e "$TMP/stop" ] && break
		sent=$(now)
		code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -X POST -d vote=a \
			"http://127.0.0.1:$VOTE_PORT/") || true
		echo "$sent $(now) $code" >>"$1"
		sleep 0.05
	done
}

# Whether the member on PORT runs a script that writes, as the queue script
# does (refused while it is a replica, or has no replica: NOREPLICAS).
accepts_script() { # accepts_script PORT
	[[ $(as_admin "$1" EVAL "return redis.call('INCR', KEYS[1])" 1 bench:probe 2>&1) =~ ^[0-9]+$ ]]
}

named=() voted=()
for r in $(seq "$FAILOVERS"); do
	log=$TMP/probe-$r.log
	: >"$log"
	rm -f "$TMP/stop"
	in_background probe "$log"
	prober=$BACKGROUND_PID
	sleep 2
	old=$(member_on "$(named_primary)")
	[ -n "$old" ] || fail "no primary named before round $r"
	t_kill=$(now)
	unwatch "${PID[$old]}"
	kill -KILL "${PID[$old]}"
	wait "${PID[$old]}" 2>/dev/null || true
	t_named=
	for _ in $(seq 600); do
		new=$(named_primary)
		if [ -n "$new" ] && [ "$new" != "${PORT[$old]}" ] && accepts_script "$new"; then
			t_named=$(now)
			break
		fi
		sleep 0.1
	done
	[ -n "$t_named" ] || fail "the Sentinels named no new primary within 60 s of the kill"
	# Until vote answers 200 to a vote sent after the kill (at most 60 s).
	for _ in $(seq 600); do
		awk -v t="$t_kill" '$1 > t && $3 == 200 { found = 1 } END { exit !found }' "$log" && break
		sleep 0.1
	done
	sleep 1
	touch "$TMP/stop"
	wait "$prober"
	t_voted=$(awk -v t="$t_kill" '$1 > t && $3 == 200 { print $2; exit }' "$log")
	[ -n "$t_voted" ] || fail "vote answered no 200 within 60 s of the kill"
	# The other answers to votes sent after the kill, by status (000: none).
	answers=$(awk -v t="$t_kill" -v e="$t_voted" '$1 > t && $2 < e { n[$3]++ } END { for (s in n) printf "%s %s, ", n[s], s }' "$log" | sed 's/, $//')
	named+=("$(since "$t_kill" "$t_named")")
	voted+=("$(since "$t_kill" "$t_voted")")
	start_member "$old"
	new_port=$(named_primary)
	for m in redis1 redis2 redis3; do
		[ "${PORT[$m]}" = "$new_port" ] || wait_long "$m a replica of the new primary" replicating "$m" "$new_port"
	done
	wait_long "the Sentinels knowing both replicas" sentinels_know 2
	echo "round $r: killed $old (the primary); the Sentinels named $(member_on "$new_port") $(since "$t_kill" "$t_named") s after the kill; vote answered 200 again after $(since "$t_kill" "$t_voted") s (meanwhile: ${answers:-no other answers}); $old back as a replica $(since "$t_kill" "$(now)") s after the kill"
done

ratio() { awk -v a="$(median <<<"$1")" -v b="$(median <<<"$2")" 'BEGIN { printf "%.2f", a / b }'; }
echo
echo "== summary ($(nproc) shared cores; load average $(cut -d' ' -f1-3 /proc/loadavg))"
printf 'votes/s:        single %s, WAIT %s (medians; runs %s / %s): WAIT/single %s\n' \
	"$(median <<<"${rps[single]}")" "$(median <<<"${rps[WAIT]}")" "${rps[single]# }" "${rps[WAIT]# }" "$(ratio "${rps[WAIT]}" "${rps[single]}")"
printf 'p99 (ms):       single %s, WAIT %s (medians; runs %s / %s): WAIT/single %s\n' \
	"$(median <<<"${p99[single]}")" "$(median <<<"${p99[WAIT]}")" "${p99[single]# }" "${p99[WAIT]# }" "$(ratio "${p99[WAIT]}" "${p99[single]}")"
printf 'vote CPU/vote (us): single %s, WAIT %s (medians; runs %s / %s): WAIT/single %s\n' \
	"$(median <<<"${cpu[single]}")" "$(median <<<"${cpu[WAIT]}")" "${cpu[single]# }" "${cpu[WAIT]# }" "$(ratio "${cpu[WAIT]}" "${cpu[single]}")"
printf 'failover, kill -9 until the Sentinels name a primary that takes a script: median %s s (runs %s)\n' "$(median <<<"${named[*]}")" "${named[*]}"
printf 'failover, kill -9 until vote answers 200 again:          median %s s (runs %s)\n' "$(median <<<"${voted[*]}")" "${voted[*]}"
