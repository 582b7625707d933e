"""Budget enforcement on the hot path: hold the worst case, settle the actual cost, sweep.

Every budget row holds `spent_usd` and `reserved_usd` for its current period. Budget is
reserved with one conditional UPDATE

    UPDATE budget SET reserved = reserved + :grant
    WHERE id = :id AND spent + reserved + :need <= limit

so that no interleaving of concurrent requests, in any number of processes, can take spend
past the limit, on PostgreSQL (row lock + re-check of the WHERE) as on SQLite (one writer at
a time). The reservation row (`BudgetReservation`) grows by the same grant in the same
statement (PostgreSQL) or IMMEDIATE transaction (SQLite). The same statement rolls the period
over: when the row's `period_start` is before the current period's start, `spent` counts as
zero and `period_start` moves; the CASE is idempotent, so two requests at the boundary
cannot reset twice.

Leases (`BUDGET_LEASES`, on in the web server). A process reserves a chunk of the budget
(a `Lease`: one reservation row per event loop and budget) and holds each request's worst
case from the chunk in memory, with no round trip; when the chunk cannot cover a request it
tops up with one UPDATE. A top-up grants the shortfall plus `BUDGET_LEASE_FRACTION` of the
headroom left after it, at most `BUDGET_LEASE_REQUESTS` times the request's worst case: the
chunk shrinks as the budget nears its limit and is exactly the request's worst case at the
limit. Within one process a lease never refuses what per-request reservation would admit;
across processes, a request can be refused while other processes' unused chunks still hold
the headroom it needed (docs/gateway.md, "Leases", for the bound). A lease is replaced when
its budget's settings change (seen within HOT_CHECK_SECONDS) or its period ends, returned
after `BUDGET_LEASE_IDLE_SECONDS` unused, and its row renewed while in use, so the sweeper only
ever releases the leases of dead processes. Off (and in short-lived event loops such as
Celery tasks) every request has a private lease of exactly its worst case: the per-request
reservation, through the same code.

Settling moves a request's actual cost into `spent` and takes it off its reservation (a
private one is closed, releasing the rest); it runs in the usage writer's transaction,
together with the usage records it accounts for, so the ledger always equals the sum of the
usage records. Lease returns go through the same writer, after the settlements queued before
them. The sweeper releases reservations not renewed for `BUDGET_RESERVATION_TIMEOUT_SECONDS`.

The amounts are exact on both databases: PostgreSQL's numeric is; on SQLite, whose decimals
are binary floating point, the counters, the limit and the reservation amounts are integer
units of 1e-10 dollars (`core.money.MoneyCounterField`), and spend.budget_sql holds each
vendor's statements.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, Decimal
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from accounts.models import ApiKey, Team
from core.db import reconnecting
from core.hot import hot_get
from core.money import (
    COST_DIGITS,
    MAX_LIMIT_USD,
    ZERO,
    MoneySum,
    counter_add,
    units_usd,
    usd_limit_problem,
    usd_units,
)
from spend.budget_sql import FRACTION_SCALE, POSTGRESQL, SQLITE, budget_statements
from spend.models import Budget, BudgetReservation
from spend.periods import period_bounds
from spend.pg import is_serving, pg_connection, pg_enabled

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BudgetInfo:
    """A budget's configuration, cached briefly; its amounts are only ever read in SQL."""

    id: int
    team_id: int
    api_key_id: int | None
    period: str
    limit_usd: Decimal
    action: str
    downgrade_tier: str | None

    @property
    def scope(self) -> str:
        return "key" if self.api_key_id else "team"


# ---------------------------------------------------------------- configuration (cached)


@reconnecting
def _team_budgets(team_id: int) -> tuple[BudgetInfo, ...]:
    rows = Budget.objects.filter(team_id=team_id).select_related("downgrade_tier")
    return tuple(
        BudgetInfo(
            id=b.id,
            team_id=b.team_id,
            api_key_id=b.api_key_id,
            period=b.period,
            limit_usd=b.limit_usd,
            action=b.action,
            downgrade_tier=b.downgrade_tier.name if b.downgrade_tier else None,
        )
        for b in rows
    )


