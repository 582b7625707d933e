"""The judge on the batch matrix, its drawer, the agreement panel and the recommendations
page, and the evidence a one-click rule records: for an editor (alice) and an outsider
(charlie)."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from core.models import AuditEvent
from evals import runner
from evals.models import Evaluator
from playground.models import RowVote, Verdict
from tests.evals.conftest import RUBRIC, finished_job, right_and_flawed, run_async

pytestmark = pytest.mark.django_db


def _judge_payload(**extra: str) -> dict[str, str]:
    return {
        "name": "judge",
        "kind": "pairwise_judge",
        "rubric": RUBRIC,
        "judge": "tier:flagship",
        **extra,
    }


# --- the judge in the batch matrix, the drawer and the recommendation -------------------


@pytest.fixture
def judged_job(pairwise, team, triage, bob, catalog):
    """Rows 0-2: the cheap column (A) misses urgency; rows 3-5: both right. Judged for real
    (the simulator's judge), and bob votes against the judge on every row."""
    outputs = [right_and_flawed(row)[::-1] for row in range(3)]
    outputs += [(right_and_flawed(row)[0],) * 2 for row in range(3, 6)]
    job = finished_job(team, triage, outputs)
    summary = run_async(runner.job_evaluate, job_id=job.pk)
    assert summary.judged == 6
    for row in range(6):
        RowVote.objects.create(
            job=job,
            row_index=row,
            voter=bob,
            verdict=Verdict.TIE if row < 3 else Verdict.WINNER,
            winner_column=None if row < 3 else 1,
        )
    return job


def test_the_matrix_shows_the_judge_rate_per_column_and_a_verdict_per_row(
    client, alice, judged_job
):
    client.force_login(alice)
    page = client.get(reverse("playground:batch-detail", args=[judged_job.pk])).content.decode()
    assert re.search(
        r'data-testid="judge-rate-0"[^>]*>judge vs B: wins 0% · as good or better 50% · '
        r"loses 50% \(6 rows\)",
        page,
    )
    assert "judge reference" in page
    assert page.count('data-testid="verdict"') == 6
    assert page.count(">judge: worse<") == 3
    assert page.count(">judge: as good<") == 3


def test_the_drawer_shows_both_position_orders_with_their_reasons(client, alice, judged_job):
    client.force_login(alice)
    drawer = client.get(
        reverse("playground:batch-row", args=[judged_job.pk, 0]), HTTP_HX_REQUEST="true"
    ).content.decode()
    assert 'data-testid="judgments"' in drawer
    assert "A against B" in drawer
    assert "B better" in drawer
    orders = re.findall(r'data-testid="judge-order">(.*?)</li>', drawer, re.S)
    assert len(orders) == 2
    assert "A&#x27;s answer as A, B&#x27;s as B" in orders[0]
    assert "B&#x27;s answer as A, A&#x27;s as B" in orders[1]
    assert all("<strong>B better</strong>" in o for o in orders)
    assert all("no reason given" not in o for o in orders)


def test_the_agreement_panel_warns_when_the_judge_disagrees_with_people(client, alice, judged_job):
    client.force_login(alice)
    page = client.get(reverse("playground:batch-detail", args=[judged_job.pk])).content.decode()
    assert re.search(r"On 6 votes .* agrees 0% of the time · Cohen's κ -1\.00", page)
    evaluator = Evaluator.objects.get()
    warning = re.search(r'data-testid="kappa-warning">(.*?)</p>', page, re.S).group(1)
    assert "this rubric disagrees with your reviewers" in warning
    assert reverse("evals:evaluator", args=[evaluator.pk]) in warning
    recommendations = client.get(reverse("playground:recommendations")).content.decode()
    assert 'data-testid="kappa-warning"' in recommendations
    assert "0% agreement on 6 votes" in recommendations
    assert "(95% lower bound, 6 cases" in recommendations


def test_the_agreement_panel_has_no_warning_when_people_agree(client, alice, judged_job):
    RowVote.objects.all().delete()
    for row in range(6):
        RowVote.objects.create(
            job=judged_job,
            row_index=row,
            voter=alice,
            verdict=Verdict.WINNER if row < 3 else Verdict.TIE,
            winner_column=1 if row < 3 else None,
        )
    client.force_login(alice)
    page = client.get(reverse("playground:batch-detail", args=[judged_job.pk])).content.decode()
    assert "agrees 100% of the time · Cohen's κ 1.00" in page
    assert "kappa-warning" not in page


def test_the_one_click_rule_records_the_judge_agreement_in_its_evidence(client, alice, judged_job):
    from playground import services as playground_services

    rule = playground_services.recommendation_apply(
        prompt=judged_job.prompt_version.prompt, cheap_tier="mini", actor=alice
    )
    event = AuditEvent.objects.get(action="routing.rule.create", object_id=str(rule.pk))
    evidence = event.after["evidence"]
    assert evidence["by_source"] == {"vote": 6}  # a row vote speaks before the judge
    assert evidence["judge_agreement"]["cases"] == 6
    assert evidence["judge_agreement"]["percent"] == 0


def test_another_team_sees_no_judge_rows_or_agreement(client, charlie, judged_job):
    client.force_login(charlie)
    assert client.get(reverse("playground:batch-detail", args=[judged_job.pk])).status_code == 404
    assert client.get(reverse("playground:batch-row", args=[judged_job.pk, 0])).status_code == 404
    page = client.get(reverse("playground:recommendations")).content.decode()
    assert "kappa-warning" not in page
    assert "triage" not in page


def test_run_the_judge_is_for_editors_of_finished_runs_of_a_prompt(
    client, alice, bob, charlie, pairwise, team, triage
):
    job = finished_job(team, triage, [right_and_flawed(0)])
    url = reverse("playground:batch-evaluate", args=[job.pk])
    client.force_login(bob)
    assert client.post(url).status_code == 403
    assert (
        "Run the judge"
        not in client.get(reverse("playground:batch-detail", args=[job.pk])).content.decode()
    )
    client.force_login(charlie)
    assert client.post(url).status_code == 404
    client.force_login(alice)
    assert (
        "Run the judge"
        in client.get(reverse("playground:batch-detail", args=[job.pk])).content.decode()
    )
    pairwise.enabled = False
    pairwise.save()
    page = client.post(url, follow=True).content.decode()
    assert "This prompt has no evaluator switched on." in page
    job.status = job.Status.RUNNING
    job.save()
    page = client.post(url, follow=True).content.decode()
    assert "The run is not finished yet" in page


def test_the_exports_carry_the_judges_verdicts_and_reasons(client, alice, judged_job):
    import csv
    import io
    import json

    client.force_login(alice)
    exported = client.get(reverse("playground:batch-export", args=[judged_job.pk, "csv"]))
    rows = list(csv.DictReader(io.StringIO(exported.content.decode())))
    assert [row["A judge vs B"] for row in rows] == ["worse"] * 3 + ["as good"] * 3
    data = json.loads(
        client.get(reverse("playground:batch-export", args=[judged_job.pk, "json"])).content
    )
    [judge] = data["rows"][0]["judge"]
    assert (judge["column"], judge["against"], judge["outcome"]) == (
        "tier:mini",
        "tier:flagship",
        "reference",
    )
    assert judge["evaluator"] == "judge"
    assert judge["reasons"][0].startswith("cheap first: B — ")
    assert judge["reasons"][1].startswith("reference first: A — ")
