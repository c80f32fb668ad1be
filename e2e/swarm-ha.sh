# The HA checks on the swarm, sourced by e2e/swarm.sh when SWARM_HA=1
# (run it as `SWARM_HA=1 e2e/swarm.sh`), after docker-stack.yml with
# docker-stack.ha.yml is deployed and healthy: uses swarm.sh's nodes,
# `on`, `manager`, `check`, `seed_start`/`seed_finish` and lib.sh's
# failover figures. First both primaries, Postgres's and Redis's, are
# moved onto one node other than the manager (a Patroni switchover, a
# Sentinel failover), so that one kill loses both. Under seed load with
# vote changes, `docker kill` of that node's container (and with it its
# etcd member, its Sentinel and whatever vote, result and worker tasks it
# ran). Fails if no new Postgres primary within 15 s or no promoted Redis
# replica within 10 s, if seed --verify finds a ballot answered 200 not
# counted exactly, if the results websocket does not move within 20 s of
# the Postgres promotion, or if the node's members are not replicas again
# after it comes back. Prints both failover times, the write pause, the
# 503 and 504 counts and how long vote answered them.

FAILOVER_WITHIN=15
REDIS_FAILOVER_WITHIN=10
WEBSOCKET_WITHIN=20
REJOIN_WITHIN=120
# Ballots at a rate, a tenth of the voters voting again; the backlog of the
# write pause drains within the seed's verify timeout.
LOAD=(--votes=24000 --rate=1200 --concurrency=64 --split=1:1 --changes=0.1)
SEED_TIMEOUT=120
MEMBERS=(db1 db2 db3)
live_members=("${MEMBERS[@]}")
REDIS_MEMBERS=(redis1 redis2 redis3)
SENTINELS=(sentinel1 sentinel2 sentinel3)
live_redis=("${REDIS_MEMBERS[@]}")
live_sentinels=("${SENTINELS[@]}")
ha_work=$(mktemp -d)

