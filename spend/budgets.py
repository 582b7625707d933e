"""Budget enforcement on the hot path: reserve the worst case, settle the actual cost, sweep.

Every budget row holds `spent_usd` and `reserved_usd` for its current period. A request
reserves its worst-case cost with one conditional UPDATE

    UPDATE budget SET reserved = reserved + :cost
    WHERE id = :id AND spent + reserved + :cost <= limit

so that no interleaving of concurrent requests can take spend past the limit, on PostgreSQL
(row lock + re-check of the WHERE) as on SQLite (one writer at a time). The same statement
rolls the period over: when the row's `period_start` is before the current period's start,
`spent` counts as zero and `period_start` moves; the CASE is idempotent, so two requests at
the boundary cannot reset twice. A reservation row is written in the same statement on
PostgreSQL (a data-modifying CTE) and in the same IMMEDIATE transaction on SQLite; the
sweeper releases the ones a crashed process left behind.

Settling moves the actual cost into `spent` and releases the reservation; it runs in the
usage writer's transaction, together with the usage records it accounts for, so the ledger
always equals the sum of the usage records.

SQLite stores decimals as REAL: its arithmetic is binary floating point, so every sum is
rounded to the column's 10 places in SQL (ROUND), which keeps it exact at that precision
for amounts under about $100,000 and never lets float noise go below zero. PostgreSQL's
numeric is exact.
"""

from __future__ import annotations

import asyncio
import contextvars
import datetime as dt
import logging
import time
from dataclasses import dataclass, field
from decimal import Decimal

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import F, Sum
from django.db.models.functions import Round
from django.utils import timezone

from core.money import COST_DIGITS, ZERO
from spend.models import Budget, BudgetReservation
from spend.periods import period_bounds
from spend.pg import pg_connection, pg_enabled

log = logging.getLogger(__name__)

CONFIG_TTL_SECONDS = 2.0


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


@dataclass(slots=True)
class BudgetState:
    """The amounts seen by this request's last successful reservation, for 'budget left'."""

    limit_usd: Decimal
    spent_usd: Decimal
    reserved_usd: Decimal


@dataclass(slots=True)
class BudgetHold:
    """One request's reservations, one per applicable budget, grown as attempts need more."""

    request_id: str
    budgets: tuple[BudgetInfo, ...]
    reserved: Decimal = ZERO
    reservation_ids: dict[int, int] = field(default_factory=dict)  # budget id → reservation id
    states: dict[int, BudgetState] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return bool(self.budgets)

    async def ensure(self, total: Decimal) -> BudgetInfo | None:
        """Hold at least `total` on every budget; the refusing budget, or None when held."""
        delta = total - self.reserved
        if not self.budgets or delta <= 0:
            return None
        if pg_enabled():
            refused = await _areserve_all(self, delta)
        else:
            refused = await sync_to_async(_reserve_all)(self, delta)
        if refused is None:
            self.reserved += delta
        return refused

    def remaining_usd(self, spent_by_request: Decimal) -> Decimal | None:
        """What is left on the tightest budget once this request is settled."""
        left = None
        for budget in self.budgets:
            state = self.states.get(budget.id)
            if state is None:
                continue
            others = state.spent_usd + state.reserved_usd - self.reserved
            value = state.limit_usd - others - spent_by_request
            left = value if left is None else min(left, value)
        return None if left is None else max(left, ZERO)


# ---------------------------------------------------------------- configuration (cached)

_config: dict[int, tuple[float, tuple[BudgetInfo, ...]]] = {}


def _load_team_budgets(team_id: int) -> tuple[BudgetInfo, ...]:
    try:
        return _team_budgets(team_id)
    except (InterfaceError, OperationalError):
        # The gateway lane's thread keeps its connection between requests, and every request
        # waiting on this load would fail with it: one dropped while idle is replaced (the
        # pool hands out only live ones) and the read is tried once more.
        connection.close()
        return _team_budgets(team_id)


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
            downgrade_tier=b.downgrade_tier.name if b.downgrade_tier_id else None,
        )
        for b in rows
    )


async def budgets_for(*, team_id: int, api_key_id: int | None) -> tuple[BudgetInfo, ...]:
    """The team's budget and the key's own, if any (cached for CONFIG_TTL_SECONDS)."""
    now = time.monotonic()
    cached = _config.get(team_id)
    if cached is None or cached[0] < now:
        # Concurrent misses for one team share one query (a cold process under load).
        loop = asyncio.get_running_loop()
        pending = _loading.get((loop, team_id))
        if pending is None:
            pending = _loading[(loop, team_id)] = loop.create_task(
                _load(team_id, now), context=contextvars.Context()
            )
            pending.add_done_callback(lambda _task: _loading.pop((loop, team_id), None))
        budgets = await asyncio.shield(pending)
    else:
        budgets = cached[1]
    return tuple(b for b in budgets if b.api_key_id is None or b.api_key_id == api_key_id)


