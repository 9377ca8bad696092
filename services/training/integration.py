"""Turning training's domain events into the shared integration contracts, at the service boundary."""

from __future__ import annotations

from shared.contracts import EventPayload
from shared.contracts import training as contracts
from shared.contracts.public import CohortListed, GraduateListed, pseudonym
from services.training.domain import events
from services.training.domain.cohorts import Cohort


def _place(cohort: Cohort) -> dict[str, object]:
    return {"cohort_id": cohort.id, "programme_id": cohort.programme_id, "topic": cohort.topic, "title": cohort.title,
            "starts_at": cohort.starts_at, "venue": cohort.venue}  # fmt: skip


def translate(event: events.DomainEvent, pseudonym_key: bytes) -> list[EventPayload]:
    """The internal events for the services, and for cohorts and graduates a redacted copy for partners (the
    business by its pseudonym, no name)."""
    return _internal(event) + _public(event, pseudonym_key)


def _public(event: events.DomainEvent, key: bytes) -> list[EventPayload]:
    match event:
        case events.CohortOpened(cohort=c):
            return [CohortListed(cohort_id=c.id, change="opened", topic=c.topic, title=c.title, capacity=c.capacity,
                                 starts_at=c.starts_at, ends_at=c.ends_at, kecamatan_code=c.kecamatan_code)]  # fmt: skip
        case events.CohortClosed(cohort=c, enrolled=enrolled, completed=completed):
            return [CohortListed(cohort_id=c.id, change=c.state, topic=c.topic, title=c.title, capacity=c.capacity,  # type: ignore[arg-type]
                                 starts_at=c.starts_at, ends_at=c.ends_at, kecamatan_code=c.kecamatan_code,
                                 enrolled=enrolled, completed=completed)]  # fmt: skip
        case events.Completed(business_id=b, cohort=c, completed_on=on):
            return [GraduateListed(cohort_id=c.id, business_ref=pseudonym(b, key), topic=c.topic, completed_on=on,
                                   kecamatan_code=c.kecamatan_code)]  # fmt: skip
    return []


def _internal(event: events.DomainEvent) -> list[EventPayload]:
    match event:
        case events.ProgrammeDefined(programme=p):
            return [contracts.ProgrammeDefined(
                programme_id=p.id, topic=p.topic, title=p.title, needs=p.needs, requires_nib=p.requires_nib,  # type: ignore[arg-type]
                required_attendance_percent=p.required_attendance_percent, sessions=p.sessions, hours=p.hours,
                gives_assessment=p.gives_assessment,
            )]  # fmt: skip
        case events.CohortOpened(cohort=c):
            return [contracts.CohortOpened(
                cohort_id=c.id, programme_id=c.programme_id, topic=c.topic, title=c.title, capacity=c.capacity,
                starts_at=c.starts_at, ends_at=c.ends_at, sessions=len(c.sessions), venue=c.venue,
                kecamatan_code=c.kecamatan_code,
            )]  # fmt: skip
        case events.CohortClosed(cohort=c, enrolled=enrolled, completed=completed):
            assert c.closed_at is not None
            return [contracts.CohortClosed(cohort_id=c.id, programme_id=c.programme_id, outcome=c.state,  # type: ignore[arg-type]
                                           enrolled=enrolled, completed=completed, closed_at=c.closed_at)]  # fmt: skip
        case events.Invited(business_id=b, version=v, cohort=c, need=need):
            return [contracts.TraineeInvited(business_id=b, participant_version=v, need=need, **_place(c))]  # type: ignore[arg-type]
        case events.Enrolled(business_id=b, version=v, cohort=c, from_waitlist=w):
            return [contracts.TraineeEnrolled(business_id=b, participant_version=v, from_waitlist=w, **_place(c))]  # type: ignore[arg-type]
        case events.Waitlisted(business_id=b, version=v, cohort=c, position=position):
            return [contracts.TraineeWaitlisted(business_id=b, participant_version=v, position=position, **_place(c))]  # type: ignore[arg-type]
        case events.Withdrew(business_id=b, version=v, cohort_id=cohort_id, reason=reason):
            return [contracts.TraineeWithdrew(business_id=b, participant_version=v, cohort_id=cohort_id, reason=reason)]  # type: ignore[arg-type]
        case events.AttendanceMarked(business_id=b, version=v, cohort_id=cohort_id, session=n, attendance=mark):
            return [contracts.AttendanceRecorded(business_id=b, participant_version=v, cohort_id=cohort_id, session=n,
                                                 attendance=mark)]  # type: ignore[arg-type]  # fmt: skip
        case events.Completed(business_id=b, version=v, cohort=c, completed_on=on, attendance_percent=pct, assessment=a):
            return [contracts.TrainingCompleted(
                business_id=b, participant_version=v, cohort_id=c.id, programme_id=c.programme_id, topic=c.topic,
                completed_on=on, assessment=a, title=c.title, attendance_percent=pct,
            )]  # fmt: skip
        case events.StepRecorded(business_id=b, version=v, step=step, done_on=on, kecamatan_code=kec):
            return [contracts.PathwayStepRecorded(business_id=b, participant_version=v, step=step, done_on=on,  # type: ignore[arg-type]
                                                  kecamatan_code=kec)]  # fmt: skip
        case events.Stalled(business_id=b, version=v, stall=s, kecamatan_code=kec):
            return [contracts.PathwayStalled(business_id=b, participant_version=v, waiting_for=s.waiting_for,  # type: ignore[arg-type]
                                             since=s.since, days=s.days, kecamatan_code=kec)]  # fmt: skip
        case events.NotEligible(business_id=b, version=v, reason=reason, regular_route_possible=regular, kecamatan_code=kec):
            return [contracts.PathwayNotEligible(business_id=b, participant_version=v, reason=reason,  # type: ignore[arg-type]
                                                 regular_route_possible=regular, kecamatan_code=kec)]  # fmt: skip
        case events.MentorAssigned(business_id=b, version=v, mentor_id=m, cohort_id=cohort_id):
            return [contracts.MentorAssigned(business_id=b, participant_version=v, mentor_id=m, cohort_id=cohort_id)]
        case events.VisitRecorded(business_id=b, version=v, mentor_id=m, visited_on=on):
            return [contracts.MentoringVisitRecorded(business_id=b, participant_version=v, mentor_id=m, visited_on=on)]
    raise TypeError(f"no contract for {event!r}")
