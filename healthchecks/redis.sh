#!/bin/sh
# Healthchecks of Redis, asked as the admin user with the password from its
# secret (members and Sentinels have the same admin):
#   redis.sh                   Redis answers PING on REDIS_PORT (6379), not
#                              while it is still loading its data
#   redis.sh sentinel          this Sentinel (port 26379) names a primary
#                              for REDIS_MASTER_NAME (voting)
#   redis.sh primary H:P ...   some Sentinel among H:P... names a primary,
#                              and that member says it is one (ROLE): the
#                              HA overlay's `redis` gate
set -eu
REDISCLI_AUTH=$(cat "${REDIS_ADMIN_PASSWORD_FILE:-/run/secrets/redis_admin_password}")
export REDISCLI_AUTH
name=${REDIS_MASTER_NAME:-voting}
ask() { redis-cli --no-auth-warning --user admin "$@" 2>/dev/null; }
# host and port (one line each) of the primary the Sentinel at $1 $2 names.
named() { ask -h "$1" -p "$2" sentinel get-master-addr-by-name "$name"; }
case ${1:-} in
    '')
        [ "$(ask -h 127.0.0.1 -p "${REDIS_PORT:-6379}" ping)" = PONG ]
        ;;
    sentinel)
        [ -n "$(named 127.0.0.1 26379)" ]
        ;;
    primary)
        shift
        for sentinel in "$@"; do
            primary=$(named "${sentinel%:*}" "${sentinel##*:}" | tr '\n' ' ')
            [ -n "$primary" ] || continue
            # "host port " -> ROLE's first line from that member.
            set -- $primary
            [ "$(ask -h "$1" -p "$2" role | sed -n 1p)" = master ] && exit 0
        done
        exit 1
        ;;
    *)
        echo "redis.sh: unknown check: $1" >&2
        exit 2
        ;;
esac
