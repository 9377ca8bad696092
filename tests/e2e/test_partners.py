"""End to end with partner systems on the secured Kafka: two banks admitted with `berdaya.partners.add`, each reading
and writing with its own SCRAM credentials. A registration reaches them redacted on the public topic and never the
internal one; a KUR referral the owner consented to reaches the one bank it was meant for, with just what that bank
needs; a withdrawal is told to it; its loan approvals reach the sponsor's report, and a malformed push goes to the
dead-letter topic without holding up the rest. At the end, every topic a partner can read is scanned for personal
data that must not be there."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import httpx
import pytest
from confluent_kafka import KafkaError

from berdaya import partners
from berdaya.stack.process import stop_pid
from shared.auth import TokenService
from shared.contracts.public import PUBLIC_TOPICS, REFERRAL_FIELDS, BusinessListed, pseudonym
from shared.contracts.topics import FUNDING_PLEDGE, PUBLIC_BUSINESS, REGISTRY_BUSINESS, dlq, partner_topic
from shared.messaging.kafka import confluent_admin, consumer_lag
from shared.reference.wita import WITA, today_in_kupang
from tests.e2e.conftest import System
from tests.e2e.partner_client import (
    PartnerClient,
    Received,
    Refused,
    documented_errors,
    outcome_envelope,
    scan_partner_topics,
    scan_records,
)
from tests.e2e.test_funding_flow import _register_with_nib
from tests.support import (
    TEST_SECRET,
    Infra,
    drop_database,
    eventually,
    fresh_database,
    read_topic,
    registration,
    service_env,
    start_service,
)

pytestmark = pytest.mark.e2e

BANKS = {"bri": "Bank Rakyat Indonesia", "bank-ntt": "Bank NTT"}
KUR_AMOUNT = 25_000_000
KUR_BUSINESSES = 5  # the sponsor's report shows partners' figures from five businesses up (fewer are suppressed)
OWNER_BIRTH = date(1996, 3, 9)  # the KUR owners'
LISTED_BIRTH = date(1998, 5, 14)  # the owner registered for the public topic's test


@dataclass
class Partnered:
    system: System
    banks: dict[str, PartnerClient]
    pseudonym_key: bytes

    @property
    def admin(self):  # noqa: ANN201 - KafkaAccess
        return self.system.bootstrap


@dataclass
class KurReferrals:
    """A BRI KUR Mikro referral pledge, five businesses offered it, each offer accepted and each owner's consent to
    be referred to BRI recorded with the offer it answers."""

    sponsor_id: str
    pledge_id: str
    businesses: list[dict] = field(default_factory=list)  # registration body + id, offer_id, consent_id


def _registry_partner_call(registry_url: str):  # noqa: ANN202 - the `register` of partners.add
    """The registry's record of a partner, made as `berdaya partner add` makes it: PUT /partners/{id} as an admin."""

    def register(partner_id: str) -> None:
        token = TokenService(TEST_SECRET).mint("berdaya-partner-cli", ["admin"])
        response = httpx.put(f"{registry_url}/partners/{partner_id}", timeout=30,
                             json={"id": partner_id, "name": BANKS[partner_id]},
                             headers={"Authorization": f"Bearer {token}"})  # fmt: skip
        assert response.status_code == 200, response.text

    return register


