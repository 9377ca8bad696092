-- A referral's latest outcome of each kind is the one funding recorded last, not the one the partner dated last: a
-- date is the partner's to type (a 2062 for 2026 outranked every correction). recorded_at is the time a batch's
-- transaction began, the same for every outcome of one batch, so the order they were recorded in is counted here.
-- Outcomes recorded before keep the order of their batches, then of their dates, as the report used to read them.
ALTER TABLE partner_outcome ADD COLUMN recorded_order bigint;
UPDATE partner_outcome p SET recorded_order = o.n
  FROM (SELECT event_id, row_number() OVER (ORDER BY recorded_at, happened_on, event_id) AS n
          FROM partner_outcome) o
 WHERE o.event_id = p.event_id;
ALTER TABLE partner_outcome ALTER COLUMN recorded_order SET NOT NULL;
ALTER TABLE partner_outcome ALTER COLUMN recorded_order ADD GENERATED ALWAYS AS IDENTITY;
SELECT setval(pg_get_serial_sequence('partner_outcome', 'recorded_order'),
              (SELECT coalesce(max(recorded_order), 0) + 1 FROM partner_outcome), false);
