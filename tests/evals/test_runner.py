"""Judge calls through the gateway (usage records, budgets), the cache, and a finished batch
run's rows judged against the simulator, feeding the recommendation and the agreement."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db.models import Sum

from core.errors import AppError
from evals import runner, selectors, services
from evals.judge import Task
from evals.models import Evaluation, Judgment
from playground import selectors as playground_selectors
from playground.models import RowVote, Verdict
from spend.budgets import budget_set
from spend.models import Purpose, UsageRecord
from tests.evals.conftest import (
    TRIAGE_SCHEMA,
    finished_job,
    right_and_flawed,
    run_async,
    triage_input,
)

pytestmark = pytest.mark.django_db(transaction=True)


def _judge(version, team, cheap: str, reference: str, row: int = 0):
    return run_async(
        runner.judgment_for_pair,
        version=version,
        team=team,
        task=Task("You triage support messages.", triage_input(row), TRIAGE_SCHEMA),
        cheap=cheap,
        reference=reference,
    )


def test_a_pair_is_judged_twice_with_positions_swapped_and_both_reasons_are_kept(
    pairwise, team, catalog
):
    right, flawed = right_and_flawed(0)
    judgment, cached = _judge(pairwise.versions.get(), team, cheap=flawed, reference=right)
    assert not cached
    assert judgment.outcome == "reference"
    first, second = judgment.details["first"], judgment.details["second"]
    assert (first["order"], first["verdict"]) == ("cheap first", "B")
    assert (second["order"], second["verdict"]) == ("reference first", "A")
    assert "urgency" in first["reason"]
    assert "urgency" in second["reason"]


def test_judge_calls_are_eval_usage_records_whose_cost_the_judgment_carries(
    pairwise, team, catalog
):
    right, flawed = right_and_flawed(1)
    judgment, _ = _judge(pairwise.versions.get(), team, cheap=right, reference=flawed, row=1)
    assert judgment.outcome == "cheap"
    records = UsageRecord.objects.filter(purpose=Purpose.EVAL)
    assert records.count() == 2
    assert set(records.values_list("tier_name", flat=True)) == {"flagship"}
    assert sorted(judgment.usage_record_ids) == sorted(records.values_list("pk", flat=True))
    assert judgment.cost_usd == records.aggregate(s=Sum("cost_usd"))["s"] > 0


def test_a_rerun_reads_the_cache_and_costs_nothing_until_the_rubric_changes(
    pairwise, team, alice, catalog
):
    right, flawed = right_and_flawed(2)
    first, _ = _judge(pairwise.versions.get(), team, cheap=flawed, reference=right, row=2)
    again, cached = _judge(pairwise.versions.get(), team, cheap=flawed, reference=right, row=2)
    assert cached
    assert again.pk == first.pk
    assert UsageRecord.objects.filter(purpose=Purpose.EVAL).count() == 2
    # a new version of the evaluator is a new judge: it judges afresh
    second = services.evaluator_version_create(
        evaluator=pairwise, config={"rubric": "Be strict.", "judge": "tier:flagship"}, actor=alice
    )
    fresh, cached = _judge(second, team, cheap=flawed, reference=right, row=2)
    assert not cached
    assert fresh.pk != first.pk
    assert UsageRecord.objects.filter(purpose=Purpose.EVAL).count() == 4


def test_a_judge_over_the_teams_budget_is_refused_and_caches_nothing(pairwise, team, catalog):
    budget_set(team=team, limit_usd=Decimal("0"))
    right, flawed = right_and_flawed(3)
    with pytest.raises(AppError) as caught:
        _judge(pairwise.versions.get(), team, cheap=flawed, reference=right, row=3)
    assert caught.value.code == "budget_exceeded"
    assert not Judgment.objects.exists()
    assert not UsageRecord.objects.filter(purpose=Purpose.EVAL, status="success").exists()


def test_a_finished_run_is_judged_per_row_and_feeds_the_recommendation_and_agreement(
    pairwise, team, triage, alice, bob, catalog
):
    # rows 0-5: the cheap answer misses urgency; rows 6-11: both right
    outputs = [right_and_flawed(row)[::-1] for row in range(6)]
    outputs += [(right_and_flawed(row)[0],) * 2 for row in range(6, 12)]
    job = finished_job(team, triage, outputs)
    summary = run_async(runner.job_evaluate, job_id=job.pk)
    assert (summary.judged, summary.failed) == (12, 0)
    verdicts = selectors.job_verdicts(job=job)
    assert verdicts.reference_column == 1
    column = verdicts.columns[0]
    assert (column["reference"], column["cheap"] + column["tie"], column["as_good_percent"]) == (
        6,
        6,
        50,
    )
    assert verdicts.rows[0][0]["outcome"] == "reference"
    assert verdicts.rows[7][0]["outcome"] == "tie"
    # a second run over the same rows calls nothing
    again = run_async(runner.job_evaluate, job_id=job.pk)
    assert (again.judged, again.cached) == (0, 12)
    assert UsageRecord.objects.filter(purpose=Purpose.EVAL).count() == 24
    # the recommendation counts the judge's verdicts
    cases = playground_selectors.recommendation_evidence(
        prompt=triage.prompt, cheap_tier="mini", flagship_tier="flagship"
    )
    assert (
        sorted((c.source, c.match) for c in cases) == [("judge", False)] * 6 + [("judge", True)] * 6
    )
    # people who vote against the judge: kappa below 0.4, and a warning
    for row in range(12):
        RowVote.objects.create(
            job=job,
            row_index=row,
            voter=bob,
            verdict=Verdict.TIE if row < 6 else Verdict.WINNER,
            winner_column=None if row < 6 else 1,
        )
    agreement = selectors.agreement(prompt=triage.prompt)
    assert (agreement.cases, agreement.percent) == (12, 0)
    assert agreement.kappa < 0.4
    assert agreement.warn
    # people who vote with it: full agreement
    RowVote.objects.all().delete()
    for row in range(12):
        RowVote.objects.create(
            job=job,
            row_index=row,
            voter=alice,
            verdict=Verdict.WINNER if row < 6 else Verdict.TIE,
            winner_column=1 if row < 6 else None,
        )
    agreement = selectors.agreement(prompt=triage.prompt)
    assert (agreement.cases, agreement.percent, agreement.kappa) == (12, 100, 1.0)
    assert not agreement.warn
    assert Evaluation.objects.filter(team=team).count() == 12