@pytest.fixture(scope="module")
def partnered(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Partnered]:
    """The four services on topics of this module's own namespace, and two banks admitted as `berdaya partner add`
    admits them (the registry running, to record each)."""
    namespace = f"e2e-partners-{uuid.uuid4().hex[:8]}"
    # NIB coverage is published for partners every second, so public.figures.v1 has something to scan.
    env = {**service_env(infra.kafka, namespace), "REGISTRY_FIGURES_INTERVAL_SECONDS": "1"}
    logs = tmp_path_factory.mktemp("partners")
    names = ("registry", "funding", "training", "notifier")
    databases = {name: asyncio.run(fresh_database(infra.postgres_url)) for name in names}
    services = {}
    try:
        def start(name: str) -> None:
            services[name] = start_service(name, env, databases[name], logs / f"{name}.log")

        with ThreadPoolExecutor() as starting:  # each waits for its /ready; side by side is quicker
            list(starting.map(start, names))
        registry_url = services["registry"].url
        banks = {}
        for bank in BANKS:
            access = asyncio.run(partners.add(infra.kafka, bank, namespace=namespace,
                                              register=_registry_partner_call(registry_url)))  # fmt: skip
            assert access.password, "a new partner is handed its password once"
            banks[bank] = PartnerClient(bank, infra.kafka.as_user(access.user, access.password), access.group_prefix)
        # The banks are admitted while funding runs, as an operator would: its pattern subscription finds their
        # outcomes topics at its next metadata refresh (30 s; aiokafka's default of five minutes was too slow).
        system = System(services["registry"], services["funding"], services["training"], services["notifier"],
                        infra.kafka, namespace, env, TokenService(TEST_SECRET))  # fmt: skip
        yield Partnered(system, banks, env["BERDAYA_PSEUDONYM_KEY"].encode())
    finally:
        for service in services.values():
            stop_pid(service.pid)
        for url in databases.values():
            asyncio.run(drop_database(infra.postgres_url, url))


@pytest.fixture(scope="module")
def kur(partnered: Partnered) -> KurReferrals:
    return asyncio.run(_kur_referrals(partnered.system))


async def _kur_referrals(system: System) -> KurReferrals:
    officer = system.auth("officer")
    today = date.today()
    async with httpx.AsyncClient(timeout=30) as http:
        sponsor = (await http.post(f"{system.funding.url}/sponsors", json={"name": BANKS["bri"], "kind": "bank"},
                                   headers=officer)).json()  # fmt: skip
        as_sponsor = system.auth("sponsor", sponsor["id"])
        response = await http.post(f"{system.funding.url}/pledges", headers=as_sponsor, json={
            "sponsor_id": sponsor["id"], "title": "Rujukan KUR Mikro BRI: usaha Kota Lama",
            "instrument": "financing_referral", "financing_programme": "KUR Mikro",
            "total_rupiah": KUR_BUSINESSES * KUR_AMOUNT, "amount_mode": "fixed",
            "amount_per_business_rupiah": KUR_AMOUNT, "valid_from": today.isoformat(),
            "valid_until": (today + timedelta(days=90)).isoformat(),
            "earmarks": {"kecamatan": ["Kota Lama"], "nib_required": True}})  # fmt: skip
        assert response.status_code == 201, response.text
        kur = KurReferrals(sponsor["id"], response.json()["id"])
        for i in range(KUR_BUSINESSES):
            body = registration(birth=OWNER_BIRTH, gender="LP"[i % 2], name=f"Kios Sembako Kota Lama {i}",
                                kecamatan="Kota Lama", kelurahan="Oeba", kbli_code="47111")  # fmt: skip
            kur.businesses.append({**body, "id": await _register_with_nib(http, system, body)})

        async def offers() -> list[dict]:
            return (await http.get(f"{system.funding.url}/pledges/{kur.pledge_id}/offers", headers=as_sponsor)).json()

        async def every_business_offered() -> bool:
            return len(await offers()) == KUR_BUSINESSES

        assert await eventually(every_business_offered, timeout=60), await offers()
        offer_of = {o["business_id"]: o["id"] for o in await offers()}
        for business in kur.businesses:
            business["offer_id"] = offer_of[business["id"]]
            accepted = await http.post(f"{system.funding.url}/offers/{business['offer_id']}/accept", headers=officer)
            assert accepted.status_code == 200 and accepted.json()["status"] == "accepted", accepted.text
            consents = f"{system.registry.url}/businesses/{business['id']}/consents"
            consent = await http.post(consents, headers=officer, json={
                "partner_id": "bri", "purpose": "Rujukan KUR Mikro BRI untuk modal kerja kios",
                "financing_programme": "KUR Mikro", "amount_sought_rupiah": KUR_AMOUNT,
                "offer_id": business["offer_id"]})  # fmt: skip
            assert consent.status_code == 201, consent.text
            business["consent_id"] = consent.json()["id"]
    return kur


