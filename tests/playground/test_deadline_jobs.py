"""Jobs that can wait (`deadline: "24h"`) on a real Celery worker: through the simulator's
Batch API at the batch price, resumed after a worker dies; small jobs as flex calls that fall
back to the default tier when flex is refused. Each price is checked against the catalog."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from decimal import Decimal

import openai
import pytest
from rest_framework.test import APIClient

from gateway.batches import batch_object, batches_poll_stale
from gateway.models import Batch, UpstreamBatch
from playground.models import Job, JobItem
from playground.services import jobs_resume_stale
from routing.models import Model
from spend.budgets import budget_set
from spend.models import BudgetReservation, Purpose, UsageRecord
from spend.pricing import cost_usd, price_at
from tests.conftest import serve_site, start_worker, stop, stop_worker
from tests.gateway.conftest import team_ledger
from tests.playground.conftest import WORKER_ENV, use_upstream, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.celery_worker]

ITEMS = 12  # over PLAYGROUND_JOB_BATCH_MIN_ITEMS (10): a batch


@pytest.fixture(scope="module")
def slow_batch_simulator_url() -> Iterator[str]:
    """Batches take about 5 s: long enough to kill a worker while one is upstream."""
    from simulator.testing import SimulatorServer

    with SimulatorServer(batch_time_scale=0.05) as server:
        yield server.url


@pytest.fixture(scope="module")
def no_flex_simulator_url() -> Iterator[str]:
    """Every `service_tier: "flex"` request is a 429 `resource_unavailable`."""
    from simulator.testing import SimulatorServer

    with SimulatorServer(refuse_flex=True) as server:
        yield server.url


def _api(key: str) -> APIClient:
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return api


def _submit(key: str, count: int) -> int:
    response = _api(key).post(
        "/api/v1/jobs",
        {
            "inputs": [f"Summarize ticket {i} in one line." for i in range(count)],
            "tier": "nano",
            "deadline": "24h",
        },
        format="json",
    )
    assert response.status_code == 202, response.content
    return response.json()["id"]


def _job(pk: int) -> Job:
    return Job.objects.get(pk=pk)


def _standard(record: UsageRecord) -> Decimal:
    """The record's tokens at the default (standard) price of its model."""
    return cost_usd(
        price=price_at(Model.objects.get(name=record.model_name), record.created_at),
        input_tokens=record.input_tokens,
        cached_input_tokens=record.cached_input_tokens,
        output_tokens=record.output_tokens,
        reasoning_tokens=record.reasoning_tokens,
    )


def _submit_and_wait_until_upstream(simulator_url: str, team, api_key: str) -> int:
    """A 24h job of ITEMS items with a $50 budget, once its batch is at the provider."""
    use_upstream(simulator_url)
    budget_set(team=team, limit_usd=Decimal("50"))
    job_id = _submit(api_key, ITEMS)
    wait_for(
        lambda: (
            UpstreamBatch.objects.filter(batch__job__pk=job_id).exclude(upstream_id="").exists()
        ),
        timeout=60,
        what="the upstream batch",
    )
    return job_id


def _assert_batched_and_settled(job_id: int, team, key: str) -> None:
    job = _job(job_id)
    assert job.status == Job.Status.DONE
    assert (job.done_items, job.failed_items, job.cancelled_items) == (ITEMS, 0, 0)
    batch = Batch.objects.get(pk=job.batch_id)
    assert batch.status == Batch.Status.COMPLETED
    assert UpstreamBatch.objects.filter(batch=batch).exclude(upstream_id="").count() == 1
    records = list(UsageRecord.objects.filter(team=team))
    assert len(records) == ITEMS  # one per item: nothing ran live, nothing twice
    for record in records:
        assert (record.purpose, record.service_tier, record.status) == (
            Purpose.BATCH,
            "batch",
            UsageRecord.Status.SUCCESS,
        )
        assert record.model_name == "gpt-5.4-nano"
        assert record.cost_usd == _standard(record) / 2 > 0
    items = list(job.items.all())
    assert sorted(item.usage_record_id for item in items) == sorted(r.pk for r in records)
    by_id = {r.pk: r for r in records}
    for item in items:
        assert item.status == JobItem.Status.DONE
        assert item.output
        assert item.cost_usd == by_id[item.usage_record_id].cost_usd
    total = sum(r.cost_usd for r in records)
    assert job.cost_usd == batch.cost_usd == total
    spent, reserved, ledger_total = team_ledger(team)
    assert (spent, reserved, ledger_total) == (total, 0, total)
    assert not BudgetReservation.objects.filter(settled_at__isnull=True).exists()
    body = _api(key).get(f"/api/v1/jobs/{job.pk}").json()
    assert body["deadline"] == "24h"
    assert body["batch"] == batch.public_id
    assert body["progress"]["done"] == ITEMS
    assert Decimal(body["cost_usd"]) == total


