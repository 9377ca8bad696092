-- Who to write to, kept from the registry's events (the notifier never reads the registry's database).
CREATE TABLE contact (
    business_id      uuid PRIMARY KEY,
    business_version integer     NOT NULL,
    business_name    text        NOT NULL,
    phone            text        NOT NULL,
    kecamatan        text        NOT NULL,
    kelurahan        text        NOT NULL,
    status           text        NOT NULL,
    updated_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE message (
    id              uuid PRIMARY KEY,
    event_id        uuid        NOT NULL,
    business_id     uuid        NOT NULL,
    template        text        NOT NULL,
    channel         text        NOT NULL,
    recipient_phone text        NOT NULL,
    language        text        NOT NULL DEFAULT 'id',
    body            text        NOT NULL,
    status          text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    created_at      timestamptz NOT NULL,
    -- Belt and braces with the inbox: one event never yields the same message twice.
    UNIQUE (event_id, template)
);

CREATE INDEX message_business ON message (business_id, created_at);
CREATE INDEX message_created ON message (created_at DESC);
