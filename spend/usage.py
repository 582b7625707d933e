"""Usage ledgers and the writer that puts them in the database: durable, exactly once.

A request collects one `UsageRow` per upstream call in its `Ledger`. When the request ends
(answered, failed, streamed to the end, or cancelled by a client that went away) its budget
hold is released in memory and the ledger is closed: in a server process it is appended to
the process's spool file (spend.spool, one write) and handed to the loop's `UsageWriter`,
without awaiting anything, so even a cancelled stream's `finally` can do it. The writer
drains its queue in order, in batches, each batch one transaction (spend.usage_sql) that
inserts the records and applies the budget settlements (spend.budgets.Settlement) of the
ledgers not written before, so the ledger on a budget always equals the sum of its usage
records. Budget leases send their returns through the same queue.

The database may be away for any length of time: the writer retries with backoff and never
drops a batch; past USAGE_QUEUE_MAX ledgers in memory, new ones stay in the spool only and
are read back from it once the queue has drained. `usage_backlog` (on /readyz) says how many
ledgers wait and for how long. A ledger the database refuses for its own data is parked in
the spool directory's parked.jsonl, never retried with the others. On shutdown the ASGI
lifespan handler returns the leases and flushes every writer (gateway.asgi); a process that
dies leaves its spool to the next start-up or the sweeper (`usage_spools_replay`).
"""

from __future__ import annotations

import asyncio
import contextvars
import datetime as dt
import logging
import secrets
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import connections

from core.metrics import record_ledger
from core.money import ZERO
from core.readiness import ProcessNotReady
from spend import spool as spooling
from spend.budgets import (
    BudgetHold,
    BudgetInfo,
    Settlement,
    budget_credits_pending,
    settlement_sink_set,
)
from spend.models import UsageRecord
from spend.pg import is_serving
from spend.usage_sql import ROW_ATTNAMES, ledgers_write, ledgers_write_replayed

log = logging.getLogger(__name__)

KEY_TOUCH_SECONDS = 60.0  # last_used_at is refreshed at most this often per key
_MAX_BATCH = 500
_RETRY_MAX_SECONDS = 5.0


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
    metadata: Any = None
    route_skipped: Any = None
    request_body: Any = None
    response_body: Any = None


# The records' fields in the order of UsageRecord's columns: the spool's lines and the
# database batch read the same encoded rows (spend.spool.rows_encoded).
ROW_FIELDS = ROW_ATTNAMES
assert set(ROW_FIELDS) == set(UsageRow.__dataclass_fields__), "UsageRow and UsageRecord differ"


def _ledger_key() -> str:
    return secrets.token_hex(12)


@dataclass(slots=True)
class Ledger:
    """What one request cost: its usage records and the budget hold they settle. `key`
    makes its write idempotent; `seq` is its position in the process's spool."""

    hold: BudgetHold | None = None
    records: list[UsageRow | UsageRecord] = field(default_factory=list)
    committed: Decimal = ZERO
    api_key_id: int | None = None
    closed: bool = False
    settlements: list[Settlement] = field(default_factory=list)
    key: str = field(default_factory=_ledger_key)
    seq: int = 0
    at: float = 0.0  # when it was closed (time.monotonic)
    rows_json: bytes | None = None  # its records encoded once, for the spool and the database

    def add(self, record: UsageRow | UsageRecord) -> UsageRow | UsageRecord:
        record.attempt = len(self.records) + 1
        self.records.append(record)
        self.rows_json = None
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


def usage_submit(ledger: Ledger) -> None:
    """Close a ledger built outside a gateway request (e.g. a refusal worth recording)."""
    ledger.close()


def settlements_submit(settlements: list[Settlement]) -> None:
    """Queue budget changes that are not a request's (a lease given back or renewed)."""
    writer().submit(Ledger(closed=True, settlements=settlements))


settlement_sink_set(settlements_submit)


# ---------------------------------------------------------------- spool lines → ledgers


def _row(values: dict[str, Any]) -> UsageRow:
    row = {name: value for name, value in values.items() if name in ROW_FIELDS}
    row["created_at"] = dt.datetime.fromisoformat(row["created_at"])
    row["cost_usd"] = Decimal(row.get("cost_usd") or 0)
    return UsageRow(**row)


