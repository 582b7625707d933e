"""Evaluating logged requests in a real browser: the request explorer filtered to one prompt
offers "Evaluate these requests", confirms with the count and the evaluators, shows the
progress while a real Celery worker judges, then the summary; each request's drawer lists
its evaluations with the score and the judge's reason."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.e2e.conftest import E2EServer, screenshot
from tests.e2e.test_playground import _watch_console, worker  # noqa: F401 (fixture)

# Ten support-triage requests of team demo, as the gateway writes them for a team that keeps
# content (nano's answers, as the simulator gives them), two of them without content (written
# before the team kept it), tagged so the list can be narrowed to them.
_SETUP = """
import datetime as dt
import json
from decimal import Decimal
from django.utils import timezone
from accounts.models import Team, User
from evals.models import Evaluator
from evals.services import evaluator_create
from prompts.models import Prompt
from routing.models import Model
from simulator.quality import structured_answer
from spend.models import UsageRecord
demo = Team.objects.get(slug="demo")
demo.store_content = True
demo.save()
prompt = Prompt.objects.get(team=demo, slug="support-triage")
version = prompt.versions.order_by("-number").first()
pm = User.objects.get(username="pm")
for name, kind, config in [
    ("urgency score", "score_judge", {"rubric": "Score the category and urgency against the message.",
                                      "judge": "tier:flagship", "pass_score": 4}),
    ("valid json", "check", {"check": "json"}),
]:
    if not Evaluator.objects.filter(prompt=prompt, name=name).exists():
        evaluator_create(prompt=prompt, name=name, kind=kind, config=config, actor=pm)
nano = Model.objects.get(name="gpt-5.4-nano")
now = timezone.now()
for i in range(10):
    text = f"Channel: email\\nMessage:\\nOrder {4100 + i}: I was charged twice, please refund."
    answer = json.dumps(structured_answer(version.response_schema, "gpt-5.4-nano", (text,)))
    stored = i >= 2
    UsageRecord.objects.create(
        created_at=now - dt.timedelta(minutes=20 - i), request_id=f"req_e2e_eval_{i:02d}",
        team=demo, prompt_version=version, model=nano, model_name="gpt-5.4-nano",
        tier_name="nano", rule="Routine tasks to mini", route_reason="prompt default: nano",
        input_tokens=380, output_tokens=40, cost_usd=Decimal("0.00005"), latency_ms=420,
        metadata={"batch": "e2e-evals"},
        request_body={"instructions": "You triage customer support messages. Answer with JSON only.",
                      "input": text,
                      "text": {"format": {"type": "json_schema", "name": "triage",
                                          "schema": version.response_schema}}} if stored else None,
        response_body={"output_text": answer} if stored else None,
    )
"""
LIST = "/requests/?prompt=support-triage&range=24h&q=batch:e2e-evals"


def test_an_editor_evaluates_the_listed_requests_and_reads_each_ones_scores(
    logged_in_page,
    e2e_server: E2EServer,
    worker,  # noqa: F811 (the fixture)
):
    e2e_server.shell(_SETUP)
    page = logged_in_page("pm")
    errors = _watch_console(page)
    page.goto(LIST)
    expect(page.get_by_test_id("requests").locator("tbody tr")).to_have_count(10)
    panel = page.get_by_test_id("evaluate-requests")
    expect(panel).to_contain_text("Evaluations of support-triage")
    panel.get_by_test_id("evaluate-button").click()

    confirm = page.get_by_test_id("evaluate-confirm")
    expect(confirm.get_by_test_id("evaluate-count")).to_contain_text(
        "Evaluate the 10 newest gateway requests of support-triage"
    )
    expect(confirm.get_by_test_id("evaluate-no-content")).to_contain_text(
        "2 without stored content will be skipped"
    )
    expect(confirm.get_by_test_id("evaluate-evaluators")).to_contain_text("urgency score v1")
    expect(confirm.get_by_test_id("evaluate-evaluators")).to_contain_text("valid json v1")
    screenshot(page, "request-evaluation-confirm")
    confirm.get_by_test_id("evaluate-go").click()

    run = page.get_by_test_id("request-run")
    expect(run).to_be_visible()
    summary = page.get_by_test_id("request-run-summary")
    expect(summary).to_be_visible(timeout=60_000)  # polled until the worker is done
    expect(run).to_have_attribute("data-status", "done")
    expect(summary.locator("tr[data-kind=check]")).to_contain_text("100% (8 of 8)")
    expect(summary.locator("tr[data-kind=score_judge]")).to_contain_text("/ 5")
    expect(page.get_by_test_id("request-run-skipped")).to_contain_text("2 without stored content")
    screenshot(page, "request-evaluation", full_page=True)

    page.locator("tr[data-request=req_e2e_eval_09]").click()
    evaluations = page.get_by_test_id("request-evaluations")
    expect(evaluations).to_contain_text("urgency score v1: score")
    expect(evaluations.locator("li[data-kind=score_judge]")).to_contain_text("—")
    expect(evaluations.locator("li[data-kind=check]")).to_contain_text("pass")
    evaluations.scroll_into_view_if_needed()
    screenshot(page, "request-evaluation-drawer")
    # a request without content was not judged: its drawer has no evaluations
    page.goto("/requests/req_e2e_eval_00/")
    expect(page.get_by_test_id("content-missing")).to_be_visible()
    expect(page.get_by_test_id("request-evaluations")).to_have_count(0)
    assert [e for e in errors if "favicon" not in e] == []


# A run under way on another prompt (no task queued: it stays at 9 of 24), for the progress bar.
_RUNNING = """
from accounts.models import User
from evals.models import RequestRun
from prompts.models import Prompt
prompt = Prompt.objects.get(team__slug="demo", slug="invoice-extract")
RequestRun.objects.filter(prompt=prompt).delete()
RequestRun.objects.create(team=prompt.team, prompt=prompt, created_by=User.objects.get(username="pm"),
                          status="running", request_ids=[f"req_{i}" for i in range(12)],
                          total=24, done=9)
"""


def test_a_member_follows_a_runs_progress_without_the_action(logged_in_page, e2e_server: E2EServer):
    e2e_server.shell(_RUNNING)
    page = logged_in_page("member")
    errors = _watch_console(page)
    page.goto("/requests/?prompt=invoice-extract&range=24h")
    panel = page.get_by_test_id("evaluate-requests")
    expect(panel).to_contain_text("Prompt editors can evaluate these requests")
    expect(panel.get_by_test_id("evaluate-button")).to_have_count(0)
    expect(panel).to_contain_text("Evaluating 12 requests: 9 of 24 judgments")
    expect(page.get_by_test_id("request-run-progress")).to_have_attribute("aria-valuenow", "38")
    expect(page.get_by_test_id("request-run")).to_have_attribute("hx-trigger", "every 1s")
    screenshot(page, "request-evaluation-progress")
    # on a phone the panel fits without sideways scrolling
    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    expect(panel).to_be_visible()
    assert page.evaluate("document.scrollingElement.scrollWidth") <= 390
    assert [e for e in errors if "favicon" not in e] == []