async def budgets_for(*, team_id: int, api_key_id: int | None) -> tuple[BudgetInfo, ...]:
    """The team's budget and the key's own, if any, from the process's hot cache
    (`core.hot`: a changed budget is seen by every process within HOT_CHECK_SECONDS)."""
    budgets = await hot_get(("budgets", team_id), lambda: sync_to_async(_team_budgets)(team_id))
    return tuple(b for b in budgets if b.api_key_id is None or b.api_key_id == api_key_id)


# ---------------------------------------------------------------- SQL (spend.budget_sql)

_PLACES = Decimal(1).scaleb(-COST_DIGITS["decimal_places"])


def _decimal(value: object) -> Decimal:
    return Decimal(str(value)).quantize(_PLACES)


def _money(value: Any, sqlite: bool) -> Decimal:
    """An amount a budget statement returned: integer units on SQLite."""
    return units_usd(int(value)) if sqlite else _decimal(value)


def _adapt(value: object, sqlite: bool) -> object:
    """A parameter for SQLite: money as integer units of the counters (spend.budget_sql),
    datetimes as Django writes them (naive UTC)."""
    if sqlite and isinstance(value, Decimal):
        return usd_units(value)
    if sqlite and isinstance(value, dt.datetime):
        return connection.ops.adapt_datetimefield_value(value)
    return value


def _params(budget: BudgetInfo, now: dt.datetime, *, sqlite: bool, **values: object) -> dict:
    start = period_bounds(budget.period, now)[0]
    values = {"id": budget.id, "start": start, "now": now, **values}
    return {name: _adapt(value, sqlite) for name, value in values.items()}


def _top_up_params(lease: Lease, now: dt.datetime, amounts: dict, *, sqlite: bool) -> dict:
    if sqlite:  # the share's fraction in parts per million (spend.budget_sql)
        amounts = {**amounts, "fraction": int(amounts["fraction"] * FRACTION_SCALE)}
    return _params(
        lease.budget,
        now,
        sqlite=sqlite,
        rid=lease.reservation_id,
        request_id=lease.request_id,
        **amounts,
    )


# ---------------------------------------------------------------- leases


def leasing() -> bool:
    """Shared leases need a long-lived event loop (the web server's, see `spend.pg.serving`):
    a short-lived one (a Celery task, `async_to_sync`) would leave its leases to the sweeper."""
    return settings.BUDGET_LEASES and is_serving()


@dataclass(frozen=True, slots=True)
class Settlement:
    """One change to a budget and its reservation row, written by the usage writer."""

    budget: BudgetInfo
    reservation_id: int | None
    spend: Decimal = ZERO  # actual cost, into spent_usd
    release: Decimal = ZERO  # taken off the row and off reserved_usd (if the row is open)
    close: bool = False  # close the row, releasing all it still holds
    credit: Decimal = ZERO  # taken off spent + reserved once written (spend.budget_sql)