async def _load(team_id: int, now: float) -> tuple[BudgetInfo, ...]:
    budgets = await sync_to_async(_load_team_budgets)(team_id)
    _config[team_id] = (now + CONFIG_TTL_SECONDS, budgets)
    return budgets


_loading: dict[tuple[asyncio.AbstractEventLoop, int], asyncio.Task] = {}


def budgets_forget(team_id: int | None = None) -> None:
    if team_id is None:
        _config.clear()
    else:
        _config.pop(team_id, None)


# ---------------------------------------------------------------- SQL
# Literal table names (checked against the models at import) keep the statements static.

assert Budget._meta.db_table == "spend_budget"
assert BudgetReservation._meta.db_table == "spend_budgetreservation"

# The period rolls over inside the statement: a row whose period_start is before the current
# period's start counts its spend as zero and moves period_start (idempotent at the boundary).
RESERVE_SQL = (
    "UPDATE spend_budget SET "
    "spent_usd = (CASE WHEN period_start < %(start)s THEN 0 ELSE spent_usd END), "
    "period_start = CASE WHEN period_start < %(start)s THEN %(start)s ELSE period_start END, "
    "reserved_usd = ROUND(reserved_usd + %(amount)s, 10), updated_at = %(now)s "
    "WHERE id = %(id)s "
    "AND ROUND((CASE WHEN period_start < %(start)s THEN 0 ELSE spent_usd END) "
    "+ reserved_usd + %(amount)s, 10) <= limit_usd "
    "RETURNING id, limit_usd, spent_usd, reserved_usd"
)
NEW_RESERVATION_SQL = (
    "INSERT INTO spend_budgetreservation (budget_id, request_id, amount_usd, created_at) "
    "VALUES (%(id)s, %(request_id)s, %(amount)s, %(now)s) RETURNING id"
)
GROW_RESERVATION_SQL = (
    "UPDATE spend_budgetreservation SET amount_usd = ROUND(amount_usd + %(amount)s, 10) "
    "WHERE id = %(rid)s"
)
# PostgreSQL: the budget UPDATE and the reservation row in one statement (one round trip).
PG_RESERVE_NEW_SQL = (
    "WITH b AS (UPDATE spend_budget SET "
    "spent_usd = (CASE WHEN period_start < %(start)s THEN 0 ELSE spent_usd END), "
    "period_start = CASE WHEN period_start < %(start)s THEN %(start)s ELSE period_start END, "
    "reserved_usd = ROUND(reserved_usd + %(amount)s, 10), updated_at = %(now)s "
    "WHERE id = %(id)s "
    "AND ROUND((CASE WHEN period_start < %(start)s THEN 0 ELSE spent_usd END) "
    "+ reserved_usd + %(amount)s, 10) <= limit_usd "
    "RETURNING id, limit_usd, spent_usd, reserved_usd), "
    "r AS (INSERT INTO spend_budgetreservation (budget_id, request_id, amount_usd, created_at) "
    "SELECT id, %(request_id)s, %(amount)s, %(now)s FROM b RETURNING id) "
    "SELECT b.limit_usd, b.spent_usd, b.reserved_usd, r.id FROM b, r"
)
PG_RESERVE_GROW_SQL = (
    "WITH b AS (UPDATE spend_budget SET "
    "spent_usd = (CASE WHEN period_start < %(start)s THEN 0 ELSE spent_usd END), "
    "period_start = CASE WHEN period_start < %(start)s THEN %(start)s ELSE period_start END, "
    "reserved_usd = ROUND(reserved_usd + %(amount)s, 10), updated_at = %(now)s "
    "WHERE id = %(id)s "
    "AND ROUND((CASE WHEN period_start < %(start)s THEN 0 ELSE spent_usd END) "
    "+ reserved_usd + %(amount)s, 10) <= limit_usd "
    "RETURNING id, limit_usd, spent_usd, reserved_usd), "
    "r AS (UPDATE spend_budgetreservation SET amount_usd = amount_usd + %(amount)s "
    "WHERE id = %(rid)s AND EXISTS (SELECT 1 FROM b) RETURNING id) "
    "SELECT b.limit_usd, b.spent_usd, b.reserved_usd, r.id FROM b, r"
)
UNRESERVE_BUDGET_SQL = (
    "UPDATE spend_budget SET reserved_usd = ROUND(reserved_usd - %(amount)s, 10) WHERE id = %(id)s"
)
UNRESERVE_RESERVATION_SQL = (
    "UPDATE spend_budgetreservation SET amount_usd = ROUND(amount_usd - %(amount)s, 10) "
    "WHERE id = %(rid)s"
)
CLOSE_RESERVATION_SQL = (
    "UPDATE spend_budgetreservation SET settled_at = %(now)s "
    "WHERE id = %(rid)s AND settled_at IS NULL"
)
SETTLE_SQL = (
    "UPDATE spend_budget SET "
    "spent_usd = ROUND((CASE WHEN period_start < %(start)s THEN 0 ELSE spent_usd END) "
    "+ %(amount)s, 10), "
    "period_start = CASE WHEN period_start < %(start)s THEN %(start)s ELSE period_start END, "
    "reserved_usd = ROUND(reserved_usd - %(released)s, 10), updated_at = %(now)s "
    "WHERE id = %(id)s"
)


