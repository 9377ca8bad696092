-- The youth flag as last published in events (youth on the first day of the month it was evaluated in): the
-- monthly sweep publishes a change of it, so no event needs to carry a birth date.
ALTER TABLE business ADD COLUMN youth_owned boolean;
UPDATE business SET youth_owned = false;
ALTER TABLE business ALTER COLUMN youth_owned SET NOT NULL;
-- The registry's audited reads of a NIK and the sweep use these.
CREATE INDEX business_active_birth ON business (owner_birth_date) WHERE status = 'active';
