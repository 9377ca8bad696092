"""The load: what officers and sponsors do all day, through the services' HTTP APIs, while faults are injected.

Officers register businesses one by one and import the city's list in chunks (berdaya.dataset rows), record NIB
applications and their outcomes, correct and close businesses, record sponsors and answer offers; sponsors make
pledges and pay accepted offers out. A request that fails because a service is down is retried the way a careful
client would (on another replica where there is one); a request the system answers 4xx is fine and counted.

Every write the system acknowledged is remembered (`Acknowledged`), so the checker can tell whether any of them was
lost; only acknowledged writes count as produced. After a request that may have been applied but got no answer, a
retry can meet its own first attempt (a 409 naming the business, the pending application, the sponsor); that 409
is taken as the acknowledgement it is.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from berdaya.dataset import COLUMNS, generate
from chaos.system import System
from shared.reference.wita import today_in_kupang

# Outcome of one logical request (after its retries), and of each attempt.
OK, CONFLICT, CLIENT_ERROR, GAVE_UP = "2xx", "409", "other 4xx", "gave up"
REFUSED, NO_ANSWER, UNAVAILABLE, SERVER_ERROR = "refused", "no answer", "503", "other 5xx"


@dataclass
class Acknowledged:
    """Writes the system said yes to; the checker looks for every one of them in the databases."""

    businesses: dict[str, str] = field(default_factory=dict)  # business id -> NIK, single registrations
    imported_niks: set[str] = field(default_factory=set)  # rows of acknowledged imports not reported as errors
    applications: dict[str, str] = field(default_factory=dict)  # NIB application id -> business id
    outcomes: dict[str, str] = field(default_factory=dict)  # application id -> issued | rejected
    sponsors: dict[str, str] = field(default_factory=dict)  # sponsor id -> name
    pledges: dict[str, str] = field(default_factory=dict)  # pledge id -> sponsor id
    accepted: set[str] = field(default_factory=set)  # offer ids
    declined: set[str] = field(default_factory=set)
    disbursed: set[str] = field(default_factory=set)
    closed: set[str] = field(default_factory=set)  # business ids
    updated: set[str] = field(default_factory=set)


@dataclass
class ServerError:
    action: str
    status: int
    body: str
    at: float  # seconds into the load
    url: str = ""  # the replica that answered: its log has the traceback


@dataclass
class LoadStats:
    requests: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))  # action -> outcome -> n
    attempts: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))  # action -> attempt failure -> n
    events: Counter = field(default_factory=Counter)  # action -> events the acknowledged requests produced
    server_errors: list[ServerError] = field(default_factory=list)
    ambiguous_resolved: Counter = field(default_factory=Counter)  # action -> 409s that were our own earlier attempt
    load_errors: Counter = field(default_factory=Counter)  # failures of the load generator itself, by message
    seconds: float = 0.0

    @property
    def events_produced(self) -> int:
        return sum(self.events.values())


class Api:
    """An HTTP client that retries what the system could not answer, until it answers or `patience` runs out."""

    def __init__(self, http: httpx.AsyncClient, stats: LoadStats, clock: Callable[[], float], patience: float) -> None:
        self.http = http
        self.stats = stats
        self.clock = clock
        self.patience = patience

    async def call(self, action: str, method: str, urls: list[str], path: str, *, token: str,
                   json: Any = None, params: dict | None = None, timeout: float = 30,
                   idempotency_key: str | None = None) -> tuple[httpx.Response | None, bool]:  # fmt: skip
        """The answer (None if it never came) and whether an earlier attempt may already have been applied."""
        deadline = time.monotonic() + self.patience
        delay, ambiguous = 0.2, False
        headers = {"Authorization": f"Bearer {token}"}
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        for attempt in itertools.count():
            url = urls[attempt % len(urls)] if attempt else random.choice(urls)
            try:
                response = await self.http.request(method, url + path, json=json, params=params, headers=headers,
                                                   timeout=httpx.Timeout(timeout, connect=3))  # fmt: skip
            except (httpx.ConnectError, httpx.ConnectTimeout):
                self.stats.attempts[action][REFUSED] += 1  # never reached the service: nothing happened
            except httpx.TransportError:
                self.stats.attempts[action][NO_ANSWER] += 1  # sent, then the connection died: it may have happened
                ambiguous = True
            else:
                if response.status_code == 503:
                    self.stats.attempts[action][UNAVAILABLE] += 1  # "nothing was changed; try again"
                elif response.status_code >= 500:
                    self.stats.attempts[action][SERVER_ERROR] += 1
                    self.stats.server_errors.append(ServerError(action, response.status_code, response.text[:500],
                                                                self.clock(), url))  # fmt: skip
                    ambiguous = True
                else:
                    self._count(action, response.status_code)
                    return response, ambiguous
            if time.monotonic() + delay > deadline:
                self.stats.requests[action][GAVE_UP] += 1
                return None, ambiguous
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
        raise AssertionError("unreachable")

    def _count(self, action: str, status: int) -> None:
        outcome = OK if status < 300 else CONFLICT if status == 409 else CLIENT_ERROR
        self.stats.requests[action][outcome] += 1


def _problem(response: httpx.Response) -> dict[str, Any]:
    try:
        return response.json()
    except ValueError:
        return {}


SPONSORS = (
    ("Bank NTT", "bank"), ("Bank Rakyat Indonesia Kupang", "bank"), ("PLN UIP Nusa Tenggara", "state_owned"),
    ("Pos Indonesia Kupang", "pos_indonesia"), ("Telkom Witel NTT", "state_owned"), ("Jasa Raharja NTT", "insurer"),
    ("Dinas Koperasi Kota Kupang", "government"),
)  # fmt: skip
EARMARKS = (
    {},
    {"kecamatan": ["Oebobo"]},
    {"kbli": ["10", "56"], "nib_required": True},
    {"kbli": ["13", "14"], "women_owned_only": True},
    {"youth_owned_only": True, "kecamatan": ["Kelapa Lima", "Maulafa"]},
    {"scales": ["micro"], "nib_required": True},
    {"kecamatan": ["Alak", "Kota Lama"], "kbli": ["47"]},
    {"kecamatan": ["Kota Raja"], "scales": ["micro", "small"]},
)


@dataclass(frozen=True)
class Mix:
    """How many of each action per event the load aims for; imports make up the rest."""

    singles: float = 0.10
    nib: float = 0.08
    updates: float = 0.01
    closures: float = 0.005
    pledge_every_events: int = 600  # one pledge per this many events
    offers_per_pledge: tuple[int, int] = (15, 90)
    import_chunk: tuple[int, int] = (300, 2000)


class Load:
    """Runs until `seconds` have passed and `events` were acknowledged (or three times `seconds`, whichever first),
    and in any case while `held` (faults still to come)."""

    def __init__(self, system: System, *, events: int, seconds: float, seed: int, mix: Mix = Mix()) -> None:
        self.system = system
        self.target_events = events
        self.seconds = seconds
        self.rng = random.Random(seed)
        self.mix = mix
        self.stats = LoadStats()
        self.acked = Acknowledged()
        self.rows: Iterator[dict[str, str]] = generate(10 * events + 20_000, seed=seed)
        self.officer = system.token("officer")
        self._sponsor_tokens: dict[str, str] = {}
        self._started = 0.0
        self._stop = asyncio.Event()
        self.heavy_import_wanted = asyncio.Event()  # set by the faults module: import something big now
        self.held = False  # set while faults are still to come: the load goes on past its time
        # Work in progress, as an officer's desk would have it.
        self._chunks: list[list[list[str]]] = []  # acknowledged import chunks, for re-imports
        self._without_nib: list[str] = []
        self._pending: list[tuple[float, str, str]] = []  # (applied at, application id, business id)
        self._singles: list[str] = []
        self._to_disburse: list[tuple[str, str]] = []  # (offer id, pledge id)
        self._nib_serial = itertools.count(1)
        self._titles = itertools.count(1)

    def begin(self) -> None:
        """Start the clock the faults are timed by; run() starts it too if nobody did."""
        self._started = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self._started

    @property
    def rate(self) -> float:
        """Events per second the load aims for."""
        return self.target_events / self.seconds

    def done(self) -> bool:
        elapsed = self.elapsed()
        if self.held:
            return False  # faults are still being injected: keep the system busy while they are
        return elapsed >= 3 * self.seconds or (elapsed >= self.seconds and self.stats.events_produced >= self.target_events)

    # -- the run ---------------------------------------------------------------------------------------------------

    async def run(self) -> LoadStats:
        if not self._started:
            self.begin()
        limits = httpx.Limits(max_connections=50, max_keepalive_connections=0)  # a new connection per request
        async with httpx.AsyncClient(limits=limits) as http:
            self.api = Api(http, self.stats, self.elapsed, patience=max(180.0, self.seconds))
            await self._step(self._sponsors)
            workers = [self._importer(), self._singles_worker(), self._singles_worker(), self._nib_worker(),
                       self._pledge_worker(), self._offer_worker(), self._disburse_worker(), self._corrections_worker()]  # fmt: skip
            tasks = [asyncio.create_task(w) for w in workers]
            try:
                while not self.done() and not self._stop.is_set():
                    await asyncio.sleep(0.5)
            finally:
                self._stop.set()
                await asyncio.gather(*tasks)
        self.stats.seconds = self.elapsed()
        return self.stats

    async def _every(self, interval: Callable[[], float], step: Callable[[], Any]) -> None:
        """Run `step` again and again, `interval()` seconds apart, until the load stops."""
        while not self._stop.is_set():
            await self._step(step)
            try:
                await asyncio.wait_for(self._stop.wait(), timeout=max(0.01, interval()))
            except TimeoutError:
                pass

    async def _step(self, step: Callable[[], Any], *args: Any) -> None:
        """One step of a worker; a step that fails in the load generator itself is counted (and shown), not fatal."""
        try:
            await step(*args)
        except Exception as exc:  # noqa: BLE001 - reported in the figures
            self.stats.load_errors[f"{step.__name__}: {type(exc).__name__}: {exc}"[:300]] += 1

    def _produced(self, action: str, events: int) -> None:
        self.stats.events[action] += events

    # -- registrations and imports ---------------------------------------------------------------------------------

    def _body(self, row: dict[str, str]) -> dict[str, str]:
        return {k: v for k, v in row.items() if v != ""}

    async def _singles_worker(self) -> None:
        await self._every(lambda: self.rng.expovariate(self.rate * self.mix.singles / 2), self._register_one)

    async def _register_one(self) -> None:
        row = next(self.rows)
        response, ambiguous = await self.api.call("register", "POST", self.system.urls("registry"), "/businesses",
                                                  token=self.officer, json=self._body(row))  # fmt: skip
        if response is None:
            return
        business_id = None
        if response.status_code == 201:
            business_id = response.json()["id"]
            self._produced("register", 1)
        elif response.status_code == 409 and ambiguous and _problem(response).get("code") == "probable_duplicate":
            business_id = _problem(response)["existing_business_id"]  # our own first attempt went in
            self.stats.ambiguous_resolved["register"] += 1
            self._produced("register", 1)
        if business_id:
            self.acked.businesses[business_id] = row["owner_nik"]
            self._singles.append(business_id)
            if not row["nib"]:
                self._without_nib.append(business_id)

    async def _importer(self) -> None:
        """Imports chunks of the city's list whenever the load falls behind its pace, or when a fault wants a heavy
        import to kill a relay in the middle of; now and then re-imports an earlier chunk with some sales figures
        changed (an updated list)."""
        low, high = self.mix.import_chunk
        while not self._stop.is_set():
            behind = self.rate * min(self.elapsed(), self.seconds) - self.stats.events_produced
            if self.elapsed() > self.seconds:
                behind = max(behind, self.target_events - self.stats.events_produced)
            if self.heavy_import_wanted.is_set():
                self.heavy_import_wanted.clear()
                await self._step(self._import, high)
            elif behind >= low:
                if self._chunks and self.rng.random() < 0.15:
                    await self._step(self._reimport)
                else:
                    await self._step(self._import, int(min(high, max(low, behind))))
            try:
                await asyncio.wait_for(self._stop.wait(), timeout=0.5)
            except TimeoutError:
                pass

    async def _import(self, size: int) -> None:
        chunk = [[row[c] for c in COLUMNS] for row in itertools.islice(self.rows, size)]
        report = await self._send_import("import", chunk)
        if report is not None:
            self._chunks.append(chunk)

    async def _reimport(self) -> None:
        chunk = [list(values) for values in self.rng.choice(self._chunks)]
        sales = COLUMNS.index("annual_sales_rupiah")
        for values in chunk:
            if values[sales] and self.rng.random() < 0.1:
                values[sales] = str(self.rng.randrange(20, 1900) * 1_000_000)  # still within micro: 2 billion a year
        await self._send_import("reimport", chunk)

    async def _send_import(self, action: str, chunk: list[list[str]]) -> dict | None:
        body = {"columns": list(COLUMNS), "rows": [{"line": i + 2, "values": v} for i, v in enumerate(chunk)]}
        response, _ = await self.api.call(action, "POST", self.system.urls("registry"), "/imports/businesses",
                                          token=self.officer, json=body, timeout=300)  # fmt: skip
        if response is None or response.status_code != 200:
            return None
        report = response.json()
        # A retried chunk reports as unchanged what its first attempt registered: every row without an error is in.
        refused = {e["line"] for e in report["errors"]}
        nik = COLUMNS.index("owner_nik")
        self.acked.imported_niks.update(v[nik] for i, v in enumerate(chunk) if i + 2 not in refused)
        self._produced(action, report["registered"] + report["updated"])
        return report

    # -- NIB applications and outcomes -----------------------------------------------------------------------------

    async def _nib_worker(self) -> None:
        await self._every(lambda: self.rng.expovariate(self.rate * self.mix.nib), self._nib_step)

    async def _nib_step(self) -> None:
        due = [p for p in self._pending if p[0] < self.elapsed() - 2]
        if due and self.rng.random() < 0.5:
            pending = self.rng.choice(due)
            self._pending.remove(pending)
            await self._decide(pending[1], pending[2])
            return
        if len(self._without_nib) < 20:
            await self._find_without_nib()
        if self._without_nib:
            business_id = self._without_nib.pop(self.rng.randrange(len(self._without_nib)))
            await self._apply(business_id)

    async def _find_without_nib(self) -> None:
        params = {"nib_status": "none", "status": "active", "page_size": 100, "page": self.rng.randint(1, 5)}
        response, _ = await self.api.call("search", "GET", self.system.urls("registry"), "/businesses",
                                          token=self.officer, params=params)  # fmt: skip
        if response is not None and response.status_code == 200:
            self._without_nib.extend(b["id"] for b in response.json()["items"])

    async def _apply(self, business_id: str) -> None:
        response, ambiguous = await self.api.call("nib apply", "POST", self.system.urls("registry"),
                                                  f"/businesses/{business_id}/nib-applications", token=self.officer)  # fmt: skip
        if response is None:
            return
        application_id = None
        if response.status_code == 201:
            application_id = response.json()["id"]
            self._produced("nib apply", 1)
        elif response.status_code == 409 and _problem(response).get("code") == "nib_application_pending":
            application_id = _problem(response)["application_id"]
            if ambiguous:
                self.stats.ambiguous_resolved["nib apply"] += 1
                self._produced("nib apply", 1)
        if application_id:
            self.acked.applications[application_id] = business_id
            self._pending.append((self.elapsed(), application_id, business_id))

    async def _decide(self, application_id: str, business_id: str) -> None:
        if self.rng.random() < 0.75:
            outcome = {"outcome": "issued", "nib": f"97{next(self._nib_serial):011d}"}
        else:
            outcome = {"outcome": "rejected", "reason": "KBLI tidak sesuai dengan kegiatan usaha"}
        path = f"/businesses/{business_id}/nib-applications/{application_id}/outcome"
        response, ambiguous = await self.api.call("nib outcome", "POST", self.system.urls("registry"), path,
                                                  token=self.officer, json=outcome)  # fmt: skip
        if response is None:
            return
        if response.status_code == 200 or (ambiguous and _problem(response).get("code") == "nib_application_decided"):
            self.acked.outcomes[application_id] = outcome["outcome"]
            self._produced("nib outcome", 1)
            if response.status_code != 200:
                self.stats.ambiguous_resolved["nib outcome"] += 1
            if outcome["outcome"] == "rejected":
                self._without_nib.append(business_id)  # the owner fixes the application and applies again

    # -- corrections and closures ----------------------------------------------------------------------------------

    async def _corrections_worker(self) -> None:
        rate = self.rate * (self.mix.updates + self.mix.closures)
        await self._every(lambda: self.rng.expovariate(rate), self._correct_one)

    async def _correct_one(self) -> None:
        if len(self._singles) < 10:
            return
        business_id = self.rng.choice(self._singles)
        urls = self.system.urls("registry")
        if self.rng.random() < self.mix.closures / (self.mix.updates + self.mix.closures):
            self._singles.remove(business_id)
            response, ambiguous = await self.api.call("close", "POST", urls, f"/businesses/{business_id}/close",
                                                      token=self.officer, json={"reason": "Pemilik pindah ke Atambua"})  # fmt: skip
            if response is not None and (response.status_code == 200 or
                                         (ambiguous and _problem(response).get("code") == "business_closed")):  # fmt: skip
                self.acked.closed.add(business_id)
                self._produced("close", 1)
            return
        body = {"annual_sales_rupiah": self.rng.randrange(24, 1900) * 1_000_000}
        response, _ = await self.api.call("update", "PATCH", urls, f"/businesses/{business_id}", token=self.officer,
                                          json=body)  # fmt: skip
        if response is not None and response.status_code == 200:
            self.acked.updated.add(business_id)
            self._produced("update", 1)

    # -- sponsors, pledges and offers ------------------------------------------------------------------------------

    def sponsor_token(self, sponsor_id: str) -> str:
        if sponsor_id not in self._sponsor_tokens:
            self._sponsor_tokens[sponsor_id] = self.system.token("sponsor", uuid.UUID(sponsor_id))
        return self._sponsor_tokens[sponsor_id]

    async def _sponsors(self) -> None:
        for name, kind in SPONSORS:
            response, _ = await self.api.call("sponsor", "POST", self.system.urls("funding"), "/sponsors",
                                              token=self.officer, json={"name": name, "kind": kind})  # fmt: skip
            if response is None:
                continue
            if response.status_code == 201:
                self.acked.sponsors[response.json()["id"]] = name
            elif response.status_code == 409 and "existing_sponsor_id" in _problem(response):
                self.acked.sponsors[_problem(response)["existing_sponsor_id"]] = name

    async def _pledge_worker(self) -> None:
        pledges = max(4, self.target_events // self.mix.pledge_every_events)
        # Spread over the first four fifths of the run, so the last offers are answered before it ends.
        await self._every(lambda: 0.8 * self.seconds / pledges, self._pledge)

    async def _pledge(self) -> None:
        if not self.acked.sponsors:
            return
        sponsor_id = self.rng.choice(sorted(self.acked.sponsors))
        amount = self.rng.choice((1_000_000, 2_500_000, 5_000_000, 7_500_000, 10_000_000))
        today = today_in_kupang(datetime.now(UTC))
        instrument = self.rng.choice(("grant", "grant", "equipment", "soft_loan", "financing_referral"))
        title = f"Program {self.acked.sponsors[sponsor_id]} #{next(self._titles)}"
        body: dict[str, Any] = {
            "sponsor_id": sponsor_id, "title": title, "instrument": instrument,
            "total_rupiah": amount * self.rng.randint(*self.mix.offers_per_pledge),
            "amount_per_business_rupiah": amount, "valid_from": today.isoformat(),
            "valid_until": (today + timedelta(days=90)).isoformat(), "earmarks": self.rng.choice(EARMARKS),
        }  # fmt: skip
        if instrument == "financing_referral":
            body["financing_programme"] = "KUR Mikro"
        if self.rng.random() < 0.25:
            body.update(amount_mode="capped", min_offer_rupiah=amount // 2)
        urls, token = self.system.urls("funding"), self.sponsor_token(sponsor_id)
        # Retried under one Idempotency-Key, an attempt whose answer was lost and the retry make one pledge.
        key = str(uuid.uuid4())
        response, ambiguous = await self.api.call("pledge", "POST", urls, "/pledges", token=token, json=body,
                                                  idempotency_key=key)  # fmt: skip
        if response is not None and response.status_code == 201:
            self.acked.pledges[response.json()["id"]] = sponsor_id
            self._produced("pledge", 1)
        elif ambiguous:
            # Given up on: an attempt may have made it; look for it by its title.
            found, _ = await self.api.call("pledge lookup", "GET", urls, "/pledges", token=token,
                                           params={"sponsor_id": sponsor_id})  # fmt: skip
            if found is not None and found.status_code == 200:
                mine = [p["id"] for p in found.json() if p["title"] == title]
                if mine:
                    self.acked.pledges[mine[0]] = sponsor_id
                    self.stats.ambiguous_resolved["pledge"] += 1
                    self._produced("pledge", 1)

    async def _offer_worker(self) -> None:
        await self._every(lambda: self.rng.uniform(1.0, 3.0), self._answer_offers)

    async def _answer_offers(self) -> None:
        if not self.acked.pledges:
            return
        pledge_id = self.rng.choice(sorted(self.acked.pledges))
        urls = self.system.urls("funding")
        response, _ = await self.api.call("offers", "GET", urls, f"/pledges/{pledge_id}/offers", token=self.officer,
                                          params={"status": "offered"})  # fmt: skip
        if response is None or response.status_code != 200:
            return
        offers = response.json()
        for offer in self.rng.sample(offers, min(len(offers), self.rng.randint(1, 4))):
            if self.rng.random() < 0.65:
                response, ambiguous = await self.api.call("accept", "POST", urls, f"/offers/{offer['id']}/accept",
                                                          token=self.officer)  # fmt: skip
                if response is not None and (response.status_code == 200 or (ambiguous and _accepted(response))):
                    self.acked.accepted.add(offer["id"])
                    self._to_disburse.append((offer["id"], pledge_id))
                    self._produced("accept", 1)
            else:
                response, ambiguous = await self.api.call("decline", "POST", urls, f"/offers/{offer['id']}/decline",
                                                          token=self.officer, json={"reason": "Pemilik belum siap"})  # fmt: skip
                if response is not None and (response.status_code == 200 or (ambiguous and _declined(response))):
                    self.acked.declined.add(offer["id"])
                    self._produced("decline", 1)

    async def _disburse_worker(self) -> None:
        await self._every(lambda: self.rng.uniform(1.0, 3.0), self._disburse)

    async def _disburse(self) -> None:
        if not self._to_disburse or self.rng.random() < 0.3:
            return
        offer_id, pledge_id = self._to_disburse.pop(0)
        token = self.sponsor_token(self.acked.pledges[pledge_id])
        body = {"reference": f"TRF-CHAOS-{offer_id[:8]}"}
        response, ambiguous = await self.api.call("disburse", "POST", self.system.urls("funding"),
                                                  f"/offers/{offer_id}/disburse", token=token, json=body)  # fmt: skip
        if response is not None and (response.status_code == 200 or (ambiguous and _disbursed(response))):
            self.acked.disbursed.add(offer_id)
            self._produced("disburse", 1)


def _status_in_conflict(response: httpx.Response) -> str | None:
    return _problem(response).get("offer_status") if response.status_code == 409 else None


def _accepted(response: httpx.Response) -> bool:
    return _status_in_conflict(response) in ("accepted", "disbursed")


def _declined(response: httpx.Response) -> bool:
    return _status_in_conflict(response) == "declined"


def _disbursed(response: httpx.Response) -> bool:
    problem = _problem(response)
    return response.status_code == 409 and problem.get("code") == "offer_not_accepted" and \
        " is disbursed;" in problem.get("detail", "")  # fmt: skip
