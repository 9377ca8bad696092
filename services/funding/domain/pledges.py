"""Sponsors' pledges: the forms a sponsor officer fills in, the pledge and its money, and the pledge's rules."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from shared.contracts.envelope import MAX_RUPIAH
from shared.contracts.funding import AmountMode, Earmarks, Instrument, SponsorKind
from shared.contracts.training import TrainingTopic
from shared.errors import Conflict, FieldError, InvalidInput
from shared.names import Name
from shared.reference.kbli import DIVISIONS
from shared.reference.wilayah import Wilayah
from shared.reference.wita import today_in_kupang


def _whole_rupiah(value: Any) -> Any:
    if isinstance(value, bool) or isinstance(value, float):
        raise ValueError("money is whole rupiah: send an integer, not a decimal number")
    return value


class SponsorForm(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: Name = Field(min_length=2, max_length=150, examples=["Bank NTT"])
    kind: SponsorKind = Field(examples=["bank"])


class EarmarksForm(BaseModel):
    """Earmarks as a sponsor officer enters them: kecamatan by name or code, KBLI codes or prefixes."""

    model_config = ConfigDict(extra="forbid")

    # Bounded, like every list a client sends: a pledge's events stay far below Kafka's record size limit.
    kecamatan: list[Annotated[str, Field(max_length=100)]] = Field(default=[], max_length=60, examples=[["Oebobo"]])
    kbli: list[Annotated[str, Field(max_length=5)]] = Field(
        default=[], max_length=100, examples=[["10", "11", "56"]], description="KBLI codes or prefixes (1-5 digits)"
    )
    scales: list[Literal["micro", "small", "medium"]] = Field(default=[], max_length=3)
    youth_owned_only: bool = False
    women_owned_only: bool = False
    nib_required: bool = False
    trainings_completed: list[TrainingTopic] = Field(
        default=[], max_length=20, description="Training topics the business must have completed",
        examples=[["halal_certification"]],
    )
    min_readiness: int = Field(default=0, ge=0, le=100)


class PledgeForm(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    sponsor_id: uuid.UUID
    title: str = Field(min_length=3, max_length=200, examples=["CSR Bank NTT untuk kuliner muda Oebobo"])
    instrument: Instrument
    financing_programme: str | None = Field(default=None, max_length=100, examples=["KUR Mikro"])
    total_rupiah: int = Field(gt=0, le=MAX_RUPIAH, examples=[50_000_000])
    amount_mode: AmountMode = "fixed"
    amount_per_business_rupiah: int = Field(gt=0, le=MAX_RUPIAH, examples=[5_000_000])
    min_offer_rupiah: int | None = Field(
        default=None, gt=0, le=MAX_RUPIAH, description="Capped pledges: the smallest offer worth making"
    )
    valid_from: date
    valid_until: date
    earmarks: EarmarksForm = EarmarksForm()

    @field_validator("total_rupiah", "amount_per_business_rupiah", "min_offer_rupiah", mode="before")
    @classmethod
    def _whole(cls, value: Any) -> Any:
        return _whole_rupiah(value)

    @field_validator("valid_until")
    @classmethod
    def _not_before_start(cls, value: date, info: ValidationInfo) -> date:
        # A field validator, not a model validator, so that the 422 names valid_until.
        start = info.data.get("valid_from")
        if start is not None and value < start:
            raise ValueError(f"valid_until is before valid_from ({start.isoformat()})")
        return value


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

    def next_offer_amount(self, reserving: int = 0) -> int | None:
        """What the next offer would be, or None if what remains is too little to offer; `reserving`: what offers
        being made now will reserve on top of what is reserved already."""
        remaining = self.remaining_rupiah - reserving
        if self.amount_mode == "fixed":
            return self.amount_per_business_rupiah if remaining >= self.amount_per_business_rupiah else None
        amount = min(self.amount_per_business_rupiah, remaining)
        return amount if amount >= self.min_offer_rupiah else None


# A pledge recorded late may start a while back; one running beyond a few budget years is a typo.
MAX_BACKDATING = timedelta(days=366)
MAX_WINDOW = timedelta(days=5 * 365)


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
        if not (prefix.isascii() and prefix.isdigit() and 1 <= len(prefix) <= 5) or (len(prefix) >= 2 and prefix[:2] not in known):
            errors.append(FieldError(f"earmarks.kbli.{i}", "kbli.unknown",
                                     f"{prefix!r} is not a KBLI code or prefix (1-5 digits, a known division)"))  # fmt: skip
    if form.amount_per_business_rupiah > form.total_rupiah:
        errors.append(FieldError("amount_per_business_rupiah", "pledge.amount_above_total",
                                 "the amount per business is larger than the whole pledge"))  # fmt: skip
    if form.valid_until < today:
        errors.append(FieldError("valid_until", "pledge.window_past", "the validity window has already ended"))
    if form.valid_from < today - MAX_BACKDATING:
        errors.append(FieldError("valid_from", "pledge.window_backdated",
                                 f"a pledge's window can start at most {MAX_BACKDATING.days} days ago"))  # fmt: skip
    if form.valid_until > today + MAX_WINDOW:
        errors.append(FieldError("valid_until", "pledge.window_too_long",
                                 f"a pledge's window can end at most {MAX_WINDOW.days // 365} years from today"))  # fmt: skip
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


def close_pledge(pledge: Pledge, reason: str, now: datetime) -> Pledge:
    if pledge.status == "closed":
        raise Conflict(f"pledge {pledge.id} is already closed", "pledge_closed")
    return replace(pledge, status="closed", closed_at=now, close_reason=reason.strip() or "closed by the sponsor")


def new_pledge(form: PledgeForm, wilayah: Wilayah, today: date, *, pledge_id: uuid.UUID, sponsor: tuple[str, str],
               created_at: datetime | None = None) -> Pledge:  # fmt: skip
    """A pledge from the sponsor officer's form, checked (every bad field named at once); `sponsor` is its (name,
    kind). Also the draft a simulation ranks candidates for, committing nothing."""
    earmarks, minimum = validate_pledge(form, wilayah, today)
    return Pledge(
        id=pledge_id, sponsor_id=form.sponsor_id, sponsor_name=sponsor[0], sponsor_kind=sponsor[1], title=form.title,
        instrument=form.instrument, financing_programme=form.financing_programme, total_rupiah=form.total_rupiah,
        amount_mode=form.amount_mode, amount_per_business_rupiah=form.amount_per_business_rupiah,
        min_offer_rupiah=minimum, valid_from=form.valid_from, valid_until=form.valid_until, earmarks=earmarks,
        status="open", created_at=created_at,
    )  # fmt: skip
