-- A delivery of an alert Alertmanager marked critical: it goes at any hour, and so do its retries and its SMS in
-- place of WhatsApp. The programme office's other alerts wait out quiet hours on a phone, their retries too.
ALTER TABLE delivery ADD COLUMN critical boolean NOT NULL DEFAULT false;
