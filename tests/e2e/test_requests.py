"""The request explorer and the home overview in a real browser (UX.md items 20-22)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import E2EServer, screenshot

# Logged requests of team demo, as the gateway writes them: a request that fell back from a
# failing mini to terra (two records), a budget refusal, one with its content stored (the
# team keeps content), an error, and plain successes; the outsiders' team has one too.
_SETUP = """
import datetime as dt
from decimal import Decimal
from django.utils import timezone
from accounts.models import Team
from routing.models import Model
from spend.models import UsageRecord
now = timezone.now()
demo = Team.objects.get(slug="demo")
demo.store_content = True
demo.save()
outsiders = Team.objects.get(slug="outsiders")
mini = Model.objects.get(name="gpt-5.4-mini")
terra = Model.objects.get(name="gpt-6.1-terra")
def record(minutes, request_id, **fields):
    base = dict(created_at=now - dt.timedelta(minutes=minutes), request_id=request_id, team=demo,
                model=mini, model_name="gpt-5.4-mini", tier_name="mini", rule="Routine tasks to mini",
                route_reason="task tag classification: mini", input_tokens=420, output_tokens=60,
                cost_usd=Decimal("0.000585"), latency_ms=640)
    base.update(fields)
    return UsageRecord.objects.create(**base)
for i in range(12):
    record(60 + i * 7, f"req_e2e_plain_{i:02d}")
record(30, "req_e2e_fallback", status="error", error_code="server_error",
       error_message="The upstream answered 500.", input_tokens=0, output_tokens=0,
       cost_usd=Decimal(0), latency_ms=210)
record(30, "req_e2e_fallback", attempt=2, model=terra, model_name="gpt-6.1-terra",
       route_reason="task tag classification: mini; gpt-5.4-mini failed (server_error)",
       cost_usd=Decimal("0.00072"), latency_ms=980)
record(20, "req_e2e_refused", model=mini, status="refused", error_code="budget_exceeded",
       error_message="The team budget (monthly, $100) cannot cover this request (up to $0.02 at worst).",
       input_tokens=0, output_tokens=0, cost_usd=Decimal(0), latency_ms=0)
record(15, "req_e2e_timeout", status="error", error_code="timeout",
       error_message="No answer within 30 s.", input_tokens=0, output_tokens=0,
       cost_usd=Decimal(0), latency_ms=30000)
record(10, "req_e2e_stored",
       request_body={"model": "auto", "messages": [
           {"role": "system", "content": "Answer in one sentence."},
           {"role": "user", "content": "Which plan includes priority support?"}],
           "metadata": {"customer": "c-1042"}},
       response_body={"choices": [{"message": {"content": "The Business plan."}}]})
record(8, "req_e2e_skipped", route_skipped=[
    {"tier": "flagship", "model": "gpt-5.4", "reason": "past its shutdown date"}])
from playground.models import Job, JobItem
job = Job.objects.create(team=demo, kind="api", name="Nightly summaries", status="done",
                         columns=[{"tier": "mini"}], total_items=1, done_items=1)
JobItem.objects.create(job=job, row_index=0, status="done", request_id="req_e2e_job_item")
record(5, "req_e2e_job_item", purpose="batch")
UsageRecord.objects.create(created_at=now, request_id="req_e2e_outsider", team=outsiders,
                           model_name="gpt-5.4-mini", tier_name="mini")