def _of_type(event_type: str, **payload: object):  # noqa: ANN202 - a predicate on records read
    def holds(records: list[Received]) -> bool:
        return any(r.event_type == event_type and all(r.payload.get(k) == v for k, v in payload.items())
                   for r in records)  # fmt: skip

    return holds


def _phone(local: str) -> str:
    return "+62" + local.removeprefix("0")


# ---------------------------------------------------------------------------------------------------------------
# What a partner reads
# ---------------------------------------------------------------------------------------------------------------


async def test_a_registered_business_reaches_a_partner_on_the_public_topic_under_a_pseudonym(partnered):
    system, bri = partnered.system, partnered.banks["bri"]
    body = registration(birth=LISTED_BIRTH, gender="P", name="Tenun Ikat Ina Ndao Alak", kecamatan="Alak",
                        kelurahan="Penkase Oeleta", kbli_code="13122")  # fmt: skip
    async with httpx.AsyncClient(timeout=30) as http:
        created = await http.post(f"{system.registry.url}/businesses", json=body, headers=system.auth("officer"))
    assert created.status_code == 201, created.text
    business_id = uuid.UUID(created.json()["id"])
    ref = str(pseudonym(business_id, partnered.pseudonym_key))

    records = await bri.read(system.topic(PUBLIC_BUSINESS), _of_type("BusinessListed", business_ref=ref))
    listed = next(r for r in records if r.event_type == "BusinessListed" and r.payload["business_ref"] == ref)
    assert listed.key == ref.encode()
    assert documented_errors("PublicRegistryBusinessV1Envelope", listed.value) == []
    event = BusinessListed.model_validate(listed.payload)
    assert (event.change, event.kecamatan, event.kelurahan, event.kbli_code) == ("registered", "Alak",
                                                                              "Penkase Oeleta", "13122")  # fmt: skip
    assert event.women_owned and event.nib_status == "none"
    text = listed.value.decode()
    for secret in (str(business_id), body["owner_name"], body["owner_nik"], body["phone"], _phone(body["phone"]),
                   body["business_name"], body["owner_birth_date"]):  # fmt: skip
        assert secret not in text


async def test_a_partner_is_refused_the_internal_topics(partnered):
    bri = partnered.banks["bri"]
    assert await bri.refusal(partnered.system.topic(REGISTRY_BUSINESS)) == KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert await bri.refusal(partnered.system.topic(FUNDING_PLEDGE)) == KafkaError.TOPIC_AUTHORIZATION_FAILED


async def test_a_consented_kur_referral_reaches_that_bank_alone_with_just_what_it_needs(partnered, kur):
    system, bri, ntt = partnered.system, partnered.banks["bri"], partnered.banks["bank-ntt"]
    referrals = system.topic(partner_topic("bri", "referral"))
    records = await bri.read(referrals, lambda rs: {r.payload.get("consent_id") for r in rs}
                             >= {b["consent_id"] for b in kur.businesses})  # fmt: skip
    by_consent = {r.payload["consent_id"]: r for r in records if r.event_type == "ReferralConsented"}
    for business in kur.businesses:
        record = by_consent[business["consent_id"]]
        assert record.key == business["consent_id"].encode()
        assert documented_errors("ReferralEnvelope", record.value) == []
        referral = record.payload
        assert set(referral) == REFERRAL_FIELDS["ReferralConsented"]
        assert {k: referral[k] for k in ("partner_id", "owner_name", "owner_phone", "business_name", "nib",
                                         "amount_sought_rupiah", "financing_programme", "offer_id")} == {
            "partner_id": "bri", "owner_name": business["owner_name"], "owner_phone": _phone(business["phone"]),
            "business_name": business["business_name"], "nib": await _nib_of(system, business["id"]),
            "amount_sought_rupiah": KUR_AMOUNT, "financing_programme": "KUR Mikro", "offer_id": business["offer_id"],
        }  # fmt: skip
        assert referral["kecamatan_code"] == "53.71.06" and referral["recorded_by"] == "e2e-officer"
        # The NIK never leaves the registry: a keyed link of BRI's own, not the NIK, nor its birth date.
        assert len(referral["owner_nik_link"]) == 64 and business["owner_nik"] not in record.value.decode()
        assert OWNER_BIRTH.isoformat() not in record.value.decode()
    # Bank NTT may not read BRI's referrals, not even in a group of its own.
    assert await ntt.refusal(referrals) == KafkaError.TOPIC_AUTHORIZATION_FAILED


