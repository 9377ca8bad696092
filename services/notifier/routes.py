"""The notifier's HTTP API: what was said to whom and how each delivery went, for officers and operators; owners'
preferences and the directories of officers and sponsors, for officers (and admins); the channels in use. The
gateways' webhooks are in webhooks.py."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Literal

import asyncpg
from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from services.notifier import delivery_outcomes, directory
from services.notifier.domain.alerts import AlertRecipients
from services.notifier.domain.channels import CHANNELS
from services.notifier.domain.consent import Preference
from services.notifier.domain.delivery import DELIVERY_STATUSES, MESSAGE_STATUSES
from services.notifier.domain.phones import mask
from services.notifier.domain.policy import TEMPLATE_NAMES
from services.notifier.domain.texts import shown_body
from services.notifier.figures import NotifierFigures
from services.notifier.queries import MessageQueries
from services.notifier.recording import Deps
from services.notifier.store import NotifierUnitOfWork
from shared.auth import Principal
from shared.errors import NotFound
from shared.reference.wita import WITA
from shared.unit_of_work import Cause
from shared.web import PROBLEM_RESPONSES, Page, PageSize, correlation_id, principal, require_role

Template = Literal[TEMPLATE_NAMES]  # type: ignore[valid-type]
MessageStatus = Literal[MESSAGE_STATUSES]  # type: ignore[valid-type]
DeliveryStatus = Literal[DELIVERY_STATUSES]  # type: ignore[valid-type]
Channel = Literal[CHANNELS]  # type: ignore[valid-type]
Audience = Literal["owner", "officers", "sponsor", "operators"]
EMAIL_PATTERN = r"^[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(\.[A-Za-z0-9-]{1,63})*\.[A-Za-z]{2,63}$"
KECAMATAN_PATTERN = r"^[0-9]{2}\.[0-9]{2}\.[0-9]{2}$"


@dataclass
class ChannelInfo:
    name: str
    configured: bool
    gateway: str
    guarantee: str
    idempotency: str
    rate_per_second: float | None


@dataclass
class NotifierContext:
    queries: MessageQueries
    deps: Deps
    unit_of_work: Callable[[Cause], NotifierUnitOfWork]
    figures: NotifierFigures
    channels: list[ChannelInfo]
    whatsapp_app_secret: bytes | None = None
    whatsapp_phone_number_id: str | None = None  # ours: webhooks' changes for another number are skipped
    whatsapp_verify_token: str | None = None
    sms_inbound_token: str | None = None
    alertmanager_token: str | None = None  # unset: POST /webhooks/alertmanager answers 503
    alert_recipients: AlertRecipients = field(default_factory=AlertRecipients)

    @property
    def local_only(self) -> bool:
        return not any(c.configured for c in self.channels if c.name != "local")


async def context(request: Request) -> NotifierContext:
    return request.app.state.service


Ctx = Annotated[NotifierContext, Depends(context)]
Correlation = Annotated[uuid.UUID, Depends(correlation_id)]
Anyone = Annotated[Principal, Depends(principal)]
Reader = Annotated[Principal, Depends(require_role("officer", "operator"))]
Officer = Annotated[Principal, Depends(require_role("officer"))]
Keeper = Annotated[Principal, Depends(require_role("officer", "admin"))]
SponsorOrKeeper = Annotated[Principal, Depends(require_role("officer", "admin", "sponsor"))]

router = APIRouter()
_404 = {404: PROBLEM_RESPONSES[404]}
_404_409 = {404: PROBLEM_RESPONSES[404], 409: PROBLEM_RESPONSES[409]}


def _uow(ctx: NotifierContext, who: Principal, correlation: uuid.UUID) -> NotifierUnitOfWork:
    return ctx.unit_of_work(Cause.request(correlation, who.actor))


def masked(phone: str) -> str:
    """Enough for an operator to tell two numbers apart, not to call either."""
    return mask(phone)


# ---------------------------------------------------------------------------------------------------------------
# Messages and deliveries
# ---------------------------------------------------------------------------------------------------------------


class DeliveryOut(BaseModel):
    id: uuid.UUID
    channel: str = Field(description="whatsapp, sms, email, or local (the local outbox)")
    recipient: str = Field(description="Phone or email address: in full for officers, masked for others")
    status: str = Field(description="queued, sending, sent, delivered, read, failed, unknown or withheld")
    not_before: datetime = Field(description="When it may be sent (quiet hours, retry backoff), in WITA")
    attempts: int
    reason: str | None = Field(description="Why it failed, waits or was withheld, in the gateway's words where any")
    provider_id: str | None = Field(description="The gateway's id for it (WhatsApp wamid, Zenziva messageId, ...)")
    fallback_of: uuid.UUID | None = Field(description="The delivery on another channel this one replaced")
    sent_at: datetime | None
    delivered_at: datetime | None
    read_at: datetime | None


class MessageOut(BaseModel):
    id: uuid.UUID
    event_id: uuid.UUID
    business_id: uuid.UUID | None = Field(description="None for a sponsor's digest, answers to an owner's reply and alerts")
    template: str
    channel: str = Field(description="The channel of its current delivery; none while it waits for the owner's contact")
    recipient_phone: str | None = Field(
        description="In full for officers; others see only its last three digits. None while the owner's contact "
        "has not reached the notifier yet, and for messages to officers, sponsors and operators"
    )
    audience: str = Field(description="owner, officers (of kecamatan_code; none for the programme office's alerts), "
                          "sponsor (sponsor_id), or operators (alerts)")
    kecamatan_code: str | None
    sponsor_id: uuid.UUID | None
    offer_id: uuid.UUID | None
    language: str
    subject: str | None = Field(description="For email")
    body: str
    status: str = Field(description="waiting (for the owner's contact), or the status of its deliveries: queued, "
                        "sending, sent, delivered, read, failed, unknown (an operator must resolve it), withheld")
    created_at: datetime
    updated_at: datetime
    deliveries: list[DeliveryOut]


class MessagePage(BaseModel):
    total: int
    page: int
    page_size: int
    items: list[MessageOut]


class AttemptOut(BaseModel):
    delivery_id: uuid.UUID
    attempt: int
    holder: str = Field(description="The notifier process that made it")
    started_at: datetime
    finished_at: datetime | None = Field(description="None: the answer never came back (the process stopped)")
    outcome: str | None = Field(description="accepted, rejected, transient, ambiguous (no answer), lost (process stopped)")
    detail: str | None


class MessageDetail(MessageOut):
    attempts: list[AttemptOut]


def _delivery_out(row: asyncpg.Record, personal: bool) -> DeliveryOut:
    item = dict(row)
    for key in ("not_before", "sent_at", "delivered_at", "read_at"):
        item[key] = item[key].astimezone(WITA) if item[key] else None
    if not personal:
        item["recipient"] = mask(item["recipient"]) if "@" in item["recipient"] or item["recipient"].startswith("+") \
            else item["recipient"]  # fmt: skip
    return DeliveryOut(**{k: item[k] for k in DeliveryOut.model_fields})


def _sees_personal_data(who: Principal, row: asyncpg.Record) -> bool:
    """Officers see owners' phones and addresses, and an officer whose token names kecamatan only those of its
    businesses (as the registry shows the owner only there); of a business the notifier can't place, none."""
    where = row["kecamatan_code"] or row["business_kecamatan"]
    in_scope = not who.limited_to_kecamatan or (where is not None and who.acts_in_kecamatan(where))
    return who.may_see_personal_data and in_scope