@dataclass(eq=False, slots=True)
class Lease:
    """Budget reserved in one `BudgetReservation` row and handed out to requests from memory.

    Shared: this event loop's lease on a budget, used by all its requests. Private: one
    request's own reservation of exactly its worst case (leasing off, or a short-lived loop),
    closed when the request settles. Both reserve with the same statement.

    Only code on the loop touches it, between awaits, so the amounts need no lock. One top-up
    runs at a time; the requests short of budget meanwhile wait for it and all wake when it
    lands (queued on a lock, they woke one per turn of a busy loop: 60-300 ms each at a
    thousand requests a second). A shared lease also tops itself up early, once less than
    half its spare is free, so that under steady traffic requests are held from memory while
    the database answers."""

    budget: BudgetInfo
    period_start: dt.datetime
    request_id: str
    shared: bool
    reservation_id: int | None = None
    amount: Decimal = ZERO  # what the row holds, less what was handed to the usage writer
    held: Decimal = ZERO  # worst cases of the requests in flight on it
    limit: Decimal | None = None  # the budget's limit at the last top-up (None: none yet)
    base: Decimal = ZERO  # at the last top-up: spent, and reserved outside this lease
    settled: Decimal = ZERO  # costs settled here since the last top-up
    spare: Decimal = ZERO  # what the last top-up granted beyond the shortfall
    retired: bool = False  # no new requests; closed once the last one settles
    closed: bool = False
    used_at: float = 0.0
    renewed_at: float = 0.0
    top_up: asyncio.Future | None = None  # done when the top-up under way lands
    refill: asyncio.Task | None = None  # the early top-up, started by a request

    @property
    def free(self) -> Decimal:
        return self.amount - self.held

    @property
    def low(self) -> bool:
        """Less than half the spare free: time for an early top-up."""
        return self.free < self.spare / 2

    @property
    def refilling(self) -> bool:
        return self.refill is not None and not self.refill.done()

    async def take(self, amount: Decimal) -> Lease | None:
        """Hold `amount` for a request: from memory if the lease covers it, else one top-up.
        The lease that holds it (a new one if this one closed meanwhile), or None if the
        budget refuses."""
        self.used_at = time.monotonic()
        while True:
            if self.closed:
                return await _shared_lease(self.budget, timezone.now()).take(amount)
            if self.free >= amount:
                self.held += amount
                if self.shared and self.low and self.top_up is None and not self.refilling:
                    self.refill = asyncio.get_running_loop().create_task(self._refill(amount))
                return self
            if self.top_up is None:
                break
            # All the requests waiting for a top-up wake together when it lands.
            await asyncio.shield(self.top_up)
        claimed = self.free  # ours while we wait, so the shortfall is all we ask for
        self.held += claimed
        try:
            with self._topping_up():
                granted = await self._top_up(amount - claimed, amount)
                if granted is None:
                    # Refused, but the budget would fit the request if no request held any
                    # of it: requests that just ended elsewhere may not be settled yet.
                    await asyncio.sleep(settings.BUDGET_REFUSAL_RECHECK_SECONDS)
                    granted = await self._top_up(amount - claimed, amount)
        finally:
            self.held -= claimed
        if granted:
            self.held += amount
        self._close_if_done()
        return self if granted else None

    async def _refill(self, request: Decimal) -> None:
        """A top-up of nothing owed: a share of the headroom, before the requests need it. A
        refusal (the budget is near its limit) ends the early top-ups: with no spare to keep,
        the lease gives back all that requests leave unused, and tops up only when it must."""
        if self.retired or self.top_up is not None or not self.low:
            return
        try:
            with self._topping_up():
                if not await self._top_up(ZERO, request):
                    self.spare = ZERO
        except Exception:
            # The next request that needs the budget tops up itself, and reports the error.
            log.warning("early budget top-up failed (budget %s)", self.budget.id, exc_info=True)
        self._close_if_done()

    @contextmanager
    def _topping_up(self) -> Iterator[None]:
        """One top-up at a time: requests short of budget meanwhile wait for this one."""
        done = self.top_up = asyncio.get_running_loop().create_future()
        try:
            yield
        finally:
            self.top_up = None
            done.set_result(None)

    async def _top_up(self, need: Decimal, request: Decimal) -> bool | None:
        """Grow the row by `need` (and a share of the headroom): True if granted, False if
        refused, None if refused while the request would fit without anyone's holds."""
        share = self.shared and not self.retired
        # The spare follows the concurrency: at most BUDGET_LEASE_REQUESTS worst cases, or
        # twice what the requests in flight hold if more (so a burst of N requests tops up
        # about log4(N / 10) times, not N / 10, each a database round trip that they all wait
        # for). Twice: the early top-up starts with half the spare free, which is then what
        # the requests in flight hold, enough for those that arrive while it is under way.
        # No cap beyond the largest limit: SQLite's units of it must fit in 64 bits.
        cap = max(request * settings.BUDGET_LEASE_REQUESTS, 2 * self.held)
        cap = min(cap, MAX_LIMIT_USD) if share else ZERO
        fraction = Decimal(str(settings.BUDGET_LEASE_FRACTION)) if share else ZERO
        credit = _credits().get(self.budget.id, ZERO)
        amounts = {
            "need": need,
            "cap": cap,
            # to the millionth on both databases, so they round the same share (budget_sql)
            "fraction": min(fraction, _MAX_FRACTION).quantize(_MILLIONTH),
            "credit": credit,
        }
        now = timezone.now()
        if pg_enabled():
            row = await _atop_up(self, now, amounts)
        else:
            row = await sync_to_async(_top_up)(self, now, amounts)
        if row is None:
            return False  # the budget is gone
        limit, spent, reserved, grant, rid = row
        if grant is None:
            fits_alone = _decimal(limit) - _decimal(spent) + credit >= request
            return None if fits_alone else False
        self.reservation_id = rid
        self.spare = _decimal(grant) - need
        self.amount += _decimal(grant)
        self.limit = _decimal(limit)
        self.base = _decimal(spent) + _decimal(reserved) - self.amount - credit
        self.settled = ZERO
        self.renewed_at = time.monotonic()
        return True

    def untake(self, amount: Decimal) -> None:
        self.held -= amount
        self._close_if_done()

    async def give_back(self, amount: Decimal) -> None:
        """Undo a `take` that another budget of the same request refused."""
        self.untake(amount)
        if self.shared:
            return
        self.amount -= amount
        if pg_enabled():
            params = {"amount": amount, "id": self.budget.id, "rid": self.reservation_id}
            async with pg_connection() as conn:
                await conn.execute(POSTGRESQL.unreserve_budget, params)
                await conn.execute(POSTGRESQL.unreserve_reservation, params)
        else:
            await sync_to_async(_unreserve)(amount, self.budget.id, self.reservation_id)

    def settle(self, held: Decimal, cost: Decimal) -> Settlement | None:
        """A request that held `held` here is over and cost `cost`: what to write. A lease
        keeps at most its spare unused (nothing once retired) and gives the rest back."""
        if not self.shared:
            self.closed = True
            if self.reservation_id is None and cost == 0:
                return None
            return Settlement(
                self.budget,
                self.reservation_id,
                spend=cost,
                close=True,
                credit=(self.amount if self.reservation_id else ZERO) - cost,
            )
        if held == 0 and cost == 0:
            return None  # a request this lease refused
        if self.closed or self.reservation_id is None:
            return Settlement(self.budget, None, spend=cost, credit=-cost) if cost else None
        used = min(cost, held)
        self.held -= held
        self.settled += cost
        self.used_at = self.renewed_at = time.monotonic()
        keep = ZERO if self.retired else self.spare
        release = used + max(self.amount - used - self.held - keep, ZERO)
        self.amount -= release
        close = self._close_if_done(submit=False)
        return Settlement(
            self.budget,
            self.reservation_id,
            spend=cost,
            release=release,
            close=close,
            credit=(release + (self.amount if close else ZERO)) - cost,
        )

    def retire(self) -> None:
        """Serve no new request: give back what is not held, close once nothing is."""
        if self.retired:
            return
        self.retired = True
        leases = _leases.get(asyncio.get_running_loop(), {})
        if leases.get(self.budget.id) is self:
            del leases[self.budget.id]
        free = self.free
        if self._close_if_done() or free <= 0 or self.reservation_id is None:
            return
        self.amount -= free
        _submit([Settlement(self.budget, self.reservation_id, release=free, credit=free)])

    def _close_if_done(self, *, submit: bool = True) -> bool:
        """Close a retired lease once no request holds it and no top-up is under way."""
        if not self.retired or self.closed or self.held != 0 or self.top_up is not None:
            return False
        self.closed = True
        if submit and self.reservation_id is not None:
            _submit([Settlement(self.budget, self.reservation_id, close=True, credit=self.amount)])
        return True

    def tick(self) -> None:
        """Every BUDGET_LEASE_IDLE_SECONDS: return the lease when idle; keep a busy one's
        row renewed so the sweeper never takes it for a dead process's."""
        if self.closed:
            return
        now = time.monotonic()
        idle = settings.BUDGET_LEASE_IDLE_SECONDS
        if self.held == 0 and now - self.used_at >= idle:
            self.retire()
        elif (
            self.reservation_id is not None
            and now - self.renewed_at >= reservation_timeout().total_seconds() / 4
        ):
            self.renewed_at = now
            _submit([Settlement(self.budget, self.reservation_id)])
        if not self.closed:
            asyncio.get_running_loop().call_later(idle, self.tick)


