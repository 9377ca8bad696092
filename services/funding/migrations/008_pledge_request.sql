-- A sponsor's client that sends a pledge again under the same Idempotency-Key (its answer lost to a timeout) gets the
-- pledge it made the first time, not a second pledge of the same money. One row per pledge made with a key; the
-- fingerprint is of the pledge as it was asked for, so the same key with another pledge is refused.
CREATE TABLE pledge_request (
    actor           text        NOT NULL,
    idempotency_key text        NOT NULL,
    fingerprint     bytea       NOT NULL,
    pledge_id       uuid        NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (actor, idempotency_key)
);
