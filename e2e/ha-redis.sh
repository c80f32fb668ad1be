# The Redis phases of e2e/ha.sh (sourced by it, after the Postgres ones, in
# the same stack): the Redis primary killed with SIGKILL, then cut off from
# the Sentinels and the replicas while vote can still reach it. Uses ha.sh's
# compose, id[], work, background, LOAD, CONVERGE_WITHIN, REJOIN_WITHIN and
# REDIS_FAILOVER_WITHIN, and lib.sh's seed and sampling functions.

# redis-cli as admin inside container $1, against its own port $2 (6379: a
# member, 26379: a Sentinel), so that it answers while cut off.
rcli() {
    local container=$1 port=$2
    shift 2
    timeout 3 docker exec "$container" sh -c \
        'REDISCLI_AUTH=$(cat /run/secrets/redis_admin_password) exec redis-cli --no-auth-warning --user admin -p "$0" "$@"' \
        "$port" "$@" 2>/dev/null | tr -d '\r'
}
# The member the Sentinels name the primary (host name, as the members
# announce themselves), asked of each Sentinel until one answers.
named_primary() {
    local s answer
    for s in "${SENTINELS[@]}"; do
        answer=$(rcli "${id[$s]}" 26379 sentinel get-master-addr-by-name voting | sed -n 1p)
        if [[ -n $answer ]]; then
            echo "$answer"
            return 0
        fi
    done
}
# Member $1's own view: "master <good replicas>", "slave <its primary>
# <link up/down>", or "down".
redis_role() {
    local info
    info=$(rcli "${id[$1]}" 6379 info replication)
    [[ -n $info ]] || {
        echo down
        return 0
    }
    awk -F: '$1 == "role" { role = $2 } $1 == "min_slaves_good_slaves" { good = $2 }
        $1 == "master_host" { host = $2 } $1 == "master_link_status" { link = $2 }
        END { if (role == "master") print role, good; else print role, host, link }' <<<"$info"
}
# Waits up to $2 s for the Sentinels to name a primary other than $1 that
# says it is one; prints its name.
wait_redis_failover() {
    local old=$1 deadline=$((SECONDS + $2)) new
    while ((SECONDS < deadline)); do
        new=$(named_primary)
        if [[ -n $new && $new != "$old" && $(redis_role "$new") == master* ]]; then
            echo "$new"
            return 0
        fi
        sleep 0.2
    done
    fail "no new Redis primary within $2 s of losing $old (the Sentinels name '$(named_primary)')"
}
# Waits up to $REJOIN_WITHIN s until member $1 replicates from the primary
# the Sentinels name, its link up; prints how it says so.
wait_redis_replica() {
    local m=$1 deadline=$((SECONDS + REJOIN_WITHIN)) role
    while ((SECONDS < deadline)); do
        role=$(redis_role "$m")
        if [[ $role == "slave $(named_primary) up" ]]; then
            echo "$role"
            return 0
        fi
        sleep 0.5
    done
    fail "$m is not a replica of the primary after ${REJOIN_WITHIN}s: $role (the Sentinels name $(named_primary))"
}
# Until there is a primary with both other members replicating from it.
wait_redis_cluster() {
    local deadline=$((SECONDS + REJOIN_WITHIN)) primary m
    until primary=$(named_primary) && [[ -n $primary && $(redis_role "$primary") == master* ]]; do
        ((SECONDS < deadline)) || fail "no Redis primary within ${REJOIN_WITHIN}s"
        sleep 0.5
    done
    for m in "${REDIS_MEMBERS[@]}"; do
        if [[ $m != "$primary" ]]; then wait_redis_replica "$m" >/dev/null; fi
    done
}
redis_members() {
    local m
    for m in "${REDIS_MEMBERS[@]}"; do echo "$m $(redis_role "$m")"; done
}