def test_a_24h_job_runs_through_the_batch_api_at_the_batch_price_and_settles_exactly(
    job_worker, simulator_url, team, api_key, catalog
):
    budget_set(team=team, limit_usd=Decimal("50"))
    job_id = _submit(api_key, ITEMS)

    def held() -> Decimal | None:
        job = _job(job_id)
        if job.batch_id is None:
            return None
        return Batch.objects.get(pk=job.batch_id).reserved_usd

    # the whole worst case at the batch price is held once it is submitted
    assert wait_for(held, timeout=60, what="the batch") > 0
    wait_for(lambda: _job(job_id).finished, timeout=90, what="the job")
    _assert_batched_and_settled(job_id, team, api_key)


def test_a_24h_job_resumes_after_its_worker_dies_while_the_batch_is_upstream(
    job_worker, slow_batch_simulator_url, team, api_key, catalog
):
    job_id = _submit_and_wait_until_upstream(slow_batch_simulator_url, team, api_key)
    os.kill(job_worker.pid, signal.SIGKILL)  # its queued polls die with it
    job_worker.wait()
    assert _job(job_id).status == Job.Status.RUNNING
    assert not UsageRecord.objects.exists()

    second = start_worker(**WORKER_ENV)

    def beat() -> bool:
        # what beat does every 30 and 60 s: jobs and batches whose runners or polls stopped
        jobs_resume_stale()
        batches_poll_stale()
        return _job(job_id).finished

    try:
        wait_for(beat, timeout=120, interval=1, what="the resumed job")
    finally:
        stop_worker(second)
    _assert_batched_and_settled(job_id, team, api_key)


def test_a_24h_job_shows_the_providers_progress_before_its_lines_are_collected(
    job_worker, slow_batch_simulator_url, team, api_key, catalog, client, alice
):
    job_id = _submit_and_wait_until_upstream(slow_batch_simulator_url, team, api_key)
    batch = Batch.objects.get(job__pk=job_id)
    wait_for(
        lambda: 0 < batch.upstreams.get().completed < ITEMS,
        timeout=60,
        interval=0.1,
        what="lines done at the provider",
    )
    job = _job(job_id)
    completed, failed = batch.progress
    assert job.done_items == 0  # nothing is settled before the output file is read
    assert 0 < completed < ITEMS
    assert failed == 0
    client.force_login(alice)
    page = client.get(f"/playground/batch/{job_id}/progress").content.decode()
    assert "Batch API: " in page
    assert f"of {ITEMS} lines done" in page
    # what /v1/batches answers about it: the same counts, or later ones
    assert batch_object(batch)["request_counts"]["completed"] >= completed
    wait_for(lambda: _job(job_id).finished, timeout=120, what="the job")
    assert "Batch API: " not in client.get(f"/playground/batch/{job_id}/progress").content.decode()


def test_a_small_24h_job_runs_as_flex_calls_at_the_flex_price(
    job_worker, simulator_url, team, api_key, catalog
):
    budget_set(team=team, limit_usd=Decimal("50"))
    job_id = _submit(api_key, 3)
    wait_for(lambda: _job(job_id).finished, timeout=60, what="the job")
    job = _job(job_id)
    assert (job.status, job.done_items, job.batch_id) == (Job.Status.DONE, 3, None)
    records = list(UsageRecord.objects.filter(team=team))
    assert len(records) == 3
    for record in records:
        assert (record.service_tier, record.status) == ("flex", UsageRecord.Status.SUCCESS)
        assert record.cost_usd == _standard(record) / 2 > 0
    total = sum(r.cost_usd for r in records)
    assert job.cost_usd == total
    spent, reserved, _ = team_ledger(team)
    assert (spent, reserved) == (total, 0)


def test_a_flex_job_falls_back_to_the_default_tier_when_flex_is_refused(
    job_worker, no_flex_simulator_url, team, api_key, catalog
):
    use_upstream(no_flex_simulator_url)
    budget_set(team=team, limit_usd=Decimal("50"))
    job_id = _submit(api_key, 3)
    wait_for(lambda: _job(job_id).finished, timeout=60, what="the job")
    job = _job(job_id)
    assert (job.status, job.done_items, job.failed_items) == (Job.Status.DONE, 3, 0)
    refused = UsageRecord.objects.filter(team=team, status=UsageRecord.Status.ERROR)
    served = UsageRecord.objects.filter(team=team, status=UsageRecord.Status.SUCCESS)
    # each item: flex asked and refused (no cost), then the same model at the default tier
    assert refused.count() == served.count() == 3
    for record in refused:
        assert (record.service_tier, record.error_code, record.cost_usd) == (
            "flex",
            "rate_limited",
            0,
        )
    for record in served:
        assert record.service_tier == "default"
        assert record.model_name == "gpt-5.4-nano"
        assert record.cost_usd == _standard(record) > 0
    total = sum(r.cost_usd for r in served)
    assert job.cost_usd == total
    spent, reserved, _ = team_ledger(team)
    assert (spent, reserved) == (total, 0)


