-- What partners report back on the referrals they received (a loan approved, a disbursement made, a decline),
-- from their own partner.<id>.outcomes.v1 topics.
CREATE TABLE partner_outcome (
    event_id      uuid PRIMARY KEY,
    partner_id    text        NOT NULL,
    consent_id    uuid        NOT NULL,
    offer_id      uuid,
    kind          text        NOT NULL CHECK (kind IN ('approved', 'disbursed', 'declined')),
    amount_rupiah bigint      CHECK (amount_rupiah >= 0),
    happened_on   date        NOT NULL,
    recorded_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX partner_outcome_offer ON partner_outcome (offer_id);