def _message_out(row: asyncpg.Record, deliveries: Sequence[asyncpg.Record], personal: bool) -> dict[str, Any]:
    item = dict(row)
    item.pop("business_kecamatan")
    item["created_at"] = item["created_at"].astimezone(WITA)
    item["updated_at"] = item["updated_at"].astimezone(WITA)
    if not personal and item["recipient_phone"]:
        item["recipient_phone"] = mask(item["recipient_phone"])
    item["body"] = shown_body(item["template"], item["body"], personal)
    item["deliveries"] = [_delivery_out(d, personal) for d in deliveries]
    return item


@router.get("/messages", tags=["messages"], summary="Messages recorded, newest first, with how each delivery went")
async def list_messages(
    who: Reader, ctx: Ctx, business_id: uuid.UUID | None = None, template: Template | None = None,
    status: MessageStatus | None = None, channel: Channel | None = None, audience: Audience | None = None,
    page: Page = 1, page_size: PageSize = 50,
) -> MessagePage:  # fmt: skip
    total, rows, deliveries = await ctx.queries.search(business_id=business_id, template=template, status=status,
                                                       channel=channel, audience=audience, page=page,
                                                       page_size=page_size)  # fmt: skip
    items = [MessageOut(**_message_out(r, deliveries.get(r["id"], []), _sees_personal_data(who, r))) for r in rows]
    return MessagePage(total=total, page=page, page_size=page_size, items=items)


@router.get("/messages/{message_id}", tags=["messages"], responses=_404,
            summary="One message, its deliveries and every call made to a gateway for them")  # fmt: skip
