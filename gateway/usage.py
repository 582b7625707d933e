"""Usage records and budget settlement, written off the response path but never lost.

A request collects one `UsageRecord` per upstream call in its `Ledger`. When the request
ends (answered, failed, streamed to the end, or cancelled by a client that went away) the
ledger is handed to the loop's `UsageWriter` without awaiting anything, so even a cancelled
stream's `finally` can do it. The writer drains its queue in batches: one transaction per
batch inserts the records (one multi-row INSERT) and settles the budgets they were charged
to, so the ledger on a budget always equals the sum of its usage records. On shutdown the
ASGI lifespan handler flushes every writer (gateway.asgi).
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
from django.db import transaction
from django.utils import timezone

from accounts.models import ApiKey
from core.money import ZERO
from spend.budgets import BudgetHold, budget_settle
from spend.models import UsageRecord

log = logging.getLogger(__name__)

KEY_TOUCH_SECONDS = 60.0  # last_used_at is refreshed at most this often per key
_MAX_BATCH = 500


@dataclass(slots=True)
class Ledger:
    """What one request cost: its usage records and the budget hold they settle."""

    hold: BudgetHold | None = None
    records: list[UsageRecord] = field(default_factory=list)
    committed: Decimal = ZERO
    api_key_id: int | None = None
    closed: bool = False

    def add(self, record: UsageRecord) -> UsageRecord:
        record.attempt = len(self.records) + 1
        self.records.append(record)
        self.committed += record.cost_usd
        return record

    def close(self) -> None:
        """Hand the ledger to the writer. Idempotent; never awaits (safe in a cancelled task)."""
        if self.closed:
            return
        self.closed = True
        if self.records or (self.hold is not None and self.hold.reservation_ids):
            writer().submit(self)


def _touch_keys(key_ids: set[int], now: dt.datetime) -> None:
    if key_ids:
        ApiKey.objects.filter(id__in=key_ids).update(last_used_at=now)


def _write(ledgers: list[Ledger], key_ids: set[int]) -> None:
    now = timezone.now()
    try:
        with transaction.atomic():
            UsageRecord.objects.bulk_create([r for ledger in ledgers for r in ledger.records])
            for ledger in ledgers:
                if ledger.hold is not None and ledger.hold.active:
                    budget_settle(hold=ledger.hold, actual_usd=ledger.committed, now=now)
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
                continue
            batch, self.queue = self.queue[:_MAX_BATCH], self.queue[_MAX_BATCH:]
            for delay in (0.05, 0.5, 2.0, None):
                try:
                    await sync_to_async(_write)(batch, self._keys_to_touch(batch))
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
