"""Sponsor reports and simulations: where the money is, with small counts suppressed so no business is identifiable."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from services.funding.domain.offers import Candidate
from services.funding.domain.pledges import Pledge
from shared.contracts.funding import PledgeTotals

SUPPRESS_BELOW = 5


def suppressed(count: int) -> bool:
    """Counts under 5 (and their amounts, which would reveal them) are not shown."""
    return 0 < count < SUPPRESS_BELOW


def totals_of(pledges: Sequence[Pledge]) -> PledgeTotals:
    """pledged = reserved + accepted + disbursed + remaining, over the pledges."""
    return PledgeTotals(
        pledged_rupiah=sum(p.total_rupiah for p in pledges), reserved_rupiah=sum(p.reserved_rupiah for p in pledges),
        accepted_rupiah=sum(p.accepted_rupiah for p in pledges),
        disbursed_rupiah=sum(p.disbursed_rupiah for p in pledges),
        remaining_rupiah=sum(p.remaining_rupiah for p in pledges),
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class OfferGroup:
    """Offers of one state to businesses of one kecamatan and scale (as funding knows them)."""

    status: str
    kecamatan_code: str
    scale: str
    offers: int
    amount_rupiah: int


@dataclass(frozen=True, slots=True)
class StateRow:
    group: str
    suppressed: bool
    businesses: int | None
    reserved_rupiah: int | None
    accepted_rupiah: int | None
    disbursed_rupiah: int | None


@dataclass(frozen=True, slots=True)
class OutcomeRow:
    """What partners reported on the referrals these pledges made: financing approved, disbursed or declined."""

    partner_id: str
    kind: str
    businesses: int | None  # None when suppressed
    amount_rupiah: int | None
    suppressed: bool


@dataclass(frozen=True, slots=True)
class Report:
    subject: str
    pledges: list[uuid.UUID]
    totals: PledgeTotals
    reconciles: bool  # the totals add up, and equal the sums of the offers in each state
    by_kecamatan: list[StateRow]
    by_scale: list[StateRow]
    partner_outcomes: list[OutcomeRow] = field(default_factory=list)


_MONEY_STATE = {"offered": "reserved_rupiah", "accepted": "accepted_rupiah", "disbursed": "disbursed_rupiah"}


def reconciles(totals: PledgeTotals, groups: Sequence[OfferGroup]) -> bool:
    sums: dict[str, int] = defaultdict(int)
    for g in groups:
        sums[g.status] += g.amount_rupiah
    return (
        totals.pledged_rupiah == totals.reserved_rupiah + totals.accepted_rupiah + totals.disbursed_rupiah
        + totals.remaining_rupiah
        and (sums["offered"], sums["accepted"], sums["disbursed"])
        == (totals.reserved_rupiah, totals.accepted_rupiah, totals.disbursed_rupiah)
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Holders:
    """How many businesses hold offers with money promised or paid (offered, accepted, disbursed), per kecamatan code
    and per scale: a business offered by two of the pledges, or offered by one and paid by another, counts once."""

    by_kecamatan: dict[str, int]
    by_scale: dict[str, int]


def state_rows(groups: Sequence[OfferGroup], group_of: Callable[[OfferGroup], str],
               holders: dict[str, int]) -> list[StateRow]:  # fmt: skip
    """Money still promised or paid (offered, accepted, disbursed) per group, groups of under 5 businesses (not
    offers: one business may hold several) suppressed."""
    totals: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for g in groups:
        if g.status in _MONEY_STATE:
            totals[group_of(g)][_MONEY_STATE[g.status]] += g.amount_rupiah
    rows = []
    for name, t in sorted(totals.items()):
        businesses = holders.get(name, 0)
        hidden = suppressed(businesses)
        rows.append(StateRow(name, hidden, None if hidden else businesses,
                             *(None if hidden else t[k] for k in _MONEY_STATE.values())))  # fmt: skip
    return rows


def report(subject: str, pledges: Sequence[Pledge], groups: Sequence[OfferGroup], kecamatan_names: dict[str, str],
           holders: Holders, outcomes: Sequence[tuple[str, str, int, int]] = ()) -> Report:  # fmt: skip
    """`outcomes`: (partner, kind, businesses, rupiah) of what partners reported on these pledges' referrals."""
    totals = totals_of(pledges)

    def kecamatan(code: str) -> str:
        return kecamatan_names.get(code, code)

    return Report(
        subject=subject, pledges=[p.id for p in pledges], totals=totals, reconciles=reconciles(totals, groups),
        by_kecamatan=state_rows(groups, lambda g: kecamatan(g.kecamatan_code),
                                {kecamatan(code): n for code, n in holders.by_kecamatan.items()}),
        by_scale=state_rows(groups, lambda g: g.scale, holders.by_scale),
        partner_outcomes=[OutcomeRow(partner, kind, None if suppressed(n) else n, None if suppressed(n) else amount,
                                     suppressed(n)) for partner, kind, n, amount in sorted(outcomes)],
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class GroupRow:
    group: str
    businesses: int | None  # None when suppressed
    amount_rupiah: int | None
    suppressed: bool


@dataclass(frozen=True, slots=True)
class Simulation:
    """None for every figure when fewer than 5 businesses are eligible (`suppressed`): with earmarks that only two
    businesses meet, the figures would tell a sponsor which of them ranks first, so whether another sponsor funded it
    (funded-before ranks first), and the readiness score a trainer's assessment is part of."""
    businesses_funded: int | None
    amount_committed_rupiah: int | None
    remaining_rupiah: int | None
    eligible_businesses: int | None
    by_kecamatan: list[GroupRow]
    by_sector: list[GroupRow]
    suppressed: bool = False


# The name a simulation gives to its groups of fewer than 5 businesses, merged: named one by one, a small group would
# tell who ranked first among a few.
SMALL_GROUPS = "groups of fewer than 5 businesses, together"


def grouped(pairs: Sequence[tuple[str, int]]) -> list[GroupRow]:
    """(group, amount) pairs as one row per group, small groups suppressed."""
    groups: dict[str, list[int]] = defaultdict(list)
    for group, amount in pairs:
        groups[group].append(amount)
    return [
        GroupRow(group, None if suppressed(len(a)) else len(a), None if suppressed(len(a)) else sum(a), suppressed(len(a)))
        for group, a in sorted(groups.items())
    ]


def _small_ones_merged(rows: list[GroupRow], pairs: Sequence[tuple[str, int]]) -> list[GroupRow]:
    small = {r.group for r in rows if r.suppressed}
    if not small:
        return rows
    [merged] = grouped([(SMALL_GROUPS, amount) for group, amount in pairs if group in small])
    return [r for r in rows if not r.suppressed] + [merged]


def simulation(funded: Sequence[Candidate], amounts: Sequence[int], remaining: int, eligible: int,
               kecamatan_names: dict[str, str]) -> Simulation:  # fmt: skip
    if suppressed(eligible):
        return Simulation(None, None, None, None, [], [], suppressed=True)
    pairs = list(zip(funded, amounts, strict=True))
    by_kecamatan = [(kecamatan_names.get(c.business.kecamatan_code, c.business.kecamatan_code), a) for c, a in pairs]
    by_sector = [(sector_of(c.business.kbli_code), a) for c, a in pairs]
    return Simulation(
        businesses_funded=len(funded), amount_committed_rupiah=sum(amounts), remaining_rupiah=remaining,
        eligible_businesses=eligible,
        by_kecamatan=_small_ones_merged(grouped(by_kecamatan), by_kecamatan),
        by_sector=_small_ones_merged(grouped(by_sector), by_sector),
    )  # fmt: skip


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
