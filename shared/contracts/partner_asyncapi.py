"""The AsyncAPI document partner systems build against: what they may read and what they may write, nothing else.

Generated from the contracts themselves (`python -m shared.contracts.partner_asyncapi`), committed under
docs/partners/, served by the registry, and checked against the contracts by a test, so it cannot drift.
"""

from __future__ import annotations

import functools
import json
from typing import Any, Union

from faststream.kafka import KafkaBroker
from faststream.security import SASLScram512
from faststream.specification import AsyncAPI
from pydantic import create_model

from shared.contracts.catalog import CATALOG
from shared.contracts.envelope import Envelope, EventPayload
from shared.contracts.public import PUBLIC_TOPICS
from shared.contracts.topics import TOPIC_BY_AGGREGATE, partner_topic

REFERRAL = partner_topic("{partner_id}", "referral")
OUTCOMES = partner_topic("{partner_id}", "outcomes")

READING = {
    "public.registry.business.v1": "Every registered business as the public may see it, under a stable pseudonym; "
                                   "key = the pseudonym.",
    "public.funding.pledge.v1": "Sponsors' pledges and how far each has reached; key = the pledge id.",
    "public.training.v1": "Cohorts open for enrolment and graduates (by pseudonym); key = the cohort id.",
    "public.figures.v1": "NIB coverage per kecamatan and for the city, published when it changes; key = the region.",
}  # fmt: skip


def envelope_of(name: str, models: list[type[EventPayload]]) -> type[Envelope]:
    """An envelope whose payload is any of `models`: what one topic carries."""
    payload: Any = Union[tuple(models)] if len(models) > 1 else models[0]  # noqa: UP007
    return create_model(name, __base__=Envelope, payload=(payload, ...))


def _models(aggregate_type: str) -> list[type[EventPayload]]:
    return [m for m in CATALOG.models() if m.aggregate_type == aggregate_type]


def _topic_models(topic: str) -> list[type[EventPayload]]:
    return [m for m in CATALOG.models() if TOPIC_BY_AGGREGATE.get(m.aggregate_type) == topic]


def _camel(topic: str) -> str:
    return "".join(p.capitalize() for p in topic.replace("{partner_id}", "partner").replace(".", "_").split("_"))


@functools.cache
def partner_specification():  # noqa: ANN201 - faststream's AsyncAPI specification
    broker = KafkaBroker(
        "kafka.berdaya.example:9092",
        # Placeholders: each partner is given its own user and password by `berdaya partner add`.
        security=SASLScram512("partner-{partner_id}", "given-once-by-berdaya"),
        description="Berdaya's topics for partner systems. Authenticate with SCRAM-SHA-512; consumer groups must "
                    "start with 'partner-{partner_id}.'; every record is a JSON envelope (event_id, event_type, "
                    "event_version, occurred_at, payload); apply each event_id once.",
    )  # fmt: skip
    for topic in PUBLIC_TOPICS:
        broker.publisher(topic, title=topic, description=READING[topic], schema=envelope_of(_camel(topic) + "Envelope", _topic_models(topic)))
    broker.publisher(
        REFERRAL, title=REFERRAL, schema=envelope_of("ReferralEnvelope", _models("referral")),
        description="Referrals of businesses whose owners consented to this partner alone, and withdrawals of that "
                    "consent (then delete what you hold); key = the consent id.",
    )  # fmt: skip
    outcomes = envelope_of("OutcomeEnvelope", _models("partner_outcome"))

    async def outcome(message: outcomes) -> None:  # type: ignore[valid-type]  # documents the schema only
        """What became of a referral: financing approved, disbursed or declined. Key = the consent id."""

    broker.subscriber(OUTCOMES, title=OUTCOMES, description="Written by the partner: what became of each referral; "
                      "key = the consent id.")(outcome)  # fmt: skip
    return AsyncAPI(broker, title="Berdaya for partners", version="1.0").to_specification()


def partner_document() -> dict[str, Any]:
    return partner_specification().to_jsonable()


def render() -> str:
    return json.dumps(partner_document(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    print(render(), end="")
