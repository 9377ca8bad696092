-- An owner's confirmations (of a STOP or a MULAI) by number: a newer reply withholds the ones still queued, so an
-- owner who changes their mind many times hears only their latest answer.
CREATE INDEX message_confirmation ON message (recipient_phone) WHERE template IN ('opted_out', 'opted_in');