def ledger_from_line(line: dict[str, Any]) -> Ledger:
    settlements = [
        Settlement(
            BudgetInfo(budget_id, 0, None, period, ZERO, "", None),
            rid,
            spend=Decimal(spend),
            release=Decimal(release),
            close=close,
            credit=Decimal(credit),
        )
        for budget_id, period, rid, spend, release, close, credit in line.get("s", ())
    ]
    return Ledger(
        records=[_row(values) for values in line["r"]],
        api_key_id=line.get("a"),
        closed=True,
        settlements=settlements,
        key=line["k"],
        seq=line["n"],
    )


def _park(ledger: Ledger, exc: Exception) -> None:
    """A ledger the database refuses for its own data: kept aside, visibly."""
    line = spooling.encode(ledger, ledger.seq, ROW_FIELDS)
    path = spooling.park(spooling.spool_dir(), line)
    log.error(
        "parked usage ledger %s (requests %s) in %s: %s",
        ledger.key,
        sorted({r.request_id for r in ledger.records}),
        path,
        exc,
    )


# ---------------------------------------------------------------- the writer


def _start(loop: asyncio.AbstractEventLoop, coro) -> asyncio.Task:
    # A fresh context: a task inheriting a request's ThreadSensitiveContext could not run
    # sync (ORM) code once that request is over.
    return loop.create_task(coro, name="usage-writer", context=contextvars.Context())


class UsageWriter:
    """One per event loop: a queue of closed ledgers and the task that writes them. In the
    server (`spend.pg.serving`) every ledger is spooled first."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.queue: list[Ledger] = []
        self.writing: list[Ledger] = []  # the batch being written
        self.wakeup = asyncio.Event()
        self.idle = asyncio.Event()
        self.idle.set()
        self.task: asyncio.Task | None = None
        self.touched: dict[int, float] = {}
        self.spool = spooling.Spool(spooling.spool_dir(), ROW_FIELDS) if is_serving() else None
        # Past USAGE_QUEUE_MAX: the spool position after which ledgers are on disk only.
        self.overflow_after: int | None = None
        self.overflowed = 0
        self.overflow_at = 0.0

    def submit(self, ledger: Ledger) -> None:
        ledger.at = time.monotonic()
        budget_credits_pending(ledger.settlements, queued=True)
        if self.spool is not None:
            try:
                ledger.seq = self.spool.append(ledger)
            except OSError:
                log.exception("could not spool usage ledger %s: kept in memory", ledger.key)
            else:
                if self.overflow_after is not None or len(self.queue) >= settings.USAGE_QUEUE_MAX:
                    if self.overflow_after is None:
                        self.overflow_after, self.overflow_at = ledger.seq - 1, ledger.at
                        log.warning("usage queue full: new ledgers wait in the spool only")
                    self.overflowed += 1
                    self._wake()
                    return
        self.queue.append(ledger)
        self._wake()

    def _wake(self) -> None:
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
                if self.overflow_after is not None:
                    await self._catch_up()
                    continue
                self.idle.set()
                self.wakeup.clear()
                await self.wakeup.wait()
                # Let more requests finish first: one transaction then writes many of them.
                await asyncio.sleep(settings.USAGE_FLUSH_SECONDS)
                continue
            batch, self.queue = self.queue[:_MAX_BATCH], self.queue[_MAX_BATCH:]
            await self._write(batch)

    async def _write(self, batch: list[Ledger]) -> None:
        """Write the batch, however long the database takes to come back."""
        self.writing = batch
        keys = self._keys_to_touch(batch)
        delay = 0.05
        while True:
            try:
                await ledgers_write(batch, keys, _park)
                break
            except Exception:
                log.warning(
                    "usage write of %d ledgers failed; retrying in %.2f s",
                    len(batch),
                    delay,
                    exc_info=True,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RETRY_MAX_SECONDS)
        self.writing = []
        for ledger in batch:
            budget_credits_pending(ledger.settlements, queued=False)
        if self.spool is not None and batch[-1].seq:
            self.spool.release(batch[-1].seq)

    async def _catch_up(self) -> None:
        """Write the ledgers that overflowed into the spool, reading them back from it."""
        assert self.spool is not None
        assert self.overflow_after is not None
        after, upto = self.overflow_after, self.spool.seq
        self.spool.rotate()  # ledgers from now on are queued in memory again
        self.overflow_after, self.overflowed = None, 0
        chunk: list[Ledger] = []
        for line in self.spool.read_after(after):
            if line["n"] > upto:
                break
            chunk.append(ledger_from_line(line))
            if len(chunk) == _MAX_BATCH:
                await self._write(chunk)
                chunk = []
        if chunk:
            await self._write(chunk)

    def backlog(self) -> tuple[int, float]:
        """How many ledgers wait for the database, and the age of the oldest (seconds)."""
        waiting = [*self.writing[:1], *self.queue[:1]]
        oldest = min((ledger.at for ledger in waiting), default=None)
        if self.overflow_after is not None:
            oldest = self.overflow_at if oldest is None else min(oldest, self.overflow_at)
        count = len(self.writing) + len(self.queue) + self.overflowed
        return count, (time.monotonic() - oldest) if oldest is not None else 0.0

    async def flush(self) -> None:
        """Wait until everything submitted so far is written."""
        if self.queue or not self.idle.is_set():
            if self.task is None or self.task.done():
                self.task = _start(self.loop, self._run())
            await self.idle.wait()

    def close(self) -> None:
        """Shutdown: give the spool up, deleted if everything in it was written (else the
        next start-up or the sweeper replays it)."""
        if self.spool is None:
            return
        done = not (self.queue or self.writing or self.overflow_after is not None)
        if done:
            self.spool.release(self.spool.seq)
        self.spool.close(remove=done)
        self.spool = None


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


async def usage_shutdown(*, within: float) -> None:
    """Flush for up to `within` seconds, then give the spool up (the ASGI lifespan)."""
    current = writer()
    try:
        async with asyncio.timeout(within):
            await current.flush()
    except TimeoutError:
        count, age = current.backlog()
        log.error(
            "shutting down with %d usage ledgers unwritten (oldest %.0f s): left in the spool",
            count,
            age,
        )
    current.close()


def usage_backlog() -> tuple[int, float]:
    """This loop's writer backlog: (ledgers waiting, age of the oldest in seconds)."""
    loop = asyncio.get_running_loop()
    found = _writers.get(loop)
    return found.backlog() if found is not None else (0, 0.0)


