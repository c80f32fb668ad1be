# The HA checks on the swarm, sourced by e2e/swarm.sh when SWARM_HA=1
# (run it as `SWARM_HA=1 e2e/swarm.sh`), after docker-stack.yml with
# docker-stack.ha.yml is deployed and healthy: uses swarm.sh's nodes,
# `on`, `manager`, `check`, `seed_start`/`seed_finish` and lib.sh's
# failover figures. Under seed load with vote changes, `docker kill` of the
# node container that hosts the primary (and with it that node's etcd
# member and whatever vote, result and worker tasks it ran). Fails if no
# new primary within 15 s, if seed --verify finds a ballot answered 200
# not counted exactly, if the results websocket does not move within 20 s
# of the promotion, or if the old member is not a replica again after its
# node comes back. Prints failover time, write pause and failed/unknown.

FAILOVER_WITHIN=15
WEBSOCKET_WITHIN=20
REJOIN_WITHIN=120
# Ballots at a rate, a tenth of the voters voting again; the backlog of the
# write pause drains within the seed's verify timeout.
LOAD=(--votes=24000 --rate=1200 --concurrency=64 --split=1:1 --changes=0.1)
SEED_TIMEOUT=120
MEMBERS=(db1 db2 db3)
live_members=("${MEMBERS[@]}")
ha_work=$(mktemp -d)

# Member dbN runs on node N (label voting.member=N), the manager being 1.
node_of() { echo "${NODES[$((${1#db} - 1))]}"; }
member_container() {
    on "$(node_of "$1")" ps -q --filter "label=com.docker.swarm.service.name=${STACK}_$1" | sed -n 1p
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

phase "the cluster: one member per node, a leader off the manager, a synchronous standby"
wait_for "$REJOIN_WITHIN" "a leader and two replicas streaming from it" cluster_whole
# Killing the manager would take the swarm's only manager, Redis and the
# edge with it: the primary moves off it first (a switchover, as an
# operator would before maintenance).
# In synchronous mode Patroni switches over only to the synchronous standby.
if [[ $(leader) == db1 ]]; then
    candidate=$(members | awk '$2 == "sync_standby" { print $1 }' | sed -n 1p)
    on "$MANAGER" exec "$(member_container db1)" start.sh patronictl switchover --candidate "$candidate" --force |
        tail -n 2
    switched() { [[ $(leader) == "$candidate" ]] && cluster_whole; }
    wait_for 60 "$candidate the leader after the switchover" switched
fi
members | sed 's/^/  /'
for m in "${MEMBERS[@]}"; do
    printf '  %s on %s, etcd%s on %s\n' "$m" \
        "$(manager service ps -f desired-state=running --format '{{.Node}}' "${STACK}_$m")" "${m#db}" \
        "$(manager service ps -f desired-state=running --format '{{.Node}}' "${STACK}_etcd${m#db}")"
done
[[ -z $(manager service ps -q -f desired-state=running "${STACK}_db") ]] || fail "the single db runs a task"
check vote-reaches-websocket

phase "docker kill of the node hosting the primary, under load"
old=$(leader)
victim=$(node_of "$old")
[[ $victim != "$MANAGER" ]] || fail "the leader $old is on the manager"
echo "leader $old on $victim, which also runs: $(manager node ps -f desired-state=running --format '{{.Name}}' "$victim" |
    sed 's/\.[0-9]*$//' | sort | xargs)"
ws_log=$ha_work/ws.log
check websocket-log --for 240 >"$ws_log" &
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
# Polled every 0.2 s (each answer takes a docker exec on a node, about
# 0.3 s): a member other than $old holds the leader key.
deadline=$((SECONDS + FAILOVER_WITHIN + 15))
new=
until [[ -n $new ]]; do
    ((SECONDS < deadline)) || fail "no new leader within $((FAILOVER_WITHIN + 15)) s of losing $old: $(members | xargs)"
    sleep 0.2
    new=$(members | awk -v old="$old" '$2 == "leader" && $1 != old { print $1 }')
done
t_new=$(now)
failover=$(since "$t_fault" "$t_new")
echo "new leader $new $failover s after the kill"
seed_finish
t_end=$(now)
# The write pause as the results see it: the longest time the tally (each
# websocket message, in seconds) stood still after the kill.
pause=$(write_pause <(awk '{ printf "%.3f %s\n", $1 / 1000, $2 }' "$ws_log") "$t_fault" "$t_end")
ws_moved=$(moved_after "$ws_log" "$t_new")
kill "$ws_pid" 2>/dev/null || true
wait "$ws_pid" 2>/dev/null || true
ws_pid=
note "swarm: docker kill of $victim (primary $old): new primary $new after $failover s, write pause $pause s (tally), $failed failed, $unknown unknown of ${LOAD[0]#--votes=} ballots (+ changes); websocket moved ${ws_moved:-never} s after the promotion; every ballot that got a 200 counted, each voter's last choice"
python3 -c "import sys; sys.exit(float(sys.argv[1]) > float(sys.argv[2]))" "$failover" "$FAILOVER_WITHIN" ||
    fail "failover took $failover s (limit $FAILOVER_WITHIN s)"
[[ -n $ws_moved ]] || fail "the results websocket never moved after the promotion"
python3 -c "import sys; sys.exit(float(sys.argv[1]) > float(sys.argv[2]))" "$ws_moved" "$WEBSOCKET_WITHIN" ||
    fail "the results websocket moved only $ws_moved s after the promotion (limit $WEBSOCKET_WITHIN s)"

phase "the node back: $old a replica of $new again"
docker start "$victim" >/dev/null
wait_for 120 "$victim back and Ready" ready_nodes
live_nodes=("${NODES[@]}")
live_members=("${MEMBERS[@]}")
wait_for "$REJOIN_WITHIN" "$old streaming from $new again" cluster_whole
members | sed 's/^/  /'
note "swarm: $old back as a replica $(since "$t_fault" "$(now)") s after its node was killed"
rm -rf "$ha_work"
end_phase
