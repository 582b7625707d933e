"""Batch results in a real browser (issue #19): the baseline picker reloads the matrix with
deltas only between columns on the same tier, and "Save as new version" links to it."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import E2EServer

# Two finished runs of one dataset, their columns in a different order: the older one ran
# flagship then mini, the newer mini then flagship then nano.
RUNS_CODE = """
from decimal import Decimal
from accounts.models import Team, User
from playground import services
from playground.columns import ColumnSpec
from playground.models import Job, JobItem
from prompts.services import prompt_create, prompt_version_create

team = Team.objects.get(slug="demo")
engineer = User.objects.get(username="engineer")
prompt = prompt_create(team=team, slug="e2e-baseline", name="Baseline", actor=engineer)
version = prompt_version_create(
    prompt=prompt, author=engineer, user_template="{{ message }}",
    variables=[{"name": "message", "type": "string", "required": True}], tier="mini",
)
dataset = services.dataset_create(
    team=team, user=engineer, filename="e2e-baseline.csv", data=b"message\\nm0\\nm1\\n"
)
def run(name, tiers, costs):
    job = Job.objects.create(
        team=team, kind=Job.Kind.COMPARE, prompt_version=version, dataset=dataset, name=name,
        columns=[ColumnSpec(tier=t).to_dict() for t in tiers], status=Job.Status.DONE,
        total_items=2 * len(tiers),
    )
    for row in range(2):
        for column, cost in enumerate(costs):
            JobItem.objects.create(
                job=job, row_index=row, column_index=column, status="done", output="ok",
                input={"variables": {"message": f"m{row}"}}, cost_usd=Decimal(cost),
                latency_ms=100,
            )
    return job
older = run("e2e-baseline older", ["flagship", "mini"], ["0.010", "0.001"])
newer = run("e2e-baseline newer", ["mini", "flagship", "nano"], ["0.002", "0.010", "0.0005"])
print(older.pk, newer.pk)
"""


@pytest.fixture(scope="module")
def runs(e2e_server: E2EServer) -> tuple[int, int]:
    older, newer = e2e_server.shell(RUNS_CODE).split()[-2:]
    return int(older), int(newer)


def _header(page, letter: str):
    return page.locator("#results thead th[data-column]", has_text=re.compile(f"^{letter} · "))


def test_the_baseline_picker_reloads_the_deltas_of_matching_columns(logged_in_page, runs):
    older, newer = runs
    page = logged_in_page("engineer")
    page.goto(f"/playground/batch/{newer}/")
    picker = page.locator("select[name=baseline]")
    expect(picker).to_have_value(str(older))  # the latest earlier run, preselected
    a, c = _header(page, "A"), _header(page, "C")
    expect(a).to_contain_text("vs baseline B")
    expect(a).to_contain_text("(+$0.002)")  # mini against mini, not against flagship
    expect(c).to_contain_text("no baseline column ran on tier:nano")
    expect(c.locator(".pg-delta-up, .pg-delta-down")).to_have_count(0)

    picker.select_option("none")  # submits itself
    expect(page).to_have_url(re.compile(r"baseline=none"))
    expect(page.locator("select[name=baseline]")).to_have_value("none")
    expect(_header(page, "A").locator(".pg-delta-up, .pg-delta-down")).to_have_count(0)
    page.select_option("select[name=filter]", "failures")
    expect(page).to_have_url(re.compile(r"filter=failures"))
    expect(page).to_have_url(re.compile(r"baseline=none"))  # the filters keep the choice


def test_save_as_new_version_links_to_the_saved_version(logged_in_page, runs):
    _, newer = runs
    page = logged_in_page("engineer")
    page.goto(f"/playground/batch/{newer}/")
    _header(page, "B").get_by_role("button", name="Save as new version").click()
    link = page.get_by_test_id("saved-version")
    expect(link).to_have_text("e2e-baseline v2")
    link.click()
    expect(page).to_have_url(re.compile(r"/prompts/demo/e2e-baseline/\?version=2$"))
    expect(page.locator("main")).to_contain_text("flagship")