def test_a_client_that_asks_for_flex_itself_is_not_served_at_the_default_tier(
    no_flex_simulator_url, team, api_key, catalog
):
    """Only Switchboard's own work that can wait falls back: a client keeps its choice."""
    use_upstream(no_flex_simulator_url)
    url, process = serve_site(no_flex_simulator_url)
    try:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=api_key, max_retries=0)
        with pytest.raises(openai.APIStatusError, match="flex service tier"):
            client.chat.completions.create(
                model="tier:nano",
                messages=[{"role": "user", "content": "Summarize: the printer is on fire."}],
                service_tier="flex",
            )
    finally:
        stop(process)
    records = UsageRecord.objects.filter(team=team)
    assert records.exists()
    assert {(r.service_tier, r.error_code) for r in records} == {("flex", "rate_limited")}


def test_a_24h_job_cancelled_while_its_batch_is_upstream_ends_cancelled_and_settled(
    job_worker, slow_batch_simulator_url, team, api_key, catalog
):
    job_id = _submit_and_wait_until_upstream(slow_batch_simulator_url, team, api_key)
    response = _api(api_key).post(f"/api/v1/jobs/{job_id}/cancel")
    assert response.status_code == 200
    assert response.json()["status"] == "cancelling"
    wait_for(lambda: _job(job_id).finished, timeout=90, what="the cancel")
    job = _job(job_id)
    assert job.status == Job.Status.CANCELLED
    assert Batch.objects.get(pk=job.batch_id).status == Batch.Status.CANCELLED
    assert job.cancelled_items > 0
    assert job.done_items + job.failed_items + job.cancelled_items == ITEMS
    assert not job.items.filter(status__in=[JobItem.Status.PENDING, JobItem.Status.RUNNING])
    records = UsageRecord.objects.filter(team=team)
    assert records.count() == ITEMS  # one per line: run (batch price) or cancelled (no cost)
    assert records.filter(status=UsageRecord.Status.SUCCESS).count() == job.done_items
    total = sum(r.cost_usd for r in records)
    assert job.cost_usd == total
    spent, reserved, _ = team_ledger(team)
    assert (spent, reserved) == (total, 0)


def test_a_24h_batch_compare_runs_every_row_and_column_in_one_batch_with_its_checks(
    job_worker, simulator_url, team, alice, api_key, catalog
):
    from playground import services
    from playground.columns import ColumnSpec
    from tests.playground.conftest import make_triage
    from tests.playground.test_batch_worker import _dataset

    budget_set(team=team, limit_usd=Decimal("50"))
    job = services.batch_compare_create(
        team=team,
        user=alice,
        dataset=_dataset(team, alice, 6),
        version=make_triage(team, alice),
        columns=[ColumnSpec(tier="nano"), ColumnSpec(tier="mini")],
        mapping={"message": "message", "channel": "channel"},
        deadline="24h",
    )
    wait_for(lambda: _job(job.pk).finished, timeout=90, what="the job")
    job = _job(job.pk)
    assert (job.status, job.done_items, job.total_items) == (Job.Status.DONE, 12, 12)
    assert Batch.objects.get(pk=job.batch_id).total == 12
    records = list(UsageRecord.objects.filter(team=team))
    assert len(records) == 12
    assert {r.service_tier for r in records} == {"batch"}
    assert {r.model_name for r in records} == {"gpt-5.4-nano", "gpt-5.4-mini"}
    for record in records:
        assert record.cost_usd == _standard(record) / 2
    assert all(item.checks == {"json": True, "schema": True} for item in job.items.all())
    assert all(item.passed for item in job.items.all())
    spent, reserved, total = team_ledger(team)
    assert (spent, reserved) == (total, 0)
    assert job.cost_usd == total


def test_a_batch_compare_refuses_an_unknown_deadline(team, alice, catalog):
    from core.errors import BadRequest
    from playground import services
    from playground.columns import ColumnSpec
    from tests.playground.conftest import make_triage
    from tests.playground.test_batch_worker import _dataset

    with pytest.raises(BadRequest, match='deadline must be "24h"'):
        services.batch_compare_create(
            team=team,
            user=alice,
            dataset=_dataset(team, alice, 2),
            version=make_triage(team, alice),
            columns=[ColumnSpec(tier="nano")],
            mapping={"message": "message"},
            deadline="tomorrow",
        )
    assert not Job.objects.exists()


def test_a_24h_job_whose_batch_does_not_fit_the_budget_fails_with_nothing_charged(
    job_worker, simulator_url, team, api_key, catalog
):
    budget_set(team=team, limit_usd=Decimal("0.0001"))
    job_id = _submit(api_key, ITEMS)
    wait_for(lambda: _job(job_id).finished, timeout=60, what="the job")
    job = _job(job_id)
    assert job.status == Job.Status.FAILED
    assert "cannot hold this batch" in job.error
    assert job.batch_id is None
    assert not Batch.objects.exists()
    assert job.cancelled_items == ITEMS
    assert not UsageRecord.objects.exists()
    spent, reserved, _ = team_ledger(team)
    assert (spent, reserved) == (0, 0)
