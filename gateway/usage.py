"""Usage records and budget settlement, written off the response path but never lost.

A request collects one `UsageRecord` per upstream call in its `Ledger`. When the request
ends (answered, failed, streamed to the end, or cancelled by a client that went away) its
budget hold is released and the ledger is handed to the loop's `UsageWriter` without
awaiting anything, so even a cancelled stream's `finally` can do it. The writer drains its
queue in order, in batches: one transaction per batch inserts the records (one multi-row
INSERT) and applies the budget settlements (spend.budgets.Settlement), so the ledger on a
budget always equals the sum of its usage records; budget leases send their returns through
the same queue. On shutdown the ASGI lifespan handler returns the leases and flushes every
writer (gateway.asgi).
"""

from __future__ import annotations

import asyncio
import contextvars
import datetime as dt
import json
import logging
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import transaction
from django.db.models import JSONField
from django.utils import timezone

from accounts.models import ApiKey
from core.metrics import record_ledger
from core.money import ZERO
from spend.budgets import BudgetHold, Settlement, budget_settle
from spend.models import UsageRecord
from spend.periods import period_bounds
from spend.pg import pg_connection, pg_enabled

log = logging.getLogger(__name__)

KEY_TOUCH_SECONDS = 60.0  # last_used_at is refreshed at most this often per key
_MAX_BATCH = 500


@dataclass(slots=True)
class UsageRow:
    """One upstream call, as `spend.models.UsageRecord` will store it (same attribute names).

    Building a Django model instance costs ~0.1-0.3 ms per record; the hot path fills this
    instead and the writer turns a batch of them into rows."""

    created_at: dt.datetime
    request_id: str
    team_id: int
    model_name: str
    api_key_id: int | None = None
    prompt_version_id: int | None = None
    purpose: str = "gateway"
    rule: str = ""
    route_reason: str = ""
    model_id: int | None = None
    tier_name: str = ""
    service_tier: str = "default"
    attempt: int = 1
    stream: bool = False
    input_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: Decimal = ZERO
    latency_ms: int = 0
    ttft_ms: int | None = None
    status: str = "success"
    error_code: str = ""
    error_message: str = ""
    request_body: Any = None
    response_body: Any = None

    def model_instance(self) -> UsageRecord:
        return UsageRecord(**{name: getattr(self, name) for name in _ROW_FIELDS})


_ROW_FIELDS = tuple(UsageRow.__dataclass_fields__)


@dataclass(slots=True)
class Ledger:
    """What one request cost: its usage records and the budget hold they settle."""

    hold: BudgetHold | None = None
    records: list[UsageRow | UsageRecord] = field(default_factory=list)
    committed: Decimal = ZERO
    api_key_id: int | None = None
    closed: bool = False
    settlements: list[Settlement] = field(default_factory=list)

    def add(self, record: UsageRow | UsageRecord) -> UsageRow | UsageRecord:
        record.attempt = len(self.records) + 1
        self.records.append(record)
        self.committed += record.cost_usd
        return record

    def close(self) -> None:
        """Hand the ledger to the writer. Idempotent; never awaits (safe in a cancelled task)."""
        if self.closed:
            return
        self.closed = True
        record_ledger(self.records)  # upstream errors, fallbacks, spend (core.metrics)
        if self.hold is not None:
            self.settlements = self.hold.settle(self.committed)
        if self.records or self.settlements:
            writer().submit(self)


def settlements_submit(settlements: list[Settlement]) -> None:
    """Queue budget changes that are not a request's (a lease given back or renewed)."""
    writer().submit(Ledger(closed=True, settlements=settlements))


def _touch_keys(key_ids: set[int], now: dt.datetime) -> None:
    if key_ids:
        ApiKey.objects.filter(id__in=key_ids).update(last_used_at=now)


