-- A rebuilt view's consumers read their topics again from the start. Up to these offsets (one row per partition that
-- had events, written by the rebuild) an event is history read again: it rebuilds the view, and what it would set off
-- (a withdrawal from a cohort, a message to an owner) waits until the consumer has read every partition that far.
CREATE TABLE catch_up (
    consumer    text    NOT NULL,
    topic       text    NOT NULL,
    partition   integer NOT NULL,
    end_offset  bigint  NOT NULL,
    PRIMARY KEY (consumer, topic, partition)
);

-- What a consumer held back while catching up: the aggregates to settle once, on the view as it then stands.
CREATE TABLE catch_up_held (
    consumer      text NOT NULL,
    aggregate_id  text NOT NULL,
    PRIMARY KEY (consumer, aggregate_id)
);
