"""The usage dashboard in a real browser (UX.md items 16-19)."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import E2EServer, screenshot

_SETUP = """
import datetime as dt
from decimal import Decimal
from django.utils import timezone
from accounts.models import Team
from spend.alerts import budget_alerts_check
from spend.demo import usage_demo_create
from spend.models import Budget
from spend.rollups import usage_rollup_run
now = timezone.now()
demo = Team.objects.get(slug="demo")
outsiders = Team.objects.get(slug="outsiders")
usage_demo_create(team=demo, days=30, per_day=70, end=now, seed=3)
usage_demo_create(team=outsiders, days=30, per_day=25, end=now, seed=4)
usage_rollup_run(now=now - dt.timedelta(minutes=30))  # the last half hour stays raw
budget = Budget.objects.get(team=demo, api_key=None)
budget.limit_usd = Decimal("10")
budget.spent_usd = Decimal("8.6")
budget.save()
budget_alerts_check()
print(timezone.localdate(now).isoformat())
"""


@pytest.fixture(scope="module")
def today(e2e_server: E2EServer) -> dt.date:
    return dt.date.fromisoformat(e2e_server.shell(_SETUP).strip().splitlines()[-1])


def dashboard_requests(page: Page) -> list[str]:
    """Every request the page makes to the site after it loaded (XHRs, navigations)."""
    seen: list[str] = []
    page.on("request", lambda r: seen.append(r.url) if "/usage/" in r.url else None)
    return seen


def card_usd(page: Page) -> Decimal:
    return Decimal(page.locator("[data-testid=card-spend] .money").get_attribute("data-usd"))


def wait_swapped(page: Page, query: str) -> None:
    """Wait until the URL's query is exactly `query` and the swap has landed."""
    page.wait_for_url(lambda url: url.split("?", 1)[-1] == query)
    page.wait_for_load_state("networkidle")


def test_dashboard_cards_chart_tables_and_budget(logged_in_page, today):
    page = logged_in_page("finance")
    page.goto("/usage/?range=30d")
    requests = dashboard_requests(page)

    expect(page.locator("[data-testid=timezone]")).to_contain_text("UTC")
    for name in ("spend", "requests", "errors", "avg-latency", "p95-latency", "tokens", "savings"):
        expect(page.locator(f"[data-testid=card-{name}]")).to_be_visible()
    assert card_usd(page) > 0
    # finance sees every team; each table is sorted by spend
    expect(page.locator("tr[data-team=outsiders]")).to_be_visible()
    for table in ("teams-table", "prompts-table", "models-table"):
        spends = [
            Decimal(v)
            for v in page.locator(
                f"[data-testid={table}] tbody tr td:nth-child(2) .money"
            ).evaluate_all("els => els.map(e => e.dataset.usd)")
        ]
        assert spends == sorted(spends, reverse=True), table

    # budget: bar, %, period and reset date, warning badge at the soft threshold, alert entry
    demo_row = page.locator("tr[data-team=demo]")
    expect(demo_row.locator("[data-testid=budget-pct]")).to_have_text("86.0%")
    expect(demo_row.locator("[data-testid=budget-badge]")).to_have_text("≥ 80%")
    expect(demo_row).to_contain_text("resets")
    expect(page.get_by_text("reached its soft threshold")).to_be_visible()

    # the chart is stacked by model and its tooltip gives spend, requests and tokens
    models = page.evaluate("() => Chart.getChart('spend-chart').data.datasets.length")
    assert models >= 3
    bar = page.evaluate(
        """() => { const c = Chart.getChart('spend-chart'); const m = c.getDatasetMeta(0);
        const el = m.data[m.data.length - 2]; const r = c.canvas.getBoundingClientRect();
        return {x: r.left + el.x, y: r.top + (el.y + el.base) / 2}; }"""
    )
    page.mouse.move(bar["x"], bar["y"])
    tooltip = page.evaluate(
        "() => Chart.getChart('spend-chart').tooltip.body.map(b => b.lines.join(' ')).join(' ')"
    )
    assert re.search(r"\$[\d.]+ · \d[\d,]* requests · \d[\d,]* tokens", tooltip), tooltip

    screenshot(page, "dashboard", full_page=True)
    assert requests == []  # everything came with the page: no per-row or chart fetches


def test_clicking_legend_rows_and_presets_filters_the_page_and_the_url(logged_in_page, today):
    page = logged_in_page("finance")
    page.goto("/usage/?range=30d")
    total = card_usd(page)
    requests = dashboard_requests(page)

    legend = page.evaluate(
        """() => { const c = Chart.getChart('spend-chart'); const h = c.legend.legendHitBoxes[0];
        const r = c.canvas.getBoundingClientRect();
        return {x: r.left + h.left + h.width / 2, y: r.top + h.top + h.height / 2,
                model: c.legend.legendItems[0].text}; }"""
    )
    page.mouse.click(legend["x"], legend["y"])
    wait_swapped(page, f"range=30d&model={legend['model']}")
    expect(page.locator("[data-testid=active-filters]")).to_contain_text(
        f"model: {legend['model']}"
    )
    assert card_usd(page) < total
    assert page.evaluate("() => Chart.getChart('spend-chart').data.datasets.length") == 1

    page.locator("tr[data-team=demo] td").nth(2).click()  # the row, not its link
    wait_swapped(page, f"range=30d&model={legend['model']}&team=demo")
    expect(page.locator("[data-testid=active-filters]")).to_contain_text("team: Demo")
    expect(page.locator("[data-testid=teams-table] tbody tr")).to_have_count(1)
    assert len(requests) == 2  # one request per filter click, nothing per row

    page.get_by_role("link", name="Clear all").click()
    wait_swapped(page, "range=30d")
    page.locator("[data-range=mtd]").click()
    wait_swapped(page, "range=mtd")
    expect(page.locator("input[name=start]")).to_have_value(today.replace(day=1).isoformat())

    page.reload()  # the URL holds the state
    expect(page.locator("[data-range=mtd]")).to_have_class(re.compile("primary"))


def test_seven_single_days_add_up_to_the_seven_day_total(logged_in_page, today):
    page = logged_in_page("finance")
    page.goto("/usage/?range=7d")
    week = card_usd(page)
    page.locator("[data-testid=daily-totals] summary").click()
    rows = page.locator("[data-testid=daily-totals] tbody tr")
    expect(rows).to_have_count(7)
    days = [
        Decimal(v)
        for v in rows.locator("td:nth-child(2) .money").evaluate_all(
            "els => els.map(e => e.dataset.usd)"
        )
    ]
    assert sum(days) == week

    singles = Decimal(0)
    for back in range(7):
        day = (today - dt.timedelta(days=back)).isoformat()
        page.goto(f"/usage/?range=custom&start={day}&end={day}")
        singles += card_usd(page)
    assert singles == week


def test_a_member_sees_only_their_team(logged_in_page, today):
    page = logged_in_page("member")
    page.goto("/usage/?range=30d")
    expect(page.locator("[data-testid=teams-table] tbody tr")).to_have_count(1)
    expect(page.locator("[data-testid=teams-table]")).not_to_contain_text("Outsiders")
    response = page.goto("/usage/?team=outsiders")
    assert response.status == 404