def _write(ledgers: list[Ledger], key_ids: set[int]) -> None:
    now = timezone.now()
    try:
        with transaction.atomic():
            UsageRecord.objects.bulk_create(
                [
                    r if isinstance(r, UsageRecord) else r.model_instance()
                    for ledger in ledgers
                    for r in ledger.records
                ]
            )
            budget_settle(
                settlements=[s for ledger in ledgers for s in ledger.settlements], now=now
            )
            _touch_keys(key_ids, now)
    except Exception:
        if len(ledgers) == 1:
            raise
        # One bad request must not take the batch down: write them one by one.
        for ledger in ledgers:
            _write([ledger], set())


def _start(loop: asyncio.AbstractEventLoop, coro) -> asyncio.Task:
    # A fresh context: a task inheriting a request's ThreadSensitiveContext could not run
    # sync (ORM) code once that request is over.
    return loop.create_task(coro, name="usage-writer", context=contextvars.Context())


_FIELDS = [f for f in UsageRecord._meta.concrete_fields if not f.primary_key]
_JSON_COLUMNS = frozenset(i for i, f in enumerate(_FIELDS) if isinstance(f, JSONField))


def _batch_sql() -> str:
    """One PostgreSQL statement for a whole batch (atomic, one round trip, and always the
    same text, so psycopg prepares it): insert the records from column arrays; take the
    settled amounts off the reservation rows, closing those that are done and renewing the
    others; settle each budget once with the batch's total (PostgreSQL applies only one
    update of a row per statement, so amounts are summed per row first); and touch the
    keys' last_used_at. A row the sweeper already closed releases nothing."""
    from django.db import connection

    columns = ", ".join(f'"{f.column}"' for f in _FIELDS)
    arrays = ", ".join(f"%s::{f.db_type(connection)}[]" for f in _FIELDS)
    return (
        f"WITH ins AS (INSERT INTO spend_usagerecord ({columns}) "  # noqa: S608 - model columns
        f"SELECT * FROM unnest({arrays})), "
        "r AS (UPDATE spend_budgetreservation AS r SET "
        "amount_usd = CASE WHEN v.close THEN r.amount_usd ELSE r.amount_usd - v.release END, "
        "settled_at = CASE WHEN v.close THEN %s::timestamptz END, "
        "created_at = CASE WHEN v.close THEN r.created_at ELSE %s END "
        "FROM unnest(%s::bigint[], %s::numeric[], %s::boolean[]) AS v(id, release, close) "
        "WHERE r.id = v.id AND r.settled_at IS NULL "
        "RETURNING r.budget_id, CASE WHEN v.close THEN r.amount_usd ELSE v.release END AS released), "
        "b AS (UPDATE spend_budget AS b SET "
        "spent_usd = (CASE WHEN b.period_start < v.start THEN 0 ELSE b.spent_usd END) + v.amount, "
        "period_start = CASE WHEN b.period_start < v.start THEN v.start ELSE b.period_start END, "
        "reserved_usd = b.reserved_usd - COALESCE("
        "(SELECT sum(r.released) FROM r WHERE r.budget_id = b.id), 0), updated_at = %s "
        "FROM unnest(%s::bigint[], %s::numeric[], %s::timestamptz[]) AS v(id, amount, start) "
        "WHERE b.id = v.id), "
        "k AS (UPDATE accounts_apikey SET last_used_at = %s WHERE id = ANY(%s::bigint[])) "
        "SELECT 1"
    )


_SQL: list[str] = []


def _batch_statement(
    ledgers: list[Ledger], key_ids: set[int], now: dt.datetime
) -> tuple[str, list]:
    if not _SQL:
        _SQL.append(_batch_sql())
    columns: list[list] = [[] for _ in _FIELDS]
    for ledger in ledgers:
        for record in ledger.records:
            for index, model_field in enumerate(_FIELDS):
                value = getattr(record, model_field.attname)
                if index in _JSON_COLUMNS and value is not None:
                    value = json.dumps(value)
                columns[index].append(value)
    spent: dict[int, Decimal] = {}
    starts: dict[int, dt.datetime] = {}
    rows: dict[int, tuple[Decimal, bool]] = {}  # reservation id → (release, close)
    for ledger in ledgers:
        for settlement in ledger.settlements:
            budget, rid = settlement.budget, settlement.reservation_id
            if rid is not None:
                release, close = rows.get(rid, (ZERO, False))
                rows[rid] = (release + settlement.release, close or settlement.close)
            if settlement.spend or settlement.release or settlement.close:
                spent[budget.id] = spent.get(budget.id, ZERO) + settlement.spend
                starts[budget.id] = period_bounds(budget.period, now)[0]
    budget_ids = list(spent)
    params = [
        *columns,
        now,
        now,
        list(rows),
        [release for release, _close in rows.values()],
        [close for _release, close in rows.values()],
        now,
        budget_ids,
        [spent[i] for i in budget_ids],
        [starts[i] for i in budget_ids],
        now,
        sorted(key_ids),
    ]
    return _SQL[0], params


