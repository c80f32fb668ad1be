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
# A secret file may also be redis_exporter's password file, a JSON object of
# one entry {"redis://redis:6379": "<password>"}: its value is the password.
set -eu

template=${REDIS_ACL_TEMPLATE:-$(dirname "$0")/users.acl}
secrets=${REDIS_SECRETS_DIR:-/run/secrets}
aclfile=${REDIS_ACLFILE:-/data/users.acl}

fail() {
    echo "redis/start.sh: $*" >&2
    exit 2
}

# The password in a secret file: its text without trailing newlines (as the
# services read it, kit's *_PASSWORD_FILE), or the value of its JSON entry.
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
        '{'*) text=$(printf '%s' "$text" | sed -n 's/^[[:space:]]*{[[:space:]]*"[^"]*"[[:space:]]*:[[:space:]]*"\([^"\\]*\)"[[:space:]]*}[[:space:]]*$/\1/p') ;;
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

exec "$@" --aclfile "$aclfile"
