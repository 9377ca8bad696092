-- What training knows of each business, built only from registry events; replaying registry.business.v1 into an
-- empty table rebuilds it (berdaya replay training-view). No phone, no person's name.
CREATE TABLE business_view (
    business_id     uuid PRIMARY KEY,
    version         integer     NOT NULL,
    business_name   text        NOT NULL,
    kbli_code       text        NOT NULL,
    kecamatan_code  text        NOT NULL,
    scale           text        NOT NULL,
    youth_owned     boolean     NOT NULL,
    women_owned     boolean     NOT NULL,
    nib_status      text        NOT NULL,
    status          text        NOT NULL,
    registered_at   timestamptz NOT NULL
);
CREATE INDEX business_view_candidates ON business_view (status, kbli_code text_pattern_ops);

-- Businesses that accepted funding (FundingAccepted), written by its own consumer only.
CREATE TABLE funding_accepted (
    business_id  uuid        NOT NULL,
    offer_id     uuid        NOT NULL,
    pledge_id    uuid        NOT NULL,
    accepted_at  timestamptz NOT NULL,
    PRIMARY KEY (business_id, offer_id)
);

CREATE TABLE programme (
    id                           uuid PRIMARY KEY,
    topic                        text        NOT NULL,
    title                        text        NOT NULL,
    needs                        text[]      NOT NULL,
    requires_nib                 boolean     NOT NULL,
    required_attendance_percent  integer     NOT NULL CHECK (required_attendance_percent BETWEEN 1 AND 100),
    sessions                     integer     NOT NULL CHECK (sessions BETWEEN 1 AND 100),
    hours                        integer     NOT NULL CHECK (hours >= 1),
    gives_assessment             boolean     NOT NULL,
    defined_at                   timestamptz NOT NULL,
    defined_by                   text        NOT NULL,
    CONSTRAINT programme_once UNIQUE (topic, title)
);

CREATE TABLE mentor (
    id               uuid PRIMARY KEY,
    name             text        NOT NULL,
    organisation     text,
    kbli_prefixes    text[]      NOT NULL,
    kecamatan_codes  text[]      NOT NULL,
    max_load         integer     NOT NULL CHECK (max_load >= 1),
    active           boolean     NOT NULL DEFAULT true,
    created_at       timestamptz NOT NULL,
    created_by       text        NOT NULL
);

-- Every change to who holds a seat happens with the cohort's row locked (FOR UPDATE); the seat counts kept here
-- let the database itself refuse more trainees than seats.
CREATE TABLE cohort (
    id              uuid PRIMARY KEY,
    programme_id    uuid        NOT NULL REFERENCES programme (id),
    state           text        NOT NULL CHECK (state IN ('planned', 'open', 'running', 'completed', 'cancelled')),
    capacity        integer     NOT NULL CHECK (capacity BETWEEN 1 AND 500),
    starts_on       date        NOT NULL,
    ends_on         date        NOT NULL CHECK (ends_on >= starts_on),
    venue           text        NOT NULL,
    kecamatan_code  text,
    mentor_id       uuid REFERENCES mentor (id),
    enrolled        integer     NOT NULL DEFAULT 0,
    waitlisted      integer     NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL,
    created_by      text        NOT NULL,
    opened_at       timestamptz,
    started_at      timestamptz,
    closed_at       timestamptz,
    CONSTRAINT cohort_within_capacity CHECK (enrolled >= 0 AND waitlisted >= 0 AND enrolled <= capacity)
);
CREATE INDEX cohort_state ON cohort (state, programme_id);

CREATE TABLE cohort_session (
    cohort_id  uuid        NOT NULL REFERENCES cohort (id),
    number     integer     NOT NULL CHECK (number >= 1),
    starts_at  timestamptz NOT NULL,
    ends_at    timestamptz NOT NULL CHECK (ends_at > starts_at),
    PRIMARY KEY (cohort_id, number)
);

