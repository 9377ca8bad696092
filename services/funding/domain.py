"""Funding rules with no I/O: earmarks and their explanations, the readiness score, ranking, allocation of a
pledge's money to offers, the offer's state machine, and sponsor reports with small counts suppressed."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.contracts.funding import AmountMode, Earmarks, Instrument, SponsorKind
from shared.errors import Conflict, FieldError, InvalidInput
from shared.reference.kbli import DIVISIONS
from shared.reference.wilayah import Wilayah
from shared.reference.wita import today_in_kupang

# ---------------------------------------------------------------------------------------------------------------
# What funding knows of a business (built only from registry and training events)
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BusinessView:
    business_id: uuid.UUID
    version: int
    business_name: str
    contact_phone: str
    kecamatan_code: str
    kbli_code: str
    scale: str
    youth_owned: bool  # as of the last registry snapshot
    youth_until: date | None
    women_owned: bool
    nib_status: str
    status: str
    annual_sales_rupiah: int | None
    registered_at: datetime
    trainings: frozenset[str] = frozenset()
    funded_count: int = 0  # offers accepted or disbursed, over all pledges
    eligible_since: datetime | None = None  # when what funding knows of it last changed

    def youth_on(self, day: date) -> bool:
        """Youth as of `day`: the registry's flag, aged by the last day the owner is within the range."""
        return self.youth_owned and self.youth_until is not None and day <= self.youth_until


# ---------------------------------------------------------------------------------------------------------------
# Readiness: what the service knows of management, leadership and prospects
# ---------------------------------------------------------------------------------------------------------------

READINESS_RULES = (
    ("nib", 25, "holds an NIB: the business is legal and can take credit and certification"),
    ("trainings", 45, "15 per completed training programme (packaging, product quality, halal, digital marketing), up to 45"),
    ("sales_reported", 10, "annual sales are reported: the owner keeps figures"),
    ("youth", 10, "youth-owned: the city's stated priority"),
    ("track_record", 10, "registered at least a year ago"),
)


@dataclass(frozen=True, slots=True)
class Readiness:
    score: int
    parts: dict[str, int]


def readiness(business: BusinessView, today: date) -> Readiness:
    """0 to 100, documented in READINESS_RULES; a funding decision must be explainable to the business."""
    parts = {
        "nib": 25 if business.nib_status == "issued" else 0,
        "trainings": min(45, 15 * len(business.trainings)),
        "sales_reported": 10 if business.annual_sales_rupiah is not None else 0,
        "youth": 10 if business.youth_on(today) else 0,
        "track_record": 10 if (today - today_in_kupang(business.registered_at)).days >= 365 else 0,
    }
    return Readiness(sum(parts.values()), parts)


def rank_key(business: BusinessView, score: int) -> tuple[Any, ...]:
    """Never funded before first, then higher readiness, then earlier registration, then id: fully deterministic."""
    return (business.funded_count > 0, -score, business.registered_at, str(business.business_id))


# ---------------------------------------------------------------------------------------------------------------
# Earmarks
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Check:
    earmark: str
    required: str
    value: str
    passed: bool


def evaluate(earmarks: Earmarks, business: BusinessView, today: date) -> list[Check]:
    """Every earmark of the pledge with the business's value and whether it passed; also the business's status."""
    checks = [Check("business_active", "active", business.status, business.status == "active")]
    if earmarks.kecamatan_codes:
        checks.append(Check("kecamatan", " or ".join(earmarks.kecamatan_codes), business.kecamatan_code,
                            business.kecamatan_code in earmarks.kecamatan_codes))  # fmt: skip
    if earmarks.kbli_prefixes:
        checks.append(Check("kbli", "starts with " + " or ".join(earmarks.kbli_prefixes), business.kbli_code,
                            business.kbli_code.startswith(tuple(earmarks.kbli_prefixes))))  # fmt: skip
    if earmarks.scales:
        checks.append(Check("scale", " or ".join(earmarks.scales), business.scale, business.scale in earmarks.scales))
    if earmarks.youth_owned_only:
        youth = business.youth_on(today)
        checks.append(Check("youth_owned", "owner aged 16-30", "yes" if youth else "no", youth))
    if earmarks.women_owned_only:
        checks.append(Check("women_owned", "woman owner", "yes" if business.women_owned else "no", business.women_owned))
    if earmarks.nib_required:
        checks.append(Check("nib", "issued", business.nib_status, business.nib_status == "issued"))
    for programme in earmarks.trainings_completed:
        done = programme in business.trainings
        checks.append(Check(f"training:{programme}", "completed", "completed" if done else "not completed", done))
    if earmarks.min_readiness:
        score = readiness(business, today).score
        checks.append(Check("min_readiness", f">= {earmarks.min_readiness}", str(score), score >= earmarks.min_readiness))
    return checks


