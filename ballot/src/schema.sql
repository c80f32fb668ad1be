-- The whole schema, idempotent. Services run it only when `vote_schema`
-- says the database is older than this version (see schema.rs), inside one
-- transaction holding an advisory lock and a short lock_timeout.

-- The reference app's table, kept compatible: its
-- SELECT vote, COUNT(id) AS count FROM votes GROUP BY vote still works.
CREATE TABLE IF NOT EXISTS votes (
    id VARCHAR(255) NOT NULL UNIQUE,
    vote VARCHAR(255) NOT NULL
);

-- A ballot's place in the order of the voter's ballots: only a later one
-- replaces a vote, so replays and out-of-order commits are no-ops.
-- cast_at: microseconds of the queue's clock (Redis TIME) when the vote
-- service queued it; for a reference-format ballot, the cast_at of the
-- latest ballot queued before it. queue_seq: 0 for our ballots; for
-- reference-format ones their number in the order the queue was taken, so
-- they sort after everything queued before them and before everything after.
-- Adding a column with a constant default rewrites nothing.
ALTER TABLE votes ADD COLUMN IF NOT EXISTS cast_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE votes ADD COLUMN IF NOT EXISTS queue_seq BIGINT NOT NULL DEFAULT 0;

-- Votes per option, kept exact by the triggers below in the same transaction
-- as the change to votes, so reading results never scans votes.
CREATE TABLE IF NOT EXISTS tallies (
    vote VARCHAR(255) PRIMARY KEY,
    count BIGINT NOT NULL
);

-- Statement-level triggers see every changed row at once (transition
-- tables), so a batch of thousands costs one UPDATE per option. Rows are
-- aggregated in option order so concurrent writers lock tallies alike.
-- pg_notify is delivered at commit, and only when a count moved.
-- The notification's payload is the newest cast_at the change brought (or
-- empty), so the result service can time ballot-to-screen.
DROP FUNCTION IF EXISTS tallies_apply(JSONB);
CREATE OR REPLACE FUNCTION tallies_apply(deltas JSONB, newest BIGINT) RETURNS VOID
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO tallies (vote, count)
    SELECT key, value::BIGINT FROM jsonb_each_text(deltas) ORDER BY key
    ON CONFLICT (vote) DO UPDATE SET count = tallies.count + EXCLUDED.count;
    IF deltas <> '{}'::JSONB THEN
        PERFORM pg_notify('tally_changed', COALESCE(newest::TEXT, ''));
    END IF;
END $$;

CREATE OR REPLACE FUNCTION tallies_after_insert() RETURNS TRIGGER
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM tallies_apply(COALESCE(
        (SELECT jsonb_object_agg(vote, n) FROM (
            SELECT vote, COUNT(*) AS n FROM new_rows GROUP BY vote) d),
        '{}'), (SELECT MAX(cast_at) FROM new_rows));
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION tallies_after_update() RETURNS TRIGGER
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM tallies_apply(COALESCE(
        (SELECT jsonb_object_agg(vote, n) FROM (
            SELECT vote, SUM(delta) AS n FROM (
                SELECT vote, 1 AS delta FROM new_rows
                UNION ALL
                SELECT vote, -1 FROM old_rows) changes
            GROUP BY vote HAVING SUM(delta) <> 0) d),
        '{}'), (SELECT MAX(cast_at) FROM new_rows));
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION tallies_after_delete() RETURNS TRIGGER
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM tallies_apply(COALESCE(
        (SELECT jsonb_object_agg(vote, -n) FROM (
            SELECT vote, COUNT(*) AS n FROM old_rows GROUP BY vote) d),
        '{}'), NULL);
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION tallies_after_truncate() RETURNS TRIGGER
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE tallies SET count = 0 WHERE count <> 0;
    IF FOUND THEN
        PERFORM pg_notify('tally_changed', '');
    END IF;
    RETURN NULL;
END $$;

-- First run over an existing votes table (say, one the reference worker
-- filled): count what is there, then keep counting.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_trigger
                   WHERE tgrelid = 'votes'::regclass AND tgname = 'tallies_insert') THEN
        DELETE FROM tallies;
        INSERT INTO tallies (vote, count) SELECT vote, COUNT(id) FROM votes GROUP BY vote;
        CREATE TRIGGER tallies_insert AFTER INSERT ON votes
            REFERENCING NEW TABLE AS new_rows
            FOR EACH STATEMENT EXECUTE FUNCTION tallies_after_insert();
        CREATE TRIGGER tallies_update AFTER UPDATE ON votes
            REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
            FOR EACH STATEMENT EXECUTE FUNCTION tallies_after_update();
        CREATE TRIGGER tallies_delete AFTER DELETE ON votes
            REFERENCING OLD TABLE AS old_rows
            FOR EACH STATEMENT EXECUTE FUNCTION tallies_after_delete();
        CREATE TRIGGER tallies_truncate AFTER TRUNCATE ON votes
            FOR EACH STATEMENT EXECUTE FUNCTION tallies_after_truncate();
    END IF;
END $$;

-- One row: the version this script brings the database to. Never lowered,
-- so an older service started beside a newer one leaves the schema alone.
CREATE TABLE IF NOT EXISTS vote_schema (
    single BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (single),
    version INTEGER NOT NULL
);
INSERT INTO vote_schema (version) VALUES ($VERSION)
ON CONFLICT (single) DO UPDATE SET version = GREATEST(vote_schema.version, EXCLUDED.version);
