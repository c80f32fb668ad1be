#!/usr/bin/env bash
# Benchmark of the Postgres HA variant (README, "High availability"), on
# loopback, without containers: three etcd members and three Patroni members
# (Debian's `patroni`, `etcd-server`, `postgresql`; missing ones are installed
# with apt-get when run as root), with db/patroni/patroni.yml's settings (ttl
# 8, loop_wait 1, retry_timeout 3, synchronous_mode_strict, pg_rewind...):
# only addresses, paths and the post-bootstrap roles script differ, and the
# passwords are throwaway ones read by db/patroni/start.sh as in the stack.
# Prints, in one run:
#
# 1. What synchronous replication costs: one release worker draining the
#    same BALLOTS (200,000 from 100,000 voters, bench/drain.sh, checked
#    exactly) into a single Postgres (bench/servers.sh's, fsync and
#    synchronous_commit on) and into the cluster through the stack's
#    multi-host URL (target_session_attrs=read-write), alternating, ROUNDS (3)
#    times each; ballots/s of each, medians, and cluster/single.
# 2. Failover under a steady write load, FAILOVERS (3) times: ballots pushed
#    to Redis at RATE (500/s) and applied by one worker on the cluster, then
#    the primary member killed (SIGKILL to its Patroni and its Postgres, as
#    `docker kill` kills the container). Failover: from the kill until a
#    write (a commit, so it waits for the new synchronous standby) is first
#    acknowledged by another member, tried every 0.1 s through the
#    multi-host address. Write pause: the longest time the worker applied
#    nothing around the kill (its worker_ballots_applied_total, sampled every
#    0.1 s): from its last write before the kill to its first after. The
#    killed member is started again and must rejoin as a replica (pg_rewind)
#    before the next round. Medians of each; every ballot pushed must be
#    stored at the end.
#
#   bench/postgres-ha.sh
#   ROUNDS=5 FAILOVERS=5 BALLOTS=400000 VOTERS=200000 bench/postgres-ha.sh
#
# The figures are wall-clock times on whatever else the machine runs: compare
# them within one run. Fails only on a wrong result or a step that does not
# happen within its bound (no leader, no failover within 60 s, no rejoin).
set -euo pipefail
. "$(dirname "$0")/servers.sh"
. "$(dirname "$0")/drain.sh"
cd "$(dirname "$0")/.."
E2E_NAME=postgres-ha
# now, since, write_pause, cluster_members, install_packages, fail
. e2e/lib.sh

BALLOTS=${BALLOTS:-200000}
VOTERS=${VOTERS:-100000}
BATCH_SIZE=${BATCH_SIZE:-1000}
ROUNDS=${ROUNDS:-3}
FAILOVERS=${FAILOVERS:-3}
RATE=${RATE:-500}            # ballots/s pushed during a failover round
LIMIT_SECONDS=${LIMIT_SECONDS:-600}
MEMBERS=(db1 db2 db3)

missing=()
command -v patroni >/dev/null || missing+=(patroni)
command -v etcd >/dev/null || missing+=(etcd-server)
python3 -c 'import etcd' 2>/dev/null || missing+=(python3-etcd)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
command -v redis-server >/dev/null || missing+=(redis-server)
command -v redis-cli >/dev/null || missing+=(redis-tools)
command -v curl >/dev/null || missing+=(curl)
install_packages "${missing[@]}"

cargo build --release --quiet -p worker
WORKER=${WORKER:-$(release_dir)/worker}

init_servers postgres-ha
on_stop kill_postmasters
find_postgres
start_redis
start_postgres
if [ "$(id -u)" = 0 ]; then chown postgres "$TMP"; fi

# Patroni runs as the OS user postgres (Postgres refuses root). setpriv execs
# the command, so the pid start_service gives is Patroni's, not runuser's.
AS_POSTGRES=()
if [ "$(id -u)" = 0 ]; then AS_POSTGRES=(setpriv --reuid=postgres --regid=postgres --init-groups); fi

# --- etcd: three members.
etcd_cluster= etcd_hosts=
declare -A ETCD_CLIENT ETCD_PEER
for i in 1 2 3; do
	ETCD_CLIENT[$i]=$(free_port)
	ETCD_PEER[$i]=$(free_port)
	etcd_cluster+="${etcd_cluster:+,}etcd$i=http://127.0.0.1:${ETCD_PEER[$i]}"
	etcd_hosts+="${etcd_hosts:+,}127.0.0.1:${ETCD_CLIENT[$i]}"
