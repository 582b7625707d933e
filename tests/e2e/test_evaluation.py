"""Automatic evaluation in a real browser (UX.md items 24-25): the evaluator editor on the
prompt page with its live preview; a batch run judged by a real Celery worker, with the judge
column in the matrix, both position-swapped reasons in the drawer, the agreement panel and the
recommendation with its 95% lower bound."""

from __future__ import annotations

import re
import time

from playwright.sync_api import Page, expect

from tests.e2e.conftest import E2EServer, screenshot
from tests.e2e.test_playground import _csv, _watch_console, worker  # noqa: F401 (fixture)

ROWS = 16
RUBRIC = "Prefer the answer whose category and urgency fit the customer's message."

_JUDGE_CODE = f"""
from accounts.models import User
from evals.models import Evaluator
from evals.services import evaluator_create
from prompts.models import Prompt
prompt = Prompt.objects.get(team__slug="demo", slug="support-triage")
if not Evaluator.objects.filter(prompt=prompt, name="e2e judge").exists():
    evaluator_create(prompt=prompt, name="e2e judge", kind="pairwise_judge",
                     config={{"rubric": {RUBRIC!r}, "judge": "tier:flagship"}},
                     actor=User.objects.get(username="pm"))
"""


def _no_errors(errors: list[str]) -> None:
    assert [e for e in errors if "favicon" not in e] == []


def test_an_editor_writes_a_judge_with_a_live_preview_of_its_prompt(logged_in_page):
    page = logged_in_page("pm")
    errors = _watch_console(page)
    page.goto("/prompts/demo/support-triage/")
    card = page.get_by_test_id("evaluators")
    expect(card).to_be_visible()  # loaded by htmx into the prompt page
    card.get_by_role("link", name="New evaluator").click()
    expect(page).to_have_url(re.compile(r"/evaluators/prompts/\d+/#new-evaluator$"))

    page.fill("input[name=name]", "urgency judge")
    preview = page.get_by_test_id("judge-preview")
    expect(preview).to_contain_text("Order 1: cheap answer as A")
    expect(preview).to_contain_text("Order 2: positions swapped")
    rubric = page.locator("textarea[name=rubric]")
    rubric.fill("Prefer the answer that gets the urgency right; ignore the wording.")
    # the preview follows the unsaved rubric (an htmx round trip)
    expect(preview.get_by_test_id("preview-instructions").first).to_contain_text(
        "gets the urgency right", timeout=15_000
    )
    expect(preview.get_by_test_id("preview-instructions")).to_have_count(2)
    # another kind shows its own settings and no judge prompt
    page.select_option("select[name=kind]", "json_fields")
    expect(page.locator("textarea[name=fields]")).to_be_visible()
    expect(rubric).to_be_hidden()
    expect(preview.get_by_test_id("preview-note")).to_contain_text("calls no model")
    page.select_option("select[name=kind]", "pairwise_judge")
    expect(rubric).to_be_visible()
    page.select_option("select[name=judge]", "tier:mini")
    expect(preview).to_contain_text("tier:mini", timeout=15_000)
    page.get_by_role("button", name="Create (v1)").click()

    expect(page).to_have_url(re.compile(r"/evaluators/\d+/$"))
    expect(page.locator("h1")).to_have_text("urgency judge")
    page.locator("textarea[name=rubric]").fill(
        "Prefer the answer that gets the urgency and the category right."
    )
    expect(page.get_by_test_id("preview-instructions").first).to_contain_text(
        "urgency and the category", timeout=15_000
    )
    page.fill("input[name=note]", "the category counts too")
    screenshot(page, "evaluator-editor", full_page=True)
    page.get_by_role("button", name="Save v2").click()
    expect(page.get_by_test_id("evaluator-versions").locator("tbody tr")).to_have_count(2)
    expect(page.get_by_test_id("evaluator-audit")).to_contain_text(
        "evaluator.version → v2 — the category counts too"
    )
    # switched off so that it does not judge the batch run below
    page.locator("input[name=enabled]").uncheck()
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator(".page-head")).to_contain_text("off")
    _no_errors(errors)


def test_a_member_sees_the_editor_read_only(logged_in_page, e2e_server: E2EServer):
    e2e_server.shell(_JUDGE_CODE)
    page = logged_in_page("member")
    errors = _watch_console(page)
    page.goto("/prompts/demo/support-triage/")
    card = page.get_by_test_id("evaluators")
    expect(card.get_by_role("link", name="New evaluator")).to_have_count(0)
    card.get_by_role("link", name="e2e judge").click()
    expect(page.locator("textarea[name=rubric]")).to_be_disabled()
    expect(page.get_by_role("button", name=re.compile(r"^Save v"))).to_have_count(0)
    _no_errors(errors)


