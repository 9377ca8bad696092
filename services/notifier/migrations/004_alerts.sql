-- Alertmanager's alerts are messages too (POST /webhooks/alertmanager): to the operators, who run the system, or to
-- the programme office's officers (audience 'officers', no kecamatan). Each is recorded once per (audience,
-- fingerprint, status, startsAt): its event_id is derived from those, so the unique (event_id, template) keeps one.
ALTER TABLE message DROP CONSTRAINT IF EXISTS message_audience_check;
ALTER TABLE message ADD CONSTRAINT message_audience_check CHECK (audience IN ('owner', 'officers', 'sponsor', 'operators'));
