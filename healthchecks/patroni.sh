#!/bin/sh
# Healthchecks of the HA cluster (docker-compose.ha.yml), through Patroni's
# REST API (GET, no login):
#   patroni.sh                 this member's Postgres runs (GET /health: 200
#                              as primary or as a streaming replica)
#   patroni.sh primary H1 H2   some member among H1, H2... is the primary
#                              (GET /primary answers 200 on the leader only)
set -eu
if [ "${1:-}" = primary ]; then
    shift
    urls=""
    for host in "$@"; do urls="$urls http://$host:8008/primary"; done
else
    urls="http://127.0.0.1:8008/health"
fi
# The image has python3 (Patroni's), not curl.
exec python3 - $urls <<'PY'
import sys, urllib.request
for url in sys.argv[1:]:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            if answer.status == 200:
                sys.exit(0)
    except Exception:
        pass
sys.exit(1)
PY
