"""Training's figures for Prometheus: seats and waitlists of running cohorts, completions, stalled pathways.

Label values are bounded: a programme's topic (the city defines a handful) or a pathway step, never a business id.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge

from services.training.queries import TrainingQueries


class TrainingFigures:
    def __init__(self, registry: CollectorRegistry, queries: TrainingQueries) -> None:
        self._queries = queries
        self.capacity = Gauge("berdaya_training_cohort_capacity", "Seats of open and running cohorts, by topic.",
                              ["topic"], registry=registry)  # fmt: skip
        self.enrolled = Gauge("berdaya_training_cohort_enrolled", "Trainees enrolled in open and running cohorts, by topic.",
                              ["topic"], registry=registry)  # fmt: skip
        self.fill = Gauge("berdaya_training_cohort_fill_ratio",
                          "Enrolled / capacity of open and running cohorts, by topic (0 to 1).", ["topic"], registry=registry)  # fmt: skip
        self.waitlist = Gauge("berdaya_training_waitlist_length", "Businesses waiting for a seat in open and running "
                              "cohorts, by topic.", ["topic"], registry=registry)  # fmt: skip
        self.completions = Gauge("berdaya_training_completions", "Trainees who completed a training, by topic.",
                                 ["topic"], registry=registry)  # fmt: skip
        self.stalled = Gauge("berdaya_training_pathways_stalled",
                             "Halal pathways stalled now, by the step they wait for.", ["waiting_for"], registry=registry)  # fmt: skip

    async def refresh(self) -> None:
        seats = await self._queries.seats_by_topic()
        completions = await self._queries.completions_by_topic()
        stalled = await self._queries.stalled_by_step()
        # A topic whose last cohort closed disappears rather than staying at its last value.
        for gauge in (self.capacity, self.enrolled, self.fill, self.waitlist, self.completions, self.stalled):
            gauge.clear()
        for r in seats:
            self.completions.labels(r["topic"]).set(0)  # a running topic with no completion yet shows 0, not nothing
            self.capacity.labels(r["topic"]).set(r["capacity"])
            self.enrolled.labels(r["topic"]).set(r["enrolled"])
            self.fill.labels(r["topic"]).set(r["enrolled"] / r["capacity"] if r["capacity"] else 0)
            self.waitlist.labels(r["topic"]).set(r["waitlisted"])
        for r in completions:
            self.completions.labels(r["topic"]).set(r["completed"])
        for r in stalled:
            self.stalled.labels(r["step"]).set(r["stalled"])
