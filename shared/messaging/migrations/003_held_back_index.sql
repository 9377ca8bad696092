-- The relay's claim asks of every row whether an earlier row of its aggregate waits for a retry. Answered from an
-- index of every unpublished row by aggregate, that question walked all the earlier rows of the aggregate: a new
-- pledge's 35,000 offers are one aggregate, and the relay published them at about 1,000 a second instead of 13,000.
-- Rows waiting for a retry are few (usually none), so an index of those alone answers at once, and every outbox
-- insert and publish no longer maintains the wider one.
CREATE INDEX outbox_held_back ON outbox (aggregatetype, aggregateid, id)
    WHERE published_at IS NULL AND next_attempt_at IS NOT NULL;
DROP INDEX outbox_unpublished_by_aggregate;