def eligible(earmarks: Earmarks, business: BusinessView, today: date) -> bool:
    return all(c.passed for c in evaluate(earmarks, business, today))


# ---------------------------------------------------------------------------------------------------------------
# Sponsors and pledges
# ---------------------------------------------------------------------------------------------------------------


def _whole_rupiah(value: Any) -> Any:
    if isinstance(value, bool) or isinstance(value, float):
        raise ValueError("money is whole rupiah: send an integer, not a decimal number")
    return value


class SponsorForm(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=2, max_length=150, examples=["Bank NTT"])
    kind: SponsorKind = Field(examples=["bank"])


class EarmarksForm(BaseModel):
    """Earmarks as a sponsor officer enters them: kecamatan by name or code, KBLI codes or prefixes."""

    model_config = ConfigDict(extra="forbid")

    kecamatan: list[str] = Field(default=[], examples=[["Oebobo"]])
    kbli: list[str] = Field(default=[], examples=[["10", "11", "56"]], description="KBLI codes or prefixes (1-5 digits)")
    scales: list[Literal["micro", "small", "medium"]] = []
    youth_owned_only: bool = False
    women_owned_only: bool = False
    nib_required: bool = False
    trainings_completed: list[Literal["packaging", "product_quality", "halal_certification", "digital_marketing"]] = []
    min_readiness: int = Field(default=0, ge=0, le=100)