async def _nib_of(system: System, business_id: str) -> str:
    async with httpx.AsyncClient(timeout=30) as http:
        found = await http.get(f"{system.registry.url}/businesses/{business_id}", headers=system.auth("officer"))
    return found.json()["nib"]


async def test_a_withdrawn_consent_is_told_to_the_bank_it_was_given_to_and_no_other(partnered, kur):
    system, ntt, bri = partnered.system, partnered.banks["bank-ntt"], partnered.banks["bri"]
    business = kur.businesses[0]
    officer = system.auth("officer")
    consents = f"{system.registry.url}/businesses/{business['id']}/consents"
    async with httpx.AsyncClient(timeout=30) as http:
        given = await http.post(consents, headers=officer, json={
            "partner_id": "bank-ntt", "purpose": "Rujukan kredit usaha Bank NTT untuk tambahan modal"})  # fmt: skip
        assert given.status_code == 201, given.text
        consent_id = given.json()["id"]
        withdrawn = await http.post(f"{consents}/{consent_id}/withdraw", headers=officer)
        assert withdrawn.status_code == 200, withdrawn.text
        assert withdrawn.json()["withdrawn_at"] is not None
        again = await http.post(f"{consents}/{consent_id}/withdraw", headers=officer)
        assert again.status_code == 409, again.text

    records = await ntt.read(system.topic(partner_topic("bank-ntt", "referral")),
                             _of_type("ReferralConsentWithdrawn", consent_id=consent_id))  # fmt: skip
    told = [r for r in records if r.payload.get("consent_id") == consent_id]
    assert [r.event_type for r in told] == ["ReferralConsented", "ReferralConsentWithdrawn"]  # in order: one key
    withdrawal = told[1].payload
    assert set(withdrawal) == REFERRAL_FIELDS["ReferralConsentWithdrawn"]
    assert withdrawal["partner_id"] == "bank-ntt"
    assert documented_errors("ReferralEnvelope", told[1].value) == []
    when = datetime.fromisoformat(withdrawn.json()["withdrawn_at"])
    assert datetime.fromisoformat(withdrawal["withdrawn_at"]) == when
    # BRI's topic never carried Bank NTT's referral.
    on_bri = await bri.read(system.topic(partner_topic("bri", "referral")),
                            lambda rs: len(rs) >= KUR_BUSINESSES)  # fmt: skip
    assert consent_id not in {r.payload.get("consent_id") for r in on_bri}


# ---------------------------------------------------------------------------------------------------------------
# What a partner writes
# ---------------------------------------------------------------------------------------------------------------


