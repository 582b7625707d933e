"""A job's cost is the exact sum of its items' costs on every backend: it is added up in SQL
(`item_settle`), on SQLite as integer units of 1e-10 dollars (core.money.MoneyCounterField)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from playground.columns import ColumnSpec
from playground.job_items import item_settle
from playground.models import Job, JobItem

pytestmark = pytest.mark.django_db

START = Decimal("1234567.1234567891")  # 17 significant digits: more than a float holds
COSTS = [Decimal("0.0000123457") * k + Decimal("0.0000000003") for k in range(1, 101)]


def test_a_jobs_cost_adds_its_items_costs_to_the_last_place(team):
    job = Job.objects.create(
        team=team,
        kind=Job.Kind.API,
        columns=[ColumnSpec(tier="nano").to_dict()],
        status=Job.Status.RUNNING,
        total_items=len(COSTS),
        cost_usd=START,
    )
    items = JobItem.objects.bulk_create(
        JobItem(job=job, row_index=i, input={"input": "x"}, status=JobItem.Status.RUNNING)
        for i in range(len(COSTS))
    )

    for item, cost in zip(items, COSTS, strict=True):
        status = JobItem.Status.DONE if item.row_index % 3 else JobItem.Status.ERROR
        assert item_settle(item.pk, job.pk, {"cost_usd": cost}, status)

    job.refresh_from_db()
    assert job.cost_usd == START + sum(COSTS)
    assert job.done_items + job.failed_items == len(COSTS)
