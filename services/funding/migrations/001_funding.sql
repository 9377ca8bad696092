-- What funding knows of each business, built only from registry (and training) events; replaying those
-- topics into an empty database rebuilds it.
CREATE TABLE business_view (
    business_id         uuid PRIMARY KEY,
    version             integer     NOT NULL,
    business_name       text        NOT NULL,
    contact_phone       text        NOT NULL,
    kecamatan_code      text        NOT NULL,
    kbli_code           text        NOT NULL,
    scale               text        NOT NULL,
    youth_owned         boolean     NOT NULL,
    youth_until         date,
    women_owned         boolean     NOT NULL,
    nib_status          text        NOT NULL,
    status              text        NOT NULL,
    annual_sales_rupiah bigint,
    registered_at       timestamptz NOT NULL,
    trainings           text[]      NOT NULL DEFAULT '{}',
    funded_count        integer     NOT NULL DEFAULT 0,
    eligible_since      timestamptz
);

CREATE INDEX business_view_match ON business_view (status, kecamatan_code, kbli_code text_pattern_ops);

CREATE TABLE sponsor (
    id         uuid PRIMARY KEY,
    name       text        NOT NULL UNIQUE,
    kind       text        NOT NULL,
    created_at timestamptz NOT NULL
);

CREATE TABLE pledge (
    id                         uuid PRIMARY KEY,
    sponsor_id                 uuid        NOT NULL REFERENCES sponsor (id),
    title                      text        NOT NULL,
    instrument                 text        NOT NULL,
    financing_programme        text,
    total_rupiah               bigint      NOT NULL CHECK (total_rupiah > 0),
    amount_mode                text        NOT NULL CHECK (amount_mode IN ('fixed', 'capped')),
    amount_per_business_rupiah bigint      NOT NULL CHECK (amount_per_business_rupiah > 0),
    min_offer_rupiah           bigint      NOT NULL CHECK (min_offer_rupiah > 0),
    valid_from                 date        NOT NULL,
    valid_until                date        NOT NULL CHECK (valid_until >= valid_from),
    earmarks                   jsonb       NOT NULL,
    status                     text        NOT NULL CHECK (status IN ('open', 'exhausted', 'closed')),
    reserved_rupiah            bigint      NOT NULL DEFAULT 0 CHECK (reserved_rupiah >= 0),
    accepted_rupiah            bigint      NOT NULL DEFAULT 0 CHECK (accepted_rupiah >= 0),
    disbursed_rupiah           bigint      NOT NULL DEFAULT 0 CHECK (disbursed_rupiah >= 0),
    created_at                 timestamptz NOT NULL,
    closed_at                  timestamptz,
    close_reason               text,
    matched_at                 timestamptz,  -- last time candidates were matched while the window was open
    -- The promise to sponsors, in the database itself: a pledge is never over-allocated.
    CONSTRAINT pledge_not_over_allocated CHECK (reserved_rupiah + accepted_rupiah + disbursed_rupiah <= total_rupiah)
);

CREATE TABLE offer (
    id            uuid PRIMARY KEY,
    pledge_id     uuid        NOT NULL REFERENCES pledge (id),
    business_id   uuid        NOT NULL,
    amount_rupiah bigint      NOT NULL CHECK (amount_rupiah > 0),
    status        text        NOT NULL CHECK (status IN ('offered', 'accepted', 'declined', 'expired', 'withdrawn', 'disbursed')),
    offered_at    timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL,
    readiness     integer     NOT NULL,
    rank          integer,
    ranking       jsonb       NOT NULL,
    decided_at    timestamptz,
    reason        text,
    disbursed_at  timestamptz,
    reference     text,
    -- A business never gets two offers from one pledge.
    CONSTRAINT offer_once_per_pledge UNIQUE (pledge_id, business_id)
);

CREATE INDEX offer_business ON offer (business_id);
CREATE INDEX offer_due ON offer (expires_at) WHERE status = 'offered';
