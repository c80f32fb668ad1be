#!/usr/bin/env bash
# Drain benchmark for the worker: 1,000,000 ballots from 500,000 voters are
# queued in a throwaway Redis, then timed through one release worker and
# again through three, into a throwaway Postgres with its normal durable
# settings (fsync and synchronous_commit on). Checks the tallies are exact
# and every voter's latest ballot won, and prints ballots/s and worker RSS.
#
#   bench/worker.sh [BALLOTS] [VOTERS]     (defaults 1000000 500000)
#   BATCH_SIZE=5000 WORKERS="1 2 3" bench/worker.sh
#
# Only loopback servers in a temp dir; everything is removed on exit.
set -euo pipefail
. "$(dirname "$0")/servers.sh"
. "$(dirname "$0")/drain.sh"

BALLOTS=${1:-1000000}
VOTERS=${2:-500000}
BATCH_SIZE=${BATCH_SIZE:-1000}
WORKERS=${WORKERS:-1 3} # one timed run per count of concurrent workers
LIMIT_SECONDS=${LIMIT_SECONDS:-600} # give up on a drain after this long

cd "$(dirname "$0")/.."
cargo build --release -p worker --quiet
# WORKER=/path/to/another/worker measures that binary instead.
WORKER=${WORKER:-$(release_dir)/worker}

init_servers worker
start_redis
start_postgres

echo "postgres: $(pg_sql -d postgres -c 'SHOW fsync'), synchronous_commit=$(pg_sql -d postgres -c 'SHOW synchronous_commit'); redis $(redis-server --version | awk '{print $3}')"

run() { # run WORKERS
	local db="bench_$1"
	pg_sql -d postgres -c "CREATE DATABASE $db"
	drain "postgres://postgres@127.0.0.1:$PG_PORT/$db" "pg_sql -d $db" "$1"
}

echo "$BALLOTS ballots from $VOTERS voters, BATCH_SIZE=$BATCH_SIZE, $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
for workers in $WORKERS; do run "$workers"; done
