-- Applied by every worker and result service at start, inside one transaction
-- holding an advisory lock, so it must stay idempotent.

-- The reference app's table, kept compatible: its
-- SELECT vote, COUNT(id) AS count FROM votes GROUP BY vote still works.
CREATE TABLE IF NOT EXISTS votes (
    id VARCHAR(255) NOT NULL UNIQUE,
    vote VARCHAR(255) NOT NULL
);

-- When the voter cast this ballot (microseconds since the epoch); a ballot
-- only replaces an older one, so replays and out-of-order commits are no-ops.
ALTER TABLE votes ADD COLUMN IF NOT EXISTS cast_at BIGINT NOT NULL DEFAULT 0;

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
CREATE OR REPLACE FUNCTION tallies_apply(deltas JSONB) RETURNS VOID
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO tallies (vote, count)
    SELECT key, value::BIGINT FROM jsonb_each_text(deltas) ORDER BY key
    ON CONFLICT (vote) DO UPDATE SET count = tallies.count + EXCLUDED.count;
    IF deltas <> '{}'::JSONB THEN
        PERFORM pg_notify('tally_changed', '');
    END IF;
END $$;

CREATE OR REPLACE FUNCTION tallies_after_insert() RETURNS TRIGGER
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM tallies_apply(COALESCE(
        (SELECT jsonb_object_agg(vote, n) FROM (
            SELECT vote, COUNT(*) AS n FROM new_rows GROUP BY vote) d),
        '{}'));
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
        '{}'));
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION tallies_after_delete() RETURNS TRIGGER
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM tallies_apply(COALESCE(
        (SELECT jsonb_object_agg(vote, -n) FROM (
            SELECT vote, COUNT(*) AS n FROM old_rows GROUP BY vote) d),
        '{}'));
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