class PledgeForm(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    sponsor_id: uuid.UUID
    title: str = Field(min_length=3, max_length=200, examples=["CSR Bank NTT untuk kuliner muda Oebobo"])
    instrument: Instrument
    financing_programme: str | None = Field(default=None, max_length=100, examples=["KUR Mikro"])
    total_rupiah: int = Field(gt=0, examples=[50_000_000])
    amount_mode: AmountMode = "fixed"
    amount_per_business_rupiah: int = Field(gt=0, examples=[5_000_000])
    min_offer_rupiah: int | None = Field(default=None, gt=0, description="Capped pledges: the smallest offer worth making")
    valid_from: date
    valid_until: date
    earmarks: EarmarksForm = EarmarksForm()

    @field_validator("total_rupiah", "amount_per_business_rupiah", "min_offer_rupiah", mode="before")
    @classmethod
    def _whole(cls, value: Any) -> Any:
        return _whole_rupiah(value)

    @model_validator(mode="after")
    def _consistent(self) -> PledgeForm:
        if self.valid_until < self.valid_from:
            raise ValueError("valid_until is before valid_from")
        return self


@dataclass(frozen=True, slots=True)
class Pledge:
    id: uuid.UUID
    sponsor_id: uuid.UUID
    sponsor_name: str
    sponsor_kind: str
    title: str
    instrument: str
    financing_programme: str | None
    total_rupiah: int
    amount_mode: str
    amount_per_business_rupiah: int
    min_offer_rupiah: int
    valid_from: date
    valid_until: date
    earmarks: Earmarks
    status: str  # open | exhausted | closed
    reserved_rupiah: int = 0
    accepted_rupiah: int = 0
    disbursed_rupiah: int = 0
    created_at: datetime | None = None
    closed_at: datetime | None = None
    close_reason: str | None = None
    matched_at: datetime | None = None

    @property
    def remaining_rupiah(self) -> int:
        return self.total_rupiah - self.reserved_rupiah - self.accepted_rupiah - self.disbursed_rupiah

    @property
    def matched_in_window(self) -> bool:
        """Ranked matching has run since the window opened."""
        return self.matched_at is not None and today_in_kupang(self.matched_at) >= self.valid_from

    def open_on(self, day: date) -> bool:
        return self.status != "closed" and self.valid_from <= day <= self.valid_until

    def next_offer_amount(self) -> int | None:
        """What the next offer would be, or None if what remains is too little to offer."""
        remaining = self.remaining_rupiah
        if self.amount_mode == "fixed":
            return self.amount_per_business_rupiah if remaining >= self.amount_per_business_rupiah else None
        amount = min(self.amount_per_business_rupiah, remaining)
        return amount if amount >= self.min_offer_rupiah else None


def validate_pledge(form: PledgeForm, wilayah: Wilayah, today: date) -> tuple[Earmarks, int]:
    """The earmarks in canonical form and the minimum offer; every bad field named at once."""
    errors: list[FieldError] = []
    codes = []
    for i, name in enumerate(form.earmarks.kecamatan):
        kec = wilayah.find_kecamatan(name)
        if kec is None:
            errors.append(FieldError(f"earmarks.kecamatan.{i}", "wilayah.unknown_kecamatan",
                                     f"{name!r} is not a kecamatan of Kota Kupang ({', '.join(k.name for k in wilayah.kecamatan)})"))  # fmt: skip
        else:
            codes.append(kec.code)
    for i, prefix in enumerate(form.earmarks.kbli):
        known = DIVISIONS[2020] | DIVISIONS[2025]
        if not (prefix.isdigit() and 1 <= len(prefix) <= 5) or (len(prefix) >= 2 and prefix[:2] not in known):
            errors.append(FieldError(f"earmarks.kbli.{i}", "kbli.unknown",
                                     f"{prefix!r} is not a KBLI code or prefix (1-5 digits, a known division)"))  # fmt: skip
    if form.amount_per_business_rupiah > form.total_rupiah:
        errors.append(FieldError("amount_per_business_rupiah", "pledge.amount_above_total",
                                 "the amount per business is larger than the whole pledge"))  # fmt: skip
    if form.valid_until < today:
        errors.append(FieldError("valid_until", "pledge.window_past", "the validity window has already ended"))
    minimum = form.min_offer_rupiah or (form.amount_per_business_rupiah if form.amount_mode == "fixed"
                                        else max(1, form.amount_per_business_rupiah // 2))  # fmt: skip
    if minimum > form.amount_per_business_rupiah:
        errors.append(FieldError("min_offer_rupiah", "pledge.min_above_cap", "the minimum offer is above the cap"))
    if form.instrument == "financing_referral" and not form.financing_programme:
        errors.append(FieldError("financing_programme", "pledge.programme_missing",
                                 "name the financing programme the businesses are referred to (e.g. KUR Mikro)"))  # fmt: skip
    if errors:
        raise InvalidInput(errors)
    e = form.earmarks
    earmarks = Earmarks(
        kecamatan_codes=tuple(sorted(set(codes))), kbli_prefixes=tuple(sorted(set(e.kbli))), scales=tuple(sorted(set(e.scales))),
        youth_owned_only=e.youth_owned_only, women_owned_only=e.women_owned_only, nib_required=e.nib_required,
        trainings_completed=tuple(sorted(set(e.trainings_completed))), min_readiness=e.min_readiness,
    )  # fmt: skip
    return earmarks, minimum


# ---------------------------------------------------------------------------------------------------------------
# Matching and allocation
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Offer:
    id: uuid.UUID
    pledge_id: uuid.UUID
    business_id: uuid.UUID
    amount_rupiah: int
    status: str  # offered | accepted | declined | expired | withdrawn | disbursed
    offered_at: datetime
    expires_at: datetime
    readiness: int
    rank: int | None
    ranking: dict[str, Any] = field(default_factory=dict)
    decided_at: datetime | None = None
    reason: str | None = None
    disbursed_at: datetime | None = None
    reference: str | None = None


@dataclass(frozen=True, slots=True)
class Candidate:
    business: BusinessView
    readiness: Readiness
    rank: int


def rank_candidates(earmarks: Earmarks, businesses: Iterable[BusinessView], today: date) -> list[Candidate]:
    scored = [(b, readiness(b, today)) for b in businesses if eligible(earmarks, b, today)]
    scored.sort(key=lambda pair: rank_key(pair[0], pair[1].score))
    return [Candidate(b, r, i + 1) for i, (b, r) in enumerate(scored)]


def ranking_inputs(candidate: Candidate, today: date) -> dict[str, Any]:
    """What decided the candidate's place, kept with the offer so 'why' can be answered later."""
    b = candidate.business
    return {
        "rank": candidate.rank,
        "funded_before": b.funded_count > 0,
        "readiness": candidate.readiness.score,
        "readiness_parts": candidate.readiness.parts,
        "registered_at": b.registered_at.isoformat(),
        "evaluated_on": today.isoformat(),
    }


def allocate(
    pledge: Pledge, candidates: Sequence[Candidate], now: datetime, offer_days: int, new_id: Any = uuid.uuid4
) -> tuple[Pledge, list[Offer]]:
    """Offer to candidates in rank order while the pledge can afford the next offer. Never over-allocates."""
    offers = []
    today = today_in_kupang(now)
    for candidate in candidates:
        amount = pledge.next_offer_amount()
        if amount is None or not pledge.open_on(today):
            break
        offers.append(Offer(new_id(), pledge.id, candidate.business.business_id, amount, "offered", now,
                            now + timedelta(days=offer_days), candidate.readiness.score,
                            candidate.rank if len(candidates) > 1 else None, ranking_inputs(candidate, today)))  # fmt: skip
        pledge = replace(pledge, reserved_rupiah=pledge.reserved_rupiah + amount)
    return settle_status(pledge), offers


def settle_status(pledge: Pledge) -> Pledge:
    if pledge.status == "closed":
        return pledge
    return replace(pledge, status="exhausted" if pledge.next_offer_amount() is None else "open")


# ---------------------------------------------------------------------------------------------------------------
# An offer's life
# ---------------------------------------------------------------------------------------------------------------


def _require_offered(offer: Offer, action: str) -> None:
    if offer.status != "offered":
        raise Conflict(f"offer {offer.id} is {offer.status}; it can't be {action}", "offer_not_open",
                       {"status": offer.status})  # fmt: skip


def accept(pledge: Pledge, offer: Offer, business: BusinessView | None, now: datetime) -> tuple[Pledge, Offer]:
    """Everything is checked again at acceptance: the window, the offer's expiry, the cap and every earmark."""
    _require_offered(offer, "accepted")
    today = today_in_kupang(now)
    problems = []
    if not pledge.open_on(today):
        problems.append(f"the pledge is {pledge.status} or outside its window {pledge.valid_from} to {pledge.valid_until}")
    if now >= offer.expires_at:
        problems.append(f"the offer expired at {offer.expires_at.isoformat()}")
    if offer.amount_rupiah > pledge.amount_per_business_rupiah:
        problems.append("the amount is above the pledge's per-business cap")
    failed = [c for c in evaluate(pledge.earmarks, business, today) if not c.passed] if business else []
    if business is None:
        problems.append("funding no longer knows this business")
    problems += [f"earmark {c.earmark} not met: needs {c.required}, is {c.value}" for c in failed]
    if problems:
        raise Conflict("the offer can't be accepted: " + "; ".join(problems), "offer_not_acceptable",
                       {"problems": problems})  # fmt: skip
    return (
        replace(pledge, reserved_rupiah=pledge.reserved_rupiah - offer.amount_rupiah,
                accepted_rupiah=pledge.accepted_rupiah + offer.amount_rupiah),
        replace(offer, status="accepted", decided_at=now),
    )  # fmt: skip


def release(pledge: Pledge, offer: Offer, status: str, now: datetime, reason: str | None = None) -> tuple[Pledge, Offer]:
    """Decline, expiry or withdrawal: the offer's money goes back to the pledge."""
    if offer.status == "offered":
        pledge = replace(pledge, reserved_rupiah=pledge.reserved_rupiah - offer.amount_rupiah)
    elif offer.status == "accepted" and status == "withdrawn":
        pledge = replace(pledge, accepted_rupiah=pledge.accepted_rupiah - offer.amount_rupiah)
    else:
        _require_offered(offer, status)
    return settle_status(pledge), replace(offer, status=status, decided_at=now, reason=reason)


def decline(pledge: Pledge, offer: Offer, reason: str, now: datetime) -> tuple[Pledge, Offer]:
    _require_offered(offer, "declined")
    return release(pledge, offer, "declined", now, reason.strip() or "declined by the business")


def expire(pledge: Pledge, offer: Offer, now: datetime) -> tuple[Pledge, Offer]:
    _require_offered(offer, "expired")
    if now < offer.expires_at:
        raise Conflict(f"offer {offer.id} runs until {offer.expires_at.isoformat()}", "offer_not_due")
    return release(pledge, offer, "expired", now)


def disburse(pledge: Pledge, offer: Offer, reference: str, now: datetime) -> tuple[Pledge, Offer]:
    if offer.status != "accepted":
        raise Conflict(f"offer {offer.id} is {offer.status}; only an accepted offer is disbursed", "offer_not_accepted")
    if not reference.strip():
        raise InvalidInput.one("reference", "reference.missing", "give the transfer or handover reference")
    return (
        replace(pledge, accepted_rupiah=pledge.accepted_rupiah - offer.amount_rupiah,
                disbursed_rupiah=pledge.disbursed_rupiah + offer.amount_rupiah),
        replace(offer, status="disbursed", disbursed_at=now, reference=reference.strip()),
    )  # fmt: skip


def close_pledge(pledge: Pledge, reason: str, now: datetime) -> Pledge:
    if pledge.status == "closed":
        raise Conflict(f"pledge {pledge.id} is already closed", "pledge_closed")
    return replace(pledge, status="closed", closed_at=now, close_reason=reason.strip() or "closed by the sponsor")


# ---------------------------------------------------------------------------------------------------------------
# Reports
# ---------------------------------------------------------------------------------------------------------------

SUPPRESS_BELOW = 5


@dataclass(frozen=True, slots=True)
class ReportRow:
    group: str
    businesses: int | None  # None when suppressed
    amount_rupiah: int | None
    suppressed: bool


def suppressed_rows(groups: dict[str, tuple[int, int]]) -> list[ReportRow]:
    """Counts under 5 (and their amounts, which would reveal them) are suppressed, so no business is identifiable."""
    rows = []
    for group, (count, amount) in sorted(groups.items()):
        small = 0 < count < SUPPRESS_BELOW
        rows.append(ReportRow(group, None if small else count, None if small else amount, small))
    return rows


def simulate(pledge: Pledge, candidates: Sequence[Candidate]) -> tuple[list[Candidate], list[int], int]:
    """Who a pledge would fund now and with how much, committing nothing: (funded, amounts, remaining)."""
    funded, amounts = [], []
    for candidate in candidates:
        amount = pledge.next_offer_amount()
        if amount is None:
            break
        funded.append(candidate)
        amounts.append(amount)
        pledge = replace(pledge, reserved_rupiah=pledge.reserved_rupiah + amount)
    return funded, amounts, pledge.remaining_rupiah


def sector_of(kbli_code: str) -> str:
    """A KBLI 2-digit division as a readable sector group for reports."""
    division = int(kbli_code[:2])
    for (lo, hi), name in _SECTORS:
        if lo <= division <= hi:
            return name
    return f"KBLI {kbli_code[:2]}"


_SECTORS = (
    ((10, 12), "food and drink processing"),
    ((13, 15), "textiles, weaving and clothing"),
    ((16, 33), "other manufacturing and crafts"),
    ((45, 47), "trade"),
    ((55, 56), "food service and lodging"),
    ((58, 63), "information and communication"),
    ((94, 96), "personal services and repair"),
    ((1, 3), "agriculture and fisheries"),
)
