"""A 200-row batch compare of nano against the flagship with a pairwise judge, on a real Celery
worker: the judge runs when the job is done and finds the simulator's planted difference."""

from __future__ import annotations

import csv
import io

import pytest

from evals import selectors
from evals.models import Evaluation
from playground import selectors as playground_selectors
from playground import services as playground_services
from playground.columns import ColumnSpec
from playground.models import Job
from simulator.quality import FLAW_RATES
from spend.models import Purpose, UsageRecord
from tests.playground.conftest import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.celery_worker]
ROWS = 200


def _dataset(team, user):
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["message", "channel"])
    for i in range(ROWS):
        writer.writerow([f"Ticket {i}: I was charged twice for order {1000 + i}", "email"])
    return playground_services.dataset_create(
        team=team, user=user, filename="tickets.csv", data=out.getvalue().encode()
    )


def test_the_judge_finds_that_the_flagship_beats_nano_at_the_documented_rate(
    celery_worker, team, alice, triage, pairwise, catalog
):
    job = playground_services.batch_compare_create(
        team=team,
        user=alice,
        dataset=_dataset(team, alice),
        version=triage,
        columns=[ColumnSpec(tier="nano"), ColumnSpec(tier="flagship")],
        mapping={"message": "message", "channel": "channel"},
    )
    wait_for(
        lambda: Job.objects.get(pk=job.pk).status == Job.Status.DONE, timeout=600, what="the job"
    )
    wait_for(
        lambda: Evaluation.objects.filter(job=job).count() == ROWS,
        timeout=600,
        what="the judge's verdicts",
    )
    verdicts = selectors.job_verdicts(job=Job.objects.get(pk=job.pk))
    nano = verdicts.columns[0]
    assert nano["rows"] == ROWS
    # documented (simulator.quality): the flagship's answer is better on
    # P(nano flawed) x P(flagship right) = 0.40 x 0.95 = 38% of inputs
    planted = 100 * FLAW_RATES["nano"] * (1 - FLAW_RATES["flagship"])
    assert abs(nano["loss_percent"] - planted) <= 10, nano
    # two judge calls per row, each an eval usage record of the team
    assert UsageRecord.objects.filter(team=team, purpose=Purpose.EVAL).count() == 2 * ROWS
    # the recommendation counts the verdicts and states its bound
    recommendation = next(
        r
        for r in playground_selectors.prompt_recommendations(prompt=triage.prompt)
        if r.cheap_tier == "nano"
    )
    assert recommendation.by_source == {"judge": ROWS}
    assert recommendation.cases == ROWS
    assert "95% lower bound, 200 cases" in recommendation.sentence
    assert recommendation.lower_bound_percent < recommendation.match_percent


def test_run_the_judge_catches_up_on_a_run_finished_before_its_evaluator(
    celery_worker, client, team, alice, triage, catalog
):
    from django.urls import reverse

    from evals import services
    from tests.evals.conftest import RUBRIC, finished_job, right_and_flawed

    job = finished_job(team, triage, [right_and_flawed(row)[::-1] for row in range(4)])
    services.evaluator_create(
        prompt=triage.prompt,
        name="late judge",
        kind="pairwise_judge",
        config={"rubric": RUBRIC, "judge": "tier:flagship"},
        actor=alice,
    )
    client.force_login(alice)
    page = client.post(reverse("playground:batch-evaluate", args=[job.pk]), follow=True)
    assert "The judge is running" in page.content.decode()
    wait_for(
        lambda: Evaluation.objects.filter(job=job).count() == 4, timeout=120, what="the verdicts"
    )
    verdicts = selectors.job_verdicts(job=job)
    assert verdicts.columns[0]["reference"] == 4  # the cheap answer misses urgency on each row
