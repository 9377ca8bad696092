-- Partners a referral may go to (set up by `berdaya partner add`), and owners' consents to share their contact
-- with one of them for a stated purpose: who, what, to whom, when, why, and when it was withdrawn.
CREATE TABLE partner (
    id          text PRIMARY KEY CHECK (id ~ '^[a-z][a-z0-9-]{1,39}$'),
    name        text        NOT NULL,
    active      boolean     NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE consent (
    id                   uuid PRIMARY KEY,
    business_id          uuid        NOT NULL REFERENCES business (id),
    partner_id           text        NOT NULL REFERENCES partner (id),
    purpose              text        NOT NULL,
    financing_programme  text,
    amount_sought_rupiah bigint,
    offer_id             uuid,
    given_at             timestamptz NOT NULL,
    given_by             text        NOT NULL,
    withdrawn_at         timestamptz,
    withdrawn_by         text
);
CREATE INDEX consent_business ON consent (business_id);
