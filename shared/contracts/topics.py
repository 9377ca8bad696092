"""Topic names: one topic per aggregate, versioned in the name; dead letters go to `<topic>.dlq`."""

REGISTRY_BUSINESS = "registry.business.v1"
FUNDING_PLEDGE = "funding.pledge.v1"
TRAINING_PROGRAMME = "training.programme.v1"
TRAINING_COHORT = "training.cohort.v1"
TRAINING_PARTICIPANT = "training.participant.v1"

# What partners read: redacted copies of the internal events.
PUBLIC_PREFIX = "public."  # every partner may read these
PUBLIC_BUSINESS = "public.registry.business.v1"
PUBLIC_PLEDGE = "public.funding.pledge.v1"
PUBLIC_TRAINING = "public.training.v1"
PUBLIC_FIGURES = "public.figures.v1"

# Every event of an aggregate type goes to that aggregate's topic.
TOPIC_BY_AGGREGATE = {
    "business": REGISTRY_BUSINESS,
    "pledge": FUNDING_PLEDGE,
    "programme": TRAINING_PROGRAMME,
    "cohort": TRAINING_COHORT,
    "participant": TRAINING_PARTICIPANT,
    "public_business": PUBLIC_BUSINESS,
    "public_pledge": PUBLIC_PLEDGE,
    "public_training": PUBLIC_TRAINING,
    "public_figures": PUBLIC_FIGURES,
}
# Aggregates whose topic belongs to one partner, named in the payload.
PARTNER_AGGREGATES = {"referral": "referral", "partner_outcome": "outcomes"}


def dlq(topic: str) -> str:
    return f"{topic}.dlq"


def partner_topic(partner_id: str, kind: str) -> str:
    """A partner's own topics: `referral` it reads, `outcomes` it writes."""
    return f"partner.{partner_id}.{kind}.v1"


def topic_of(aggregate_type: str, payload: dict) -> str:
    """The topic an event goes to: its aggregate's, or for a partner's aggregate, that partner's."""
    if aggregate_type in PARTNER_AGGREGATES:
        return partner_topic(payload["partner_id"], PARTNER_AGGREGATES[aggregate_type])
    return topic_for(aggregate_type)


def topic_for(aggregate_type: str) -> str:
    try:
        return TOPIC_BY_AGGREGATE[aggregate_type]
    except KeyError:
        raise ValueError(f"no topic for aggregate type {aggregate_type!r}") from None


def namespaced(topic: str, namespace: str = "") -> str:
    """Topics of one deployment on a shared cluster (a city, or one test) carry its namespace as a prefix."""
    return f"{namespace}.{topic}" if namespace else topic


# The first part of the names of a deployment without a namespace: `public.` topics, which every partner may read,
# its own `registry.`, `funding.`, `training.` and `partner.<id>.` topics.
_FIRST_PARTS = frozenset({*(t.split(".", 1)[0] for t in TOPIC_BY_AGGREGATE.values()), "partner"})


def unclaimed_namespace(namespace: str) -> str:
    """The namespace, unless it is spelled like the start of names a deployment without one uses: a deployment named
    `public` would put its topics under every partner's grant to read `public.*`, one named `partner-bri` its
    consumer groups under partner bri's `partner-bri.*`, and one named `registry` would be granted to watch (by
    prefix) the other's `registry.*` topics."""
    if namespace in _FIRST_PARTS or namespace.startswith("partner-"):
        raise ValueError(f"topic namespace {namespace!r} is spelled like names every deployment uses "
                         f"({', '.join(f'{p}.*' for p in sorted(_FIRST_PARTS))}, partner-<id>.*); choose another, "
                         "e.g. the city's name (kupang)")  # fmt: skip
    return namespace


def is_public(aggregate_type: str) -> bool:
    """Events every partner may read."""
    return TOPIC_BY_AGGREGATE.get(aggregate_type, "").startswith(PUBLIC_PREFIX)
