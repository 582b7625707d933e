"""The batch runner in this process (no Celery): adoption of a call that finished before its
runner died, an orphaned cancel, the lease, and the concurrency bound."""

from __future__ import annotations

import datetime as dt
import threading
import time
from decimal import Decimal

import pytest
from asgiref.sync import async_to_sync
from django.utils import timezone

from accounts.models import ApiKey
from accounts.services import api_key_create
from playground.columns import ColumnSpec
from playground.models import Job, JobItem
from playground.runner import gateway_cleanup, job_run
from spend.models import Purpose, UsageRecord
from tests.gateway.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def _run(job_id: int) -> str:
    async def run() -> str:
        try:
            return await job_run(job_id)
        finally:
            await gateway_cleanup()

    return async_to_sync(run)()


def _orphan(team, *, items: int, status: str = Job.Status.RUNNING) -> Job:
    """A job whose runner died 10 minutes ago with every item in flight."""
    long_ago = timezone.now() - dt.timedelta(minutes=10)
    job = Job.objects.create(
        team=team,
        kind=Job.Kind.API,
        columns=[ColumnSpec(tier="nano").to_dict()],
        status=status,
        total_items=items,
        runner_token="dead",
        heartbeat_at=long_ago,
        started_at=long_ago,
    )
    JobItem.objects.bulk_create(
        JobItem(job=job, row_index=i, input={"input": f"Say {i}."}, status="running")
        for i in range(items)
    )
    return job


def test_a_call_that_finished_before_its_runner_died_is_adopted_not_rerun(team, catalog):
    job = _orphan(team, items=3)
    first = job.items.get(row_index=0)
    record = UsageRecord.objects.create(
        created_at=timezone.now(),
        request_id=f"int:job{job.pk}-item{first.pk}",
        team=team,
        purpose=Purpose.BATCH,
        model_name="gpt-5.4-nano",
        tier_name="nano",
        input_tokens=7,
        output_tokens=3,
        cost_usd=Decimal("0.0000052"),
        response_body={"output_text": "Zero."},
    )
    assert _run(job.pk) == Job.Status.DONE
    first.refresh_from_db()
    assert (first.status, first.usage_record_id, first.output) == ("done", record.pk, "Zero.")
    assert UsageRecord.objects.filter(request_id=record.request_id).count() == 1
    assert UsageRecord.objects.filter(purpose=Purpose.BATCH).count() == 3
    job.refresh_from_db()
    assert (job.done_items, job.runner_token) == (3, "")
    assert job.cost_usd == sum(UsageRecord.objects.values_list("cost_usd", flat=True))


def test_an_orphaned_cancel_finishes_without_calling_anything(team, catalog):
    job = _orphan(team, items=4, status=Job.Status.CANCELLING)
    assert _run(job.pk) == Job.Status.CANCELLED
    job.refresh_from_db()
    assert job.cancelled_items == 4
    assert not UsageRecord.objects.exists()


def test_a_job_with_a_live_lease_is_left_to_its_runner(team, catalog):
    job = _orphan(team, items=1)
    Job.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now())
    assert _run(job.pk) == "busy"
    assert not UsageRecord.objects.exists()


def test_no_more_calls_than_the_concurrency_bound_are_in_flight(team, catalog, settings):
    settings.PLAYGROUND_BATCH_CONCURRENCY = 3
    job = _orphan(team, items=12)
    assert _run(job.pk) == Job.Status.DONE
    # every call's [start, end] interval, from its usage record
    spans = [
        (r.created_at, r.created_at + dt.timedelta(milliseconds=r.latency_ms))
        for r in UsageRecord.objects.filter(purpose=Purpose.BATCH)
    ]
    assert len(spans) == 12
    peak = max(sum(1 for s, e in spans if s <= t < e) for t, _ in spans)
    assert 1 <= peak <= 3


def test_a_regex_check_that_backtracks_forever_fails_the_item_with_the_reason(team, catalog):
    job = _orphan(team, items=2)
    Job.objects.filter(pk=job.pk).update(checks={"regex": r"^(.|.)*\d\Z"})
    assert _run(job.pk) == Job.Status.DONE
    for item in job.items.all():
        # a long output not ending in a digit: exponential backtracking for re
        assert len(item.output) > 40
        assert not item.output[-1].isdigit()
        assert (item.status, item.checks, item.passed) == ("done", {"regex": False}, False)
        assert item.error_code == "check_error"
        assert "regex check: the regular expression took longer than" in item.error_message


def test_a_jobs_items_are_paced_by_its_keys_requests_per_minute(team, catalog):
    key, _ = api_key_create(team=team, name="limited")
    ApiKey.objects.filter(pk=key.pk).update(rate_limit_rpm=2)
    job = _orphan(team, items=5)
    Job.objects.filter(pk=job.pk).update(api_key=key)
    runner = threading.Thread(target=_run, args=(job.pk,))
    runner.start()
    try:
        calls = UsageRecord.objects.filter(purpose=Purpose.BATCH)
        assert wait_for(lambda: calls.count() >= 2), "the first two items never ran"
        time.sleep(3)  # the other three wait for the key's next minute
        assert calls.count() == 2
        assert job.items.filter(status=JobItem.Status.DONE).count() == 2
    finally:
        Job.objects.filter(pk=job.pk).update(status=Job.Status.CANCELLING)
        runner.join(timeout=60)
    assert not runner.is_alive(), "a cancel did not stop the items waiting for their turn"
    job.refresh_from_db()
    assert (job.status, job.done_items, job.cancelled_items) == ("cancelled", 2, 3)
    assert UsageRecord.objects.filter(purpose=Purpose.BATCH).count() == 2


def test_a_job_item_needing_more_tokens_than_its_key_allows_a_minute_fails_at_once(team, catalog):
    key, _ = api_key_create(team=team, name="tiny")
    ApiKey.objects.filter(pk=key.pk).update(rate_limit_tpm=10)
    job = _orphan(team, items=2)
    Job.objects.filter(pk=job.pk).update(api_key=key)
    assert _run(job.pk) == Job.Status.DONE
    assert set(job.items.values_list("status", "error_code")) == {("error", "rate_limited")}
    assert not UsageRecord.objects.exists()
