#!/bin/sh
# Healthy when Redis answers PING (not while it is still loading its data),
# asked as the admin user with the password from its secret.
set -eu
REDISCLI_AUTH=$(cat "${REDIS_ADMIN_PASSWORD_FILE:-/run/secrets/redis_admin_password}")
export REDISCLI_AUTH
[ "$(redis-cli --user admin -h 127.0.0.1 -p "${REDIS_PORT:-6379}" ping)" = PONG ]