_MAX_FRACTION = Decimal("0.5")
_MILLIONTH = Decimal(1) / FRACTION_SCALE


def _top_up(lease: Lease, now: dt.datetime, amounts: dict) -> tuple | None:
    """A top-up on Django's connection (SQLite; PostgreSQL outside the web server)."""
    sqlite = connection.vendor == "sqlite"
    params = _top_up_params(lease, now, amounts, sqlite=sqlite)
    with connection.cursor() as cursor:
        if not sqlite:
            cursor.execute(POSTGRESQL.topup, params)
            return cursor.fetchone()
        with transaction.atomic():
            rid = lease.reservation_id
            if rid is not None:
                cursor.execute(SQLITE.renew_open_reservation, params)
            if rid is None or cursor.rowcount == 1:  # else the sweeper released it
                cursor.execute(SQLITE.grant, params)
                row = cursor.fetchone()
            else:
                row = None
            if row is None:
                cursor.execute(SQLITE.state, params)
                state = cursor.fetchone()
                if state is None:
                    return None
                return (*(_money(value, sqlite) for value in state), None, None)
            grant = _money(row[0], sqlite)
            params["amount"] = _adapt(grant, sqlite)
            cursor.execute(SQLITE.reserve, params)
            limit, spent, reserved = (_money(value, sqlite) for value in cursor.fetchone())
            if rid is None:
                cursor.execute(SQLITE.new_reservation, params)
                rid = cursor.fetchone()[0]
            else:
                cursor.execute(SQLITE.grow_reservation, params)
    return limit, spent, reserved, grant, rid