# vote's answers by outcome, sampled from its /metrics: queued (200),
# refused (503), unknown (504), columns 1-3 of the log.
sample_answers() {
    sample_metrics "http://$(address "${id[vote]}" back-tier):5000/metrics" "$1" \
        'vote_ballots_total{outcome="queued"}' 'vote_ballots_total{outcome="refused"}' \
        'vote_ballots_total{outcome="unknown"}'
}
# "N answered 503 (from A to B s after the fault)" for column $2 of log $1.
answers() {
    local n first last
    read -r n first last < <(growth_after "$1" "$2" "$3")
    if [[ $first == - ]]; then echo "0 $4"; else echo "$n $4 (from $first to $last s after the fault)"; fi
}

# Cuts member $1 off the stack's networks, after joining it and vote to a
# network of ours on which vote still finds it by its name.
cut_off_redis() {
    local m=$1 net
    docker network create "$side_network" >/dev/null
    docker network connect --alias "$m" "$side_network" "${id[$m]}"
    docker network connect "$side_network" "${id[vote]}"
    # "network:address" for each: on redis-tier the member must come back at
    # its fixed address, the one the others have in /etc/hosts.
    redis_cut_networks=$(docker inspect -f '{{range $name, $net := .NetworkSettings.Networks}}{{$name}}:{{$net.IPAddress}} {{end}}' "${id[$m]}")
    redis_cut_networks=$(tr ' ' '\n' <<<"$redis_cut_networks" | grep -v "^$side_network:" | tr '\n' ' ')
    for net in $redis_cut_networks; do docker network disconnect "${net%%:*}" "${id[$m]}"; done
    echo "primary $m cut off from $redis_cut_networks; vote still reaches it on $side_network"
}
heal_redis() {
    local m=$1 net
    local fixed
    for net in $redis_cut_networks; do
        # Docker takes an address only on a network with a subnet of its own.
        fixed=()
        [[ ${net%%:*} == *_redis-tier ]] && fixed=(--ip "${net#*:}")
        docker network connect --alias "$m" "${fixed[@]}" "${net%%:*}" "${id[$m]}"
    done
    docker network disconnect "$side_network" "${id[vote]}"
    docker network disconnect "$side_network" "${id[$m]}"
    docker network rm "$side_network" >/dev/null
    echo "$m reconnected"
}