def _run_batch(page: Page) -> None:
    page.goto("/playground/batch/new")
    version = page.locator("select[name=version]")
    version.select_option(
        label=version.locator("option", has_text="support-triage · v1").first.inner_text()
    )
    page.set_input_files(
        "input[name=file]",
        files=[{"name": "judged.csv", "mimeType": "text/csv", "buffer": _csv(ROWS)}],
    )
    page.get_by_role("button", name="Preview").click()
    expect(page.locator("#batch-run")).to_be_enabled()
    page.locator("#batch-run").click()
    expect(page).to_have_url(re.compile(r"/playground/batch/\d+/$"))
    expect(page.locator("#job-status")).to_have_text("done", timeout=60_000)


def _wait_for_judge(page: Page) -> None:
    """The worker judges the run once it is done: reload until every row has a verdict."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        page.reload()
        if page.get_by_test_id("verdict").count() == ROWS:
            return
        page.wait_for_timeout(1000)
    raise AssertionError("the judge did not finish")


def test_a_judged_batch_shows_verdicts_reasons_agreement_and_the_bound(
    logged_in_page,
    e2e_server: E2EServer,
    worker,  # noqa: F811 (the fixture imported above)
):
    e2e_server.shell(_JUDGE_CODE)
    page = logged_in_page("engineer")
    errors = _watch_console(page)
    _run_batch(page)
    _wait_for_judge(page)

    header = page.locator("#results thead th[data-column='0']")
    expect(header.get_by_test_id("judge-rate-0")).to_contain_text(
        re.compile(r"judge vs B: wins \d+% · as good or better \d+% · loses \d+% \(16 rows\)")
    )
    expect(page.locator("#results thead th[data-column='1']")).to_contain_text("judge reference")
    expect(page.get_by_test_id("agreement")).to_contain_text("The judge compared 16 rows")

    # a reviewer who disagrees with the judge on a few rows: B where it said A or "as good"
    rows = page.locator("#results tbody tr.pg-row")
    for index in range(4):
        rows.nth(index).click()
        drawer = page.locator(".pg-drawer")
        expect(drawer.get_by_test_id("judgments")).to_be_visible()
        expect(drawer.get_by_test_id("judge-order")).to_have_count(2)
        verdict = drawer.locator(".pg-judgment .badge").first.inner_text()
        choice = "A better" if verdict == "B better" else "B better"
        drawer.get_by_role("button", name=choice).click()
        expect(drawer.locator("ul").last).to_contain_text("engineer:")
        if index == 0:
            orders = drawer.get_by_test_id("judge-order")
            expect(orders.nth(0)).to_contain_text("A's answer as A, B's as B")
            expect(orders.nth(1)).to_contain_text("B's answer as A, A's as B")
            for i in range(2):
                expect(orders.nth(i)).not_to_contain_text("no reason given")
            screenshot(page, "batch-judge-drawer")
        drawer.get_by_role("button", name="Close").click()

    page.reload()
    agreement = page.get_by_test_id("agreement")
    expect(agreement.get_by_test_id("agreement-figures")).to_contain_text("On 4 votes")
    expect(agreement.get_by_test_id("kappa-warning")).to_contain_text(
        "this rubric disagrees with your reviewers; edit it"
    )
    screenshot(page, "batch-judge", full_page=False)
    agreement.get_by_role("link", name="edit it").click()
    expect(page).to_have_url(re.compile(r"/evaluators/\d+/$"))
    expect(page.locator("h1")).to_have_text("e2e judge")

    page.goto("/playground/recommendations/")
    section = page.locator("#prompt-support-triage")
    sentence = section.locator(".pg-recommendation[data-tier=mini]").get_by_test_id(
        "recommendation-sentence"
    )
    expect(sentence).to_contain_text(
        re.compile(
            r"mini is at least as good as flagship on ≥ \d+% of cases \(95% lower bound, \d+ cases"
        )
    )
    expect(section.get_by_test_id("kappa-warning")).to_be_visible()
    section.scroll_into_view_if_needed()
    screenshot(page, "recommendation-bound")
    _no_errors(errors)


def test_the_evaluator_pages_fit_a_phone_with_no_console_error_or_csp_violation(
    browser, browser_context_args, e2e_server: E2EServer
):
    from tests.e2e.test_site_hygiene import PHONE, Problems, _open, _scroll_width, _visit

    e2e_server.shell(_JUDGE_CODE)
    ids = e2e_server.shell(
        "from evals.models import Evaluator\n"
        "e = Evaluator.objects.get(name='e2e judge')\n"
        "print(e.prompt_id, e.pk)"
    ).split()
    page = _open(browser, browser_context_args, "pm", viewport=PHONE)
    problems = Problems(page)
    report = {}
    for path in (
        "/prompts/demo/support-triage/",
        f"/evaluators/prompts/{ids[0]}/",
        f"/evaluators/{ids[1]}/",
    ):
        _visit(page, path)
        width = _scroll_width(page)
        found = problems.take()
        if width > PHONE["width"] or found:
            report[path] = (width, found)
    page.context.close()
    assert report == {}