done
for i in 1 2 3; do
	start_service "etcd$i" "$TMP/etcd$i.log" etcd --name "etcd$i" --data-dir "$TMP/etcd$i" \
		--listen-client-urls "http://127.0.0.1:${ETCD_CLIENT[$i]}" \
		--advertise-client-urls "http://127.0.0.1:${ETCD_CLIENT[$i]}" \
		--listen-peer-urls "http://127.0.0.1:${ETCD_PEER[$i]}" \
		--initial-advertise-peer-urls "http://127.0.0.1:${ETCD_PEER[$i]}" \
		--initial-cluster "$etcd_cluster" --initial-cluster-state new \
		--initial-cluster-token "bench-$$"
done
for i in 1 2 3; do
	wait_for "etcd$i" curl -fsS "http://127.0.0.1:${ETCD_CLIENT[$i]}/health"
done

# --- Patroni: three members, each with patroni.yml's settings.
mkdir "$TMP/secrets"
for user in superuser replication rewind restapi; do
	head -c 18 /dev/urandom | base64 | tr '+/' '-_' >"$TMP/secrets/$user"
done
if [ "$(id -u)" = 0 ]; then chown -R postgres "$TMP/secrets"; fi
SUPERUSER_PASSWORD=$(cat "$TMP/secrets/superuser")
declare -A PG_PORTS REST_PORTS MEMBER_PID
hosts= ports=
for m in "${MEMBERS[@]}"; do
	PG_PORTS[$m]=$(free_port)
	REST_PORTS[$m]=$(free_port)
	hosts+="${hosts:+,}127.0.0.1:${PG_PORTS[$m]}"
	ports+="${ports:+,}${PG_PORTS[$m]}"
	python3 - db/patroni/patroni.yml "$TMP/$m.yml" "$m" "${PG_PORTS[$m]}" "${REST_PORTS[$m]}" \
		"$etcd_hosts" "$TMP" "$PG_BIN" <<'PY'
import sys, yaml
src, dst, name, pg_port, rest_port, etcd_hosts, tmp, pg_bin = sys.argv[1:]
conf = yaml.safe_load(open(src))
conf["name"] = name
conf["restapi"]["listen"] = conf["restapi"]["connect_address"] = f"127.0.0.1:{rest_port}"
conf["etcd3"] = {"hosts": etcd_hosts.split(",")}
pg = conf["postgresql"]
pg["listen"] = pg["connect_address"] = f"127.0.0.1:{pg_port}"
pg["data_dir"], pg["bin_dir"], pg["pgpass"] = f"{tmp}/{name}", pg_bin, f"{tmp}/{name}.pgpass"
pg["parameters"]["unix_socket_directories"] = tmp
# The stack's roles are not needed: the bench's workers connect as the superuser.
del conf["bootstrap"]["post_bootstrap"]
yaml.safe_dump(conf, open(dst, "w"))
PY
done
# The stack's way to the primary: every member, the one that takes writes.
cluster_url() { echo "postgres://postgres:$SUPERUSER_PASSWORD@$hosts/$1?target_session_attrs=read-write"; }

start_member() { # start_member NAME
	start_service "patroni $1" "$TMP/$1.log" "${AS_POSTGRES[@]}" env HOME="$TMP" \
		PATRONI_SUPERUSER_PASSWORD_FILE="$TMP/secrets/superuser" \
		PATRONI_REPLICATION_PASSWORD_FILE="$TMP/secrets/replication" \
		PATRONI_REWIND_PASSWORD_FILE="$TMP/secrets/rewind" \
		PATRONI_RESTAPI_PASSWORD_FILE="$TMP/secrets/restapi" \
		sh db/patroni/start.sh patroni "$TMP/$1.yml"
	MEMBER_PID[$1]=$STARTED_PID
}

# Member NAME's Postgres: its postmaster and the postmaster's children.
postgres_pids() { # postgres_pids NAME
	local postmaster
	postmaster=$(head -1 "$TMP/$1/postmaster.pid" 2>/dev/null) || return 0
	# Not a stale file's pid, reused since: a postmaster runs in its data dir.
	[ "$(readlink "/proc/$postmaster/cwd")" = "$TMP/$1" ] || return 0
	echo "$postmaster" $(ps -o pid= --ppid "$postmaster")
}

# Kills member NAME as a container kill would: its Patroni and its Postgres,
# every process at once, with SIGKILL.
kill_member() { # kill_member NAME
	unwatch "${MEMBER_PID[$1]}"
	# shellcheck disable=SC2046 # one pid a word
	kill -KILL "${MEMBER_PID[$1]}" $(postgres_pids "$1")
	wait "${MEMBER_PID[$1]}" 2>/dev/null || true
}