# Member dbN, redisN, sentinelN runs on node N (label voting.member=N), the
# manager being 1.
node_of() { echo "${NODES[$((${1##*[a-z]} - 1))]}"; }
member_container() {
    on "$(node_of "$1")" ps -q --filter "label=com.docker.swarm.service.name=${STACK}_$1" | sed -n 1p
}
# redis-cli ARGS as admin in member or Sentinel $1's container, on its port.
redis_at() {
    local name=$1 port=6379 id
    shift
    [[ $name != sentinel* ]] || port=26379
    id=$(member_container "$name" 2>/dev/null) && [[ -n $id ]] || return 1
    on "$(node_of "$name")" exec "$id" sh -c \
        'REDISCLI_AUTH=$(cat /run/secrets/redis_admin_password) exec redis-cli --no-auth-warning --user admin -p "$0" "$@"' \
        "$port" "$@" 2>/dev/null | tr -d '\r'
}
# The member Sentinel $1 names the primary (a member's name: the members
# announce themselves by name).
named_by() { redis_at "$1" sentinel get-master-addr-by-name voting | sed -n 1p; }
# The primary as the first live Sentinel that answers names it.
redis_primary() {
    local s p
    for s in "${live_sentinels[@]}"; do
        p=$(named_by "$s") || continue
        [[ -n $p ]] && echo "$p" && return 0
    done
}
# "name flags" of each replica Sentinel $1 knows.
replicas_seen_by() {
    redis_at "$1" sentinel replicas voting | awk 'NR % 2 { k = $0; next } k == "name" { n = $0 } k == "flags" { print n, $0 }'
}
# Every live Sentinel names the same primary, which says it is one, has
# every other live member online as its replica, and is seen so by the
# Sentinels; they reach their quorum together.
redis_whole() {
    local p s m info seen
    p=$(redis_primary || true)
    [[ -n $p ]] || return 1
    info=$(redis_at "$p" info replication)
    grep -q '^role:master' <<<"$info" || return 1
    for s in "${live_sentinels[@]}"; do
        [[ $(named_by "$s") == "$p" ]] || return 1
        [[ $(redis_at "$s" sentinel ckquorum voting) == "OK ${#live_sentinels[@]} usable"* ]] || return 1
        seen=$(replicas_seen_by "$s")
        for m in "${live_redis[@]}"; do
            [[ $m == "$p" ]] && continue
            grep -qx "$m:6379 slave" <<<"$seen" || return 1
            grep -q "ip=$m,port=6379,state=online" <<<"$info" || return 1
        done
    done
}
# Patroni's view, one line per member ("name role state timeline"), asked
# of the first live member that answers, inside its container (the host
# cannot reach the overlay networks).
members() {
    local m id answer
    for m in "${live_members[@]}"; do
        id=$(member_container "$m" 2>/dev/null) || continue
        [[ -n $id ]] || continue
        answer=$(on "$(node_of "$m")" exec "$id" python3 -c '
import sys, urllib.request
sys.stdout.write(urllib.request.urlopen("http://127.0.0.1:8008/cluster", timeout=2).read().decode())' 2>/dev/null) ||
            continue
        cluster_members <<<"$answer"
        return 0
    done
}
leader() { members | awk '$2 == "leader" && $3 == "running" { print $1 }'; }
# A leader, and every other live member streaming from it on its timeline.
cluster_whole() {
    local view lead tl m
    view=$(members)
    lead=$(awk '$2 == "leader" && $3 == "running" { print $1 }' <<<"$view")
    tl=$(awk '$2 == "leader" { print $4 }' <<<"$view")
    [[ -n $lead ]] || return 1
    for m in "${live_members[@]}"; do
        [[ $m == "$lead" ]] && continue
        grep -qE "^$m (replica|sync_standby) (running|streaming) $tl\$" <<<"$view" || return 1
    done
    grep -q ' sync_standby ' <<<"$view"
}

phase "both primaries on one node off the manager: a Patroni switchover, a Sentinel failover"
wait_for "$REJOIN_WITHIN" "a leader and two replicas streaming from it" cluster_whole
wait_for "$REJOIN_WITHIN" "a Redis primary, two replicas online, three Sentinels agreeing" redis_whole
# Killing the manager would take the swarm's only manager and the edge
# with it: the Postgres primary moves off it first (a switchover, as an
# operator would before maintenance).
# In synchronous mode Patroni switches over only to the synchronous standby.
if [[ $(leader) == db1 ]]; then
    candidate=$(members | awk '$2 == "sync_standby" { print $1 }' | sed -n 1p)
    on "$MANAGER" exec "$(member_container db1)" start.sh patronictl switchover --candidate "$candidate" --force |
        tail -n 2
    switched() { [[ $(leader) == "$candidate" ]] && cluster_whole; }
    wait_for 60 "$candidate the leader after the switchover" switched
fi
# The Redis primary to the Postgres leader's node: every replica but the
# one there gets replica-priority 0 (never promoted) until the Sentinel
# there has seen it (it reads a replica's INFO every 10 s), then that
# Sentinel fails over. It is the one to ask: a Sentinel that ran a
# failover starts no other for twice the failover timeout, and this one is
# killed with its node.
target=redis$(leader | tr -dc 0-9)
if [[ $(redis_primary) != "$target" ]]; then
    held=()
    for m in "${REDIS_MEMBERS[@]}"; do
        [[ $m == "$target" || $m == "$(redis_primary)" ]] || held+=("$m")
    done
    for m in "${held[@]}"; do redis_at "$m" config set replica-priority 0 >/dev/null; done
    sentinel=sentinel${target#redis}
    priority_seen() {
        local m
        for m in "${held[@]}"; do
            redis_at "$sentinel" sentinel replicas voting |
                awk -v m="$m:6379" 'NR % 2 { k = $0; next } k == "name" { n = $0 } k == "slave-priority" && n == m { print }' |
                grep -qx 0 || return 1
        done
    }
    wait_for 30 "$sentinel seeing replica-priority 0 on ${held[*]}" priority_seen
    redis_at "$sentinel" sentinel failover voting
    moved() { [[ $(redis_primary) == "$target" ]] && redis_whole; }
    wait_for 60 "$target the Redis primary after the failover" moved
    for m in "${held[@]}"; do redis_at "$m" config set replica-priority 100 >/dev/null; done
fi
members | sed 's/^/  /'
for m in "${MEMBERS[@]}"; do
    n=${m#db}
    printf '  %s on %s with etcd%s, redis%s (%s), sentinel%s\n' "$m" \
        "$(manager service ps -f desired-state=running --format '{{.Node}}' "${STACK}_$m")" "$n" "$n" \
        "$(redis_at "redis$n" role | sed -n 1p)" "$n"
done
[[ -z $(manager service ps -q -f desired-state=running "${STACK}_db") ]] || fail "the single db runs a task"
[[ -z $(manager service ps -q -f desired-state=running "${STACK}_redis") ]] || fail "the single redis runs a task"
check vote-reaches-websocket

phase "docker kill of the node hosting both primaries, under load"
old=$(leader)
old_redis=$(redis_primary)
victim=$(node_of "$old")
[[ $victim != "$MANAGER" ]] || fail "the leader $old is on the manager"
[[ $(node_of "$old_redis") == "$victim" ]] || fail "the Redis primary $old_redis is not on $victim with $old"
echo "Postgres leader $old and Redis primary $old_redis on $victim, which also runs: $(manager node ps -f desired-state=running --format '{{.Name}}' "$victim" |
    sed 's/\.[0-9]*$//' | sort | xargs)"
ws_log=$ha_work/ws.log
# The check tool itself in the background, not `check` (a function, so a
# subshell whose killing would leave the tool running, holding the e2e lock).
"$E2E" --vote-url "$VOTE_URL" --result-url "$RESULT_URL" websocket-log --for 240 >"$ws_log" &
ws_pid=$!
before=$(check tally)
seed_start "${LOAD[@]}"
seed_loading 3000
t_fault=$(now)
docker kill "$victim" >/dev/null
echo "killed $victim"
live_nodes=()
for node in "${NODES[@]}"; do [[ $node == "$victim" ]] || live_nodes+=("$node"); done
live_members=()
for m in "${MEMBERS[@]}"; do [[ $m == "$old" ]] || live_members+=("$m"); done
live_redis=()
for m in "${REDIS_MEMBERS[@]}"; do [[ $m == "$old_redis" ]] || live_redis+=("$m"); done
n=${old_redis#redis}
live_sentinels=()
for m in "${SENTINELS[@]}"; do [[ $m == "sentinel$n" ]] || live_sentinels+=("$m"); done
# A surviving member that says it is the primary: the promoted replica.
redis_promoted() {
    local m
    for m in "${live_redis[@]}"; do
        [[ $(redis_at "$m" role | sed -n 1p) == master ]] && echo "$m" && return 0
    done
    return 1
}
# Polled every 0.2 s (each answer takes a docker exec or two on a node,
# about 0.3 s each): a member other than $old holds the leader key, and
# one other than $old_redis is the Redis primary.
deadline=$((SECONDS + FAILOVER_WITHIN + 15))
new= new_redis= named=
until [[ -n $new && -n $new_redis && -n $named ]]; do
    ((SECONDS < deadline)) ||
        fail "within $((FAILOVER_WITHIN + 15)) s of the kill: Postgres leader ${new:-none} ($(members | xargs)), Redis primary ${new_redis:-none}"
    sleep 0.2
    if [[ -z $new ]]; then
        new=$(members | awk -v old="$old" '$2 == "leader" && $1 != old { print $1 }')
        if [[ -n $new ]]; then t_new=$(now) && echo "new Postgres leader $new $(since "$t_fault" "$t_new") s after the kill"; fi
    fi
    if [[ -z $new_redis ]]; then
        new_redis=$(redis_promoted || true)
        if [[ -n $new_redis ]]; then t_redis=$(now) && echo "Redis replica $new_redis promoted $(since "$t_fault" "$t_redis") s after the kill"; fi
    fi
    # What the services are told: sentinel1's answer (the first they ask).
    if [[ -n $new_redis && -z $named ]] && [[ $(named_by sentinel1 || true) == "$new_redis" ]]; then
        named=$new_redis t_named=$(now)
        echo "sentinel1 names $named the primary $(since "$t_fault" "$t_named") s after the kill"
    fi
done
failover=$(since "$t_fault" "$t_new")
redis_failover=$(since "$t_fault" "$t_redis")
redis_named=$(since "$t_fault" "$t_named")
seed_finish
# The 503s (certainly not queued) and 504s (maybe) vote answered, and the
# time from the first to the last failed or unknown answer.
http503=$(sed -nE 's/^failures .*HTTP 503: ([0-9]+).*/\1/p' <<<"$seed_out")
http504=$(sed -nE 's/^unknown .*HTTP 504: ([0-9]+).*/\1/p' <<<"$seed_out")
failing=$(sed -nE 's/^failing .*\(([0-9.]+) s\)$/\1/p' <<<"$seed_out")
t_end=$(now)
# The write pause as the results see it: the longest time the tally (each
# websocket message, in seconds) stood still after the kill.
pause=$(write_pause <(awk '{ printf "%.3f %s\n", $1 / 1000, $2 }' "$ws_log") "$t_fault" "$t_end")
ws_moved=$(moved_after "$ws_log" "$t_new")
kill "$ws_pid" 2>/dev/null || true
wait "$ws_pid" 2>/dev/null || true
ws_pid=
note "swarm: docker kill of $victim (Postgres primary $old, Redis primary $old_redis): new Postgres primary $new after $failover s, Redis replica $new_redis promoted after $redis_failover s (named by the Sentinels after $redis_named s); write pause $pause s (tally); vote answered ${http503:-0} 503 and ${http504:-0} 504 (over ${failing:-0} s), $failed failed, $unknown unknown of ${LOAD[0]#--votes=} ballots (+ changes); websocket moved ${ws_moved:-never} s after the promotion; every ballot that got a 200 counted, each voter's last choice"
python3 -c "import sys; sys.exit(float(sys.argv[1]) > float(sys.argv[2]))" "$failover" "$FAILOVER_WITHIN" ||
    fail "failover took $failover s (limit $FAILOVER_WITHIN s)"
python3 -c "import sys; sys.exit(float(sys.argv[1]) > float(sys.argv[2]))" "$redis_failover" "$REDIS_FAILOVER_WITHIN" ||
    fail "the Redis failover took $redis_failover s (limit $REDIS_FAILOVER_WITHIN s)"
[[ -n $ws_moved ]] || fail "the results websocket never moved after the promotion"
python3 -c "import sys; sys.exit(float(sys.argv[1]) > float(sys.argv[2]))" "$ws_moved" "$WEBSOCKET_WITHIN" ||
    fail "the results websocket moved only $ws_moved s after the promotion (limit $WEBSOCKET_WITHIN s)"

phase "the node back: $old a replica of $new, $old_redis of $new_redis again"
docker start "$victim" >/dev/null
wait_for 120 "$victim back and Ready" ready_nodes
live_nodes=("${NODES[@]}")
live_members=("${MEMBERS[@]}")
live_redis=("${REDIS_MEMBERS[@]}")
live_sentinels=("${SENTINELS[@]}")
wait_for "$REJOIN_WITHIN" "$old streaming from $new again" cluster_whole
t_pg_back=$(now)
members | sed 's/^/  /'
back_redis() { [[ $(redis_primary) == "$new_redis" ]] && redis_whole; }
wait_for "$REJOIN_WITHIN" "$old_redis a replica of $new_redis, sentinel$n back among the Sentinels" back_redis
t_redis_back=$(now)
redis_at "$new_redis" info replication | grep -E '^(role|connected_slaves|slave[0-9])'
note "swarm: $old back as a replica $(since "$t_fault" "$t_pg_back") s, $old_redis a replica and sentinel$n back $(since "$t_fault" "$t_redis_back") s after their node was killed"
rm -rf "$ha_work"
end_phase
