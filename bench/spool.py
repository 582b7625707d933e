"""What the durable usage path adds to a request before its response ends (microseconds).

    python bench/spool.py [--n 20000]

A gateway request's ledger is appended to the process's spool file (spend.spool: one JSON
line, one `os.write`, no fsync) before the last byte of its answer leaves; the database
write happens later, in the usage writer's batch. This measures that append, in-process, for
the ledger of a typical `/v1/chat/completions` call: one usage record, without and with a
budget settlement, on the spool directory's disk.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

# the project instead of bench/, whose requests.py shadows the package
sys.path[0] = str(Path(__file__).resolve().parent.parent)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")

import django  # noqa: E402  (after the path and environment are set)

django.setup()

from spend.budgets import BudgetInfo, Settlement  # noqa: E402
from spend.spool import Spool  # noqa: E402
from spend.usage import ROW_FIELDS, Ledger, UsageRow  # noqa: E402


def chat_ledger(*, with_budget: bool) -> Ledger:
    """What one non-streamed chat completion through `tier:mini` leaves behind."""
    record = UsageRow(
        created_at=dt.datetime.now(dt.UTC),
        request_id="req_5f0c7e9a2b1d4c6e8f0a1b2c",
        team_id=3,
        model_name="gpt-5.4-mini",
        api_key_id=7,
        prompt_version_id=None,
        rule="tier",
        route_reason="tier:mini requested",
        model_id=4,
        tier_name="mini",
        input_tokens=24,
        output_tokens=9,
        cost_usd=Decimal("0.0000585"),
        latency_ms=3,
        metadata={"feature": "triage"},
        route_skipped=[],
    )
    ledger = Ledger(records=[record], api_key_id=7, committed=record.cost_usd)
    if with_budget:
        budget = BudgetInfo(2, 3, None, "monthly", Decimal("100"), "block", None)
        # a lease's request: its cost spent, the rest of its worst case credited back
        ledger.settlements = [
            Settlement(budget, 11, spend=record.cost_usd, credit=Decimal("0.0042"))
        ]
    return ledger


def append_us(spool: Spool, ledger: Ledger, n: int) -> float:
    """The median over 5 runs of n appends, per append."""
    runs = []
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(n):
            ledger.rows_json = None  # as a new ledger: its records encoded in the append
            spool.append(ledger)
        runs.append((time.perf_counter() - started) / n * 1e6)
        spool.rotate()  # a fresh segment, as the writer's releases keep them small
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20000, help="appends per run (5 runs)")
    parser.add_argument("--dir", help="spool directory (default: a new one under var/)")
    args = parser.parse_args()
    root = Path(sys.path[0]) / "var"
    root.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.dir or root) as directory:
        spool = Spool(Path(directory), ROW_FIELDS)
        try:
            for with_budget in (False, True):
                ledger = chat_ledger(with_budget=with_budget)
                label = "with a budget settlement" if with_budget else "no budget"
                print(
                    f"spool append, one record, {label}: {append_us(spool, ledger, args.n):.1f} µs"
                )
        finally:
            spool.close(remove=True)
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
