"""A ledger's records are encoded once (spend.spool.rows_encoded): the spool's line and the
database batch read the same JSON, and a spool written before still replays."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from core import jsoncodec
from spend import spool as spooling
from spend.models import UsageRecord
from spend.usage import ROW_FIELDS, Ledger, UsageRow, ledger_from_line
from spend.usage_sql import ROW_ATTNAMES, batch_statement, ledgers_write

pytestmark = pytest.mark.django_db(transaction=True)


def full_row(team_id: int, **values) -> UsageRow:
    """A record with every kind of value: text beyond ASCII, JSON, nulls, a Decimal."""
    return UsageRow(
        **{
            "created_at": dt.datetime(2026, 12, 6, 19, 50, 1, 123456, tzinfo=dt.UTC),
            "request_id": "req_encoded_once",
            "team_id": team_id,
            "model_name": "gpt-5.4-mini",
            "route_reason": "tier:mini requested — «naïve» 東京",
            "stream": True,
            "input_tokens": 24,
            "output_tokens": 9,
            "cost_usd": Decimal("0.0000585"),
            "ttft_ms": None,
            "metadata": {"feature": "triage", "n": [1, 2.5, None]},
            "route_skipped": [],
            "request_body": None,
            **values,
        }
    )


def test_the_spool_and_the_database_batch_share_one_encoding(team, monkeypatch, tmp_path):
    calls: list[int] = []
    encode = spooling.rows_encoded

    def counted(records, fields):
        calls.append(len(records))
        return encode(records, fields)

    monkeypatch.setattr(spooling, "rows_encoded", counted)
    ledger = Ledger(closed=True)
    ledger.add(full_row(team.id))
    spool = spooling.Spool(tmp_path, ROW_FIELDS)
    try:
        spool.append(ledger)
        _, params = batch_statement([ledger], set(), timezone.now())
    finally:
        spool.close(remove=True)

    assert calls == [1]
    assert ROW_FIELDS == ROW_ATTNAMES
    assert params[2] == f'[["{ledger.key}",{ledger.rows_json.decode()}]]'


def test_a_spool_line_reads_back_as_the_ledger_it_holds(team, tmp_path):
    ledger = Ledger(closed=True)
    ledger.add(full_row(team.id))
    spool = spooling.Spool(tmp_path, ROW_FIELDS)
    spool.append(ledger)
    spool.close(remove=False)

    (segment,) = tmp_path.glob("*.spool")
    (line,) = spooling.segment_lines(segment)
    replayed = ledger_from_line(line)

    assert replayed.key == ledger.key
    assert replayed.records == ledger.records


def test_a_spool_of_the_previous_version_still_replays(team, tmp_path: Path):
    """Before the records were encoded once, the header listed UsageRow's own field order and
    each line was one document: the same format, which replay reads by the header's names."""
    old_fields = tuple(UsageRow.__dataclass_fields__)
    row = full_row(team.id)
    values = [getattr(row, name) for name in old_fields]
    line = {"n": 1, "k": "0123456789abcdef01234567", "a": None, "r": [values]}
    dumps = json.JSONEncoder(
        separators=(",", ":"), default=jsoncodec.as_text, ensure_ascii=False
    ).encode
    segment = tmp_path / "usage-1-abcd.0.spool"
    segment.write_bytes(
        spooling.header(old_fields) + dumps(line).encode() + b"\n" + b'{"n":2,"k":"torn'
    )

    (read,) = spooling.segment_lines(segment)
    replayed = ledger_from_line(read)

    assert replayed.records == [row]


def test_postgresql_stores_each_value_as_the_record_held_it(team):
    from spend import pg

    if connection.vendor != "postgresql":
        pytest.skip("the native batch is PostgreSQL's")
    ledger = Ledger(closed=True)
    ledger.add(full_row(team.id))
    ledger.add(full_row(team.id, metadata=None, route_skipped=["nano"], ttft_ms=7))
    parked: list[Ledger] = []

    async def write() -> None:
        pg.serving(True)
        try:
            await ledgers_write([ledger], set(), lambda ledger, exc: parked.append(ledger))
        finally:
            await pg.pg_close()
            pg.serving(False)

    asyncio.run(write())

    assert parked == []
    first, second = UsageRecord.objects.order_by("attempt")
    for stored, row in ((first, ledger.records[0]), (second, ledger.records[1])):
        for name in ROW_ATTNAMES:
            assert getattr(stored, name) == getattr(row, name), name
    assert UsageRecord.objects.filter(request_body__isnull=True).count() == 2  # SQL NULL
    assert UsageRecord.objects.filter(metadata__isnull=True).count() == 1
