#!/usr/bin/env bash
# The database's roles: one per service, none a superuser. The postgres
# image runs this once, on the first start of an empty volume, as a
# /docker-entrypoint-initdb.d script (compose, swarm and Kubernetes mount
# this same file there; the tests run it too). Re-running it is safe: it
# resets the passwords from the files and the grants, so it also upgrades a
# database whose services connected as the superuser before:
#   docker compose exec db bash /docker-entrypoint-initdb.d/postgres-roles.sh
#
#   voting_owner     owns the schema; only `worker migrate` connects as it
#   voting_worker    reads and writes the rows of every table (the upsert,
#                    and the tallies its triggers keep); no DDL, no TRUNCATE
#   voting_result    reads them, and LISTENs for the tally's NOTIFY
#   voting_exporter  pg_monitor (the Postgres exporter); no table access
#
# Each password comes from a file (a Docker or Kubernetes secret):
# POSTGRES_{OWNER,WORKER,RESULT,EXPORTER}_PASSWORD_FILE. It runs as
# $POSTGRES_USER in $POSTGRES_DB, on the local socket (or PGHOST/PGPORT).
set -euo pipefail
for role in OWNER WORKER RESULT EXPORTER; do
    file_var=POSTGRES_${role}_PASSWORD_FILE
    [[ -n ${!file_var:-} ]] || { echo "postgres-roles.sh: $file_var is not set" >&2; exit 1; }
    [[ -s ${!file_var} ]] || { echo "postgres-roles.sh: $file_var: ${!file_var} is missing or empty" >&2; exit 1; }
done
# The passwords go through psql variables read with backticks (psql drops one
# trailing newline), never through a command line or this shell's variables.
psql -v ON_ERROR_STOP=1 --no-psqlrc -q \
    --username "${POSTGRES_USER:-postgres}" \
    --dbname "${POSTGRES_DB:-${POSTGRES_USER:-postgres}}" \
    --set db="${POSTGRES_DB:-${POSTGRES_USER:-postgres}}" <<'SQL'
\set owner_password `cat "$POSTGRES_OWNER_PASSWORD_FILE"`
\set worker_password `cat "$POSTGRES_WORKER_PASSWORD_FILE"`
\set result_password `cat "$POSTGRES_RESULT_PASSWORD_FILE"`
\set exporter_password `cat "$POSTGRES_EXPORTER_PASSWORD_FILE"`
-- psql does not expand variables inside a DO block: they pass as settings
-- of this session only.
SELECT set_config('voting.owner_password', :'owner_password', false),
       set_config('voting.worker_password', :'worker_password', false),
       set_config('voting.result_password', :'result_password', false),
       set_config('voting.exporter_password', :'exporter_password', false)
\g /dev/null

DO $$
DECLARE
    name TEXT;
BEGIN
    FOREACH name IN ARRAY ARRAY['owner', 'worker', 'result', 'exporter'] LOOP
        BEGIN
            EXECUTE format('CREATE ROLE %I', 'voting_' || name);
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL; -- there already (a re-run, or another database of this server)
        END;
        EXECUTE format('ALTER ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE '
                       'NOREPLICATION NOBYPASSRLS PASSWORD %L',
                       'voting_' || name, current_setting('voting.' || name || '_password'));
    END LOOP;
END $$;
SELECT set_config('voting.' || r || '_password', '', false)
FROM unnest(ARRAY['owner', 'worker', 'result', 'exporter']) r
\g /dev/null

-- Only these roles connect to the app's database, and no one makes
-- temporary tables in it.
REVOKE ALL ON DATABASE :"db" FROM PUBLIC;
GRANT CONNECT ON DATABASE :"db" TO voting_owner, voting_worker, voting_result, voting_exporter;

-- Only the owner creates in the schema (Postgres 15 grants PUBLIC no CREATE
-- there; older versions do).
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE, CREATE ON SCHEMA public TO voting_owner;
GRANT USAGE ON SCHEMA public TO voting_worker, voting_result;

-- A database the superuser migrated before these roles existed: its
-- tables and functions pass to the owner (the schema is votes, tallies,
-- vote_schema and the tallies_* trigger functions).
DO $$
DECLARE
    item RECORD;
BEGIN
    FOR item IN SELECT c.oid::regclass AS name FROM pg_class c
                WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r'
                  AND c.relname IN ('votes', 'tallies', 'vote_schema') LOOP
        EXECUTE format('ALTER TABLE %s OWNER TO voting_owner', item.name);
    END LOOP;
    FOR item IN SELECT p.oid::regprocedure AS name FROM pg_proc p
                WHERE p.pronamespace = 'public'::regnamespace
                  AND p.proname LIKE 'tallies\_%' LOOP
        EXECUTE format('ALTER FUNCTION %s OWNER TO voting_owner', item.name);
    END LOOP;
END $$;

-- What the services may do with the rows, on the tables there now and on
-- every table or sequence the owner's migrations create later.
GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO voting_worker;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO voting_result;
ALTER DEFAULT PRIVILEGES FOR ROLE voting_owner IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE ON TABLES TO voting_worker;
ALTER DEFAULT PRIVILEGES FOR ROLE voting_owner IN SCHEMA public
    GRANT USAGE ON SEQUENCES TO voting_worker;
ALTER DEFAULT PRIVILEGES FOR ROLE voting_owner IN SCHEMA public
    GRANT SELECT ON TABLES TO voting_result;

-- The exporter reads the statistics views, nothing of the app's.
GRANT pg_monitor TO voting_exporter;
SQL
echo "postgres-roles.sh: roles voting_owner, voting_worker, voting_result, voting_exporter ready in ${POSTGRES_DB:-${POSTGRES_USER:-postgres}}"