async def test_a_banks_loan_approvals_reach_the_sponsors_report_and_a_malformed_push_is_dead_lettered_not_blocking(
    partnered, kur
):  # fmt: skip
    system, bri = partnered.system, partnered.banks["bri"]
    outcomes = system.topic(partner_topic("bri", "outcomes"))
    today = today_in_kupang(datetime.now(WITA))

    def approval(business: dict) -> bytes:
        return outcome_envelope("FinancingApproved", {
            "partner_id": "bri", "consent_id": business["consent_id"], "offer_id": business["offer_id"],
            "amount_rupiah": KUR_AMOUNT, "approved_on": today.isoformat(),
        }, producer="bri-loan-origination")  # fmt: skip

    approvals = [approval(b) for b in kur.businesses]
    for value in approvals:
        assert documented_errors("OutcomeEnvelope", value) == []
    first = kur.businesses[0]["consent_id"]
    not_json = b"FinancingApproved;consent=" + first.encode() + b";amount=25jt"
    # Well-formed JSON, but the amount is text where the AsyncAPI document says an integer.
    envelope = json.loads(approvals[0])
    payload = {**envelope["payload"], "amount_rupiah": "25.000.000"}
    amount_as_text = json.dumps({**envelope, "event_id": str(uuid.uuid4()), "payload": payload}).encode()
    assert documented_errors("OutcomeEnvelope", amount_as_text)
    # The bank's system restarted and sent its first approval again, as a new event: still one loan of Rp25 juta.
    sent_again = approval(kur.businesses[0])
    keys = [b["consent_id"].encode() for b in kur.businesses]
    pushes = [(approvals[0], keys[0]), (approvals[1], keys[1]), (not_json, keys[0]), (approvals[2], keys[2]),
              (amount_as_text, keys[0]), (sent_again, keys[0]), (approvals[3], keys[3]),
              (approvals[4], keys[4])]  # fmt: skip
    for value, key in pushes:
        await bri.push(outcomes, value, key=key)

    sponsor = system.auth("sponsor", kur.sponsor_id)
    group = f"{system.namespace}.funding-partners"

    async def reported() -> list[dict]:
        async with httpx.AsyncClient(timeout=30) as http:
            report = await http.get(f"{system.funding.url}/reports/pledges/{kur.pledge_id}", headers=sponsor)
        assert report.status_code == 200, report.text
        return report.json()["partner_outcomes"]

    async def all_committed() -> bool:
        return sum((await asyncio.to_thread(consumer_lag, partnered.admin, group, [outcomes])).values()) == 0

    expected = [{"partner_id": "bri", "kind": "approved", "businesses": KUR_BUSINESSES,
                 "amount_rupiah": KUR_BUSINESSES * KUR_AMOUNT, "suppressed": False}]  # fmt: skip
    assert await eventually(all_committed, timeout=90), (await reported(), system.logs()[-3000:])
    # Every push applied or dead-lettered, none holding up those after it; the one sent again counted once.
    assert await reported() == expected
    # Funding reads the banks' outcomes topics and nothing else (not their dead letters, which it may only write),
    # and put each bad push on the DLQ once, as it came, saying why.
    assert await asyncio.to_thread(_assigned_topics, partnered.admin, group) == {
        system.topic(partner_topic(bank, "outcomes")) for bank in BANKS}
    dead = await read_topic(partnered.admin, dlq(outcomes), expect=2, timeout=60)
    assert sorted(r.value for r in dead) == sorted([not_json, amount_as_text])
    for record in dead:
        headers = {k: v.decode() for k, v in record.headers}
        assert headers["dlq.consumer"] == "funding-partners" and headers["dlq.original_topic"] == outcomes
        assert headers["dlq.error_type"] == "ContractError"


def _assigned_topics(admin, group: str) -> set[str]:  # noqa: ANN001
    """The topics whose partitions the members of consumer group `group` hold now."""
    client = confluent_admin(admin)  # kept referenced until the answer arrives
    answer = client.describe_consumer_groups([group], request_timeout=15)[group].result(timeout=30)
    return {tp.topic for member in answer.members for tp in member.assignment.topic_partitions}


async def test_a_partner_is_refused_writing_another_banks_outcomes_or_its_own_referrals(partnered):
    system, ntt = partnered.system, partnered.banks["bank-ntt"]
    forged = outcome_envelope("FinancingApproved", {
        "partner_id": "bri", "consent_id": str(uuid.uuid4()), "amount_rupiah": 1,
        "approved_on": date.today().isoformat()}, producer="bank-ntt")  # fmt: skip
    for topic in (partner_topic("bri", "outcomes"), partner_topic("bank-ntt", "referral")):
        with pytest.raises(Refused) as refused:
            await ntt.push(system.topic(topic), forged, key=b"forged")
        assert refused.value.code == KafkaError.TOPIC_AUTHORIZATION_FAILED, refused.value


