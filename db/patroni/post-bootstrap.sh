#!/bin/sh
# Patroni runs this once, on the member that initialises the cluster, before
# any replica exists (with synchronous_commit=local, so it cannot wait for
# one). It passes a connection URL; the scripts connect by the local socket
# as the superuser instead, as in the plain stack.
set -eu
db=${POSTGRES_DB:-postgres}
psql() { command psql -v ON_ERROR_STOP=1 --no-psqlrc -qAtX -U postgres "$@"; }
# The app's database, when it is not Patroni's own `postgres` (the postgres
# image makes POSTGRES_DB the same way).
if [ -z "$(psql -d postgres -c "SELECT 1 FROM pg_database WHERE datname = '$db'")" ]; then
    createdb -U postgres "$db"
fi
bash /usr/local/bin/postgres-roles.sh
# The roles script lets only the services' roles connect to the app's
# database. Patroni's rewind user (patroni.yml) reads the primary's files
# through the `postgres` database: it may connect there. Made here, before
# Patroni creates it (Patroni then only sets its password and grants).
psql -d postgres <<'SQL'
DO $$ BEGIN CREATE ROLE rewinder; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
GRANT CONNECT ON DATABASE postgres TO rewinder;
SQL
