-- The attempts a delivery had made when an operator last sent it again by hand: its retries count from there, so a
-- delivery that used up its attempts in a gateway's outage gets its full share again, not one try.
ALTER TABLE delivery ADD COLUMN retries_from integer NOT NULL DEFAULT 0;