-- A business is in a cohort at most once: one row, whatever happens to it.
CREATE TABLE seat (
    cohort_id        uuid        NOT NULL REFERENCES cohort (id),
    business_id      uuid        NOT NULL,
    status           text        NOT NULL CHECK (status IN ('enrolled', 'waitlisted', 'withdrawn', 'completed',
                                                             'not_completed', 'released')),
    need             text        NOT NULL,
    queue_no         integer     NOT NULL DEFAULT 0,
    from_waitlist    boolean     NOT NULL DEFAULT false,
    withdraw_reason  text,
    changed_at       timestamptz NOT NULL,
    PRIMARY KEY (cohort_id, business_id)
);
CREATE INDEX seat_business ON seat (business_id, status);

CREATE TABLE attendance (
    cohort_id    uuid        NOT NULL,
    business_id  uuid        NOT NULL,
    session      integer     NOT NULL CHECK (session >= 1),
    mark         text        NOT NULL CHECK (mark IN ('present', 'absent', 'excused')),
    reason       text,  -- why an absence was excused: kept here, never in an event
    recorded_at  timestamptz NOT NULL,
    recorded_by  text        NOT NULL,
    PRIMARY KEY (cohort_id, business_id, session),
    FOREIGN KEY (cohort_id, business_id) REFERENCES seat (cohort_id, business_id)
);

CREATE TABLE assessment (
    cohort_id           uuid        NOT NULL,
    business_id         uuid        NOT NULL,
    management          integer     NOT NULL CHECK (management BETWEEN 0 AND 100),
    leadership          integer     NOT NULL CHECK (leadership BETWEEN 0 AND 100),
    business_prospects  integer     NOT NULL CHECK (business_prospects BETWEEN 0 AND 100),
    recorded_at         timestamptz NOT NULL,
    recorded_by         text        NOT NULL,
    PRIMARY KEY (cohort_id, business_id),
    FOREIGN KEY (cohort_id, business_id) REFERENCES seat (cohort_id, business_id)
);

-- Each business's participation counts its events: every event of it carries the next version, taken with this
-- row locked.
CREATE TABLE participant (
    business_id  uuid PRIMARY KEY,
    version      integer NOT NULL DEFAULT 0 CHECK (version >= 0)
);

CREATE TABLE pathway (
    business_id             uuid PRIMARY KEY,
    kecamatan_code          text        NOT NULL,
    steps_done              integer     NOT NULL DEFAULT 0 CHECK (steps_done BETWEEN 0 AND 7),
    last_done_on            date,
    not_eligible            text CHECK (not_eligible IN ('pork', 'slaughtered_meat_uncertified_abattoir',
                                                        'not_micro_or_small', 'other')),
    regular_route_possible  boolean,
    stalled_for             text,
    note                    text,
    updated_at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX pathway_open ON pathway (last_done_on) WHERE not_eligible IS NULL AND steps_done BETWEEN 1 AND 6;

CREATE TABLE pathway_step (
    business_id  uuid        NOT NULL REFERENCES pathway (business_id),
    step         text        NOT NULL,
    position     integer     NOT NULL CHECK (position BETWEEN 1 AND 7),
    done_on      date        NOT NULL,
    recorded_at  timestamptz NOT NULL,
    recorded_by  text        NOT NULL,
    PRIMARY KEY (business_id, step),
    UNIQUE (business_id, position)
);

CREATE TABLE mentor_assignment (
    id           bigserial PRIMARY KEY,
    business_id  uuid        NOT NULL,
    mentor_id    uuid        NOT NULL REFERENCES mentor (id),
    cohort_id    uuid,
    assigned_at  timestamptz NOT NULL,
    ended_at     timestamptz
);
-- One mentor at a time per business.
CREATE UNIQUE INDEX mentor_assignment_current ON mentor_assignment (business_id) WHERE ended_at IS NULL;
CREATE INDEX mentor_assignment_mentor ON mentor_assignment (mentor_id) WHERE ended_at IS NULL;

CREATE TABLE mentoring_visit (
    id           uuid PRIMARY KEY,
    business_id  uuid        NOT NULL,
    mentor_id    uuid        NOT NULL REFERENCES mentor (id),
    visited_on   date        NOT NULL,
    notes        text,
    recorded_at  timestamptz NOT NULL,
    recorded_by  text        NOT NULL
);
CREATE INDEX mentoring_visit_business ON mentoring_visit (business_id, visited_on);
