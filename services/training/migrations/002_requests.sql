-- A trainer's client that sends a cohort or a mentor again under the same Idempotency-Key (its answer lost to a
-- timeout) gets the one it made the first time, not a second cohort inviting the same businesses, or a mentor
-- counted twice in the pool. One row per cohort or mentor made with a key; the fingerprint is of the form as it was
-- sent, so the same key with another form is refused.
CREATE TABLE cohort_request (
    actor           text        NOT NULL,
    idempotency_key text        NOT NULL,
    fingerprint     bytea       NOT NULL,
    cohort_id       uuid        NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (actor, idempotency_key)
);

CREATE TABLE mentor_request (
    actor           text        NOT NULL,
    idempotency_key text        NOT NULL,
    fingerprint     bytea       NOT NULL,
    mentor_id       uuid        NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (actor, idempotency_key)
);