# At exit: any member's Postgres that Patroni did not stop.
kill_postmasters() {
	local m
	# shellcheck disable=SC2046 # one pid a word
	for m in "${MEMBERS[@]}"; do kill -KILL $(postgres_pids "$m") 2>/dev/null || true; done
}

# "name role state timeline" per member, from the first member that answers.
members() {
	local m answer
	for m in "${MEMBERS[@]}"; do
		answer=$(curl -fsS --max-time 1 "http://127.0.0.1:${REST_PORTS[$m]}/cluster" 2>/dev/null) || continue
		cluster_members <<<"$answer"
		return 0
	done
}
leader() { members | awk '$2 == "leader" && $3 == "running" { print $1 }'; }

# Waits (at most 180 s) until a leader runs and every other member
# replicates on its timeline, one of them as the synchronous standby.
wait_cluster() {
	local deadline=$((SECONDS + 180)) list
	while ((SECONDS < deadline)); do
		list=$(members)
		if awk '$2 == "leader" && $3 == "running" { tl = $4; l++ }
			$2 == "sync_standby" { s++ }
			$2 ~ /replica|sync_standby/ && $3 ~ /running|streaming/ { r[$4]++ }
			END { exit !(l == 1 && s >= 1 && r[tl] == 2) }' <<<"$list"; then
			return 0
		fi
		sleep 0.5
	done
	fail "the cluster did not form within 180 s: $(xargs <<<"$list")"
}

# psql on the leader as the superuser, through its local socket. (Not the
# multi-host address: libpq stops at a replica that has not yet replayed the
# database just created, "does not exist", without trying the next host.)
cluster_sql() { # cluster_sql DATABASE ARGS...
	local db=$1 lead
	shift
	lead=$(leader)
	"${AS_POSTGRES[@]}" "$PG_BIN/psql" -qAt -v ON_ERROR_STOP=1 \
		-d "host=$TMP port=${PG_PORTS[${lead:-db1}]} dbname=$db user=postgres" "$@"
}

for m in "${MEMBERS[@]}"; do start_member "$m"; done
wait_cluster
echo "cluster: $(members | xargs -L1 echo | paste -sd ';' -); $(cluster_sql postgres -c "SELECT 'synchronous_commit=' || current_setting('synchronous_commit') || ', synchronous_standby_names=' || current_setting('synchronous_standby_names')")"
echo "$(nproc) cores shared with whatever else runs; load average $(cut -d' ' -f1-3 /proc/loadavg)"

# --- 1. Ballots/s: single Postgres against the cluster.
echo
echo "== one worker draining $BALLOTS ballots from $VOTERS voters, BATCH_SIZE=$BATCH_SIZE, alternating, $ROUNDS rounds"
single=() cluster=()
for r in $(seq "$ROUNDS"); do
	pg_sql -d postgres -c "CREATE DATABASE single_$r"
	echo -n "single Postgres, round $r: "
	drain "postgres://postgres@127.0.0.1:$PG_PORT/single_$r" "pg_sql -d single_$r" 1
	single+=("$DRAIN_RATE")
	cluster_sql postgres -c "CREATE DATABASE cluster_$r"
	echo -n "Patroni cluster, round $r: "
	drain "$(cluster_url "cluster_$r")" "cluster_sql cluster_$r" 1
	cluster+=("$DRAIN_RATE")
done

# --- 2. Failover under a steady write load.
echo
echo "== kill -9 of the primary under $RATE ballots/s applied by one worker, $FAILOVERS times"
cluster_sql postgres -c "CREATE DATABASE failover"
cluster_sql failover -c "CREATE TABLE probe (at timestamptz)"
redis_cli FLUSHALL >/dev/null
WORKER_PORT=$(free_port)
start_service "worker on the cluster" "$TMP/worker-failover.log" env REDIS_URL="$REDIS_URL" \
	DATABASE_URL="$(cluster_url failover)" PORT="$WORKER_PORT" BATCH_SIZE="$BATCH_SIZE" RUST_LOG=warn "$WORKER"
wait_for "the worker" curl -fsS "http://127.0.0.1:$WORKER_PORT/readyz"
METRICS=http://127.0.0.1:$WORKER_PORT/metrics

