"""What rebuilding training's view of businesses empties, replays and keeps (`berdaya replay training-view`)."""

from services.training.subscribers import SUBSCRIPTIONS, VIEW
from shared.messaging.replay import RebuildableView

TRAINING_VIEW = RebuildableView(
    name="training-view",
    service="training",
    replayed=tuple(s for s in SUBSCRIPTIONS if s.consumer == VIEW),
    tables=("business_view",),
    kept="programmes, cohorts and their seats, attendance, assessments, the halal pathways, mentors, who accepted "
    "funding, the outbox and the audit trail (so nobody is invited twice when the registry's events come again)",
    holds_back=True,
)
