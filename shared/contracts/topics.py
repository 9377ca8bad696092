"""Topic names: one topic per aggregate, versioned in the name; dead letters go to `<topic>.dlq`."""

REGISTRY_BUSINESS = "registry.business.v1"
FUNDING_PLEDGE = "funding.pledge.v1"
TRAINING_PROGRAMME = "training.programme.v1"
TRAINING_COHORT = "training.cohort.v1"
TRAINING_PARTICIPANT = "training.participant.v1"

# Every event of an aggregate type goes to that aggregate's topic.
TOPIC_BY_AGGREGATE = {
    "business": REGISTRY_BUSINESS,
    "pledge": FUNDING_PLEDGE,
    "programme": TRAINING_PROGRAMME,
    "cohort": TRAINING_COHORT,
    "participant": TRAINING_PARTICIPANT,
}


def dlq(topic: str) -> str:
    return f"{topic}.dlq"


def topic_for(aggregate_type: str) -> str:
    try:
        return TOPIC_BY_AGGREGATE[aggregate_type]
    except KeyError:
        raise ValueError(f"no topic for aggregate type {aggregate_type!r}") from None


def namespaced(topic: str, namespace: str = "") -> str:
    """Topics of one deployment on a shared cluster (a city, or one test) carry its namespace as a prefix."""
    return f"{namespace}.{topic}" if namespace else topic
