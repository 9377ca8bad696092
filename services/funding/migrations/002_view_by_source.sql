-- Each consumer owns what it writes: the registry's facts stay in business_view, training's facts get a table of
-- their own, and how often a business was funded is counted from the offers. No consumer ever writes back a row
-- another consumer changed, so no update can be lost between them.
CREATE TABLE business_training (
    business_id          uuid        NOT NULL,
    topic                text        NOT NULL,
    cohort_id            uuid        NOT NULL,
    programme_id         uuid,
    completed_on         date        NOT NULL,
    participant_version  integer     NOT NULL,
    assessment           jsonb,
    PRIMARY KEY (business_id, topic)
);
INSERT INTO business_training (business_id, topic, cohort_id, completed_on, participant_version)
    SELECT business_id, unnest(trainings), '00000000-0000-0000-0000-000000000000', CURRENT_DATE, 1 FROM business_view;

ALTER TABLE business_view DROP COLUMN trainings;
ALTER TABLE business_view DROP COLUMN funded_count;
-- A birth date in disguise (birth date + 31 years - 1 day); funding needs only the flag.
ALTER TABLE business_view DROP COLUMN youth_until;

CREATE INDEX offer_business_status ON offer (business_id, status);
