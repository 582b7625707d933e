"""The playground in a real browser (UX.md items 8-15): a mini-vs-flagship comparison
streaming in, a vote that survives a reload, a batch job progressing to done."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import ROOT, E2EServer, screenshot

CSV_ROWS = 60
MESSAGES = [
    "I was charged twice for my subscription this month.",
    "The mobile app crashes whenever I upload a photo.",
    "How do I change the email address on my account?",
    "Could you add a dark mode to the dashboard?",
]


@pytest.fixture(scope="module")
def worker(e2e_server: E2EServer) -> Iterator[subprocess.Popen]:
    """A Celery worker beside the e2e site, running two calls at a time so that a batch's
    progress is visible."""
    env = {**e2e_server.env, "PLAYGROUND_BATCH_CONCURRENCY": "2"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--pool=threads",
            "-c",
            "2",
            "--loglevel=WARNING",
            "-Q",
            env["CELERY_QUEUE"],
            "--without-heartbeat",
            "--without-gossip",
            "--without-mingle",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    yield process
    process.kill()
    process.wait()


def _watch_console(page: Page) -> list[str]:
    """Console errors (a CSP violation, a script error) collected while the test runs."""
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return errors


def _choose_version(page: Page, slug: str) -> None:
    select = page.locator("#version-select")
    label = select.locator("option", has_text=f"{slug} · v1").first.inner_text()
    select.select_option(label=label)


RECORD_GROWTH = """() => {
  window.__lengths = {};
  for (const out of document.querySelectorAll('.pg-output')) {
    const pos = out.closest('.pg-column').dataset.position;
    window.__lengths[pos] = [];
    new MutationObserver(() => window.__lengths[pos].push(out.textContent.length))
      .observe(out, {childList: true, characterData: true, subtree: true});
  }
}"""


def test_a_mini_vs_flagship_comparison_streams_in_and_takes_a_vote(logged_in_page):
    page = logged_in_page("engineer")
    errors = _watch_console(page)
    page.goto("/playground/")
    columns = page.locator(".pg-column")
    expect(columns).to_have_count(2)
    expect(columns.nth(0).locator(".pg-target")).to_have_value("tier:mini")
    expect(columns.nth(1).locator(".pg-target")).to_have_value("tier:flagship")

    _choose_version(page, "support-triage")
    message = page.locator("textarea[name=var-message]")
    expect(message).to_be_visible()
    message.fill("I was charged twice for my subscription and nobody answers my emails.")
    page.evaluate(RECORD_GROWTH)
    message.press("Control+Enter")

    for i in range(2):
        expect(columns.nth(i)).to_have_attribute("data-status", "done", timeout=20_000)
    expect(page).to_have_url(re.compile(r"/playground/c/\d+/$"))
    lengths = page.evaluate("window.__lengths")
    for pos in ("0", "1"):
        # the text grew in steps before the final pretty-printed answer replaced it
        assert len(set(lengths[pos])) > 2, lengths
    for i in range(2):
        metrics = columns.nth(i).locator(".pg-metrics")
        for label in ("TTFT", "Latency", "Tokens in", "Tokens out", "Cost"):
            expect(metrics).to_contain_text(label)
        expect(metrics).to_contain_text("JSON valid")
        expect(metrics).to_contain_text("schema valid")
    costs = [float(columns.nth(i).locator(".pg-cost").get_attribute("data-cost")) for i in range(2)]
    assert costs[0] < costs[1]  # mini is visibly cheaper
    expect(columns.nth(0).locator(".pg-ratio")).to_have_text("cheapest")
    expect(columns.nth(1).locator(".pg-ratio")).to_have_text(re.compile(r"^\u00d7\d+\.\d$"))
    expect(columns.nth(0).locator(".pg-model, dd").first).to_contain_text("gpt-5.4-mini")

    page.fill("input[name=comment]", "Mini got the category right too.")
    page.get_by_role("button", name="A better").click()
    expect(page.locator("#vote-summary")).to_contain_text("1 vote")
    expect(page.locator("#vote-summary")).to_contain_text("A: 1 win")
    screenshot(page, "playground", full_page=True)

    page.reload()
    expect(page.locator("#vote-summary")).to_contain_text("A: 1 win / 0 losses")
    expect(page.locator("#vote-summary")).to_contain_text("B: 0 wins / 1 loss")
    expect(page.locator(".pg-votes")).to_contain_text("Mini got the category right too.")
    expect(page.get_by_role("button", name="A better")).to_have_class(re.compile("primary"))
    # the outputs and their figures are stored with the comparison
    expect(columns.nth(1).locator(".pg-metrics")).to_contain_text("gpt-5.4")
    assert [e for e in errors if "favicon" not in e] == []


def test_columns_are_added_up_to_four_and_each_runs_and_stops_alone(logged_in_page):
    page = logged_in_page("engineer")
    page.goto("/playground/")
    add = page.locator("#add-column")
    add.click()
    add.click()
    expect(page.locator(".pg-column")).to_have_count(4)
    expect(add).to_be_disabled()
    expect(page.locator(".pg-column").nth(3).locator(".pg-letter")).to_have_text("D")
    # sync settings copies a temperature to every column
    page.check("#sync-settings")
    page.locator(".pg-temperature").nth(0).fill("0.4")
    page.locator(".pg-temperature").nth(0).dispatch_event("change")
    for i in range(4):
        expect(page.locator(".pg-temperature").nth(i)).to_have_value("0.4")
    page.fill("textarea[name=input_text]", "Name three uses of a paperclip.")
    third = page.locator(".pg-column").nth(2)
    third.locator(".pg-run").click()
    expect(third).to_have_attribute("data-status", "done", timeout=20_000)
    for i in (0, 1, 3):
        expect(page.locator(".pg-column").nth(i)).to_have_attribute("data-status", "idle")


def _csv(rows: int) -> bytes:
    lines = ["message,channel,expected"]
    for i in range(rows):
        text = MESSAGES[i % len(MESSAGES)].replace(",", "")
        lines.append(f'"{text} (ticket {i})",{["email", "chat", "phone"][i % 3]},')
    return ("\n".join(lines) + "\n").encode()


# After the next swap of the mapping, at once (before htmx's settle), map "message" again.
REMAP_ON_SWAP = """() => {
  let swaps = 0;
  document.body.addEventListener("htmx:afterSwap", () => {
    swaps += 1;
    document.body.dataset.mappingSwaps = swaps;
    if (swaps > 1) return;
    setTimeout(() => {
      const select = document.querySelector("select[name=map-message]");
      select.value = "message";
      select.dispatchEvent(new Event("change", {bubbles: true}));
    });
  });
}"""


def test_a_batch_job_progresses_to_done(logged_in_page, worker):
    page = logged_in_page("engineer")
    errors = _watch_console(page)
    page.goto("/playground/batch/new")
    version = page.locator("select[name=version]")
    version.select_option(
        label=version.locator("option", has_text="support-triage · v1").first.inner_text()
    )
    page.set_input_files(
        "input[name=file]",
        files=[{"name": "tickets.csv", "mimeType": "text/csv", "buffer": _csv(CSV_ROWS)}],
    )
    page.get_by_role("button", name="Preview").click()
    preview = page.locator(".pg-preview")
    expect(preview).to_be_visible()
    expect(preview.locator("th[data-mapped=true]")).to_have_text(["message", "channel"])
    run = page.locator("#batch-run")
    expect(run).to_be_enabled()
    # unmapping a required variable disables Run and names it
    page.select_option("select[name=map-message]", "")
    # a server round trip (htmx): give it time on a loaded CI machine
    expect(page.locator("#unmapped")).to_contain_text("message", timeout=15_000)
    expect(page.locator("#batch-run")).to_be_disabled()
    page.select_option("select[name=map-message]", "message")
    expect(page.locator("#batch-run")).to_be_enabled()
    # a change made the moment a mapping is swapped in still reaches the server (htmx binds the
    # new select's trigger when it settles: with its default 20 ms delay, this one was lost)
    page.evaluate(REMAP_ON_SWAP)
    page.select_option("select[name=map-message]", "")
    expect(page.locator("body[data-mapping-swaps='2']")).to_have_count(1)
    expect(page.locator("#batch-run")).to_be_enabled()
    page.locator("#batch-run").click()

    expect(page).to_have_url(re.compile(r"/playground/batch/\d+/$"))
    seen = set()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = page.locator("#job-status").inner_text()
        value = page.locator("#progress [role=progressbar]").get_attribute("aria-valuenow")
        seen.add(int(value))
        if status == "done":
            break
        page.wait_for_timeout(150)
    assert any(0 < value < 100 for value in seen), seen  # it moved while running
    expect(page.locator("#job-status")).to_have_text("done")
    rows = page.locator("#results tbody tr.pg-row")
    expect(rows).to_have_count(50)  # one page of rows in the DOM
    expect(page.locator("#results thead th[data-column]")).to_have_count(2)
    expect(page.locator("#results thead")).to_contain_text("p95")
    expect(page.locator("#results thead")).to_contain_text("pass")
    screenshot(page, "batch")

    rows.first.click()
    drawer = page.locator(".pg-drawer")
    expect(drawer).to_be_visible()
    expect(drawer.locator("pre")).not_to_have_count(0)
    drawer.get_by_role("button", name="B better").click()
    expect(page.locator(".pg-drawer")).to_contain_text("B better")

    page.select_option("select[name=filter]", "different")
    expect(page).to_have_url(re.compile(r"filter=different"))
    page.reload()
    expect(page.locator("select[name=filter]")).to_have_value("different")
    page.fill("input[name=q]", "ticket 7)")
    page.get_by_role("button", name="Apply").click()
    expect(page).to_have_url(re.compile(r"q=ticket"))
    assert [e for e in errors if "favicon" not in e] == []