print("ok")
"""


@pytest.fixture(scope="module")
def logged(e2e_server: E2EServer) -> None:
    assert e2e_server.shell(_SETUP).strip().splitlines()[-1] == "ok"


def rows(page: Page):
    return page.locator("[data-testid=requests] tbody tr.rq-row")


# Other modules' tests log requests of team demo too: these tests look at their own, whose
# request ids start with "req_e2e" (the search box matches the start of a request id).
OWN = "/requests/?q=req_e2e"


def test_a_filter_survives_a_reload_and_back(logged, logged_in_page):
    page = logged_in_page("member")
    page.goto(OWN)
    expect(rows(page).first).to_be_visible()
    assert "req_e2e_outsider" not in page.content()

    page.select_option("select[name=status]", "error")
    page.wait_for_url(re.compile(r"status=error"))
    expect(rows(page)).to_have_count(1)
    expect(rows(page).first).to_have_attribute("data-request", "req_e2e_timeout")

    page.reload()
    expect(page.locator("select[name=status]")).to_have_value("error")
    expect(rows(page)).to_have_count(1)

    page.go_back()
    page.wait_for_url(re.compile(r"/requests/\?q=req_e2e$"))
    expect(rows(page).nth(3)).to_be_visible()


def test_a_request_that_fell_back_shows_both_attempts_in_the_drawer(logged, logged_in_page):
    page = logged_in_page("member")
    page.goto(OWN)
    row = page.locator("tr[data-request=req_e2e_fallback]")
    expect(row.get_by_test_id("badge-fallback")).to_be_visible()
    screenshot(page, "requests")

    row.click()
    drawer = page.get_by_test_id("request-detail")
    expect(drawer).to_be_visible()
    page.wait_for_url(re.compile(r"/requests/req_e2e_fallback/$"))
    attempts = drawer.locator(".rq-attempt")
    expect(attempts).to_have_count(2)
    expect(attempts.nth(0)).to_have_attribute("data-model", "gpt-5.4-mini")
    expect(attempts.nth(0)).to_contain_text("The upstream answered 500.")
    expect(attempts.nth(1)).to_have_attribute("data-model", "gpt-6.1-terra")
    expect(drawer.get_by_test_id("dropped")).to_contain_text("gpt-5.4-mini (mini): server_error")
    expect(drawer.get_by_test_id("cost-parts").first).to_contain_text("output")
    screenshot(page, "request-drawer")

    page.reload()  # the drawer's URL is a page of its own
    expect(page.get_by_test_id("request-detail").locator(".rq-attempt")).to_have_count(2)


def test_the_drawer_names_skipped_candidates_and_links_the_job_of_a_request(logged, logged_in_page):
    page = logged_in_page("member")
    page.goto(OWN)
    page.locator("tr[data-request=req_e2e_skipped]").click()
    drawer = page.get_by_test_id("request-detail")
    expect(drawer.get_by_test_id("skipped")).to_contain_text(
        "Skipped before any attempt: gpt-5.4 (flagship): past its shutdown date"
    )

    page.goto("/requests/req_e2e_job_item/")
    job = page.get_by_test_id("related").locator("li[data-kind=job]")
    expect(job).to_contain_text("Nightly summaries (row 1, column 1)")
    job.get_by_role("link").click()
    page.wait_for_url(re.compile(r"/playground/batch/\d+/$"))
    expect(page.locator("h1")).to_contain_text("Nightly summaries")


def test_a_refused_request_is_listed_with_its_reason(logged, logged_in_page):
    page = logged_in_page("member")
    page.goto(f"{OWN}&status=refused")
    expect(rows(page)).to_have_count(1)
    row = rows(page).first
    expect(row).to_have_attribute("data-status", "refused")
    expect(row).to_contain_text("budget_exceeded")
    expect(row).to_contain_text("cannot cover this request")


def test_open_in_playground_fills_the_comparison(logged, logged_in_page):
    page = logged_in_page("engineer")
    page.goto("/requests/req_e2e_stored/")
    expect(page.get_by_test_id("content")).to_contain_text("Which plan includes priority support?")

    page.get_by_test_id("open-in-playground").click()
    page.wait_for_url(re.compile(r"/playground/\?team=demo&request=req_e2e_stored"))
    expect(page.get_by_test_id("replay-notice")).to_be_visible()
    expect(page.locator("textarea[name=input_text]")).to_have_value(
        "Which plan includes priority support?"
    )
    expect(page.locator("textarea[name=instructions]")).to_have_value("Answer in one sentence.")
    columns = page.locator("#columns .pg-column")
    expect(columns).to_have_count(4)
    expect(columns.nth(0).locator("select").first).to_have_value("model:gpt-5.4-mini")
    screenshot(page, "open-in-playground")


def test_an_outsider_cannot_open_the_teams_request(logged, logged_in_page):
    page = logged_in_page("outsider")
    response = page.goto("/requests/req_e2e_stored/")
    assert response.status == 404


def test_the_home_page_is_an_overview(logged, logged_in_page):
    page = logged_in_page("member")
    page.goto("/")
    teams = page.get_by_test_id("overview-teams")
    expect(teams.locator("tr[data-team=demo]")).to_be_visible()
    failures = page.get_by_test_id("overview-failures")
    expect(failures).to_contain_text("timeout")
    failures.get_by_role("link", name=re.compile("gpt-5.4-mini")).first.click()
    page.wait_for_url(re.compile(r"/requests/req_e2e_"))
    page.goto("/")
    screenshot(page, "overview")
