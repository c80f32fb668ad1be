#!/bin/sh
# Healthy when Redis answers PING (not while it is still loading its data).
set -eu
[ "$(redis-cli -h 127.0.0.1 -p "${REDIS_PORT:-6379}" ping)" = PONG ]
