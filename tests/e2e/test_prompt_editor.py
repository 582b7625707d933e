"""The PM's prompt editor in a real browser (UX.md items 1-7)."""

from __future__ import annotations

import json
import re
import urllib.request

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import E2EServer, screenshot

SYSTEM = "You write short, friendly replies for the support team."
USER = "Reply to {{ customer_name }} about:\\n{{ issue }}"
VARIABLES = [
    {"name": "customer_name", "type": "string", "required": True},
    {"name": "issue", "type": "string", "required": True, "max_length": 2000},
]
SLUGS = {
    "reply-flow": False,
    "reply-vars": False,
    "reply-draft": False,
    "reply-diff": False,
    "reply-labels": False,
    "reply-guarded": True,
}

_SETUP = """
from accounts.models import Team, User
from prompts.services import label_move, prompt_create, prompt_update, prompt_version_create
team = Team.objects.get(slug="demo")
author = User.objects.get(username="approver")
for slug, guarded in {slugs!r}.items():
    prompt = prompt_create(team=team, slug=slug, name=slug.replace("-", " ").title(), actor=author,
                           task_tag="generation")
    version = prompt_version_create(prompt=prompt, author=author, system_template={system!r},
        user_template="{user}", variables={variables!r}, tier="mini", temperature="0.2",
        change_note="first draft")
    label_move(prompt=prompt, label="production", version=version, actor=author)
    if guarded:
        prompt_update(prompt=prompt, actor=author, requires_approval=True)
"""


@pytest.fixture(scope="module")
def prompts(e2e_server: E2EServer) -> dict[str, bool]:
    """One fresh prompt per test (v1 on production, by `approver`), so tests stay independent."""
    e2e_server.shell(_SETUP.format(slugs=SLUGS, system=SYSTEM, user=USER, variables=VARIABLES))
    return SLUGS


def edit_url(slug: str) -> str:
    return f"/prompts/demo/{slug}/edit/"


def detail_url(slug: str) -> str:
    return f"/prompts/demo/{slug}/"


def type_into(page: Page, testid: str, text: str) -> None:
    """Type at the end of a textarea, like a person (input events, one per key)."""
    box = page.get_by_test_id(testid)
    box.click()
    box.press("Control+End")
    box.press_sequentially(text, delay=5)


def save_version(page: Page, slug: str, number: int) -> None:
    """Save the editor's draft and wait for the prompt page to load: htmx binds its links on
    DOMContentLoaded, and a click before that follows the plain link to a full page."""
    page.get_by_test_id("save").click()
    page.wait_for_url(re.compile(rf"/prompts/demo/{slug}/\?version={number}"), wait_until="load")
    expect(page.get_by_text(f"Saved version {number}.")).to_be_visible()


