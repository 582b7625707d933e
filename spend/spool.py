"""The usage spool: every closed ledger appended to a local file before its response ends.

A server process appends each ledger as one JSON line (one `os.write` on an O_APPEND file,
no fsync: the page cache survives the process, not the machine) before handing it to its
usage writer. The file is a segment; the writer starts a new segment and deletes the old
one once every ledger in it is in the database. A process holds an exclusive `flock` on its
lock file (`usage-<pid>-<token>.lock`) for as long as it lives: any process that can take
that lock knows the owner is dead and replays its segments (`usage-<pid>-<token>.<n>.spool`)
into the database, then deletes them (`usage_spools_replay`: at server start-up and in the
sweeper). Replays are idempotent: each ledger carries a unique key (spend.usage_sql).

Each segment starts with a header line naming the record fields, so a spool written by one
version replays under the next. The directory must be on a local disk (flock), one per host.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings

from core import jsoncodec

log = logging.getLogger(__name__)

FORMAT = 1


def spool_dir() -> Path:
    return Path(settings.USAGE_SPOOL_DIR)


def rows_encoded(records: list[Any], fields: tuple[str, ...]) -> bytes:
    """Records as one JSON array of arrays, values in `fields` order: the spool line's `r`,
    and what the usage writer sends to PostgreSQL as is (spend.usage_sql). A lone surrogate
    an upstream answered with is escaped (core.jsoncodec): the line is still made, and the
    database refuses that ledger alone, to be parked."""
    return jsoncodec.dumps(
        [[getattr(record, name) for name in fields] for record in records],
        default=jsoncodec.as_text,
    )


def ledger_rows(ledger: Any, fields: tuple[str, ...]) -> bytes:
    """The ledger's records encoded, once: kept on it as `rows_json`."""
    rows = ledger.rows_json
    if rows is None:
        rows = ledger.rows_json = rows_encoded(ledger.records, fields)
    return rows


def encode(ledger: Any, seq: int, fields: tuple[str, ...]) -> bytes:
    """One ledger as one line: its key, spool position, key to touch, records (values in the
    header's field order) and settlements. The records' JSON is the ledger's own
    (`ledger_rows`), spliced in: the line is what it was when it was encoded whole."""
    head = jsoncodec.dumps({"n": seq, "k": ledger.key, "a": ledger.api_key_id})
    line = b'%s,"r":%s' % (head[:-1], ledger_rows(ledger, fields))
    if ledger.settlements:
        settled = jsoncodec.dumps(
            [
                [
                    s.budget.id,
                    s.budget.period,
                    s.reservation_id,
                    s.spend,
                    s.release,
                    s.close,
                    s.credit,
                ]
                for s in ledger.settlements
            ],
            default=jsoncodec.as_text,
        )
        line = b'%s,"s":%s' % (line, settled)
    return line + b"}\n"


def header(fields: tuple[str, ...]) -> bytes:
    return jsoncodec.dumps({"format": FORMAT, "fields": list(fields)}) + b"\n"


@dataclass(slots=True)
class Segment:
    path: Path
    first: int  # spool position of its first ledger
    last: int  # of its last one (first - 1 while empty)


class Spool:
    """One process's spool: the lock it holds while alive and its open segments."""

    def __init__(self, directory: Path, fields: tuple[str, ...]) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.dir = directory
        self.fields = fields
        self.stem = f"usage-{os.getpid()}-{secrets.token_hex(4)}"
        self.lock_fd = os.open(directory / f"{self.stem}.lock", os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(self.lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self.seq = 0
        self.count = 0  # segments opened so far (their number)
        self.segments: list[Segment] = []
        self.fd = -1
        self._open()

    def _open(self) -> None:
        path = self.dir / f"{self.stem}.{self.count}.spool"
        self.count += 1
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.write(self.fd, header(self.fields))
        self.segments.append(Segment(path, self.seq + 1, self.seq))

    def append(self, ledger: Any) -> int:
        """Spool the ledger; its position. One write: a kill never leaves half of the line
        after a whole one, and a torn last line is skipped on replay."""
        self.seq += 1
        os.write(self.fd, encode(ledger, self.seq, self.fields))
        self.segments[-1].last = self.seq
        return self.seq

    def rotate(self) -> None:
        """New ledgers go to a new segment (the current one can then be deleted once written)."""
        os.close(self.fd)
        self._open()

    def release(self, upto: int) -> None:
        """Every ledger up to position `upto` is in the database: delete the segments that
        hold nothing else."""
        while self.segments and self.segments[0].last <= upto:
            segment = self.segments[0]
            if segment is self.segments[-1]:
                if segment.last < segment.first:
                    return  # the current segment, empty
                self.rotate()
            os.unlink(segment.path)
            self.segments.pop(0)

    def read_after(self, after: int) -> Iterator[dict]:
        """The lines of the ledgers after position `after`, in order, from this process's
        segments on disk (the ones the writer did not keep in memory)."""
        for segment in list(self.segments):
            if segment.last > after:
                for line in segment_lines(segment.path):
                    if line["n"] > after:
                        yield line

    def close(self, *, remove: bool) -> None:
        """Give the spool up; `remove` once every ledger in it is in the database."""
        os.close(self.fd)
        if remove:
            for segment in self.segments:
                segment.path.unlink(missing_ok=True)
            (self.dir / f"{self.stem}.lock").unlink(missing_ok=True)
        os.close(self.lock_fd)


def segment_lines(path: Path) -> Iterator[dict]:
    """A segment's ledger lines, as dicts with records keyed by field name; a torn or
    unreadable line (a kill in the middle of a write) is logged and skipped."""
    fields: list[str] = []
    with path.open("rb") as file:
        for number, raw in enumerate(file):
            try:
                line = json.loads(raw)
            except ValueError:
                log.error("skipped an unreadable line %d of %s", number + 1, path)
                continue
            if "fields" in line:
                fields = line["fields"]
                continue
            line["r"] = [dict(zip(fields, values, strict=False)) for values in line["r"]]
            yield line


def owners_dead(directory: Path) -> Iterator[tuple[str, list[Path]]]:
    """Each spool whose owner is gone, locked by us while the caller replays it: its stem
    and its segments in order. The lock file is deleted after the caller's step."""
    for lock in sorted(directory.glob("usage-*.lock")):
        try:
            fd = os.open(lock, os.O_RDWR)
        except FileNotFoundError:
            continue  # replayed meanwhile by another process
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # alive (or being replayed by another process)
            stem = lock.name.removesuffix(".lock")
            segments = sorted(
                directory.glob(f"{stem}.*.spool"), key=lambda p: int(p.name.split(".")[-2])
            )
            yield stem, segments
            lock.unlink(missing_ok=True)
        finally:
            os.close(fd)


def park(directory: Path, line: bytes) -> Path:
    """Keep a ledger the database refused for its own data, for a person to look at."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "parked.jsonl"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)
    return path