# ---------------------------------------------------------------------------------------------------------------
# Nothing partners may read carries what it must not
# ---------------------------------------------------------------------------------------------------------------


async def test_no_topic_a_partner_can_read_carries_an_nik_a_phone_a_birth_date_or_a_field_outside_its_schema(
    partnered, kur
):  # fmt: skip
    system = partnered.system
    await _open_a_cohort(system)
    ns = system.namespace

    async def every_public_topic_carries_events() -> bool:
        scan = await scan_partner_topics(partnered.admin, ns)
        return all(scan.records[t] > 0 for t in PUBLIC_TOPICS)

    assert await eventually(every_public_topic_carries_events, timeout=60, interval=1)
    scan = await scan_partner_topics(partnered.admin, ns, known_names=[b["owner_name"] for b in kur.businesses],
                                     known_birth_dates=[OWNER_BIRTH, LISTED_BIRTH])  # fmt: skip
    assert not scan.findings, f"personal data where partners can read it:\n{scan}"
    # The scan was not vacuous: it read every topic partners may be given, dead letters included, and their events.
    bank_topics = {partner_topic(bank, kind) for bank in BANKS for kind in ("referral", "outcomes")}
    assert set(scan.records) >= {*PUBLIC_TOPICS, *bank_topics, *map(dlq, [*PUBLIC_TOPICS, *bank_topics])}
    assert scan.records[partner_topic("bri", "referral")] >= KUR_BUSINESSES
    assert {"BusinessListed", "PledgeAnnounced", "PledgeProgressed", "NibCoverageReported", "CohortListed",
            "ReferralConsented"} <= set(scan.event_types)  # fmt: skip


async def _open_a_cohort(system: System) -> None:
    trainer = {"Authorization": f"Bearer {system.tokens.mint('pelatih@dinas-koperasi', ['trainer'])}"}
    day = datetime.now(WITA).date() + timedelta(days=7)
    starts = datetime(day.year, day.month, day.day, 9, tzinfo=WITA)
    async with httpx.AsyncClient(timeout=30) as http:
        programme = await http.post(f"{system.training.url}/programmes", headers=trainer, json={
            "topic": "digital_marketing", "title": "Pemasaran Digital untuk Kios", "needs": [], "requires_nib": False,
            "required_attendance_percent": 80, "sessions": 1, "hours": 4, "gives_assessment": False})  # fmt: skip
        assert programme.status_code == 201, programme.text
        cohort = await http.post(f"{system.training.url}/cohorts", headers=trainer, json={
            "programme_id": programme.json()["id"], "starts_on": day.isoformat(), "ends_on": day.isoformat(),
            "capacity": 20, "venue": "Aula Kelurahan Oeba", "kecamatan": "Kota Lama",
            "sessions": [{"starts_at": starts.isoformat(),
                          "ends_at": (starts + timedelta(hours=4)).isoformat()}]})  # fmt: skip
        assert cohort.status_code == 201, cohort.text
        opened = await http.post(f"{system.training.url}/cohorts/{cohort.json()['id']}/open", headers=trainer)
        assert opened.status_code == 200, opened.text