async def _atop_up(lease: Lease, now: dt.datetime, amounts: dict) -> tuple | None:
    """`_top_up` on a native async PostgreSQL connection (no worker-thread hop)."""
    params = _top_up_params(lease, now, amounts, sqlite=False)
    async with pg_connection() as conn:
        cursor = await conn.execute(POSTGRESQL.topup, params)
        return await cursor.fetchone()


def _unreserve(amount: Decimal, budget_id: int, reservation_id: int | None) -> None:
    sqlite = connection.vendor == "sqlite"
    params: dict[str, Any] = {
        "amount": _adapt(amount, sqlite),
        "id": budget_id,
        "rid": reservation_id,
    }
    statements = budget_statements(connection.vendor)
    with connection.cursor() as cursor:
        cursor.execute(statements.unreserve_budget, params)
        cursor.execute(statements.unreserve_reservation, params)


# Per event loop: budget id → the credit of its settlements the usage writer holds (`credit` in
# spend.budget_sql).
_credit_books: dict[asyncio.AbstractEventLoop, dict[int, Decimal]] = {}


def _credits() -> dict[int, Decimal]:
    loop = asyncio.get_running_loop()
    book = _credit_books.get(loop)
    if book is None:
        for old in [old for old in _credit_books if old.is_closed()]:
            del _credit_books[old]
        book = _credit_books[loop] = {}
    return book


