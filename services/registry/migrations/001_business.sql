CREATE TABLE business (
    id                  uuid PRIMARY KEY,
    version             integer     NOT NULL,
    business_name       text        NOT NULL,
    name_key            text        NOT NULL,
    owner_name          text        NOT NULL,
    owner_gender        char(1)     NOT NULL CHECK (owner_gender IN ('L', 'P')),
    owner_birth_date    date        NOT NULL,
    -- The NIK is never stored in clear: a keyed digest to find duplicates, AES-GCM ciphertext to reveal it
    -- to an authorised officer, and a masked form for display.
    nik_digest          bytea       NOT NULL,
    nik_ciphertext      bytea       NOT NULL,
    nik_masked          text        NOT NULL,
    phone               text        NOT NULL,
    kbli_code           text        NOT NULL CHECK (kbli_code ~ '^[0-9]{5}$'),
    kbli_version        smallint    NOT NULL CHECK (kbli_version IN (2020, 2025)),
    kecamatan_code      text        NOT NULL,
    kelurahan_code      text        NOT NULL,
    address             text,
    capital_rupiah      bigint      CHECK (capital_rupiah >= 0),
    annual_sales_rupiah bigint      CHECK (annual_sales_rupiah >= 0),
    scale               text        NOT NULL CHECK (scale IN ('micro', 'small', 'medium')),
    scale_basis         text        NOT NULL CHECK (scale_basis IN ('capital', 'annual_sales')),
    nib_status          text        NOT NULL CHECK (nib_status IN ('none', 'applied', 'issued', 'rejected')),
    nib                 text        UNIQUE CHECK (nib ~ '^[0-9]{13}$'),
    status              text        NOT NULL CHECK (status IN ('active', 'closed')),
    registered_at       timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL,
    closed_at           timestamptz,
    closed_reason       text,
    source              text        NOT NULL DEFAULT 'officer'
);

CREATE INDEX business_nik_digest ON business (nik_digest);
CREATE INDEX business_phone ON business (phone);
CREATE INDEX business_region ON business (kecamatan_code, kelurahan_code);
CREATE INDEX business_kbli ON business (kbli_code text_pattern_ops);
CREATE INDEX business_registered ON business (registered_at DESC, id);

CREATE TABLE nib_application (
    id           uuid PRIMARY KEY,
    business_id  uuid        NOT NULL REFERENCES business (id),
    applied_at   timestamptz NOT NULL,
    status       text        NOT NULL CHECK (status IN ('pending', 'issued', 'rejected')),
    nib          text,
    issued_on    date,
    reason       text,
    decided_at   timestamptz
);

-- At most one open application per business.
CREATE UNIQUE INDEX nib_application_one_pending ON nib_application (business_id) WHERE status = 'pending';