def test_the_scanner_finds_each_kind_of_leak_and_passes_a_clean_referral():
    def record(topic: str, event_type: str, payload: dict, version: int = 1, **envelope: object) -> Received:
        value = {"event_id": str(uuid.uuid4()), "event_type": event_type, "event_version": version,
                 "aggregate_type": "x", "aggregate_id": "k", "occurred_at": "2025-11-30T01:02:03.456789+00:00",
                 "correlation_id": str(uuid.uuid4()), "producer": "registry", "actor": "e2e-officer",
                 "payload": payload, **envelope}  # fmt: skip
        return Received(topic, 0, 0, b"k", json.dumps(value).encode(), (("event_id", str(uuid.uuid4()).encode()),))

    listed = {"business_ref": str(uuid.uuid4()), "version": 1, "change": "registered", "kecamatan_code": "53.71.04",
              "kecamatan": "Oebobo", "kelurahan_code": "53.71.04.1001", "kelurahan": "Fatululi", "kbli_code": "13122",
              "kbli_version": 2020, "scale": "micro", "youth_owned": True, "women_owned": True, "nib_status": "none",
              "status": "active", "registered_on": "2025-11-30"}  # fmt: skip
    pledge = {"pledge_id": str(uuid.uuid4()), "sponsor_name": "Bank NTT", "sponsor_kind": "bank", "title": "KUR",
              "instrument": "grant", "financing_programme": None, "total_rupiah": 10, "amount_mode": "fixed",
              "amount_per_business_rupiah": 1, "valid_from": "2025-11-30", "valid_until": "2025-12-30",
              "earmarks": {"kecamatan_codes": [], "kbli_prefixes": [], "scales": [], "youth_owned_only": False,
                           "women_owned_only": False, "nib_required": False, "trainings_completed": [],
                           "min_readiness": 0}}  # fmt: skip
    referral = {"consent_id": str(uuid.uuid4()), "partner_id": "bri", "purpose": "Rujukan KUR Mikro",
                "owner_name": "Yuliana Manafe", "owner_phone": "+6281312345678", "owner_nik_link": "9" * 20 + "a" * 44,
                "business_name": "Warung Ibu Yuliana", "nib": "8123456789012", "kecamatan_code": "53.71.04",
                "financing_programme": "KUR Mikro", "amount_sought_rupiah": 25_000_000, "offer_id": None,
                "consented_at": "2025-11-30T01:02:03+00:00", "recorded_by": "e2e-officer"}  # fmt: skip
    births, names = [date(1998, 5, 14)], ["Yuliana Manafe"]

    def findings(topic: str, *records: Received) -> list[str]:
        found = scan_records(topic, records, known_names=names, known_birth_dates=births)
        return [f"{f.where}: {f.what}" for f in found]

    public, referrals = "public.registry.business.v1", "partner.bri.referral.v1"
    assert findings(public, record(public, "BusinessListed", listed)) == []
    assert findings(referrals, record(referrals, "ReferralConsented", referral)) == []
    assert findings("public.funding.pledge.v1", record("public.funding.pledge.v1", "PledgeAnnounced", pledge)) == []
    # Each leak alone is found, and named where it is.
    assert findings(public, record(public, "BusinessListed", {**listed, "owner_phone": "0813-1234-5678"})) == [
        "payload.owner_phone: a phone number '0813-1234-5678'", "payload.owner_phone: not a field of BusinessListed"]
    assert findings(public, record(public, "BusinessListed", {**listed, "kelurahan": "Fatululi 5371045405980001"})) == [
        "payload.kelurahan: an NIK-shaped number '5371045405980001'"]
    # Grouped, the NIK also gives away its owner's birth date (DDMMYY, 40 added to the day for a woman).
    assert findings(public, record(public, "BusinessListed", {**listed, "kbli_code": "5371.04.540598.0001"})) == [
        "payload.kbli_code: an NIK-shaped number '5371.04.540598.0001'", "payload.kbli_code: the birth date 1998-05-14"]
    assert findings(public, record(public, "BusinessListed", {**listed, "owner_birth_date": "1998-05-14"})) == [
        "payload.owner_birth_date: the birth date 1998-05-14",
        "payload.owner_birth_date: a field named for a birth date",
        "payload.owner_birth_date: not a field of BusinessListed"]  # fmt: skip
    assert findings("public.funding.pledge.v1", record("public.funding.pledge.v1", "PledgeAnnounced",
                    {**pledge, "earmarks": {**pledge["earmarks"], "youth_until": "2029-05-13"}})) == [
        "payload.earmarks.youth_until: not a field of Earmarks"]  # fmt: skip
    assert findings(public, record(public, "BusinessListed", listed, actor="Yuliana Manafe")) == [
        "actor: the name 'Yuliana Manafe'"]
    assert findings(public, record(public, "BusinessRegistered", listed, version=2)) == [
        "event_type: 'BusinessRegistered' v2 does not belong on this topic (only ['BusinessListed v1'])"]
    assert findings(public, Received(public, 0, 0, b"k", b"telp 081312345678")) == [
        "value: a phone number '081312345678'", "value: not a Berdaya envelope"]
    # A referral may carry the owner's name and phone where they belong, and still no NIK or birth date anywhere.
    assert findings(referrals, record(referrals, "ReferralConsented", {**referral, "purpose": "KUR, lahir 14/05/1998",
                                                                      "owner_nik": "5371045405980001"})) == [
        "payload.purpose: the birth date 1998-05-14", "payload.owner_nik: an NIK-shaped number '5371045405980001'",
        "payload.owner_nik: not a field of ReferralConsented"]  # fmt: skip
    phone_elsewhere = {**referral, "recorded_by": "+62 813 1234 5678"}
    assert findings(referrals, record(referrals, "ReferralConsented", phone_elsewhere)) == [
        "payload.recorded_by: a phone number '+62 813 1234 5678'"]
    assert findings(referrals, record(referrals, "ReferralConsented", {**referral, "partner_id": "bank-ntt"})) == [
        "payload.partner_id: 'bank-ntt' on partner bri's topic"]
    # A partner's own malformed push on its outcomes topic is its own, not a leak: only its content is scanned.
    assert findings("partner.bri.outcomes.v1.dlq", Received("x", 0, 0, None, b"not json")) == []


