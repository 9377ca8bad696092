"""The partners' AsyncAPI document: committed, generated from the contracts, and naming only what partners may touch."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import unquote

from shared.contracts.partner_asyncapi import OUTCOMES, REFERRAL, partner_document, render
from shared.contracts.public import PUBLIC_FIELDS, PUBLIC_TOPICS

COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "partners" / "asyncapi.json"


def test_the_committed_partner_document_is_what_the_contracts_generate() -> None:
    assert COMMITTED.read_text() == render(), (
        "docs/partners/asyncapi.json is stale: run `python -m shared.contracts.partner_asyncapi > "
        "docs/partners/asyncapi.json` and commit it"
    )


def test_the_partner_document_names_the_public_topics_and_the_partners_own_two_and_nothing_internal() -> None:
    channels = set(partner_document()["channels"])
    assert channels == {*PUBLIC_TOPICS, REFERRAL, OUTCOMES}


def test_partners_read_public_topics_and_referrals_and_write_only_outcomes() -> None:
    actions = {unquote(op["channel"]["$ref"].split("/")[-1]): op["action"]
               for op in partner_document()["operations"].values()}  # fmt: skip
    # From Berdaya's side: it sends what partners read, receives what they write.
    assert {name for name, action in actions.items() if action == "receive"} == {OUTCOMES}
    assert {name for name, action in actions.items() if action == "send"} == {*PUBLIC_TOPICS, REFERRAL}


def test_every_public_payload_in_the_document_carries_only_allow_listed_fields() -> None:
    schemas = partner_document()["components"]["schemas"]
    for event_type, allowed in PUBLIC_FIELDS.items():
        documented = set(schemas[event_type]["properties"])
        assert documented <= set(allowed), f"{event_type} documents {documented - set(allowed)} beyond its allow-list"


def test_the_partner_document_asks_for_scram_sha_512() -> None:
    document = partner_document()
    assert document["components"]["securitySchemes"] == {"scram512": {"type": "scramSha512"}}
    assert json.dumps(document).count("given-once-by-berdaya") == 0  # no password, not even the placeholder
