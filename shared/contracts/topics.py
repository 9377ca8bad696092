"""Topic names: one topic per aggregate, versioned in the name; dead letters go to `<topic>.dlq`."""

REGISTRY_BUSINESS = "registry.business.v1"

# Every event of an aggregate type goes to that aggregate's topic.
TOPIC_BY_AGGREGATE = {
    "business": REGISTRY_BUSINESS,
}


def dlq(topic: str) -> str:
    return f"{topic}.dlq"


def topic_for(aggregate_type: str) -> str:
    try:
        return TOPIC_BY_AGGREGATE[aggregate_type]
    except KeyError:
        raise ValueError(f"no topic for aggregate type {aggregate_type!r}") from None