def _money(value: Decimal) -> object:
    return connection.ops.adapt_decimalfield_value(value, **COST_DIGITS)


def _when(value: dt.datetime) -> object:
    return connection.ops.adapt_datetimefield_value(value)


def _params(budget: BudgetInfo, amount: Decimal, now: dt.datetime, **extra: object) -> dict:
    start, _end = period_bounds(budget.period, now)
    return {
        "id": budget.id,
        "amount": _money(amount),
        "start": _when(start),
        "now": _when(now),
        **extra,
    }


def _reserve_one(budget: BudgetInfo, hold: BudgetHold, amount: Decimal, now: dt.datetime) -> bool:
    """One conditional UPDATE (plus the reservation row); False when the budget refuses."""
    rid = hold.reservation_ids.get(budget.id)
    params = _params(budget, amount, now, request_id=hold.request_id, rid=rid)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(PG_RESERVE_NEW_SQL if rid is None else PG_RESERVE_GROW_SQL, params)
            row = cursor.fetchone()
        else:
            # SQLite: the IMMEDIATE transaction holds the write lock across both statements.
            with transaction.atomic():
                cursor.execute(RESERVE_SQL, params)
                budget_row = cursor.fetchone()
                row = None
                if budget_row is not None:
                    if rid is None:
                        cursor.execute(NEW_RESERVATION_SQL, params)
                        rid = cursor.fetchone()[0]
                    else:
                        cursor.execute(GROW_RESERVATION_SQL, params)
                    row = (*budget_row[1:], rid)
    if row is None:
        return False
    limit, spent, reserved, reservation_id = row
    hold.reservation_ids[budget.id] = reservation_id
    hold.states[budget.id] = BudgetState(
        limit_usd=_decimal(limit), spent_usd=_decimal(spent), reserved_usd=_decimal(reserved)
    )
    return True


def _decimal(value: object) -> Decimal:
    return Decimal(str(value)).quantize(Decimal(1).scaleb(-COST_DIGITS["decimal_places"]))


def _unreserve_one(budget: BudgetInfo, hold: BudgetHold, amount: Decimal) -> None:
    """Give back an increment that another budget of the same request refused."""
    params = {"amount": _money(amount), "id": budget.id, "rid": hold.reservation_ids.get(budget.id)}
    with connection.cursor() as cursor:
        cursor.execute(UNRESERVE_BUDGET_SQL, params)
        cursor.execute(UNRESERVE_RESERVATION_SQL, params)


def _reserve_all(hold: BudgetHold, amount: Decimal) -> BudgetInfo | None:
    now = timezone.now()
    done: list[BudgetInfo] = []
    for budget in hold.budgets:
        if not _reserve_one(budget, hold, amount, now):
            for held in done:
                _unreserve_one(held, hold, amount)
            return budget
        done.append(budget)
    return None


def budget_settle(*, hold: BudgetHold, actual_usd: Decimal, now: dt.datetime | None = None) -> None:
    """Move the request's actual cost into `spent` and release its reservations.

    Call inside the transaction that writes the request's usage records. A reservation the
    sweeper already released (a request slower than the sweep timeout) is not released twice.
    """
    now = now or timezone.now()
    with connection.cursor() as cursor:
        for budget in hold.budgets:
            rid = hold.reservation_ids.get(budget.id)
            released = ZERO
            if rid is not None:
                cursor.execute(CLOSE_RESERVATION_SQL, {"now": _when(now), "rid": rid})
                if cursor.rowcount == 1:
                    released = hold.reserved
            if released == 0 and actual_usd == 0:
                continue
            cursor.execute(SETTLE_SQL, _params(budget, actual_usd, now, released=_money(released)))


