"""Batch compare and /api/v1/jobs on a real Celery worker: progress, cancel, resume."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import signal
import time
from decimal import Decimal

import pytest
from django.db.models import Sum
from rest_framework.test import APIClient

from playground import selectors, services
from playground.columns import ColumnSpec
from playground.models import Job, JobItem
from spend.budgets import budget_reservations_sweep, budget_set
from spend.models import Purpose, UsageRecord
from tests.conftest import start_worker, stop_worker
from tests.gateway.conftest import team_ledger
from tests.playground.conftest import WORKER_ENV, make_triage, use_upstream, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.celery_worker]

MESSAGES = [
    "I was charged twice this month",
    "The app crashes when I upload a photo",
    "How do I change my email address?",
    "Please add dark mode",
    "My password reset link expired",
    "Refund my last invoice",
]


def _dataset(team, user, rows: int, *, expected: bool = False):
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["message", "channel", *(["expected"] if expected else [])])
    for i in range(rows):
        row = [f"{MESSAGES[i % len(MESSAGES)]} (#{i})", ["email", "chat", "phone"][i % 3]]
        if expected:
            row.append('{"category": "billing", "urgency": "low"}')
        writer.writerow(row)
    return services.dataset_create(
        team=team, user=user, filename="tickets.csv", data=out.getvalue().encode()
    )


def _job(pk: int) -> Job:
    return Job.objects.get(pk=pk)


def test_a_batch_compare_runs_to_done_with_checks_totals_and_export(
    job_worker, client, team, alice, catalog
):
    version = make_triage(team, alice)
    dataset = _dataset(team, alice, 6, expected=True)
    job = services.batch_compare_create(
        team=team,
        user=alice,
        dataset=dataset,
        version=version,
        columns=[ColumnSpec(tier="mini"), ColumnSpec(tier="flagship")],
        mapping={"message": "message", "channel": "channel"},
        expected_column="expected",
        contains="urgency",
    )
    wait_for(lambda: _job(job.pk).status == Job.Status.DONE, timeout=60, what="the job")
    job.refresh_from_db()
    assert (job.total_items, job.done_items, job.failed_items) == (12, 12, 0)
    items = list(job.items.all())
    assert all(set(item.checks) == {"exact", "json", "schema", "contains"} for item in items)
    assert all(item.checks["json"] and item.checks["schema"] for item in items)
    assert {item.tier_name for item in items} == {"mini", "flagship"}
    records = UsageRecord.objects.filter(purpose=Purpose.BATCH)
    assert records.count() == 12
    assert job.cost_usd == records.aggregate(t=Sum("cost_usd"))["t"]
    assert sorted(i.usage_record_id for i in items) == sorted(records.values_list("pk", flat=True))
    totals = selectors.job_column_totals(job=job)
    assert [t.done for t in totals] == [6, 6]
    assert sum(t.cost_usd for t in totals) == job.cost_usd
    assert totals[0].cost_usd < totals[1].cost_usd
    assert totals[0].p95_latency_ms is not None
    assert totals[1].agreement is not None

    client.force_login(alice)
    page = client.get(f"/playground/batch/{job.pk}/?filter=failures&q=refund")
    assert page.status_code == 200
    exported = client.get(f"/playground/batch/{job.pk}/export.csv").content.decode()
    rows = list(csv.reader(io.StringIO(exported)))
    assert len(rows) == 7
    assert rows[0][:4] == ["row", "line", "input", "expected"]
    as_json = json.loads(client.get(f"/playground/batch/{job.pk}/export.json").content)
    assert len(as_json["rows"]) == 6
    assert as_json["rows"][0]["columns"][0]["cost_usd"] == str(items[0].cost_usd)


def test_a_batch_shows_progress_and_cancels_without_charging_the_rest(
    job_worker, slow_simulator_url, team, alice, catalog
):
    use_upstream(slow_simulator_url)
    version = make_triage(team, alice)
    dataset = _dataset(team, alice, 30)
    job = services.batch_compare_create(
        team=team,
        user=alice,
        dataset=dataset,
        version=version,
        columns=[ColumnSpec(tier="mini"), ColumnSpec(tier="flagship")],
        mapping={"message": "message", "channel": "channel"},
    )
    seen = set()

    def progressed() -> bool:
        current = _job(job.pk)
        seen.add(current.done_items)
        return current.status == Job.Status.RUNNING and current.done_items >= 6

    wait_for(progressed, timeout=60, what="progress")
    assert len(seen) > 1  # the counter moved while the job ran
    services.job_cancel(job=_job(job.pk))
    wait_for(lambda: _job(job.pk).status == Job.Status.CANCELLED, timeout=30, what="cancel")
    job.refresh_from_db()
    counts = {s: job.items.filter(status=s).count() for s in JobItem.Status.values}
    assert counts[JobItem.Status.PENDING] == counts[JobItem.Status.RUNNING] == 0
    assert job.done_items == counts[JobItem.Status.DONE] >= 6
    assert job.cancelled_items == counts[JobItem.Status.CANCELLED] > 20
    assert job.done_items + job.failed_items + job.cancelled_items == job.total_items == 60
    charged = UsageRecord.objects.filter(purpose=Purpose.BATCH).count()
    assert charged == job.done_items + job.failed_items
    time.sleep(1.5)  # nothing else runs once the job is cancelled
    assert UsageRecord.objects.filter(purpose=Purpose.BATCH).count() == charged
    assert (
        job.cost_usd
        == UsageRecord.objects.filter(purpose=Purpose.BATCH).aggregate(t=Sum("cost_usd"))["t"]
    )


def test_a_job_resumes_after_its_worker_is_killed_without_rerunning_done_items(
    job_worker, slow_simulator_url, team, api_key, catalog
):
    use_upstream(slow_simulator_url)
    budget_set(team=team, limit_usd=Decimal("100"))
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key}")
    response = api.post(
        "/api/v1/jobs",
        {"inputs": [f"Summarize ticket {i} in one line." for i in range(20)], "tier": "nano"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="resume-1",
    )
    assert response.status_code == 202
    job_id = response.json()["id"]
    wait_for(lambda: _job(job_id).done_items >= 4, timeout=60, what="first items")

    os.kill(job_worker.pid, signal.SIGKILL)  # a crash: no warm shutdown, calls in flight die
    job_worker.wait()
    before = dict(
        JobItem.objects.filter(job_id=job_id, status=JobItem.Status.DONE).values_list(
            "pk", "usage_record_id"
        )
    )
    assert 4 <= len(before) < 20
    assert _job(job_id).status == Job.Status.RUNNING  # orphaned

    second = start_worker(**WORKER_ENV)
    try:
        wait_for(lambda: _job(job_id).status == Job.Status.DONE, timeout=90, what="resume")
    finally:
        stop_worker(second)
    job = _job(job_id)
    assert (job.done_items, job.failed_items, job.cancelled_items) == (20, 0, 0)
    after = dict(job.items.values_list("pk", "usage_record_id"))
    assert all(after[pk] == record for pk, record in before.items())  # not re-run
    records = UsageRecord.objects.filter(purpose=Purpose.BATCH, status="success")
    assert records.count() == 20  # each item charged once
    assert sorted(after.values()) == sorted(records.values_list("pk", flat=True))
    body = api.get(f"/api/v1/jobs/{job_id}").json()
    assert body["status"] == "done"
    assert body["progress"]["done"] == 20
    assert Decimal(body["cost_usd"]) == records.aggregate(t=Sum("cost_usd"))["t"]
    assert all(item["status"] == "done" and item["output"] for item in body["items"])
    # The dead worker's calls in flight kept their reservations; the periodic sweep releases
    # them. The budget then holds what the usage records say, the job's cost included, once.
    budget_reservations_sweep(older_than=dt.timedelta(0))
    spent, reserved, total = team_ledger(team)
    assert (spent, reserved) == (total, 0)
    assert total == Decimal(body["cost_usd"])
    # the same submission again is the same job, not a second run
    again = api.post(
        "/api/v1/jobs",
        {"inputs": [f"Summarize ticket {i} in one line." for i in range(20)], "tier": "nano"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="resume-1",
    )
    assert again.json()["id"] == job_id
