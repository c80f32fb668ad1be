#!/bin/bash
# Healthy when HAProxy answers its own monitor URI (GET /healthz on the stats
# port). Bash's /dev/tcp, since the image has no HTTP client.
set -eu
exec 3<>/dev/tcp/127.0.0.1/"${EDGE_STATS_PORT:-8404}"
printf 'GET /healthz HTTP/1.0\r\n\r\n' >&3
read -r -t 2 _ status _ <&3
[ "$status" = 200 ]