def usage_backlog_check() -> dict[str, Any]:
    """/readyz: the writer's backlog; not ready once its oldest ledger waited longer than
    USAGE_BACKLOG_MAX_SECONDS (the database has been away that long)."""
    count, age = usage_backlog()
    report = {"count": count, "oldest_seconds": round(age, 1)}
    if age > settings.USAGE_BACKLOG_MAX_SECONDS:
        raise ProcessNotReady(
            f"{count} usage ledgers unwritten, the oldest for {age:.0f} s", report
        )
    return report


def usage_spools_replay_start() -> None:
    """Replay dead processes' spools on a thread of its own (server start-up)."""

    def replay() -> None:
        try:
            usage_spools_replay()
        except Exception:
            log.exception("replaying usage spools failed (the sweeper will try again)")
        finally:
            connections.close_all()

    threading.Thread(target=replay, name="usage-spool-replay", daemon=True).start()


def usage_spools_replay() -> int:
    """Replay the spools of dead processes into the database (sync: the sweeper, start-up);
    how many ledgers were read. Safe to run anywhere at any time: a live process's spool is
    locked, and a ledger written before is skipped."""
    directory = spooling.spool_dir()
    if not directory.exists():
        return 0
    replayed = 0
    for stem, segments in spooling.owners_dead(directory):
        for path in segments:
            chunk: list[Ledger] = []
            for line in spooling.segment_lines(path):
                chunk.append(ledger_from_line(line))
                if len(chunk) == _MAX_BATCH:
                    ledgers_write_replayed(chunk, _park)
                    replayed += len(chunk)
                    chunk = []
            if chunk:
                ledgers_write_replayed(chunk, _park)
                replayed += len(chunk)
            path.unlink(missing_ok=True)
        log.warning("replayed the usage spool %s of a dead process", stem)
    return replayed
