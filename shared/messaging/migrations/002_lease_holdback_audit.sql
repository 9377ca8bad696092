-- The relay's lease: one holder per database at a time, with an epoch that fences out a holder that lost it
-- (its connection died, it was paused past expiry) and a deadline after which a standby takes over.
CREATE TABLE relay_lease (
    name        text PRIMARY KEY,
    holder      text        NOT NULL,
    epoch       bigint      NOT NULL,
    expires_at  timestamptz NOT NULL
);

-- A row that failed to publish waits for its next attempt, and holds back only its own aggregate's later rows.
ALTER TABLE outbox ADD COLUMN next_attempt_at timestamptz;
ALTER TABLE outbox ADD COLUMN aggregate_version integer;
CREATE INDEX outbox_unpublished_by_aggregate ON outbox (aggregatetype, aggregateid, id) WHERE published_at IS NULL;
-- Every event of an aggregate carries a version one higher than the last: two with one version is a bug, and the
-- database refuses it rather than letting consumers keep the first and drop the second.
CREATE UNIQUE INDEX outbox_one_event_per_version ON outbox (aggregatetype, aggregateid, aggregate_version)
    WHERE aggregate_version IS NOT NULL;

CREATE INDEX inbox_processed_at ON inbox (processed_at);

-- Who changed what: one row per event written (and per audited read), kept after the outbox is pruned.
CREATE TABLE audit (
    id              bigserial PRIMARY KEY,
    at              timestamptz NOT NULL DEFAULT now(),
    actor           text        NOT NULL,
    action          text        NOT NULL,
    aggregate_type  text        NOT NULL,
    aggregate_id    text        NOT NULL,
    event_id        uuid,
    correlation_id  uuid
);
CREATE INDEX audit_aggregate ON audit (aggregate_id, id);
CREATE INDEX audit_actor ON audit (actor, id);
