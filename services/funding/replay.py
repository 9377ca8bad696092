"""What rebuilding funding's view of businesses empties, replays and keeps (`berdaya replay funding-view`)."""

from services.funding.subscribers import SUBSCRIPTIONS, TRAINING, VIEW
from shared.messaging.replay import RebuildableView

FUNDING_VIEW = RebuildableView(
    name="funding-view",
    service="funding",
    replayed=tuple(s for s in SUBSCRIPTIONS if s.consumer in (VIEW, TRAINING)),
    tables=("business_view", "business_training"),
    kept="sponsors, pledges and offers (and so how often each business was funded), the outbox and the audit trail",
    holds_back=True,
)
