"""The compare page's controls in a real browser (issue #19): "same settings in every column"
copies the current column's values at once and to later columns, Run shows a pending state
and sends one request however often it is pressed, and Stop keeps a column's partial text
with its tokens and cost so far."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, Request, Route, expect

from tests.e2e.conftest import E2EServer

CREATE = re.compile(r"/playground/c/new$")
STREAM = re.compile(r"/playground/c/\d+/col/\d+/stream")


def _watch_console(page: Page) -> list[str]:
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return errors


def _requests(page: Page, pattern: re.Pattern, method: str) -> list[Request]:
    """Every request the page sends to `pattern`, as the network sees them."""
    seen: list[Request] = []
    page.on(
        "request",
        lambda r: seen.append(r) if r.method == method and pattern.search(r.url) else None,
    )
    return seen


def test_ticking_same_settings_copies_the_current_column_and_new_columns_inherit_it(
    logged_in_page,
):
    page = logged_in_page("engineer")
    errors = _watch_console(page)
    page.goto("/playground/")
    columns = page.locator(".pg-column")
    second = columns.nth(1)
    second.locator(".pg-temperature").fill("0.7")
    second.locator(".pg-effort").select_option("low")
    # not synced yet: column A keeps its defaults
    expect(columns.nth(0).locator(".pg-temperature")).to_have_value("")
    expect(columns.nth(0).locator(".pg-effort")).to_have_value("")

    page.check("#sync-settings")
    # ticking copies B's values (the column being edited) to every column at once
    for i in range(2):
        expect(columns.nth(i).locator(".pg-temperature")).to_have_value("0.7")
        expect(columns.nth(i).locator(".pg-effort")).to_have_value("low")

    page.locator("#add-column").click()
    expect(columns).to_have_count(3)
    expect(columns.nth(2).locator(".pg-temperature")).to_have_value("0.7")
    expect(columns.nth(2).locator(".pg-effort")).to_have_value("low")

    # typing in any column keeps them all the same
    columns.nth(2).locator(".pg-temperature").fill("1.2")
    for i in range(3):
        expect(columns.nth(i).locator(".pg-temperature")).to_have_value("1.2")

    # unticked, a column is its own again, and a new column takes the template's defaults
    page.uncheck("#sync-settings")
    columns.nth(0).locator(".pg-temperature").fill("0.1")
    expect(columns.nth(1).locator(".pg-temperature")).to_have_value("1.2")
    page.locator("#add-column").click()
    expect(columns.nth(3).locator(".pg-temperature")).to_have_value("")
    assert [e for e in errors if "favicon" not in e] == []


def test_run_all_shows_a_pending_state_and_sends_one_request(logged_in_page):
    page = logged_in_page("engineer")
    errors = _watch_console(page)
    page.goto("/playground/")
    creates = _requests(page, CREATE, "POST")
    streams = _requests(page, STREAM, "GET")
    held: list[Route] = []
    # hold the run request at the network level, to see the page while it waits
    page.route(CREATE, lambda route: held.append(route))
    page.fill("textarea[name=input_text]", "Name three uses of a paperclip.")
    run_all = page.locator("#run-all")

    run_all.click()
    expect(run_all).to_be_disabled()
    expect(run_all).to_have_text("Starting…")
    expect(run_all).to_have_attribute("aria-busy", "true")
    columns = page.locator(".pg-column")
    for i in range(2):
        expect(columns.nth(i)).to_have_attribute("data-status", "pending")
        expect(columns.nth(i).locator(".pg-run")).to_be_disabled()
    # pressing again, by click, double click, shortcut or a column's Run, sends nothing more
    run_all.click(force=True)
    run_all.dblclick(force=True)
    page.locator("textarea[name=input_text]").press("Control+Enter")
    columns.nth(0).locator(".pg-run").click(force=True)
    page.wait_for_timeout(300)
    assert len(creates) == 1, [r.url for r in creates]
    assert len(held) == 1

    held[0].continue_()
    for i in range(2):
        expect(columns.nth(i)).to_have_attribute("data-status", "done", timeout=20_000)
    expect(run_all).to_be_enabled()
    expect(run_all).to_have_text("Run all")
    assert len(creates) == 1
    assert len(streams) == 2  # one stream per column, each opened once

    page.unroute(CREATE)
    run_all.dblclick()
    for i in range(2):
        expect(columns.nth(i)).to_have_attribute("data-status", "done", timeout=20_000)
    expect(run_all).to_be_enabled()
    assert len(creates) == 2  # the double click ran once
    assert len(streams) == 4
    assert [e for e in errors if "favicon" not in e] == []


@pytest.fixture
def slow_upstream(e2e_server: E2EServer) -> Iterator[str]:
    """The demo provider pointed, for one test, at a simulator that writes at the catalog's
    own pace (flagship: ~30 tokens/s at this scale), so that a stop lands mid-answer."""
    from simulator.testing import SimulatorServer

    code = (
        "from routing.models import Provider\n"
        "p = Provider.objects.get(name='openai')\n"
        "print(p.base_url)\n"
        "p.base_url = {url!r}\n"
        "p.save()\n"  # a save bumps the routing snapshot: the site reloads it
    )
    with SimulatorServer(latency_scale=3.0) as slow:
        previous = e2e_server.shell(code.format(url=slow.url)).strip().splitlines()[-1]
        try:
            yield slow.url
        finally:
            e2e_server.shell(code.format(url=previous))


def test_a_stopped_column_keeps_its_partial_text_and_shows_tokens_and_cost(
    logged_in_page, slow_upstream
):
    page = logged_in_page("engineer")
    errors = _watch_console(page)
    page.goto("/playground/")
    page.wait_for_timeout(1_500)  # the site's hot cache notices the provider's new URL
    page.fill("textarea[name=input_text]", "Tell me about lighthouses. " * 200)
    page.locator("#run-all").click()
    columns = page.locator(".pg-column")
    flagship = columns.nth(1)
    output = flagship.locator(".pg-output")
    expect(output).not_to_have_text("", timeout=20_000)
    expect(flagship).to_have_attribute("data-status", "running")
    expect(page.locator("#run-all")).to_be_disabled()  # while a column still streams
    expect(page.locator("#run-all")).to_have_text("Running…")
    flagship.locator(".pg-stop").click()

    expect(flagship).to_have_attribute("data-status", "stopped", timeout=10_000)
    expect(flagship.locator(".pg-state")).to_have_text("Stopped")
    partial = output.inner_text()
    assert len(partial) > 0
    metrics = flagship.locator(".pg-metrics")
    for label in ("Tokens in", "Tokens out", "Cost"):
        expect(metrics).to_contain_text(label)
    expect(metrics).to_contain_text("so far")
    assert int(metrics.locator(".pg-out").inner_text().replace(",", "")) > 0
    assert float(metrics.locator(".pg-cost").get_attribute("data-cost")) > 0
    # the other column was not stopped
    expect(columns.nth(0)).to_have_attribute("data-status", "done", timeout=20_000)
    expect(page.locator("#run-all")).to_be_enabled()

    # the partial text and its figures are stored with the comparison
    expect(page).to_have_url(re.compile(r"/playground/c/\d+/$"))
    page.reload()
    flagship = page.locator(".pg-column").nth(1)
    expect(flagship).to_have_attribute("data-status", "stopped")
    expect(flagship.locator(".pg-output")).to_have_text(partial)
    expect(flagship.locator(".pg-metrics")).to_contain_text("Tokens out")
    expect(flagship.locator(".pg-metrics")).to_contain_text("Cost")
    assert [e for e in errors if "favicon" not in e] == []
