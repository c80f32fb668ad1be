#!/usr/bin/env bash
# As the official postgres image: on first start initialise $PGDATA with
# superuser $POSTGRES_USER (password $POSTGRES_PASSWORD; each of these may
# instead come from a file named by ..._FILE), create $POSTGRES_DB,
# run /docker-entrypoint-initdb.d/*.sql and *.sh; then run postgres as the
# postgres user, listening on all addresses, passwords required from the network.
set -Eeuo pipefail

# As the official image: VAR or VAR_FILE (a file holding the value, such as a
# Docker secret at /run/secrets/...), never both.
file_env() {
    local var=$1 file_var=${1}_FILE
    if [[ -n ${!var:-} && -n ${!file_var:-} ]]; then
        printf 'error: both %s and %s are set (but are exclusive)\n' "$var" "$file_var" >&2
        exit 1
    fi
    if [[ -n ${!file_var:-} ]]; then
        local value
        value=$(<"${!file_var}")
        export "$var"="$value"
    fi
    unset "$file_var"
}
file_env POSTGRES_PASSWORD
file_env POSTGRES_USER
file_env POSTGRES_DB
file_env POSTGRES_INITDB_ARGS

export PGDATA=${PGDATA:-/var/lib/postgresql/data}
POSTGRES_USER=${POSTGRES_USER:-postgres}
POSTGRES_DB=${POSTGRES_DB:-$POSTGRES_USER}
HOST_AUTH=${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}

# `docker run postgres:15 -c shared_buffers=256MB` means postgres with those options.
if [[ ${1:-} == -* ]]; then
    set -- postgres "$@"
fi

if [[ ${1:-} != postgres ]]; then
    exec "$@"
fi

if [[ $(id -u) == 0 ]]; then
    mkdir -p "$PGDATA" /var/run/postgresql
    chown postgres:postgres "$PGDATA" /var/run/postgresql
    chmod 700 "$PGDATA"
    chmod 3777 /var/run/postgresql
    exec setpriv --reuid=postgres --regid=postgres --init-groups "${BASH_SOURCE[0]}" "$@"
fi

initialise() {
    if [[ -z ${POSTGRES_PASSWORD:-} && $HOST_AUTH != trust ]]; then
        echo "error: the database is uninitialised and POSTGRES_PASSWORD is not set" >&2
        echo "       (set it, or POSTGRES_HOST_AUTH_METHOD=trust to allow all connections without one)" >&2
        exit 1
    fi
    chmod 700 "$PGDATA" 2>/dev/null || true
    # shellcheck disable=SC2086 # POSTGRES_INITDB_ARGS is a list of options
    set -- initdb --username="$POSTGRES_USER" --auth-local=trust --auth-host="$HOST_AUTH" \
        ${POSTGRES_INITDB_ARGS:-}
    if [[ -n ${POSTGRES_PASSWORD:-} ]]; then
        "$@" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") >/dev/null
    else
        "$@" >/dev/null
    fi
    printf 'host all all all %s\n' "$HOST_AUTH" >>"$PGDATA/pg_hba.conf"
    printf "listen_addresses = '*'\n" >>"$PGDATA/postgresql.conf"

    # A private server (socket only) for the set-up, so nobody connects early.
    pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
    local psql=(psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname postgres)
    if [[ $POSTGRES_DB != postgres ]]; then
        "${psql[@]}" -q --set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";'
    fi
    local script
    for script in /docker-entrypoint-initdb.d/*; do
        case $script in
            *.sh) echo "running $script" && . "$script" ;;
            *.sql) echo "running $script" && "${psql[@]}" --dbname "$POSTGRES_DB" -f "$script" ;;
            *) ;;
        esac
    done
    pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
    echo "database initialised; starting postgres"
}

if [[ ! -s $PGDATA/PG_VERSION ]]; then
    initialise
fi
exec "$@"