async def get_message(message_id: uuid.UUID, who: Reader, ctx: Ctx) -> MessageDetail:
    row, deliveries, attempts = await ctx.queries.message(message_id)
    if row is None:
        raise NotFound(f"no message {message_id}")
    item = _message_out(row, deliveries, _sees_personal_data(who, row))
    item["attempts"] = [AttemptOut(**dict(a)) for a in attempts]
    return MessageDetail(**item)


class Resolution(BaseModel):
    model_config = ConfigDict(extra="forbid")

    outcome: Literal["sent", "resend", "failed"] = Field(
        description="sent: the gateway confirms it went out; resend: it did not, send it again; failed: give up")
    note: str = Field("", max_length=500, description="What the gateway said, for the record")


@router.post("/deliveries/{delivery_id}/resolve", tags=["messages"], responses=_404_409,
             summary="Settle a delivery left unknown by a crash mid-send, or try a failed one again")  # fmt: skip
async def resolve_delivery(delivery_id: uuid.UUID, body: Resolution, who: Reader, ctx: Ctx,
                           correlation: Correlation) -> DeliveryOut:  # fmt: skip
    command = delivery_outcomes.ResolveDelivery(delivery_id, body.outcome, body.note, who)
    delivery = await delivery_outcomes.resolve_delivery(command, _uow(ctx, who, correlation), ctx.deps)
    message, deliveries, _ = await ctx.queries.message(delivery.message_id)
    found = next(d for d in deliveries if d["id"] == delivery_id)
    return _delivery_out(found, message is not None and _sees_personal_data(who, message))


@router.get("/stats/messages", tags=["figures"], summary="Messages recorded, by template")
async def message_counts(ctx: Ctx) -> dict[str, int]:
    return await ctx.queries.counts_by_template()


@router.get("/stats/deliveries", tags=["figures"], summary="Deliveries by channel, then status")
async def delivery_counts(ctx: Ctx) -> dict[str, dict[str, int]]:
    return await ctx.queries.delivery_counts()


class ChannelOut(BaseModel):
    name: str
    configured: bool = Field(description="False: its messages go to the local outbox")
    gateway: str
    guarantee: str = Field(description="What happens to a send whose answer was lost: at_most_once (marked unknown "
                           "for an operator) or at_least_once (sent again)")
    idempotency: str
    rate_per_second: float | None


class ChannelsOut(BaseModel):
    local_only: bool = Field(description="No gateway configured: every message goes to the local outbox")
    channels: list[ChannelOut]
    quiet_hours: str = Field(description="WITA; phone messages wait until they end")


@router.get("/channels", tags=["operations"], summary="Which channels are configured, and their guarantees")
async def channels(_: Anyone, ctx: Ctx) -> ChannelsOut:
    quiet = ctx.deps.rules.quiet
    hours = "none" if quiet.disabled else f"{quiet.start:%H.%M}-{quiet.end:%H.%M} WITA"
    return ChannelsOut(local_only=ctx.local_only, quiet_hours=hours,
                       channels=[ChannelOut(**c.__dict__) for c in ctx.channels])  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------
# Owners' preferences
# ---------------------------------------------------------------------------------------------------------------


class PreferenceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: Literal["whatsapp", "sms"] | None = Field(
        None, description="The owner's channel; null to go back to the default (WhatsApp, then SMS)")
    language: Literal["id"] | None = Field(None, description="id (Bahasa Indonesia): the only language with texts")
    opted_out: bool | None = Field(None, description="true: only required messages (the owner asked in person)")


class PreferenceOut(BaseModel):
    business_id: uuid.UUID
    channel: str | None
    language: str
    opted_out: bool
    opted_out_at: datetime | None
    no_whatsapp_since: datetime | None = Field(description="WhatsApp said the number has none; SMS is used meanwhile")


def _preference_out(business_id: uuid.UUID, preference: Preference) -> PreferenceOut:
    def wita(moment: datetime | None) -> datetime | None:
        return moment.astimezone(WITA) if moment else None

    return PreferenceOut(business_id=business_id, channel=preference.channel, language=preference.language,
                         opted_out=preference.opted_out, opted_out_at=wita(preference.opted_out_at),
                         no_whatsapp_since=wita(preference.no_whatsapp_since))  # fmt: skip


@router.get("/owners/{business_id}/preferences", tags=["preferences"], responses=_404,
            summary="An owner's channel, language and consent")  # fmt: skip
async def get_preferences(business_id: uuid.UUID, who: Officer, ctx: Ctx, correlation: Correlation) -> PreferenceOut:
    async with _uow(ctx, who, correlation) as uow:
        _, preference = await directory.owner_preference(business_id, who, uow)
    return _preference_out(business_id, preference)