# Pushes RATE ballots/s (a tenth every 0.1 s), each from a new voter, until
# $TMP/stop exists or for at most 120 s; then writes how many to $TMP/fed-ROUND.
feed() { # feed ROUND
	local per=$((RATE / 10)) n=0 i ballots
	for _ in $(seq 1200); do
		[ -e "$TMP/stop" ] && break
		ballots=()
		for ((i = 0; i < per; i++, n++)); do ballots+=("{\"voter_id\":\"f$1-$n\",\"vote\":\"a\"}"); done
		redis_cli RPUSH votes "${ballots[@]}" >/dev/null
		sleep 0.1
	done
	echo "$n" >"$TMP/fed-$1"
}
applied() {
	curl -fsS --max-time 1 "$METRICS" 2>/dev/null |
		awk '$1 == "worker_ballots_applied_total" { n = $2 } END { print n + 0 }'
}

# Tries a commit on whichever member takes writes, every 0.1 s, for at most
# 60 s. Prints when the first was acknowledged and the port of the member.
# A commit, not a connection: the new primary acknowledges one only once it
# has a synchronous standby (strict mode). No statement_timeout: cancelling
# a commit that waits for the standby only warns, the row being written.
first_write() {
	local deadline=$((SECONDS + 60)) port
	while ((SECONDS < deadline)); do
		if port=$(timeout 20 "${AS_POSTGRES[@]}" "$PG_BIN/psql" -qAt -v ON_ERROR_STOP=1 \
			-d "host=$TMP,$TMP,$TMP port=$ports dbname=failover user=postgres target_session_attrs=read-write connect_timeout=1" \
			-c "INSERT INTO probe VALUES (now())" -c "SHOW port" 2>"$TMP/probe.err") &&
			! grep -q WARNING "$TMP/probe.err"; then
			echo "$(now) $port"
			return 0
		fi
		sleep 0.1
	done
	fail "no member acknowledged a write within 60 s of the kill: $(tail -1 "$TMP/probe.err")"
}
member_on() { local m; for m in "${MEMBERS[@]}"; do if [ "${PG_PORTS[$m]}" = "$1" ]; then echo "$m"; fi; done; }

failovers=() pauses=()
for r in $(seq "$FAILOVERS"); do
	rm -f "$TMP/stop"
	: >"$TMP/applied-$r"
	in_background feed "$r"
	feeder=$BACKGROUND_PID
	in_background sample_applied "$TMP/applied-$r" "$METRICS"
	sampler=$BACKGROUND_PID
	sleep 3
	old=$(leader)
	[ -n "$old" ] || fail "no leader before round $r: $(members | xargs)"
	t_kill=$(now)
	kill_member "$old"
	read -r t_write port < <(first_write)
	[ -n "${t_write:-}" ] || fail "no write acknowledged after the kill"
	# The worker writes again: its count grows past what it is now.
	before=$(applied)
	for _ in $(seq 600); do
		[ "$(applied)" -gt "$before" ] && break
		sleep 0.1
	done
	sleep 1
	touch "$TMP/stop"
	wait "$feeder"
	kill "$sampler"
	wait "$sampler" 2>/dev/null || true
	failover=$(since "$t_kill" "$t_write")
	pause=$(write_pause "$TMP/applied-$r" "$t_kill" "$(now)")
	failovers+=("$failover")
	pauses+=("$pause")
	start_member "$old"
	wait_cluster
	echo "round $r: killed $old (the primary); failover $failover s (a write acknowledged by $(member_on "$port")); write pause $pause s (worker); $old back as a replica $(since "$t_kill" "$(now)") s after the kill"
done

# Nothing the worker was given is lost across the failovers.
fed=$(cat "$TMP"/fed-* | awk '{ n += $1 } END { print n }')
for _ in $(seq 600); do
	[ "$(in_flight)" = 0 ] && break
	sleep 0.1
done
stored=$(cluster_sql failover -c "SELECT count(*) FROM votes")
[ "$stored" = "$fed" ] || fail "$fed ballots pushed, $stored stored after the failovers"
echo "all $fed ballots pushed during the failovers stored"

echo
echo "== summary ($(nproc) shared cores; load average $(cut -d' ' -f1-3 /proc/loadavg))"
printf 'worker ballots/s, single Postgres:       median %s (runs %s)\n' "$(median <<<"${single[*]}")" "${single[*]}"
printf 'worker ballots/s, Patroni cluster (sync): median %s (runs %s)\n' "$(median <<<"${cluster[*]}")" "${cluster[*]}"
printf 'cluster / single:                         %s\n' "$(awk -v c="$(median <<<"${cluster[*]}")" -v s="$(median <<<"${single[*]}")" 'BEGIN { printf "%.2f", c / s }')"
printf 'failover (kill -9 to a write acknowledged): median %s s (runs %s)\n' "$(median <<<"${failovers[*]}")" "${failovers[*]}"
printf 'write pause (worker):                       median %s s (runs %s)\n' "$(median <<<"${pauses[*]}")" "${pauses[*]}"