def budget_credits_pending(settlements: list[Settlement], *, queued: bool) -> None:
    """The usage writer took these settlements (`queued`), or wrote or parked them."""
    book = _credits()
    for settlement in settlements:
        if settlement.credit:
            change = settlement.credit if queued else -settlement.credit
            book[settlement.budget.id] = book.get(settlement.budget.id, ZERO) + change


# The usage writer (spend.usage registers itself here when imported): it applies them in
# order after the settlements already queued, so a lease's row is closed only after the
# costs settled on it are written.
_sink: list[Callable[[list[Settlement]], None]] = []


def settlement_sink_set(sink: Callable[[list[Settlement]], None]) -> None:
    _sink[:] = [sink]


def _submit(settlements: list[Settlement]) -> None:
    _sink[0](settlements)


_leases: dict[asyncio.AbstractEventLoop, dict[int, Lease]] = {}
_HOST = socket.gethostname()[:24]  # the name fits BudgetReservation.request_id (64)


def _shared_lease(budget: BudgetInfo, now: dt.datetime) -> Lease:
    """This loop's lease on the budget; a new one if the budget's settings (its limit) or
    its period changed since the lease was taken."""
    loop = asyncio.get_running_loop()
    leases = _leases.get(loop)
    if leases is None:
        for old in [old for old in _leases if old.is_closed()]:
            del _leases[old]
        leases = _leases[loop] = {}
    start = period_bounds(budget.period, now)[0]
    lease = leases.get(budget.id)
    if lease is not None and (lease.budget != budget or lease.period_start != start):
        lease.retire()
        lease = None
    if lease is None:
        lease = leases[budget.id] = Lease(
            budget=budget,
            period_start=start,
            request_id=f"lease:{_HOST}:{os.getpid()}:{budget.id}",
            shared=True,
        )
        loop.call_later(settings.BUDGET_LEASE_IDLE_SECONDS, lease.tick)
    return lease


def budget_leases_return() -> None:
    """Return this loop's leases (server shutdown), through its usage writer."""
    for lease in list(_leases.get(asyncio.get_running_loop(), {}).values()):
        lease.retire()


# ---------------------------------------------------------------- holds


def _ceil(amount: Decimal) -> Decimal:
    return amount.quantize(_PLACES, rounding=ROUND_CEILING)


@dataclass(slots=True)
class BudgetHold:
    """One request's hold on each applicable budget, grown as attempts need more."""

    request_id: str
    budgets: tuple[BudgetInfo, ...]
    reserved: Decimal = ZERO
    leases: dict[int, Lease] = field(default_factory=dict)  # budget id → its lease
    left_at_settle: tuple[Decimal, Decimal | None] | None = None  # (cost, budget left)

    @property
    def active(self) -> bool:
        return bool(self.budgets)

    async def ensure(self, total: Decimal) -> BudgetInfo | None:
        """Hold at least `total` on every budget; the refusing budget, or None when held."""
        delta = _ceil(total - self.reserved)
        if not self.budgets or delta <= 0:
            return None
        now = timezone.now()
        shared = leasing()
        taken: list[Lease] = []
        refused = None
        try:
            for budget in self.budgets:
                lease = self.leases.get(budget.id)
                if lease is None:
                    lease = _shared_lease(budget, now) if shared else self._private(budget, now)
                served = await lease.take(delta)
                if served is None:
                    refused = budget
                    break
                self.leases[budget.id] = served
                taken.append(served)
        except BaseException:
            # Cancelled (the client went away) or failed: a private reservation is closed
            # when the request settles; a shared lease must not keep the hold.
            for held in taken:
                if held.shared:
                    held.untake(delta)
            raise
        if refused is not None:
            for held in taken:
                await held.give_back(delta)
            return refused
        self.reserved += delta
        return None

    def _private(self, budget: BudgetInfo, now: dt.datetime) -> Lease:
        start = period_bounds(budget.period, now)[0]
        return Lease(budget=budget, period_start=start, request_id=self.request_id, shared=False)

    def settle(self, cost: Decimal) -> list[Settlement]:
        """The request is over and cost `cost`: release its holds (once)."""
        self.left_at_settle = (cost, self._left(cost))
        settlements = []
        for budget in self.budgets:
            lease = self.leases.get(budget.id)
            if lease is not None:
                settlement = lease.settle(self.reserved, cost)
            else:
                settlement = Settlement(budget, None, spend=cost, credit=-cost) if cost else None
            if settlement is not None:
                settlements.append(settlement)
        return settlements

    def remaining_usd(self, spent_by_request: Decimal) -> Decimal | None:
        """What is left on the tightest budget once this request is settled."""
        if self.left_at_settle is None:
            left = self._left(spent_by_request)
        else:
            cost, left = self.left_at_settle
            left = None if left is None else left + cost - spent_by_request
        return None if left is None else max(left, ZERO)

    def _left(self, spent_by_request: Decimal) -> Decimal | None:
        left = None
        for budget in self.budgets:
            lease = self.leases.get(budget.id)
            if lease is None or lease.limit is None:
                continue
            others_in_flight = lease.held - self.reserved
            value = lease.limit - lease.base - lease.settled - others_in_flight - spent_by_request
            left = value if left is None else min(left, value)
        return left


