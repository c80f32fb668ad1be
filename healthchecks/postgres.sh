#!/bin/sh
# Healthy when Postgres takes connections on TCP, which it does only after
# the image's first-start set-up (that runs on a socket-only server).
set -eu
user=${POSTGRES_USER:-postgres}
exec pg_isready -q -h 127.0.0.1 -p 5432 -U "$user" -d "${POSTGRES_DB:-$user}"