@router.put("/owners/{business_id}/preferences", tags=["preferences"], responses=_404,
            summary="Record an owner's channel, language or consent, as they asked an officer")  # fmt: skip
async def put_preferences(business_id: uuid.UUID, body: PreferenceIn, who: Officer, ctx: Ctx,
                          correlation: Correlation) -> PreferenceOut:  # fmt: skip
    command = directory.SetPreference(business_id, who, channel=body.channel,
                                      clear_channel="channel" in body.model_fields_set and body.channel is None,
                                      language=body.language, opted_out=body.opted_out)  # fmt: skip
    preference = await directory.set_preference(command, _uow(ctx, who, correlation), ctx.deps)
    return _preference_out(business_id, preference)


# ---------------------------------------------------------------------------------------------------------------
# Directories: officers by kecamatan, sponsors' addresses
# ---------------------------------------------------------------------------------------------------------------


class OfficerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str = Field(max_length=254, pattern=EMAIL_PATTERN)
    name: str = Field(min_length=1, max_length=200)
    kecamatan_codes: list[Annotated[str, Field(pattern=KECAMATAN_PATTERN)]] = Field(
        default=[], max_length=20, description="Kemendagri codes, e.g. 53.71.04; empty: the whole city")


class OfficerOut(BaseModel):
    id: uuid.UUID
    email: str
    name: str
    kecamatan_codes: list[str]


class OfficerPage(BaseModel):
    total: int
    page: int
    page_size: int
    items: list[OfficerOut]


@router.get("/directory/officers", tags=["directory"], summary="Officers who get their kecamatan's email")
async def list_officers(_: Keeper, ctx: Ctx, page: Page = 1, page_size: PageSize = 100) -> OfficerPage:
    total, rows = await ctx.queries.officers(page, page_size)
    return OfficerPage(total=total, page=page, page_size=page_size,
                       items=[OfficerOut(**{k: r[k] for k in OfficerOut.model_fields}) for r in rows])  # fmt: skip


@router.post("/directory/officers", tags=["directory"],
             summary="Add an officer (or change the one with this email): their kecamatan's messages go to them")  # fmt: skip
async def save_officer(body: OfficerIn, who: Keeper, ctx: Ctx, correlation: Correlation) -> OfficerOut:
    codes = tuple(sorted(set(body.kecamatan_codes)))
    officer_id = await directory.save_officer(directory.SaveOfficer(body.email.lower(), body.name, codes, who),
                                              _uow(ctx, who, correlation), ctx.deps)  # fmt: skip
    return OfficerOut(id=officer_id, email=body.email.lower(), name=body.name, kecamatan_codes=list(codes))


@router.delete("/directory/officers/{officer_id}", tags=["directory"], status_code=204, responses=_404,
               summary="Remove an officer from the directory")  # fmt: skip
async def remove_officer(officer_id: uuid.UUID, who: Keeper, ctx: Ctx, correlation: Correlation) -> Response:
    await directory.remove_officer(officer_id, who, _uow(ctx, who, correlation), ctx.deps)
    return Response(status_code=204)


class SponsorContactIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str = Field(max_length=254, pattern=EMAIL_PATTERN)
    name: str | None = Field(None, max_length=200, description="Who reads it, e.g. the CSR officer")


class SponsorContactOut(BaseModel):
    sponsor_id: uuid.UUID
    email: str
    name: str | None


class SponsorContactPage(BaseModel):
    total: int
    page: int
    page_size: int
    items: list[SponsorContactOut]


@router.get("/directory/sponsors", tags=["directory"], summary="Where each sponsor's weekly digest goes")
async def list_sponsor_contacts(_: Keeper, ctx: Ctx, page: Page = 1, page_size: PageSize = 100) -> SponsorContactPage:
    total, rows = await ctx.queries.sponsor_contacts(page, page_size)
    return SponsorContactPage(total=total, page=page, page_size=page_size,
                              items=[SponsorContactOut(**{k: r[k] for k in SponsorContactOut.model_fields})
                                     for r in rows])  # fmt: skip


@router.put("/directory/sponsors/{sponsor_id}", tags=["directory"],
            summary="Set where a sponsor's weekly digest goes (a city-wide officer, an admin, or the sponsor "
            "itself)")  # fmt: skip
async def put_sponsor_contact(sponsor_id: uuid.UUID, body: SponsorContactIn, who: SponsorOrKeeper, ctx: Ctx,
                              correlation: Correlation) -> SponsorContactOut:  # fmt: skip
    await directory.save_sponsor_contact(sponsor_id, body.email.lower(), body.name, who, _uow(ctx, who, correlation))
    return SponsorContactOut(sponsor_id=sponsor_id, email=body.email.lower(), name=body.name)