# ---------------------------------------------------------------- settling


def budget_settle(*, settlements: list[Settlement], now: dt.datetime | None = None) -> None:
    """Apply settlements on Django's connection (SQLite; PostgreSQL outside the web server,
    whose usage writer does the same in one statement per batch, see spend.usage_sql).

    Call inside the transaction that writes the requests' usage records. A reservation the
    sweeper already released (a request slower than the sweep timeout) releases nothing."""
    now = now or timezone.now()
    sqlite = connection.vendor == "sqlite"
    statements = budget_statements(connection.vendor)
    with connection.cursor() as cursor:
        for settlement in settlements:
            rid = settlement.reservation_id
            params = _params(
                settlement.budget,
                now,
                sqlite=sqlite,
                rid=rid,
                amount=settlement.spend,
                release=settlement.release,
            )
            released = ZERO
            if rid is not None and settlement.close:
                cursor.execute(statements.close_reservation, params)
                row = cursor.fetchone()
                released = _money(row[0], sqlite) if row else ZERO
            elif rid is not None:
                cursor.execute(statements.shrink_reservation, params)
                released = settlement.release if cursor.rowcount == 1 else ZERO
            if released == 0 and settlement.spend == 0:
                continue
            params["released"] = _adapt(released, sqlite)
            cursor.execute(statements.settle, params)


def budget_charge(*, budget_id: int, amount_usd: Decimal) -> None:
    """Add spend outside a request (e.g. a batch job's settled cost)."""
    Budget.objects.filter(id=budget_id).update(spent_usd=counter_add("spent_usd", amount_usd))


# ---------------------------------------------------------------- the hard-limit alert

# budget id → the period start whose hard-limit alert this process has already queued
_limit_alerted: dict[int, dt.datetime] = {}


def budget_limit_alert(
    *,
    budget: BudgetInfo,
    action: str,
    request_usd: Decimal,
    now: dt.datetime | None = None,
) -> None:
    """A request of up to `request_usd` was refused (`block`) or downgraded at `budget`'s hard
    limit: queue the hard-limit alert (`spend.alerts.budget_limit_reached`) once per budget
    and period in this process.

    Fire and forget: the broker round trip runs on an executor thread, so the refused
    request does not wait for it. The alert itself fires once per period across processes
    (AlertEvent's unique constraint); this only keeps a blocked stream of requests from
    queueing a task each.
    """
    now = now or timezone.now()
    start, _end = period_bounds(budget.period, now)
    if _limit_alerted.get(budget.id) == start:
        return
    _limit_alerted[budget.id] = start
    asyncio.get_running_loop().run_in_executor(
        None, _limit_alert_enqueue, budget.id, now, action, request_usd
    )