# PostgreSQL, async: closing the reservation and settling the budget in one statement.
PG_SETTLE_SQL = (
    "WITH r AS (UPDATE spend_budgetreservation SET settled_at = %(now)s "
    "WHERE id = %(rid)s AND settled_at IS NULL RETURNING amount_usd) "
    "UPDATE spend_budget SET "
    "spent_usd = (CASE WHEN period_start < %(start)s THEN 0 ELSE spent_usd END) + %(amount)s, "
    "period_start = CASE WHEN period_start < %(start)s THEN %(start)s ELSE period_start END, "
    "reserved_usd = reserved_usd - COALESCE((SELECT amount_usd FROM r), 0), "
    "updated_at = %(now)s WHERE id = %(id)s"
)


def _state_of(row: tuple) -> BudgetState:
    limit, spent, reserved = row[:3]
    return BudgetState(
        limit_usd=_decimal(limit), spent_usd=_decimal(spent), reserved_usd=_decimal(reserved)
    )


async def _areserve_all(hold: BudgetHold, amount: Decimal) -> BudgetInfo | None:
    """`_reserve_all` on a native async PostgreSQL connection (no worker-thread hop)."""
    now = timezone.now()
    done: list[BudgetInfo] = []
    async with pg_connection() as conn:
        for budget in hold.budgets:
            rid = hold.reservation_ids.get(budget.id)
            params = _pg_params(budget, amount, now, request_id=hold.request_id, rid=rid)
            cursor = await conn.execute(
                PG_RESERVE_NEW_SQL if rid is None else PG_RESERVE_GROW_SQL, params
            )
            row = await cursor.fetchone()
            if row is None:
                for held in done:
                    back = {"amount": amount, "id": held.id, "rid": hold.reservation_ids[held.id]}
                    await conn.execute(UNRESERVE_BUDGET_SQL, back)
                    await conn.execute(UNRESERVE_RESERVATION_SQL, back)
                return budget
            hold.reservation_ids[budget.id] = row[3]
            hold.states[budget.id] = _state_of(row)
            done.append(budget)
    return None


def _pg_params(budget: BudgetInfo, amount: Decimal, now: dt.datetime, **extra: object) -> dict:
    start, _end = period_bounds(budget.period, now)
    return {"id": budget.id, "amount": amount, "start": start, "now": now, **extra}


async def abudget_settle(
    conn: object, *, hold: BudgetHold, actual_usd: Decimal, now: dt.datetime
) -> None:
    """`budget_settle` on an async PostgreSQL connection, one statement per budget."""
    for budget in hold.budgets:
        rid = hold.reservation_ids.get(budget.id)
        if rid is None and actual_usd == 0:
            continue
        await conn.execute(PG_SETTLE_SQL, _pg_params(budget, actual_usd, now, rid=rid))  # type: ignore[attr-defined]


def budget_charge(*, budget_id: int, amount_usd: Decimal) -> None:
    """Add spend outside a request (e.g. a batch job's settled cost)."""
    Budget.objects.filter(id=budget_id).update(spent_usd=Round(F("spent_usd") + amount_usd, 10))


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
        .annotate(total=Sum("amount_usd"))
    )
    for row in totals:
        Budget.objects.filter(id=row["budget_id"]).update(
            reserved_usd=Round(F("reserved_usd") - row["total"], 10)
        )
    log.warning("released %d stale budget reservations", len(ids))
    return len(ids)


# ---------------------------------------------------------------- configuration writes


@transaction.atomic
def budget_set(
    *,
    team: object,
    limit_usd: Decimal,
    api_key: object | None = None,
    period: str | None = None,
    action: str | None = None,
    downgrade_tier: str | None = None,
    soft_threshold: Decimal | None = None,
) -> Budget:
    """Create or change the team's (or a key's) budget. Spend so far is kept unless the
    period changes (then the new period starts now, at its natural boundary)."""
    from core.errors import BadRequest
    from routing.models import Tier

    if limit_usd < 0:
        raise BadRequest("The limit must not be negative.", param="limit_usd")
    if soft_threshold is not None and not (0 <= soft_threshold <= 1):
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
    transaction.on_commit(lambda: budgets_forget(budget.team_id))
    return budget
