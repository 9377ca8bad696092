"""What rebuilding funding's view of businesses empties, replays and keeps (`berdaya replay funding-view`)."""

from services.funding.subscribers import TRAINING, VIEW
from shared.contracts.topics import REGISTRY_BUSINESS, TRAINING_PARTICIPANT
from shared.messaging.replay import RebuildableView

FUNDING_VIEW = RebuildableView(
    name="funding-view",
    service="funding",
    consumers=(VIEW, TRAINING),
    topics=(REGISTRY_BUSINESS, TRAINING_PARTICIPANT),
    tables=("business_view", "business_training"),
    kept="sponsors, pledges and offers (and so how often each business was funded), the outbox and the audit trail",
)