def _limit_alert_enqueue(
    budget_id: int, now: dt.datetime, action: str, request_usd: Decimal
) -> None:
    from spend.tasks import budget_limit_alert as task

    try:
        task.delay(budget_id, now.isoformat(), action, str(request_usd))
    except Exception:
        # Not retried per refused request (a broker outage would tie up the executor);
        # beat's budget_alerts_check still raises the hard alert once spend is at the limit.
        log.exception("could not queue the hard-limit alert of budget %s", budget_id)


# ---------------------------------------------------------------- sweeper


def reservation_timeout() -> dt.timedelta:
    return dt.timedelta(seconds=getattr(settings, "BUDGET_RESERVATION_TIMEOUT_SECONDS", 900))


@transaction.atomic
def budget_reservations_sweep(*, older_than: dt.timedelta | None = None) -> int:
    """Release reservations left open longer than the timeout (their process died)."""
    now = timezone.now()
    cutoff = now - (older_than if older_than is not None else reservation_timeout())
    stale = BudgetReservation.objects.filter(settled_at=None, created_at__lt=cutoff)
    if connection.vendor == "postgresql":
        stale = stale.select_for_update(skip_locked=True)
    rows = list(stale.values_list("id", "budget_id", "amount_usd"))
    if not rows:
        return 0
    ids = [row[0] for row in rows]
    # Claim them first: a settle racing with us finds settled_at set and releases nothing.
    BudgetReservation.objects.filter(id__in=ids, settled_at=None).update(settled_at=now)
    totals = (
        BudgetReservation.objects.filter(id__in=ids)
        .values("budget_id")
        .annotate(total=MoneySum("amount_usd"))
    )
    for row in totals:
        Budget.objects.filter(id=row["budget_id"]).update(
            reserved_usd=counter_add("reserved_usd", -row["total"])
        )
    log.warning("released %d stale budget reservations", len(ids))
    return len(ids)


# ---------------------------------------------------------------- configuration writes


@transaction.atomic
def budget_set(
    *,
    team: Team,
    limit_usd: Decimal,
    api_key: ApiKey | None = None,
    period: str | None = None,
    action: str | None = None,
    downgrade_tier: str | None = None,
    soft_threshold: Decimal | None = None,
) -> Budget:
    """Create or change the team's (or a key's) budget. Spend so far is kept unless the
    period changes (then the new period starts now, at its natural boundary)."""
    from core.errors import BadRequest
    from routing.models import Tier

    problem = usd_limit_problem(limit_usd)
    if problem:
        raise BadRequest(problem, param="limit_usd")
    if soft_threshold is not None and not (soft_threshold.is_finite() and 0 <= soft_threshold <= 1):
        raise BadRequest(
            "The soft threshold is a fraction between 0 and 1.", param="soft_threshold"
        )
    budget = Budget.objects.select_for_update().filter(team=team, api_key=api_key).first()
    now = timezone.now()
    if budget is None:
        budget = Budget(team=team, api_key=api_key, period=period or Budget.Period.MONTHLY)
        budget.period_start = period_bounds(budget.period, now)[0]
    elif period and period != budget.period:
        budget.period = period
        budget.period_start = period_bounds(period, now)[0]
        budget.spent_usd = ZERO
    budget.limit_usd = limit_usd
    if action:
        budget.action = action
    if soft_threshold is not None:
        budget.soft_threshold = soft_threshold
    if downgrade_tier is not None:
        tier = Tier.objects.filter(name=downgrade_tier).first()
        if tier is None:
            raise BadRequest(f"Unknown tier {downgrade_tier!r}.", param="downgrade_tier")
        budget.downgrade_tier = tier
    if budget.action == Budget.Action.DOWNGRADE and budget.downgrade_tier_id is None:
        raise BadRequest(
            "A `downgrade` budget needs a tier to downgrade to.", param="downgrade_tier"
        )
    budget.save()
    return budget
