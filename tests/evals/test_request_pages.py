"""The request explorer's evaluation pieces: the panel on a list filtered to one prompt, the
confirm step, the run's progress and summary, a request's evaluations in its drawer; an editor
starts a run, a member reads (403 on the actions), another team gets 404."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from evals import logged, services
from evals.models import Evaluator, RequestRun
from tests.evals.conftest import RUBRIC, logged_record, run_async

pytestmark = pytest.mark.django_db(transaction=True)
LIST = "/requests/?prompt=triage&range=all"
CONFIRM = reverse("evals:requests-confirm") + "?prompt=triage&range=all"


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def requests_(team, triage) -> list[str]:
    """Three requests with stored content, one without."""
    for i in range(3):
        logged_record(team, triage, f"req_a{i}")
    logged_record(team, triage, "req_nocontent", request_body=None, response_body=None)
    return ["req_a0", "req_a1", "req_a2", "req_nocontent"]


def _run(alice, triage, ids) -> RequestRun:
    run = services.request_run_start(prompt=triage.prompt, request_ids=ids, actor=alice)
    run_async(logged.request_run_evaluate, run_id=run.pk)
    return RequestRun.objects.get(pk=run.pk)


def test_a_list_filtered_to_one_prompt_offers_its_editors_to_evaluate_it(
    alice, bob, requests_, json_check
):
    page = logged_in(alice).get(LIST).content.decode()
    assert 'data-testid="evaluate-requests"' in page
    assert "Evaluate these requests" in page
    member = logged_in(bob).get(LIST).content.decode()
    assert 'data-testid="evaluate-requests"' in member
    assert "Evaluate these requests" not in member
    unfiltered = logged_in(alice).get("/requests/?range=all").content.decode()
    assert 'data-testid="evaluate-requests"' not in unfiltered
    shadows = logged_in(alice).get(LIST + "&purpose=shadow").content.decode()
    assert 'data-testid="evaluate-requests"' not in shadows


def test_the_confirm_step_counts_the_requests_and_names_the_evaluators(
    alice, requests_, json_check, pairwise
):
    response = logged_in(alice).get(CONFIRM, headers={"HX-Request": "true"})
    assert response.status_code == 200
    page = response.content.decode()
    assert 'hx-target="#evaluate-requests"' in page
    assert "Evaluate the <strong>4</strong> newest gateway requests" in page
    assert "1 without stored content will be skipped" in page
    assert "valid json v1" in page
    assert "judge (pairwise_judge) needs a reference answer" in page
    assert "Evaluate 3 requests" in page
    assert page.count('name="request"') == 4
    assert "<html" not in page
    # without htmx, the confirm step is a page of its own
    full = logged_in(alice).get(CONFIRM).content.decode()
    assert "<html" in full
    assert "Evaluate 3 requests" in full
    assert "hx-post" not in full  # a plain form: the page has no panel to swap


def test_confirming_starts_a_run_the_panel_polls_then_summarizes(
    alice, triage, requests_, json_check
):
    client = logged_in(alice)
    response = client.post(
        reverse("evals:requests-run"),
        {"prompt": triage.prompt.pk, "request": requests_, "query": "prompt=triage"},
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 200
    run = RequestRun.objects.get()
    assert run.request_ids == requests_
    assert 'hx-trigger="every 1s"' in response.content.decode()
    run_async(logged.request_run_evaluate, run_id=run.pk)
    done = client.get(reverse("evals:request-run", args=[run.pk])).content.decode()
    assert "every 1s" not in done
    assert 'data-testid="request-run-summary"' in done
    assert "100% (3 of 3)" in done
    assert "Skipped: 1 without stored content" in done
    # the list shows the latest run's summary
    assert "100% (3 of 3)" in client.get(LIST).content.decode()


def test_a_member_gets_403_on_the_actions_and_reads_the_summary(
    alice, bob, triage, requests_, json_check
):
    run = _run(alice, triage, requests_)
    client = logged_in(bob)
    assert client.get(CONFIRM).status_code == 403
    post = client.post(
        reverse("evals:requests-run"), {"prompt": triage.prompt.pk, "request": requests_}
    )
    assert post.status_code == 403
    assert RequestRun.objects.count() == 1
    assert client.get(reverse("evals:request-run", args=[run.pk])).status_code == 200


def test_another_team_gets_404_everywhere(alice, charlie, triage, requests_, json_check):
    run = _run(alice, triage, requests_)
    client = logged_in(charlie)
    assert client.get(CONFIRM + "&team=team-a").status_code == 404
    assert client.get(CONFIRM).status_code in (400, 404)  # no such prompt in their teams
    post = client.post(
        reverse("evals:requests-run"), {"prompt": triage.prompt.pk, "request": requests_}
    )
    assert post.status_code == 404
    assert client.get(reverse("evals:request-run", args=[run.pk])).status_code == 404
    assert client.get(reverse("requests:detail", args=["req_a0"])).status_code == 404
    assert RequestRun.objects.count() == 1


def test_the_drawer_lists_the_requests_evaluations_with_score_and_reason(
    alice, bob, team, triage, requests_, json_check, catalog
):
    services.evaluator_create(
        prompt=triage.prompt,
        name="score",
        kind=Evaluator.Kind.SCORE_JUDGE,
        config={"rubric": RUBRIC, "judge": "tier:flagship", "pass_score": 4},
        actor=alice,
    )
    _run(alice, triage, requests_)
    page = logged_in(bob).get(reverse("requests:detail", args=["req_a0"])).content.decode()
    assert 'data-testid="request-evaluations"' in page
    assert "valid json</strong> v1" in page
    assert "score</strong> v1" in page
    assert "score 3/5" in page  # the simulator cannot grade free text: 3, with its reason
    drawer = logged_in(bob).get(
        reverse("requests:detail", args=["req_nocontent"]), headers={"HX-Request": "true"}
    )
    assert 'data-testid="request-evaluations"' not in drawer.content.decode()


def test_a_running_run_shows_its_progress_and_keeps_polling(alice, bob, triage, requests_):
    run = RequestRun.objects.create(
        team=triage.prompt.team,
        prompt=triage.prompt,
        status=RequestRun.Status.RUNNING,
        request_ids=requests_,
        total=8,
        done=2,
    )
    page = logged_in(bob).get(reverse("evals:request-run", args=[run.pk])).content.decode()
    assert 'hx-trigger="every 1s"' in page
    assert 'aria-valuenow="25"' in page
    assert "2 of 8 judgments" in page


def test_without_htmx_confirming_goes_back_to_the_filtered_list(
    alice, triage, requests_, json_check
):
    response = logged_in(alice).post(
        reverse("evals:requests-run"),
        {"prompt": triage.prompt.pk, "request": requests_, "query": "prompt=triage&range=all"},
    )
    assert response.status_code == 302
    assert response["Location"] == "/requests/?prompt=triage&range=all"
    assert RequestRun.objects.count() == 1
