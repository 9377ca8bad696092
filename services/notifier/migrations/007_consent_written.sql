-- When the owner wrote a STOP or MULAI, as the gateway tells it (NULL: not told; the change counts from `at`, when
-- it was received). A reply written before the number's latest change, and arriving after it (a gateway's retry, a
-- webhook held up), changes nothing: the owner's latest answer stands.
ALTER TABLE consent_change ADD COLUMN written_at timestamptz;
