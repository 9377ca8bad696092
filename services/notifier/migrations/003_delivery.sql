-- The notifier delivers: each message has deliveries (one recipient on one channel each), sent by a worker that
-- claims them, with their status from the gateways; owners' preferences and consent; the officer and sponsor
-- directories; what it keeps of funding's events for reminders and digests; a local outbox that needs no gateway.

-- Messages: any audience, a status summarising their deliveries.
ALTER TABLE message ALTER COLUMN business_id DROP NOT NULL;
ALTER TABLE message DROP CONSTRAINT IF EXISTS message_status_check;
ALTER TABLE message DROP CONSTRAINT IF EXISTS message_audience_check;
ALTER TABLE message ADD CONSTRAINT message_audience_check CHECK (audience IN ('owner', 'officers', 'sponsor'));
ALTER TABLE message ADD COLUMN sponsor_id uuid;
ALTER TABLE message ADD COLUMN offer_id uuid;
ALTER TABLE message ADD COLUMN deadline timestamptz;
ALTER TABLE message ADD COLUMN subject text;
ALTER TABLE message ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();
-- Messages recorded before the notifier delivered anything were never sent; sending weeks-old news now would
-- confuse owners, so they stay unsent ('withheld', with no delivery); those still waiting for an owner's contact
-- are planned when it comes, like any other.
UPDATE message SET channel = 'none', status = CASE WHEN recipient_phone IS NULL AND audience = 'owner' THEN 'waiting'
                                                 ELSE 'withheld' END;
ALTER TABLE message ALTER COLUMN status SET DEFAULT 'waiting';
ALTER TABLE message ADD CONSTRAINT message_status_check CHECK (status IN (
    'waiting', 'queued', 'sending', 'sent', 'delivered', 'read', 'failed', 'unknown', 'withheld'));
CREATE INDEX message_status ON message (status, created_at DESC);
CREATE INDEX message_offer ON message (offer_id) WHERE offer_id IS NOT NULL;

ALTER TABLE contact ADD COLUMN kecamatan_code text;

CREATE TABLE delivery (
    id          uuid PRIMARY KEY,
    message_id  uuid        NOT NULL REFERENCES message (id),
    channel     text        NOT NULL CHECK (channel IN ('whatsapp', 'sms', 'email', 'local')),
    recipient   text        NOT NULL,
    status      text        NOT NULL CHECK (status IN (
                    'queued', 'sending', 'sent', 'delivered', 'read', 'failed', 'unknown', 'withheld')),
    not_before  timestamptz NOT NULL,
    attempts    integer     NOT NULL DEFAULT 0,
    holder      text,        -- the process that claimed it
    lease_until timestamptz, -- a 'sending' row past this was left by a process that stopped
    provider_id text,        -- the gateway's id for it (wamid, Zenziva messageId, SMTP Message-ID)
    reason      text,
    fallback_of uuid REFERENCES delivery (id),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    sent_at      timestamptz,
    delivered_at timestamptz,
    read_at      timestamptz,
    -- Exactly one delivery per (event, recipient, channel): the message is one per (event, template).
    UNIQUE (message_id, channel, recipient)
);
CREATE INDEX delivery_due ON delivery (channel, not_before) WHERE status = 'queued';
CREATE INDEX delivery_sending ON delivery (lease_until) WHERE status = 'sending';
CREATE INDEX delivery_message ON delivery (message_id);
CREATE UNIQUE INDEX delivery_provider ON delivery (channel, provider_id) WHERE provider_id IS NOT NULL;
CREATE INDEX delivery_status ON delivery (channel, status);

-- Every call to a gateway, written before the call: an attempt with no outcome is a send whose answer was lost.
CREATE TABLE send_attempt (
    delivery_id uuid        NOT NULL REFERENCES delivery (id),
    attempt     integer     NOT NULL,
    holder      text        NOT NULL,
    started_at  timestamptz NOT NULL,
    finished_at timestamptz,
    outcome     text CHECK (outcome IN ('accepted', 'rejected', 'transient', 'ambiguous', 'lost')),
    detail      text,
    PRIMARY KEY (delivery_id, attempt)
);

