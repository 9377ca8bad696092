"""What partners may read: every public payload's schema is exactly its allow-list, the copies the services make of
their events carry nothing personal, and a business's pseudonym is stable, keyed and not its id."""

from __future__ import annotations

import json
import re
import uuid
from datetime import date

from services.funding import integration as funding_integration
from services.funding.domain import events as funding_events
from services.funding.domain.offers import Candidate, allocate
from services.funding.domain.view import readiness
from services.registry import integration as registry_integration
from services.training import integration as training_integration
from services.training.domain import events as training_events
from services.registry.domain import business as aggregate
from shared.contracts import CATALOG
from shared.contracts.public import PUBLIC_FIELDS, REFERRAL_FIELDS, nik_link, pseudonym
from shared.contracts.topics import PUBLIC_BUSINESS, PUBLIC_PLEDGE, topic_of

from .builders import MARIA_NIK, NOW, business
from .funding_fakes import pledge, view
from .funding_fakes import PSEUDONYM_KEY as FUNDING_KEY
from .registry_fakes import PSEUDONYM_KEY
from .training_fakes import PSEUDONYM_KEY as TRAINING_KEY
from .training_fakes import TrainingWorld

PUBLIC_AGGREGATES = {"public_business", "public_pledge", "public_training", "public_figures"}
NIK_SHAPED = re.compile(r"(?<!\d)\d{16}(?!\d)")
PHONE_SHAPED = re.compile(r"(\+62|62|0)8\d{8,11}")


def test_every_public_payload_has_exactly_the_fields_its_allow_list_names() -> None:
    public = {m.event_type: m for m in CATALOG.models() if m.aggregate_type in PUBLIC_AGGREGATES}
    assert set(public) == set(PUBLIC_FIELDS), "a public event without an allow-list, or an allow-list without its event"
    for name, model in public.items():
        assert set(model.model_fields) == PUBLIC_FIELDS[name], f"{name}'s fields differ from its allow-list"


def test_a_referral_carries_personal_data_only_in_the_fields_its_allow_list_names() -> None:
    referrals = {m.event_type: m for m in CATALOG.models() if m.aggregate_type == "referral"}
    assert {name: set(model.model_fields) for name, model in referrals.items()} == {
        name: set(fields) for name, fields in REFERRAL_FIELDS.items()}  # fmt: skip


def test_no_public_schema_has_a_field_for_a_nik_a_phone_a_persons_name_or_a_birth_date() -> None:
    forbidden = ("nik", "phone", "owner", "birth", "youth_until", "contact", "address", "business_name", "person")
    for fields in PUBLIC_FIELDS.values():
        for field in fields:
            assert not any(word in field for word in forbidden), field


def test_the_registrys_public_copy_of_every_change_names_the_business_by_pseudonym_and_nothing_personal() -> None:
    b = business()
    changes = [aggregate.Registered(b, "officer"), aggregate.Updated(b, ("phone",)), aggregate.Closed(
        aggregate.close(b, "usaha berhenti", NOW))]  # fmt: skip
    for change in changes:
        internal, public = registry_integration.translate(change, PSEUDONYM_KEY)
        text = public.model_dump_json()
        assert public.business_ref == pseudonym(b.id, PSEUDONYM_KEY) != b.id
        assert str(b.id) not in text and b.phone not in text and b.business_name not in text and b.owner_name not in text
        assert not NIK_SHAPED.search(text) and not PHONE_SHAPED.search(text)
        assert b.owner_birth_date.isoformat() not in text
        assert topic_of(public.aggregate_type, public.model_dump(mode="json")) == PUBLIC_BUSINESS
        assert public.version == internal.business_version  # type: ignore[attr-defined]


def test_fundings_public_copies_follow_the_money_without_the_businesss_name_or_phone() -> None:
    p, b = pledge(), view()
    made = funding_integration.translate(funding_events.PledgeMade(p), FUNDING_KEY)
    assert [e.event_type for e in made] == ["CSRPledged", "PledgeAnnounced"]

    _, [offer] = allocate(p, [Candidate(b, readiness(b, date(2026, 3, 10)), 1)], NOW, 14)
    internal, public = funding_integration.translate(funding_events.OfferMade(offer, b, p), FUNDING_KEY)
    text = public.model_dump_json()
    assert internal.event_type == "FundingMatched" and public.event_type == "PledgeProgressed"
    assert b.contact_phone not in text and b.business_name not in text and str(b.business_id) not in text
    assert json.loads(text)["business_ref"] == str(pseudonym(b.business_id, FUNDING_KEY))
    assert topic_of(public.aggregate_type, public.model_dump(mode="json")) == PUBLIC_PLEDGE


def test_a_pseudonym_is_stable_for_one_key_and_unrelated_under_another() -> None:
    business_id = uuid.uuid4()
    assert pseudonym(business_id, b"k" * 32) == pseudonym(business_id, b"k" * 32)
    assert pseudonym(business_id, b"k" * 32) != pseudonym(business_id, b"j" * 32)
    assert pseudonym(business_id, b"k" * 32) != business_id


def test_a_partners_link_to_a_nik_is_keyed_by_that_partners_key_and_never_the_nik_itself() -> None:
    bank, post = nik_link(MARIA_NIK, b"bank-ntt" * 4), nik_link(MARIA_NIK, b"pos" * 11)
    assert bank != post and MARIA_NIK not in bank and len(bank) == 64


def test_pseudonyms_and_nik_links_never_change_for_a_given_key_partners_have_stored_them() -> None:
    # Partners key their records on these values: any change to how they are computed breaks every partner.
    assert str(pseudonym(uuid.UUID(int=1), b"k" * 32)) == "1d7996f0-d457-48eb-8c8d-3fc0738a913a"
    assert nik_link("5371041203900001", b"p" * 32) == "205cdf863910ad5bad685486164a17569cbaaa8f079f9457977b3c736619cc17"


def test_a_referral_goes_to_its_own_partners_topic() -> None:
    assert topic_of("referral", {"partner_id": "bri"}) == "partner.bri.referral.v1"
    assert topic_of("partner_outcome", {"partner_id": "bri"}) == "partner.bri.outcomes.v1"


async def test_trainings_public_copies_list_cohorts_and_graduates_by_pseudonym_only() -> None:
    world = TrainingWorld()
    cohort = await world.cohort(await world.programme())
    business_id = uuid.uuid4()
    completed = training_events.Completed(business_id, 3, cohort, date(2026, 3, 10), 100, None)

    [opened] = training_integration.translate(training_events.CohortOpened(cohort), TRAINING_KEY)[1:]
    [internal, graduate] = training_integration.translate(completed, TRAINING_KEY)

    assert (opened.event_type, opened.change, opened.capacity) == ("CohortListed", "opened", cohort.capacity)
    assert internal.event_type == "TrainingCompleted" and graduate.event_type == "GraduateListed"
    assert graduate.business_ref == pseudonym(business_id, TRAINING_KEY) and str(business_id) not in graduate.model_dump_json()
