"""What the outbox writes for a partner's topic: who made the change stays in the audit trail, on every topic a
partner may read, a partner's own referral topic included (a withdrawal would otherwise name the officer)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest

from shared.contracts import new_envelope
from shared.contracts.public import ReferralConsented, ReferralConsentWithdrawn
from shared.contracts.topics import REGISTRY_BUSINESS, namespaced, topic_of
from shared.messaging.outbox import _row

OFFICER = "petugas.oebobo@kupangkota.go.id"
NOW = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


def referral(consent_id: uuid.UUID) -> ReferralConsented:
    return ReferralConsented(
        consent_id=consent_id, partner_id="bri", purpose="Rujukan KUR Mikro BRI untuk modal kerja",
        owner_name="Yohanes Ndun", owner_phone="+6281234567890", owner_nik_link="ab" * 32,
        business_name="Warung Ndun", kecamatan_code="53.71.01", consented_at=NOW, recorded_by=OFFICER,
    )  # fmt: skip


@pytest.mark.parametrize("namespace", ["", "kupang", "test.run-7"])
def test_a_referral_and_its_withdrawal_reach_the_partner_without_the_officers_identity(namespace: str) -> None:
    consent_id = uuid.uuid4()
    for payload in (referral(consent_id), ReferralConsentWithdrawn(consent_id=consent_id, partner_id="bri",
                                                                   withdrawn_at=NOW)):  # fmt: skip
        envelope = new_envelope(payload, producer="registry", correlation_id=uuid.uuid4(), actor=OFFICER)
        topic = namespaced(topic_of(envelope.aggregate_type, envelope.payload), namespace)

        written = json.loads(_row(envelope, topic)[6])

        assert written["actor"] is None, payload.event_type
        assert envelope.actor == OFFICER  # what the audit trail records
        assert written["aggregate_id"] == str(consent_id)  # the record's key: a withdrawal supersedes its referral


def test_whatever_its_type_an_event_routed_to_a_partner_topic_is_written_without_its_actor() -> None:
    withdrawn = ReferralConsentWithdrawn(consent_id=uuid.uuid4(), partner_id="bri", withdrawn_at=NOW)
    envelope = new_envelope(withdrawn, producer="registry", correlation_id=uuid.uuid4(), actor=OFFICER)
    internal = envelope.model_copy(update={"aggregate_type": "business"})

    assert json.loads(_row(internal, REGISTRY_BUSINESS)[6])["actor"] == OFFICER
    assert json.loads(_row(internal, "kupang.partner.bri.referral.v1")[6])["actor"] is None
    assert json.loads(_row(internal, "kupang.public.figures.v1")[6])["actor"] is None
    assert json.loads(_row(internal, "kupang.registry.business.v1")[6])["actor"] == OFFICER