-- The local default: what would have gone to a gateway, delivered here, once per delivery.
CREATE TABLE local_outbox (
    delivery_id  uuid PRIMARY KEY REFERENCES delivery (id),
    recipient    text        NOT NULL,
    subject      text,
    body         text        NOT NULL,
    delivered_at timestamptz NOT NULL
);

-- Gateway status reports, kept a while: the matched ones explain a delivery's status, the unmatched ones are
-- recorded and ignored (a status for a message this notifier never sent, or already forgot).
CREATE TABLE status_report (
    id           bigserial PRIMARY KEY,
    channel      text        NOT NULL,
    provider_id  text        NOT NULL,
    status       text        NOT NULL,
    error        text,
    delivery_id  uuid,
    received_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX status_report_received ON status_report (received_at);

-- Owners' wishes, by phone number (the person, whichever of their businesses a message is about).
CREATE TABLE recipient (
    phone             text PRIMARY KEY,
    channel           text CHECK (channel IN ('whatsapp', 'sms')),
    language          text        NOT NULL DEFAULT 'id',
    opted_out_at      timestamptz,
    no_whatsapp_since timestamptz,
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE consent_change (
    id     bigserial PRIMARY KEY,
    phone  text        NOT NULL,
    intent text        NOT NULL CHECK (intent IN ('stop', 'start')),
    via    text        NOT NULL, -- whatsapp, sms, or officer:<subject>
    at     timestamptz NOT NULL
);
CREATE INDEX consent_change_phone ON consent_change (phone, at);

-- Who gets officers' and sponsors' email, kept by officers and admins (and each sponsor for itself).
CREATE TABLE officer (
    id              uuid PRIMARY KEY,
    email           text        NOT NULL UNIQUE,
    name            text        NOT NULL,
    kecamatan_codes text[]      NOT NULL DEFAULT '{}', -- empty: the whole city
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE sponsor_contact (
    sponsor_id uuid PRIMARY KEY,
    email      text        NOT NULL,
    name       text,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- What the notifier keeps of funding.pledge.v1: pledges and offers, for reminders and digests.
CREATE TABLE pledge_fact (
    pledge_id    uuid PRIMARY KEY,
    sponsor_id   uuid        NOT NULL,
    sponsor_name text        NOT NULL,
    title        text        NOT NULL,
    instrument   text        NOT NULL,
    total_rupiah bigint      NOT NULL,
    pledged_at   timestamptz NOT NULL,
    closed_at    timestamptz
);
CREATE INDEX pledge_fact_sponsor ON pledge_fact (sponsor_id);
CREATE TABLE offer_fact (
    offer_id            uuid PRIMARY KEY,
    pledge_id           uuid        NOT NULL,
    business_id         uuid        NOT NULL,
    business_name       text        NOT NULL,
    contact_phone       text        NOT NULL,
    kecamatan_code      text        NOT NULL,
    sponsor_name        text        NOT NULL,
    instrument          text        NOT NULL,
    financing_programme text,
    amount_rupiah       bigint      NOT NULL,
    offered_at          timestamptz NOT NULL,
    expires_at          timestamptz NOT NULL,
    state               text        NOT NULL,
    decided_at          timestamptz,
    disbursed_at        timestamptz
);
CREATE INDEX offer_fact_open ON offer_fact (expires_at) WHERE state = 'open';
CREATE INDEX offer_fact_pledge ON offer_fact (pledge_id);

-- A token bucket per channel, shared by every notifier process.
CREATE TABLE rate_bucket (
    channel     text PRIMARY KEY,
    tokens      double precision NOT NULL,
    refilled_at timestamptz      NOT NULL
);