async def _awrite(ledgers: list[Ledger], key_ids: set[int]) -> None:
    """`_write` on a native async PostgreSQL connection: the batch in one statement."""
    if not any(ledger.records or ledger.settlements for ledger in ledgers) and not key_ids:
        return
    sql, params = _batch_statement(ledgers, key_ids, timezone.now())
    async with pg_connection() as conn:
        await conn.execute(sql, params)


async def write_ledgers(ledgers: list[Ledger], key_ids: set[int]) -> None:
    if pg_enabled():
        try:
            await _awrite(ledgers, key_ids)
        except Exception:
            if len(ledgers) == 1:
                raise
            for ledger in ledgers:  # one bad request must not take the batch down
                await _awrite([ledger], set())
    else:
        await sync_to_async(_write)(ledgers, key_ids)


class UsageWriter:
    """One per event loop: a queue of closed ledgers and the task that writes them."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.queue: list[Ledger] = []
        self.wakeup = asyncio.Event()
        self.idle = asyncio.Event()
        self.idle.set()
        self.task: asyncio.Task | None = None
        self.touched: dict[int, float] = {}

    def submit(self, ledger: Ledger) -> None:
        self.queue.append(ledger)
        self.idle.clear()
        self.wakeup.set()
        if self.task is None or self.task.done():
            self.task = _start(self.loop, self._run())

    def _keys_to_touch(self, ledgers: list[Ledger]) -> set[int]:
        now = time.monotonic()
        due = set()
        for ledger in ledgers:
            key_id = ledger.api_key_id
            if (
                key_id is not None
                and now - self.touched.get(key_id, -KEY_TOUCH_SECONDS) >= KEY_TOUCH_SECONDS
            ):
                self.touched[key_id] = now
                due.add(key_id)
        return due

    async def _run(self) -> None:
        while True:
            if not self.queue:
                self.idle.set()
                self.wakeup.clear()
                await self.wakeup.wait()
                # Let more requests finish first: one transaction then writes many of them.
                await asyncio.sleep(settings.GATEWAY_USAGE_FLUSH_SECONDS)
                continue
            batch, self.queue = self.queue[:_MAX_BATCH], self.queue[_MAX_BATCH:]
            for delay in (0.05, 0.5, 2.0, None):
                try:
                    await write_ledgers(batch, self._keys_to_touch(batch))
                    break
                except Exception:
                    if delay is None:
                        log.exception(
                            "lost %d usage ledgers after retries: %s",
                            len(batch),
                            [r.request_id for ledger in batch for r in ledger.records],
                        )
                        break
                    log.warning("usage write failed; retrying in %.2f s", delay, exc_info=True)
                    await asyncio.sleep(delay)

    async def flush(self) -> None:
        """Wait until everything submitted so far is written."""
        if self.queue or not self.idle.is_set():
            if self.task is None or self.task.done():
                self.task = _start(self.loop, self._run())
            await self.idle.wait()


_writers: dict[asyncio.AbstractEventLoop, UsageWriter] = {}


def writer() -> UsageWriter:
    loop = asyncio.get_running_loop()
    found = _writers.get(loop)
    if found is None:
        for old in [old for old in _writers if old.is_closed()]:
            del _writers[old]
        found = _writers[loop] = UsageWriter(loop)
    return found


async def usage_flush() -> None:
    """Flush this loop's writer (the lifespan shutdown, tests, benchmarks)."""
    await writer().flush()