# One Redis fault under load: $1 names it (kill or partition).
redis_under_load() {
    local fault=$1 old new t_fault t_new t_heal failover a503 a504 queued_again pause
    local answers_log=$work/redis-answers-$fault.log applied_log=$work/redis-applied-$fault.log
    wait_redis_cluster
    old=$(named_primary)
    echo "primary $old; $(redis_members | grep -v "^$old " | xargs)"
    : >"$answers_log"
    : >"$applied_log"
    sample_answers "$answers_log" &
    background+=("$!")
    answers_pid=$!
    sample_applied "$applied_log" "http://$(address "${id[worker]}" back-tier):5002/metrics" &
    background+=("$!")
    applied_pid=$!
    seed_in_background 3000 "${LOAD[@]}"

    t_fault=$(now)
    case $fault in
        kill)
            docker kill -s KILL "${id[$old]}" >/dev/null
            echo "primary $old killed (SIGKILL)"
            ;;
        partition)
            cut_off_redis "$old"
            # The cut-off primary's own view, every 0.5 s until it has no
            # good replica (it refuses writes from then on: NOREPLICAS).
            (
                deadline=$((SECONDS + 30))
                while ((SECONDS < deadline)); do
                    line="$(now) $(redis_role "$old")"
                    echo "$line" >>"$work/redis-cut-role.log"
                    [[ $line == *" master 0" ]] && exit 0
                    sleep 0.5
                done
            ) &
            background+=("$!")
            watch_pid=$!
            ;;
    esac
    new=$(wait_redis_failover "$old" $((REDIS_FAILOVER_WITHIN + 20)))
    t_new=$(now)
    failover=$(since "$t_fault" "$t_new")
    echo "new primary $new $failover s after the $fault (the Sentinels' log:)"
    compose logs --no-color --since 2m sentinel1 2>/dev/null |
        grep -E '\+(sdown|odown|try-failover|elected-leader|selected-slave|promoted-slave|failover-end|switch-master)' |
        tail -n 8 | sed 's/^/  /' || true
    case $fault in
        kill)
            docker start "${id[$old]}" >/dev/null
            ;;
        partition)
            wait "$watch_pid" || true
            refusing=$(awk '/ master 0$/ { print $1; exit }' "$work/redis-cut-role.log")
            if [[ -n $refusing ]]; then
                echo "$old, cut off, had no replica in reach (refusing writes) $(since "$t_fault" "$refusing") s after the cut; min-replicas-max-lag $max_lag s"
            else
                fail "$old still counted a replica 30 s after the cut: $(tail -n 1 "$work/redis-cut-role.log")"
            fi
            # The cut stays a while after the promotion: vote, which still
            # reaches the old primary, must leave it for the new one by
            # itself (its refusals make it ask the Sentinels again).
            sleep "$REDIS_CUT_AFTER_PROMOTION"
            t_heal=$(now)
            heal_redis "$old"
            ;;
    esac
    line=$(wait_redis_replica "$old")
    echo "$old is back as a replica: $line ($(since "$t_fault" "$(now)") s after the $fault)"

    seed_finish
    seed_counts
    kill "$answers_pid" "$applied_pid" 2>/dev/null || true
    a503=$(answers "$answers_log" 2 "$t_fault" 503)
    a504=$(answers "$answers_log" 3 "$t_fault" 504)
    # The first 200 after the cut, vote's 1.5 s deadline for an answer in
    # flight, and 0.5 s of sampling, later: none may come before the
    # promotion (the cut-off primary cannot have a replica confirm).
    read -r _ queued_again _ < <(growth_after "$answers_log" 1 "$(python3 -c "import sys; print(float(sys.argv[1]) + 2)" "$t_fault")")
    pause=$(write_pause "$answers_log" "$t_fault" "$(now)" 1)
    printf 'redis %s: failover %s s; vote answered %s, %s; no 200 for %s s (longest); seed: %s failed, %s unknown (%s)\n' \
        "$fault" "$failover" "$a503" "$a504" "$pause" "$failed" "$unknown" "$requests" | tee -a "$work/summary"
    if [[ $fault == partition ]]; then
        echo "  the cut healed $(since "$t_fault" "$t_heal") s after it; vote answered 200 again $(
            [[ $queued_again == - ]] && echo never || python3 -c "import sys; print(f'{float(sys.argv[1]) + 2:.1f}')" "$queued_again") s after it" |
            tee -a "$work/summary"
    fi
    # 503 and 504 answers make seed exit 1; what must hold is its check of
    # the tally: every ballot answered 200 counted once (with 504s, within
    # the range they allow, settled).
    grep -qE '^consistent +after' <<<"$seed_out" && ! grep -q 'tally did not' <<<"$seed_out" ||
        fail "seed --verify did not find every accepted ballot counted after the Redis $fault"
    python3 -c "import sys; sys.exit(float(sys.argv[1]) > float(sys.argv[2]))" "$failover" "$REDIS_FAILOVER_WITHIN" ||
        fail "the Redis failover took $failover s (limit $REDIS_FAILOVER_WITHIN s)"
    # A second of slack: this script sees the promotion by polling.
    if [[ $fault == partition && $queued_again != - ]]; then
        python3 -c "import sys; sys.exit(float(sys.argv[1]) + 2 < float(sys.argv[2]) - 1)" "$queued_again" "$failover" ||
            fail "vote answered 200 ${queued_again} s after the cut + 2 s, before the promotion at $failover s: through the cut-off primary"
    fi
}

phase "Redis: a primary, two replicas, three Sentinels"
wait_redis_cluster
redis_members | sed 's/^/  /'
max_lag=$(rcli "${id[$(named_primary)]}" 6379 config get min-replicas-max-lag | sed -n 2p)
echo "Sentinels name $(named_primary); min-replicas-max-lag $max_lag s"

phase "kill -9 of the Redis primary under load"
redis_under_load kill

phase "the Redis primary cut off from the others under load"
redis_under_load partition
