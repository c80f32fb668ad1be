#!/bin/sh
# Patroni takes its passwords from the environment only: read each from its
# secret file (PATRONI_<USER>_PASSWORD_FILE), then start Patroni, or the
# command given (patronictl: `start.sh patronictl list`). The variables
# live in this container's processes only.
set -eu
for user in SUPERUSER REPLICATION REWIND RESTAPI; do
    eval "file=\${PATRONI_${user}_PASSWORD_FILE:-}"
    if [ -z "$file" ] || [ ! -s "$file" ]; then
        echo "start.sh: PATRONI_${user}_PASSWORD_FILE must name a non-empty file (got '$file')" >&2
        exit 2
    fi
    export "PATRONI_${user}_PASSWORD=$(cat "$file")"
done
if [ $# -eq 0 ]; then set -- patroni /etc/patroni/patroni.yml; fi
exec "$@"
