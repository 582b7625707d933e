"""Writing closed ledgers to the database, idempotently: records, settlements, key touches.

A batch of ledgers is one transaction. Each ledger's unique key goes into `UsageLedger` in
the same transaction as its usage records and budget settlements, and only the ledgers whose
key was new are written: a batch retried after a lost commit reply, a spool replayed twice,
or two processes replaying the same spool never double a record or a charge.

A failure of the batch because of one ledger's own data (`DATA_ERRORS`) writes the ledgers
one by one, so the others go in and the bad one is handed back to be parked; any other
failure (the database is unreachable, locked, restarting) is raised for the writer to retry
the whole batch later.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import psycopg
from asgiref.sync import sync_to_async
from django.db import DataError, IntegrityError, connection, transaction
from django.db.models import JSONField
from django.utils import timezone

from accounts.models import ApiKey
from core.jsoncodec import as_text, dumps
from spend.budgets import budget_settle
from spend.models import UsageLedger, UsageRecord
from spend.periods import period_bounds
from spend.pg import pg_connection, pg_enabled
from spend.spool import ledger_rows

# A ledger the database refuses for what it holds (a value out of range, a check constraint).
DATA_ERRORS = (
    DataError,
    IntegrityError,
    psycopg.DataError,
    psycopg.IntegrityError,
    ValueError,
    TypeError,
)

assert UsageLedger._meta.db_table == "spend_usageledger"

CLAIM_SQL = "INSERT INTO spend_usageledger (key, written_at) VALUES (%s, %s) ON CONFLICT DO NOTHING"


def _instance(record: Any) -> UsageRecord:
    if isinstance(record, UsageRecord):
        return record
    return UsageRecord(**{name: getattr(record, name) for name in ROW_ATTNAMES})


_FIELDS = [f for f in UsageRecord._meta.concrete_fields if not f.primary_key]
ROW_ATTNAMES = tuple(f.attname for f in _FIELDS)
_JSON_COLUMNS = frozenset(i for i, f in enumerate(_FIELDS) if isinstance(f, JSONField))


def ledgers_write_sync(ledgers: list[Any], key_ids: set[int]) -> None:
    """The batch on Django's connection (SQLite; PostgreSQL outside the web server, and
    spool replays)."""
    now = timezone.now()
    at = connection.ops.adapt_datetimefield_value(now) if connection.vendor == "sqlite" else now
    with transaction.atomic():
        fresh = []
        with connection.cursor() as cursor:
            for ledger in ledgers:
                cursor.execute(CLAIM_SQL, [ledger.key, at])
                if cursor.rowcount == 1:
                    fresh.append(ledger)
        UsageRecord.objects.bulk_create(
            [_instance(record) for ledger in fresh for record in ledger.records]
        )
        budget_settle(settlements=[s for ledger in fresh for s in ledger.settlements], now=now)
        if key_ids:
            ApiKey.objects.filter(id__in=key_ids).update(last_used_at=now)


def _batch_sql() -> str:
    """One PostgreSQL statement for a whole batch (atomic, one round trip, and always the
    same text, so psycopg prepares it): claim the ledgers' keys; insert the records of the
    ledgers claimed; take their settled amounts off the reservation rows, closing those that
    are done and renewing the others; settle each budget once with the batch's total
    (PostgreSQL applies only one update of a row per statement, so amounts are summed per
    row first); and touch the keys' last_used_at. A row the sweeper already closed releases
    nothing.

    Records and settlements come as two JSON documents rather than one array per column,
    which psycopg dumps element by element in Python (about 80 µs per record). The records
    are each ledger's `[key, rows]`, its rows the very JSON its spool line holds (values in
    ROW_ATTNAMES order, spend.spool.rows_encoded), so a record is encoded once. Each value is
    read as text (JSON null: SQL NULL) and cast to its column's type, as an array's
    explicit cast would."""
    columns = ", ".join(f'"{f.column}"' for f in _FIELDS)
    cast = ", ".join(
        f"NULLIF(u.row->{i}, 'null'::jsonb)"
        if i in _JSON_COLUMNS
        else f"(u.row->>{i})::{f.db_type(connection)}"
        for i, f in enumerate(_FIELDS)
    )
    return (
        "WITH l AS (INSERT INTO spend_usageledger (key, written_at) "  # noqa: S608 - model columns
        "SELECT k, %s FROM unnest(%s::varchar[]) AS k ON CONFLICT DO NOTHING RETURNING key), "
        f"ins AS (INSERT INTO spend_usagerecord ({columns}) SELECT {cast} "
        "FROM jsonb_array_elements(%s::jsonb) AS d(ledger), "
        "jsonb_array_elements(d.ledger->1) AS u(row) WHERE d.ledger->>0 IN (SELECT key FROM l)), "
        "s AS (SELECT ledger, budget_id::bigint, rid::bigint, spend::numeric, "
        "release::numeric, close::boolean, start::timestamptz "
        "FROM jsonb_to_recordset(%s::jsonb) "
        "AS s(ledger text, budget_id text, rid text, spend text, release text, close text, "
        "start text) WHERE s.ledger IN (SELECT key FROM l)), "
        "v AS (SELECT rid AS id, sum(release) AS release, bool_or(close) AS close "
        "FROM s WHERE rid IS NOT NULL GROUP BY rid), "
        "r AS (UPDATE spend_budgetreservation AS r SET "
        "amount_usd = CASE WHEN v.close THEN r.amount_usd ELSE r.amount_usd - v.release END, "
        "settled_at = CASE WHEN v.close THEN %s::timestamptz END, "
        "created_at = CASE WHEN v.close THEN r.created_at ELSE %s END "
        "FROM v WHERE r.id = v.id AND r.settled_at IS NULL "
        "RETURNING r.budget_id, CASE WHEN v.close THEN r.amount_usd ELSE v.release END AS released), "
        "w AS (SELECT budget_id AS id, sum(spend) AS amount, max(start) AS start "
        "FROM s GROUP BY budget_id), "
        "b AS (UPDATE spend_budget AS b SET "
        "spent_usd = (CASE WHEN b.period_start < w.start THEN 0 ELSE b.spent_usd END) + w.amount, "
        "period_start = CASE WHEN b.period_start < w.start THEN w.start ELSE b.period_start END, "
        "reserved_usd = b.reserved_usd - COALESCE("
        "(SELECT sum(r.released) FROM r WHERE r.budget_id = b.id), 0), updated_at = %s "
        "FROM w WHERE b.id = w.id), "
        "k AS (UPDATE accounts_apikey SET last_used_at = %s WHERE id = ANY(%s::bigint[])) "
        "SELECT count(*) FROM l"
    )


_SQL: list[str] = []
_SETTLED = ("ledger", "budget_id", "rid", "spend", "release", "close", "start")


def batch_statement(ledgers: list[Any], key_ids: set[int], now: dt.datetime) -> tuple[str, list]:
    if not _SQL:
        _SQL.append(_batch_sql())
    records: list[bytes] = []
    settled: list[dict[str, Any]] = []
    for ledger in ledgers:
        if ledger.records:
            records.append(b"[%s,%s]" % (dumps(ledger.key), ledger_rows(ledger, ROW_ATTNAMES)))
        for s in ledger.settlements:
            start = period_bounds(s.budget.period, now)[0]
            values = (ledger.key, s.budget.id, s.reservation_id, s.spend, s.release, s.close, start)
            settled.append(dict(zip(_SETTLED, values, strict=True)))
    params = [
        now,
        [ledger.key for ledger in ledgers],
        (b"[%s]" % b",".join(records)).decode(),
        dumps(settled, default=as_text).decode(),
        now,
        now,
        now,
        now,
        sorted(key_ids),
    ]
    return _SQL[0], params


async def _awrite(ledgers: list[Any], key_ids: set[int]) -> None:
    """The batch on a native async PostgreSQL connection, in one statement."""
    sql, params = batch_statement(ledgers, key_ids, timezone.now())
    async with pg_connection() as conn:
        await conn.execute(sql, params)


async def _write(ledgers: list[Any], key_ids: set[int]) -> None:
    if pg_enabled():
        await _awrite(ledgers, key_ids)
    else:
        await sync_to_async(ledgers_write_sync)(ledgers, key_ids)


async def ledgers_write(
    ledgers: list[Any], key_ids: set[int], park: Callable[[Any, Exception], None]
) -> None:
    """Write the batch; a ledger the database refuses for its own data goes to `park`, the
    others are written. Raises when the database cannot be reached (retry the batch)."""
    try:
        await _write(ledgers, key_ids)
    except DATA_ERRORS as exc:
        if len(ledgers) == 1:
            park(ledgers[0], exc)
            return
        for ledger in ledgers:  # one bad ledger must not keep the others out
            try:
                await _write([ledger], set())
            except DATA_ERRORS as exc_one:
                park(ledger, exc_one)


def ledgers_write_replayed(ledgers: list[Any], park: Callable[[Any, Exception], None]) -> None:
    """`ledgers_write` for a replay on Django's connection (the sweeper, start-up)."""
    try:
        ledgers_write_sync(ledgers, set())
    except DATA_ERRORS:
        for ledger in ledgers:
            try:
                ledgers_write_sync([ledger], set())
            except DATA_ERRORS as exc_one:
                park(ledger, exc_one)
