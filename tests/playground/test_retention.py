"""Content retention in the playground: comparisons, jobs and datasets are kept for the team's
retention period and then lose their content (figures, checks and votes stay); shadow pairs
keep content only where the team or the prompt stores it; model calls store request and
response bodies in the usage ledger only where the team or the prompt opts in."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from core.errors import Conflict
from playground import services
from playground.models import (
    Comparison,
    ComparisonColumn,
    Dataset,
    DatasetRow,
    Job,
    JobItem,
    ShadowPair,
    Verdict,
    Vote,
)
from spend.models import Purpose, UsageRecord
from tests.playground.test_runner import _orphan, _run


def _aged(obj, days: float):
    type(obj).objects.filter(pk=obj.pk).update(created_at=timezone.now() - dt.timedelta(days=days))
    return obj


def _comparison(team, voter, days: float) -> Comparison:
    comparison = Comparison.objects.create(
        team=team, instructions="Be brief.", input_text="My card number is 4111…"
    )
    column = ComparisonColumn.objects.create(
        comparison=comparison,
        position=0,
        tier="mini",
        status="done",
        output="Your card ends in 1111.",
        schema_error="not JSON: Your card…",
        input_tokens=12,
        cost_usd=Decimal("0.0001"),
    )
    Vote.objects.create(comparison=comparison, voter=voter, verdict=Verdict.WINNER, winner=column)
    return _aged(comparison, days)


def _job(team, days: float, status: str = Job.Status.DONE) -> Job:
    job = Job.objects.create(
        team=team, kind=Job.Kind.API, columns=[{"tier": "mini"}], status=status, total_items=1
    )
    JobItem.objects.create(
        job=job,
        row_index=0,
        input={"input": "customer data"},
        expected="expected answer",
        status="done",
        output="model answer",
        checks={"exact": False},
        passed=False,
        cost_usd=Decimal("0.0002"),
    )
    return _aged(job, days)


def _dataset(team, days: float) -> Dataset:
    dataset = Dataset.objects.create(
        team=team, name="tickets", format="csv", columns=["message"], row_count=1
    )
    DatasetRow.objects.create(dataset=dataset, index=0, line_number=2, values={"message": "hi"})
    return _aged(dataset, days)


def _pair(version, *, retained: bool, days: float, status=ShadowPair.Status.DONE) -> ShadowPair:
    pair = ShadowPair.objects.create(
        team=version.prompt.team,
        prompt=version.prompt,
        prompt_version=version,
        status=status,
        request_body={"input": "production input"},
        production_output="cheap answer",
        shadow_output="flagship answer" if status == ShadowPair.Status.DONE else "",
        content_retained=retained,
        agree=True,
    )
    return _aged(pair, days)


def test_the_purge_clears_what_is_past_each_teams_retention_and_nothing_else(
    team, other_team, alice, charlie, triage
):
    other_team.retention_days = 7
    other_team.save()
    old, young = _comparison(team, alice, 31), _comparison(team, alice, 29)
    other_old = _comparison(other_team, charlie, 8)  # past the other team's 7 days
    old_job, young_job = _job(team, 31), _job(team, 29)
    running = _job(team, 31, status=Job.Status.RUNNING)
    old_dataset, young_dataset = _dataset(team, 31), _dataset(team, 29)
    kept_pair = _pair(triage, retained=True, days=31)
    young_kept_pair = _pair(triage, retained=True, days=29)
    lost_pending = _pair(triage, retained=False, days=0.1, status=ShadowPair.Status.PENDING)
    fresh_pending = _pair(triage, retained=False, days=0.01, status=ShadowPair.Status.PENDING)

    assert services.playground_content_purge() == {
        "comparisons": 2,
        "jobs": 1,
        "datasets": 1,
        "shadow_pairs": 2,
    }

    for comparison in (old, other_old):
        comparison.refresh_from_db()
        assert comparison.content_purged_at is not None
        assert (comparison.instructions, comparison.input_text, comparison.variables) == (
            "",
            "",
            {},
        )
        column = comparison.columns.get()
        assert (column.output, column.schema_error) == ("", "")
        assert (column.input_tokens, column.cost_usd) == (12, Decimal("0.0001"))  # figures stay
        assert comparison.votes.count() == 1
    young.refresh_from_db()
    assert young.content_purged_at is None
    assert young.input_text
    assert young.columns.get().output

    item = old_job.items.get()
    assert (item.input, item.expected, item.output) == ({}, None, "")
    assert (item.checks, item.passed, item.cost_usd) == ({"exact": False}, False, Decimal("0.0002"))
    old_job.refresh_from_db()
    assert old_job.content_purged_at is not None
    for untouched in (young_job, running):  # a job still running keeps what it needs
        assert untouched.items.get().input == {"input": "customer data"}
        untouched.refresh_from_db()
        assert untouched.content_purged_at is None

    assert not Dataset.objects.filter(pk=old_dataset.pk).exists()
    assert not DatasetRow.objects.filter(dataset_id=old_dataset.pk).exists()
    assert young_dataset.rows.count() == 1

    kept_pair.refresh_from_db()
    assert (kept_pair.request_body, kept_pair.shadow_output, kept_pair.content_retained) == (
        None,
        "",
        False,
    )
    assert kept_pair.agree is True
    young_kept_pair.refresh_from_db()
    assert young_kept_pair.request_body == {"input": "production input"}
    # a not-retained pair whose run never came loses the production request after an hour
    lost_pending.refresh_from_db()
    assert (lost_pending.status, lost_pending.request_body) == ("skipped", None)
    fresh_pending.refresh_from_db()
    assert (fresh_pending.status, fresh_pending.request_body) == (
        "pending",
        {"input": "production input"},
    )

    # a second pass has nothing left to do
    assert set(services.playground_content_purge().values()) == {0}


def test_a_purged_comparison_says_so_and_cannot_be_run_again(client, team, alice):
    comparison = _comparison(team, alice, 31)
    services.playground_content_purge()
    comparison.refresh_from_db()
    client.force_login(alice)
    page = client.get(reverse("playground:comparison", args=[comparison.pk]))
    assert page.status_code == 200
    assert b'data-testid="content-purged"' in page.content
    with pytest.raises(Conflict):
        services.comparison_column_prepare(comparison=comparison, position=0)
    response = client.post(reverse("playground:column-run", args=[comparison.pk, 0]))
    assert response.status_code == 409
    assert "retention period" in response.json()["error"]["message"]


def test_a_purged_job_says_so_on_its_page_and_in_the_api(client, team, alice):
    job = _job(team, 31)
    services.playground_content_purge()
    client.force_login(alice)
    page = client.get(reverse("playground:batch-detail", args=[job.pk]))
    assert b'data-testid="content-purged"' in page.content
    body = client.get(f"/api/v1/jobs/{job.pk}").json()
    assert body["content_purged_at"] is not None
    assert body["items"][0]["output"] == ""


@pytest.mark.django_db(transaction=True)
def test_batch_calls_store_bodies_in_the_ledger_only_when_the_team_opts_in(team, catalog):
    _run(_orphan(team, items=1).pk)
    record = UsageRecord.objects.get(purpose=Purpose.BATCH)
    assert (record.request_body, record.response_body) == (None, None)
    assert JobItem.objects.get().output  # the job itself shows its output

    team.store_content = True
    team.save()
    UsageRecord.objects.all().delete()
    _run(_orphan(team, items=1).pk)
    record = UsageRecord.objects.get(purpose=Purpose.BATCH)
    assert record.request_body
    assert record.response_body
