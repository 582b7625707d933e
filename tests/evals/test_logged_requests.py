"""Evaluating a selection of logged requests: the prompt's score judge and checks grade the
answers the team stored, through real gateway requests to the simulator; requests without
content are counted and skipped, judgments are cached, another team's requests never run."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest
from django.db.models import Sum

from core.errors import BadRequest, Forbidden
from evals import logged, services
from evals.models import Evaluation, Evaluator, Judgment, RequestRun
from spend.budgets import budget_set
from spend.models import Purpose, UsageRecord
from tests.evals.conftest import RUBRIC, logged_record, run_async
from tests.playground.conftest import make_triage, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def stored(team):
    """Team A keeps request content (set before the site starts serving)."""
    team.store_content = True
    team.save()
    return team


@pytest.fixture
def score(triage, alice) -> Evaluator:
    return services.evaluator_create(
        prompt=triage.prompt,
        name="score",
        kind=Evaluator.Kind.SCORE_JUDGE,
        config={"rubric": RUBRIC, "judge": "tier:flagship", "pass_score": 4},
        actor=alice,
    )


@pytest.fixture
def reference_only(triage, alice, pairwise) -> Evaluator:
    """Evaluators that cannot grade one answer: a pairwise judge and an exact check."""
    return services.evaluator_create(
        prompt=triage.prompt,
        name="exact",
        kind=Evaluator.Kind.CHECK,
        config={"check": "exact"},
        actor=alice,
    )


def ask(site: str, key: str, messages: list[str], tier: str = "nano") -> list[str]:
    """Real prompt runs through the gateway; their request ids, in order."""
    ids = []
    for message in messages:
        response = httpx.post(
            f"{site}/api/v1/prompts/triage/run",
            json={"variables": {"message": message}, "tier": tier},
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        ids.append(response.json()["request_id"])
    # the gateway writes its usage records just after answering
    wait_for(
        lambda: UsageRecord.objects.filter(request_id__in=ids).count() == len(ids),
        timeout=10,
        what="the usage records",
    )
    return ids


def tickets(n: int, start: int = 0) -> list[str]:
    return [f"Ticket {i}: the invoice is wrong" for i in range(start, start + n)]


def evaluate(prompt, ids, actor) -> RequestRun:
    run = services.request_run_start(prompt=prompt, request_ids=ids, actor=actor)
    run_async(logged.request_run_evaluate, run_id=run.pk)
    return RequestRun.objects.get(pk=run.pk)


def test_each_stored_request_is_graded_by_the_score_judge_and_the_checks(
    stored, catalog, live_site, api_key, triage, alice, score, json_check, reference_only
):
    ids = ask(live_site, api_key, tickets(3))
    run = evaluate(triage.prompt, ids, alice)
    assert run.status == RequestRun.Status.DONE
    assert (run.total, run.done, run.judged, run.cached, run.failed) == (6, 6, 6, 0, 0)
    # the pairwise judge and the exact check need a second answer: named, not run
    assert {(s["name"], s["why"]) for s in run.skipped_evaluators} == {
        ("judge", logged.NEEDS_REFERENCE),
        ("exact", logged.NEEDS_EXPECTED),
    }
    evaluations = Evaluation.objects.filter(usage_record__isnull=False).select_related(
        "judgment", "usage_record", "evaluator_version__evaluator"
    )
    assert evaluations.count() == 6
    assert {e.usage_record.request_id for e in evaluations} == set(ids)
    assert all(e.usage_record.purpose == Purpose.GATEWAY for e in evaluations)
    for evaluation in evaluations:
        judgment = evaluation.judgment
        if evaluation.evaluator_version.evaluator.kind == Evaluator.Kind.SCORE_JUDGE:
            assert judgment.score in (1, 3, 5)  # the simulator: 5 - 2 x flaws
            assert judgment.outcome == ("pass" if judgment.score >= 4 else "fail")
            assert judgment.details["reason"]
        else:
            assert (judgment.outcome, judgment.details["passed"]) == ("pass", True)
    # one judge call per request for the score judge, none for the check: purpose eval
    judge_calls = UsageRecord.objects.filter(purpose=Purpose.EVAL)
    assert judge_calls.count() == 3
    assert set(judge_calls.values_list("tier_name", flat=True)) == {"flagship"}
    assert set(judge_calls.values_list("team_id", flat=True)) == {stored.pk}
    spent = judge_calls.aggregate(s=Sum("cost_usd"))["s"]
    assert run.cost_usd == spent == Judgment.objects.aggregate(s=Sum("cost_usd"))["s"] > 0


def test_requests_without_stored_content_are_counted_and_never_judged(
    stored, catalog, live_site, api_key, triage, alice, score
):
    ids = ask(live_site, api_key, tickets(3, start=10))
    # as the retention purge leaves them: figures kept, content gone
    UsageRecord.objects.filter(request_id__in=ids[:2]).update(request_body=None, response_body=None)
    run = evaluate(triage.prompt, ids, alice)
    assert (run.skipped_no_content, run.total, run.judged) == (2, 1, 1)
    assert list(Evaluation.objects.values_list("usage_record__request_id", flat=True)) == [ids[2]]
    assert UsageRecord.objects.filter(purpose=Purpose.EVAL).count() == 1


def test_a_second_run_and_a_repeated_answer_read_the_cache_and_cost_nothing(
    stored, catalog, live_site, api_key, triage, alice, score
):
    # the same message twice on the same tier: the same task and answer, one judgment
    ids = ask(live_site, api_key, [*tickets(2, start=20), tickets(1, start=20)[0]])
    first = evaluate(triage.prompt, ids, alice)
    assert (first.judged, first.cached) == (2, 1)
    assert UsageRecord.objects.filter(purpose=Purpose.EVAL).count() == 2
    assert Evaluation.objects.count() == 3
    assert Judgment.objects.count() == 2
    again = evaluate(triage.prompt, ids, alice)
    assert (again.judged, again.cached, again.cost_usd) == (0, 3, 0)
    assert UsageRecord.objects.filter(purpose=Purpose.EVAL).count() == 2
    assert Evaluation.objects.count() == 3  # one per evaluator version and request


def test_a_selection_is_at_most_200_requests_of_the_prompt(team, alice, triage, json_check):
    with pytest.raises(BadRequest, match="At most 200"):
        services.request_run_start(
            prompt=triage.prompt, request_ids=[f"req_{i}" for i in range(201)], actor=alice
        )
    other_prompt = make_triage(team, alice, slug="other")
    logged_record(team, triage, "req_mine")
    logged_record(team, other_prompt, "req_other_prompt")
    logged_record(team, triage, "req_judge_call", purpose=Purpose.EVAL)
    run = services.request_run_start(
        prompt=triage.prompt,
        request_ids=["req_mine", "req_other_prompt", "req_judge_call", "req_mine"],
        actor=alice,
    )
    assert run.request_ids == ["req_mine"]
    with pytest.raises(BadRequest, match="no enabled evaluator"):
        services.request_run_start(
            prompt=other_prompt.prompt, request_ids=["req_other_prompt"], actor=alice
        )


def test_another_teams_request_ids_are_never_evaluated(
    team, other_team, alice, charlie, triage, json_check
):
    theirs = make_triage(other_team, charlie)
    logged_record(other_team, theirs, "req_b_secret")
    logged_record(team, triage, "req_a")
    with pytest.raises(BadRequest, match="None of these"):
        services.request_run_start(prompt=triage.prompt, request_ids=["req_b_secret"], actor=alice)
    run = services.request_run_start(
        prompt=triage.prompt, request_ids=["req_a", "req_b_secret"], actor=alice
    )
    assert run.request_ids == ["req_a"]
    # even a run that names it (written by hand) leaves it alone
    RequestRun.objects.filter(pk=run.pk).update(request_ids=["req_b_secret", "req_a"])
    run_async(logged.request_run_evaluate, run_id=run.pk)
    assert list(Evaluation.objects.values_list("usage_record__request_id", flat=True)) == ["req_a"]
    assert RequestRun.objects.get(pk=run.pk).total == 1


def test_only_the_prompts_team_editors_start_a_run(team, alice, bob, charlie, triage, json_check):
    logged_record(team, triage, "req_a")
    for person in (bob, charlie):
        with pytest.raises(Forbidden):
            services.request_run_start(prompt=triage.prompt, request_ids=["req_a"], actor=person)
    assert not RequestRun.objects.exists()


@pytest.mark.celery_worker
def test_a_run_is_evaluated_by_a_real_worker_which_counts_its_progress(
    stored, catalog, live_site, api_key, triage, alice, score, json_check, celery_worker
):
    ids = ask(live_site, api_key, tickets(4, start=30))
    run = services.request_run_start(prompt=triage.prompt, request_ids=ids, actor=alice)
    assert run.status == RequestRun.Status.QUEUED
    wait_for(
        lambda: RequestRun.objects.get(pk=run.pk).finished, timeout=120, what="the worker's run"
    )
    run.refresh_from_db()
    assert run.status == RequestRun.Status.DONE
    assert (run.total, run.done, run.percent, run.failed) == (8, 8, 100, 0)
    assert Evaluation.objects.filter(usage_record__request_id__in=ids).count() == 8
    assert UsageRecord.objects.filter(purpose=Purpose.EVAL).count() == 4


def test_a_schema_check_leaves_out_a_request_that_asked_for_no_schema(team, alice, triage):
    services.evaluator_create(
        prompt=triage.prompt,
        name="schema",
        kind=Evaluator.Kind.CHECK,
        config={"check": "schema"},
        actor=alice,
    )
    logged_record(team, triage, "req_free_text")  # its stored body has no output format
    run = evaluate(triage.prompt, ["req_free_text"], alice)
    assert (run.status, run.total, run.done, run.judged) == ("done", 1, 1, 0)
    assert not Evaluation.objects.exists()


def test_a_team_over_its_budget_stops_the_run_and_says_so(team, alice, triage, score, catalog):
    ids = [f"req_budget_{i}" for i in range(3)]
    for i, request_id in enumerate(ids):
        logged_record(
            team,
            triage,
            request_id,
            request_body={"instructions": "Triage.", "input": f"Ticket {i}: the invoice is wrong"},
        )
    budget_set(team=team, limit_usd=Decimal("0"))
    run = evaluate(triage.prompt, ids, alice)
    assert (run.status, run.total, run.done, run.failed, run.judged) == ("done", 3, 3, 3, 0)
    assert "budget" in run.error.lower()
    assert not Judgment.objects.exists()
    assert not Evaluation.objects.exists()


def test_a_redelivered_run_counts_from_zero_and_reuses_what_was_evaluated(
    team, alice, triage, json_check
):
    for request_id in ("req_r0", "req_r1"):
        logged_record(team, triage, request_id)
    first = evaluate(triage.prompt, ["req_r0", "req_r1"], alice)
    assert (first.done, first.judged) == (2, 1)  # the same task and answer: one judgment
    # as a worker that died mid-run leaves it: running, with counts of its own
    RequestRun.objects.filter(pk=first.pk).update(status="running", done=7, judged=5)
    run_async(logged.request_run_evaluate, run_id=first.pk)
    again = RequestRun.objects.get(pk=first.pk)
    assert (again.status, again.total, again.done, again.judged, again.cached) == (
        "done",
        2,
        2,
        0,
        2,
    )