# ---------------------------------------------------------------------------------------------------------------
# A partner revoked (last in this module: Bank NTT is gone after it)
# ---------------------------------------------------------------------------------------------------------------


async def test_a_revoke_waits_for_funding_to_record_the_banks_last_outcomes_and_the_other_banks_keep_flowing(
        partnered) -> None:  # fmt: skip
    system, ntt, bri = partnered.system, partnered.banks["bank-ntt"], partnered.banks["bri"]
    group = f"{system.namespace}.funding-partners"
    today = today_in_kupang(datetime.now(WITA)).isoformat()

    def approval(bank: str) -> bytes:
        return outcome_envelope("FinancingApproved", {"partner_id": bank, "consent_id": str(uuid.uuid4()),
                                                      "amount_rupiah": KUR_AMOUNT, "approved_on": today},
                                producer=f"{bank}-loan-origination")  # fmt: skip

    ntt_outcomes, bri_outcomes = (system.topic(partner_topic(bank, "outcomes")) for bank in ("bank-ntt", "bri"))
    await ntt.push(ntt_outcomes, approval("bank-ntt"), key=b"last")  # just before its revoke

    def unregister(partner_id: str) -> None:
        token = TokenService(TEST_SECRET).mint("berdaya-partner-cli", ["admin"])
        response = httpx.post(f"{system.registry.url}/partners/{partner_id}/revoke", timeout=30,
                              headers={"Authorization": f"Bearer {token}"})  # fmt: skip
        assert response.status_code == 200, response.text

    removed = await asyncio.to_thread(partners.revoke, partnered.admin, "bank-ntt", namespace=system.namespace,
                                      unregister=unregister, outcomes_wait=60)  # fmt: skip

    assert removed > 0
    assert sum((await asyncio.to_thread(consumer_lag, partnered.admin, group, [ntt_outcomes])).values()) == 0
    # Funding may no longer read Bank NTT's topic; BRI's outcomes, on the same consumer, are still read.
    await bri.push(bri_outcomes, approval("bri"), key=b"after")

    async def bri_read() -> bool:
        return sum((await asyncio.to_thread(consumer_lag, partnered.admin, group, [bri_outcomes])).values()) == 0

    assert await eventually(bri_read, timeout=90), system.logs()[-3000:]
