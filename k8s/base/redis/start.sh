#!/bin/sh
# Starts Redis with the users of users.acl, each with the password from its
# secret file, and without a default user:
#   sh start.sh redis-server [args...]
# runs `redis-server [args...] --aclfile <generated>`. The generated ACL file
# holds each password's SHA-256 only (as Redis's own ACL SAVE writes it) and
# is written afresh at every start, in Redis's data directory: the one place
# Redis may write that survives a `docker restart` with its permissions (a
# tmpfs comes back read-only for the redis user; the ACL cannot come on
# stdin either, as ACL LOAD would then read an empty file and open the
# default user). A user whose secret file is missing stays off (no one can
# log in as it: the swarm stack and Kubernetes run no exporter); one whose
# file is empty stops the start.
#   REDIS_ACL_TEMPLATE  the users (default: users.acl beside this script)
#   REDIS_SECRETS_DIR   where redis_<user>_password files are (/run/secrets)
#   REDIS_ACLFILE       the ACL file to write (/data/users.acl)
# A secret file may also be redis_exporter's password file, a JSON object
# {"redis://redis:6379": "<password>", ...} with an entry for each server the
# exporter scrapes (the HA variant's members and Sentinels too): every entry
# must hold the same password, which is the user's.
#
# High availability (README, "Redis with Sentinel"). With the secret
# redis_replica_password, every member logs in to the primary it copies as
# user replica (masteruser and masterauth, in a config file written beside
# the ACL file and included): any member may be made a replica by the
# Sentinels. Run as a Sentinel (`sh start.sh redis-server --sentinel ...`),
# the users are those of sentinel-users.acl, and unless the config file
# exists (a Sentinel rewrites it with what it learns, its state across
# restarts), it is written from:
#   REDIS_SENTINEL_CONF        the Sentinel's config file (/data/sentinel.conf)
#   REDIS_MASTER_NAME          the name the members go by (voting)
#   REDIS_PRIMARY              host:port of the first primary (redis:6379)
#   REDIS_SENTINEL_QUORUM      Sentinels that must agree it is down (2)
#   REDIS_DOWN_AFTER_MS        silence before a member counts as down (5000)
#   REDIS_FAILOVER_TIMEOUT_MS  bound on one failover attempt (20000)
# The Sentinels log in to the members and to each other as user sentinel,
# with the password of the secret redis_sentinel_password.
set -eu

sentinel=false
for arg in "$@"; do
    [ "$arg" = --sentinel ] && sentinel=true
done

if $sentinel; then
    template=${REDIS_ACL_TEMPLATE:-$(dirname "$0")/sentinel-users.acl}
else
    template=${REDIS_ACL_TEMPLATE:-$(dirname "$0")/users.acl}
fi
secrets=${REDIS_SECRETS_DIR:-/run/secrets}
aclfile=${REDIS_ACLFILE:-/data/users.acl}

fail() {
    echo "redis/start.sh: $*" >&2
    exit 2
}

# The password in a secret file: its text without trailing newlines (as the
# services read it, kit's *_PASSWORD_FILE), or the value of its JSON entries.
password_in() {
    text=$(cat "$1") || fail "cannot read $1"
    cr=$(printf '\r')
    nl='
'
    while :; do
        case $text in
            *"$cr" | *"$nl") text=${text%?} ;;
            *) break ;;
        esac
    done
    case $text in
        '{'*)
            # One line; then it must be {"<address>": "<password>", ...}.
            text=$(printf '%s' "$text" | tr '\n\r\t' '   ')
            entry='[[:space:]]*"[^"]*"[[:space:]]*:[[:space:]]*"[^"\\]*"[[:space:]]*'
            printf '%s' "$text" | grep -q "^[[:space:]]*{$entry\(,$entry\)*}[[:space:]]*\$" ||
                fail "$1 is not a JSON object of passwords: {\"redis://<host>:<port>\": \"<password>\", ...}"
            text=$(printf '%s' "$text" | grep -o '"[^"]*"[[:space:]]*:[[:space:]]*"[^"\\]*"' |
                sed 's/^"[^"]*"[[:space:]]*:[[:space:]]*"\(.*\)"$/\1/' | sort -u)
            case $text in
                *"$nl"*) fail "$1: its entries hold different passwords (one user, one password)" ;;
            esac
            ;;
    esac
    [ -n "$text" ] || fail "$1 holds no password"
    printf '%s' "$text"
}

umask 077
mkdir -p "$(dirname "$aclfile")"
: >"$aclfile.new"
grep -v -e '^#' -e '^[[:space:]]*$' "$template" | while read -r keyword user rules; do
    [ "$keyword" = user ] || fail "$template: not a user line: $keyword $user $rules"
    file=$secrets/redis_${user}_password
    if [ "$user" = default ]; then
        echo "user default $rules"
    elif [ -e "$file" ]; then
        # An assignment, not a pipeline: a file without a password stops here.
        password=$(password_in "$file")
        hash=$(printf '%s' "$password" | sha256sum | cut -d' ' -f1)
        echo "user $user $rules #$hash"
    else
        echo "redis/start.sh: no $file: user $user stays off" >&2
        echo "user $user $rules off"
    fi
done >>"$aclfile.new"
mv "$aclfile.new" "$aclfile"

# A password as one word of a Redis config file: in double quotes, with
# backslashes and double quotes escaped.
quoted() {
    printf '"%s"' "$(printf '%s' "$1" | sed 's/[\\"]/\\&/g')"
}

if $sentinel; then
    conf=${REDIS_SENTINEL_CONF:-/data/sentinel.conf}
    if [ ! -e "$conf" ]; then
        name=${REDIS_MASTER_NAME:-voting}
        primary=${REDIS_PRIMARY:-redis:6379}
        password=$(quoted "$(password_in "$secrets/redis_sentinel_password")")
        {
            # Members and Sentinels are named by host, as compose and swarm
            # name containers; their addresses change on a restart.
            echo "sentinel resolve-hostnames yes"
            echo "sentinel announce-hostnames yes"
            echo "sentinel monitor $name ${primary%:*} ${primary##*:} ${REDIS_SENTINEL_QUORUM:-2}"
            echo "sentinel down-after-milliseconds $name ${REDIS_DOWN_AFTER_MS:-5000}"
            echo "sentinel failover-timeout $name ${REDIS_FAILOVER_TIMEOUT_MS:-20000}"
            echo "sentinel auth-user $name sentinel"
            echo "sentinel auth-pass $name $password"
            echo "sentinel sentinel-user sentinel"
            echo "sentinel sentinel-pass $password"
        } >"$conf.new"
        mv "$conf.new" "$conf"
    fi
    binary=$1
    shift
    exec "$binary" "$conf" "$@" --aclfile "$aclfile"
fi

if [ -e "$secrets/redis_replica_password" ]; then
    replication=$(dirname "$aclfile")/replication.conf
    {
        echo "masteruser replica"
        echo "masterauth $(quoted "$(password_in "$secrets/redis_replica_password")")"
    } >"$replication"
    set -- "$@" --include "$replication"
fi

exec "$@" --aclfile "$aclfile"