def render_over_api(server: E2EServer, slug: str, key: str, variables: dict) -> dict:
    request = urllib.request.Request(
        f"{server.url}/api/v1/prompts/{slug}/render",
        data=json.dumps({"variables": variables}).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def demo_key(e2e_server: E2EServer) -> str:
    return (
        e2e_server.manage("create_api_key", "--team", "demo", "--name", "e2e")
        .strip()
        .splitlines()[-1]
    )


# --- must show: log in as a PM, edit, see the preview change, save, publish -------------------


def test_pm_edits_sees_the_preview_change_saves_and_publishes(
    logged_in_page, prompts, e2e_server, demo_key
):
    page = logged_in_page("pm")
    page.goto("/prompts/")
    page.get_by_role("link", name="Reply Flow").click()
    page.get_by_role("link", name="Edit", exact=True).click()
    expect(page).to_have_url(re.compile(r"/prompts/demo/reply-flow/edit/$"))

    preview_user = page.get_by_test_id("preview-user")
    expect(page.locator("#preview mark.var-empty[data-var=customer_name]")).to_be_visible()
    expect(page.get_by_test_id("empty-warning")).to_contain_text("customer_name, issue")

    page.get_by_test_id("sample-customer_name").fill("Ada Lovelace")
    expect(preview_user).to_contain_text("Reply to Ada Lovelace about:")
    page.get_by_test_id("sample-issue").fill("My invoice is wrong.")
    expect(preview_user).to_contain_text("My invoice is wrong.")
    expect(page.get_by_test_id("empty-warning")).to_have_text("")

    type_into(page, "user-template", "\nSign off as {{ agent }}.")
    expect(page.get_by_test_id("var-agent")).to_be_visible()
    expect(page.locator("#preview mark.var-empty[data-var=agent]")).to_be_visible()
    expect(page.get_by_test_id("empty-warning")).to_contain_text("agent")
    page.get_by_test_id("change-note").fill("Sign off with the agent's name")
    expect(page.get_by_test_id("modified")).to_be_visible()
    page.set_viewport_size({"width": 1400, "height": 1250})  # the whole editor, no scrolling
    page.evaluate("window.scrollTo(0, 0)")
    screenshot(page, "prompt-editor")
    page.get_by_test_id("sample-agent").fill("Grace")
    expect(preview_user).to_contain_text("Sign off as Grace.")

    save_version(page, "reply-flow", 2)
    expect(page.get_by_test_id("shown-user")).to_contain_text("Sign off as {{ agent }}.")

    page.get_by_test_id("publish-2").click()
    dialog = page.locator("#publish-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_test_id("publish-summary")).to_contain_text("points at v1 now")
    expect(dialog.locator("pre.diff ins")).to_contain_text(["+ Sign off as {{ agent }}."])
    screenshot(page, "prompt-publish-dialog")
    dialog.get_by_test_id("confirm-publish").click()
    expect(page.get_by_text("Published version 2 to production.")).to_be_visible()
    expect(page.get_by_test_id("label-production")).to_have_text("production v2")
    expect(page.locator('tr[data-version="2"]')).to_contain_text("production")

    body = render_over_api(
        e2e_server, "reply-flow", demo_key, {"customer_name": "A", "issue": "B", "agent": "C"}
    )
    assert body["version"] == 2
    assert body["messages"][-1]["content"].endswith("Sign off as C.")


# --- 1: variables follow the template ---------------------------------------------------------


def test_variables_follow_the_template_as_you_type(logged_in_page, prompts):
    page = logged_in_page("pm")
    page.goto(edit_url("reply-vars"))
    rows = page.locator("#variable-rows .var-row")
    expect(rows).to_have_count(2)

    type_into(page, "user-template", " {{customer_email}}")
    expect(page.get_by_test_id("var-customer_email")).to_be_visible()
    # rename: the row is replaced, not duplicated
    box = page.get_by_test_id("user-template")
    box.fill(box.input_value().replace("customer_email", "client_email"))
    expect(page.get_by_test_id("var-client_email")).to_be_visible()
    expect(page.get_by_test_id("var-customer_email")).to_have_count(0)
    # a repeated variable appears once; digits and underscores are fine
    type_into(page, "user-template", " {{ client_email }} {{ item_2 }}")
    expect(page.get_by_test_id("var-item_2")).to_be_visible()
    expect(page.get_by_test_id("var-client_email")).to_have_count(1)
    expect(rows).to_have_count(4)
    names = rows.evaluate_all("rows => rows.map(r => r.dataset.name)")
    assert names == ["customer_name", "issue", "client_email", "item_2"]

    save_version(page, "reply-vars", 2)
    shown = page.get_by_test_id("shown-variables").locator("tbody tr td:first-child code")
    expect(shown).to_have_text(names)


# --- 3 and 7: save, modified marker, Ctrl+S, the draft survives leaving the page ---------------


def test_draft_survives_leaving_the_page_and_ctrl_s_saves(logged_in_page, prompts):
    page = logged_in_page("pm")
    page.goto(edit_url("reply-draft"))
    expect(page.get_by_test_id("var-issue")).to_be_visible()
    expect(page.get_by_test_id("modified")).to_be_hidden()

    type_into(page, "system-template", " Always thank them.")
    page.get_by_test_id("temperature").fill("0.7")
    expect(page.get_by_test_id("modified")).to_be_visible()

    # Leaving with unsaved edits asks first; dismissing keeps us here.
    dialogs: list[str] = []

    def on_dialog(dialog) -> None:
        dialogs.append(dialog.type)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.get_by_role("link", name="← Reply Draft").click()
    page.wait_for_timeout(300)
    assert dialogs == ["beforeunload"]
    expect(page).to_have_url(re.compile(r"/edit/$"))

    # Leaving anyway, then coming back: the draft is restored.
    page.remove_listener("dialog", on_dialog)
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto(detail_url("reply-draft"))
    page.goto(edit_url("reply-draft"))
    expect(page.get_by_test_id("draft-notice")).to_contain_text("Restored your unsaved draft")
    expect(page.get_by_test_id("system-template")).to_have_value(SYSTEM + " Always thank them.")
    expect(page.get_by_test_id("temperature")).to_have_value("0.7")
    expect(page.get_by_test_id("modified")).to_be_visible()
    page.set_viewport_size({"width": 900, "height": 700})  # resizing keeps it too
    expect(page.get_by_test_id("system-template")).to_have_value(SYSTEM + " Always thank them.")

    page.get_by_test_id("change-note").fill("polite")
    page.get_by_test_id("system-template").press("Control+s")
    expect(page).to_have_url(re.compile(r"\?version=2"))
    expect(page.get_by_test_id("shown-system")).to_have_text(SYSTEM + " Always thank them.")

    # Version 1 still reads as it was saved.
    page.goto(detail_url("reply-draft") + "?version=1")
    expect(page.get_by_test_id("shown-system")).to_have_text(SYSTEM)
    expect(page.get_by_test_id("shown-settings")).to_contain_text("0.20")
    # The saved draft is gone: the editor opens clean on v2.
    page.goto(edit_url("reply-draft"))
    expect(page.get_by_test_id("draft-notice")).to_be_hidden()
    expect(page.get_by_test_id("modified")).to_be_hidden()


# --- 4: compare --------------------------------------------------------------------------------


def test_compare_shows_a_line_diff_and_parameter_changes(logged_in_page, prompts):
    page = logged_in_page("pm")
    page.goto(edit_url("reply-diff"))
    expect(page.get_by_test_id("var-issue")).to_be_visible()
    box = page.get_by_test_id("user-template")
    box.fill("Hello {{ customer_name }}!\nAbout:\n{{ issue }}")
    page.get_by_test_id("temperature").fill("0.7")
    save_version(page, "reply-diff", 2)

    page.get_by_role("button", name="Compare").click()
    diff = page.get_by_test_id("diff")
    expect(diff.locator("del").first).to_be_visible()
    expect(diff.locator("pre.diff del")).to_contain_text(["- Reply to {{ customer_name }} about:"])
    expect(diff.locator("pre.diff ins")).to_contain_text(
        ["+ Hello {{ customer_name }}!", "+ About:"]
    )
    params = page.get_by_test_id("param-changes")
    expect(params).to_contain_text("Temperature")
    expect(params.locator("del")).to_have_text(["0.20"])
    expect(params.locator("ins")).to_have_text(["0.70"])
    screenshot(page, "prompt-compare")


# --- 5: publish and rollback -------------------------------------------------------------------


def test_publish_moves_the_label_and_rollback_moves_it_back(
    logged_in_page, prompts, e2e_server, demo_key
):
    page = logged_in_page("pm")
    page.goto(edit_url("reply-labels"))
    expect(page.get_by_test_id("var-issue")).to_be_visible()
    type_into(page, "user-template", "\nThanks!")
    page.get_by_test_id("save-publish").click()
    dialog = page.locator("#publish-dialog")
    expect(dialog).to_be_visible()  # "Save and publish" opens the dialog for the new version
    dialog.get_by_test_id("confirm-publish").click()
    expect(page.get_by_test_id("label-production")).to_have_text("production v2")
    variables = {"customer_name": "A", "issue": "B"}
    assert render_over_api(e2e_server, "reply-labels", demo_key, variables)["version"] == 2

    page.once("dialog", lambda d: d.accept())  # the one confirm
    page.get_by_test_id("rollback-1").click()
    expect(page.get_by_text("Rolled production back to version 1.")).to_be_visible()
    expect(page.get_by_test_id("label-production")).to_have_text("production v1")
    expect(page.locator('tr[data-version="1"]')).to_contain_text("production")
    assert render_over_api(e2e_server, "reply-labels", demo_key, variables)["version"] == 1
    expect(page.get_by_test_id("audit")).to_contain_text("rolled back production: v2 → v1")


# --- 6: approvals ------------------------------------------------------------------------------


def test_a_protected_publish_waits_for_an_approver(logged_in_page, prompts):
    pm = logged_in_page("pm")
    pm.goto(edit_url("reply-guarded"))
    expect(pm.get_by_test_id("var-issue")).to_be_visible()
    type_into(pm, "user-template", "\nKind regards.")
    save_version(pm, "reply-guarded", 2)
    pm.get_by_test_id("publish-2").click()
    dialog = pm.locator("#publish-dialog")
    expect(dialog.get_by_test_id("approval-note")).to_be_visible()
    dialog.get_by_role("button", name="Request approval").click()
    expect(pm.locator(".messages")).to_contain_text("Awaiting approval: version 2 → production")
    expect(pm.get_by_test_id("label-production")).to_have_text("production v1")
    expect(pm.get_by_test_id("pending-approvals")).to_contain_text("v2 → production")

    approver = logged_in_page("approver")
    approver.goto(detail_url("reply-guarded"))
    approver.get_by_role("link", name="Review and decide").click()
    expect(approver.get_by_test_id("diff").locator("pre.diff ins")).to_contain_text(
        ["+ Kind regards."]
    )
    screenshot(approver, "prompt-approval")
    approver.get_by_role("textbox", name="Comment").fill("Looks good")
    approver.get_by_test_id("approve").click()
    expect(approver.get_by_test_id("label-production")).to_have_text("production v2")
    audit = approver.get_by_test_id("audit")
    expect(audit).to_contain_text("approved v2 → production (Looks good)")
    expect(audit.locator("tr", has_text="approved v2")).to_contain_text("approver")
    expect(audit.locator("tr", has_text="asked for approval")).to_contain_text("pm")
    screenshot(approver, "prompt-history", full_page=True)


# --- the list: search and filters, kept in the URL -------------------------------------------


def test_prompt_list_search_and_filters(logged_in_page, prompts):
    page = logged_in_page("member")
    page.goto("/prompts/")
    table = page.get_by_test_id("prompt-list")
    expect(table).to_contain_text("Support triage")
    page.get_by_role("searchbox", name="Search").fill("triage")
    expect(table.locator("tbody tr")).to_have_count(1)
    expect(page).to_have_url(re.compile(r"q=triage"))
    page.get_by_role("searchbox", name="Search").fill("")
    page.get_by_role("combobox", name="Task tag").select_option("summarization")
    expect(table.locator("tbody tr")).to_have_count(1)
    expect(table).to_contain_text("Meeting summary")
    page.reload()
    expect(page.get_by_role("combobox", name="Task tag")).to_have_value("summarization")
    expect(table.locator("tbody tr")).to_have_count(1)
    expect(page.get_by_role("link", name="New prompt")).to_have_count(0)  # not an editor
