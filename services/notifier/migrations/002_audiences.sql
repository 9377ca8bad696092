-- Messages go to owners (by phone) and to a kecamatan's officers; an owner's message may wait for the owner's
-- contact, which comes from the registry's topic and can arrive after a training event.
ALTER TABLE message ALTER COLUMN recipient_phone DROP NOT NULL;
ALTER TABLE message ADD COLUMN audience text NOT NULL DEFAULT 'owner' CHECK (audience IN ('owner', 'officers'));
ALTER TABLE message ADD COLUMN kecamatan_code text;
CREATE INDEX message_waiting_for_contact ON message (business_id) WHERE recipient_phone IS NULL AND audience = 'owner';
