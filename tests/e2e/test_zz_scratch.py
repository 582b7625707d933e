from __future__ import annotations
from tests.e2e.test_playground import _csv, worker  # noqa: F401

def test_scratch(logged_in_page, worker, e2e_server):
    page = logged_in_page("engineer")
    page.goto("/playground/batch/new")
    version = page.locator("select[name=version]")
    version.select_option(label=version.locator("option", has_text="support-triage · v1").first.inner_text())
    page.set_input_files("input[name=file]", files=[{"name": "tickets.csv", "mimeType": "text/csv", "buffer": _csv(12)}])
    page.get_by_role("button", name="Preview").click()
    page.locator(".pg-preview").wait_for()
    page.screenshot(path="/tmp/s_new.png", full_page=True)
    page.locator("#batch-run").click()
    page.wait_for_url("**/playground/batch/*/")
    page.locator("#job-status", has_text="done").wait_for(timeout=30000)
    page.locator("#results tbody tr.pg-row").first.click()
    page.locator(".pg-drawer").wait_for()
    page.screenshot(path="/tmp/s_drawer.png")
    page.goto("/playground/recommendations/")
    page.screenshot(path="/tmp/s_rec.png", full_page=True)
    page.goto("/playground/shadow/")
    page.screenshot(path="/tmp/s_shadow.png", full_page=True)
    page.goto("/playground/batch/")
    page.screenshot(path="/tmp/s_list.png", full_page=True)
