#!/bin/sh
# As the official image: `redis-server` runs as the redis user, and it is not
# in protected mode (the container network is the boundary; the official build
# turns protected mode off at compile time, Debian's does not).
set -eu

if [ "${1#-}" != "$1" ]; then
    set -- redis-server "$@"
fi

if [ "$1" = redis-server ]; then
    shift
    # A config file, when given, must stay redis-server's first argument.
    case "${1:-}" in
        '' | -*) set -- redis-server --protected-mode no "$@" ;;
        *) conf=$1 && shift && set -- redis-server "$conf" --protected-mode no "$@" ;;
    esac
    if [ "$(id -u)" = 0 ]; then
        find . \! -user redis -exec chown redis '{}' +
        exec setpriv --reuid=redis --regid=redis --init-groups "$@"
    fi
fi
exec "$@"
