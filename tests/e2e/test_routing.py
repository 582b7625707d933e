"""The routing page and the team page in a real browser: the lifecycle warning, drag-to-reorder,
the policy test box, and a key shown once."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import E2EServer, create_users, screenshot

# A routing admin and a plain member of team demo (the shared E2E_USERS have no admin).
USERS = {
    "router": (("admin", "team_member"), "demo"),
    "viewer": (("team_member",), "demo"),
}

_LIFECYCLE = """
import datetime as dt
from django.utils import timezone
from routing.models import Model
model = Model.objects.get(name="gpt-5.4-mini")
print(model.shutdown_date.isoformat() if model.shutdown_date else "")
model.shutdown_date = {value}
model.save()
"""

_RULE_NAMES = """
from routing.models import Rule
print("|".join(Rule.objects.filter(policy__is_active=True).order_by("position", "id").values_list("name", flat=True)))
"""

_RESTORE_ORDER = """
from routing.models import Rule
for position, name in enumerate({names!r}):
    Rule.objects.filter(policy__is_active=True, name=name).update(position=position)
"""


@pytest.fixture(scope="module")
def people(e2e_server: E2EServer) -> None:
    create_users(e2e_server, USERS)


@pytest.fixture
def mini_retires_in_12_days(e2e_server: E2EServer):
    """gpt-5.4-mini shuts down 12 days from today (restored afterwards)."""
    before = _last_line(
        e2e_server.shell(_LIFECYCLE.format(value="timezone.localdate() + dt.timedelta(days=12)"))
    )
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}|", before), before
    yield
    e2e_server.shell(
        _LIFECYCLE.format(value=f"dt.date.fromisoformat({before!r})" if before else "None")
    )


def _last_line(output: str) -> str:
    """What the code printed (the shell may print its auto-import notice first)."""
    lines = output.strip().splitlines()
    return lines[-1] if lines else ""


def _rule_names(e2e_server: E2EServer) -> list[str]:
    return _last_line(e2e_server.shell(_RULE_NAMES)).split("|")


def test_a_model_near_shutdown_is_flagged_on_the_routing_page(
    people, mini_retires_in_12_days, logged_in_page
):
    page: Page = logged_in_page("viewer")
    page.goto("/routing/")
    warning = page.get_by_test_id("lifecycle-warning")
    expect(warning).to_be_visible()
    mini = warning.locator('li[data-model="gpt-5.4-mini"]')
    expect(mini).to_contain_text("in 12 days")
    expect(mini).to_contain_text("tier: mini")
    expect(mini).to_contain_text("gpt-6.1-terra")
    # a member reads; only admins get the remap button
    expect(warning.get_by_role("button", name=re.compile("Remap"))).to_have_count(0)
    expect(page.get_by_role("link", name="Add rule")).to_have_count(0)

    admin = logged_in_page("router")
    admin.goto("/routing/")
    admin_warning = admin.get_by_test_id("lifecycle-warning")
    expect(admin_warning.get_by_role("button", name="Remap to gpt-6.1-terra")).to_be_visible()
    expect(admin.locator('.tier-card[data-tier="mini"]')).to_contain_text("ends")
    screenshot(admin, "routing", full_page=True)


def test_an_admin_drags_a_rule_to_the_top_and_the_order_is_saved(
    people, e2e_server: E2EServer, logged_in_page
):
    original = _rule_names(e2e_server)
    page: Page = logged_in_page("router")
    page.goto("/routing/")
    rows = page.locator("#rules-body tbody tr[data-id]")
    expect(rows).to_have_count(len(original))
    last = rows.nth(len(original) - 1)
    try:
        last.drag_to(rows.nth(0))
        expect(rows.nth(0)).to_contain_text(original[-1])  # the swapped-in table from the server
        assert _rule_names(e2e_server) == [original[-1], *original[:-1]]
        page.reload()
        expect(page.locator("#rules-body tbody tr[data-id]").nth(0)).to_contain_text(original[-1])
        # the ↓ button moves it back one step, without a mouse drag
        page.get_by_role("button", name=f"Move {original[-1]} down").click()
        expect(page.locator("#rules-body tbody tr[data-id]").nth(1)).to_contain_text(original[-1])
        assert _rule_names(e2e_server)[1] == original[-1]
    finally:
        e2e_server.shell(_RESTORE_ORDER.format(names=original))


def test_the_policy_test_box_shows_the_route_without_a_reload(people, logged_in_page):
    page: Page = logged_in_page("viewer")
    page.goto("/routing/")
    page.get_by_label("Task tag").select_option("extraction")
    page.get_by_label("Input text").fill("Invoice 42 from ACME, total 120 EUR")
    page.get_by_role("button", name="Route it").click()
    result = page.get_by_test_id("route-result")
    expect(result).to_contain_text("Routine tasks to mini")
    expect(result).to_contain_text("tier mini")
    expect(result).to_contain_text("gpt-6.1-terra")


def test_a_new_key_is_shown_once_with_a_copy_button_then_revoked(people, logged_in_page):
    page: Page = logged_in_page("router")
    page.goto("/accounts/teams/demo/")
    page.get_by_label("Name", exact=True).fill("e2e-key")
    page.get_by_label("Requests per minute", exact=True).fill("30")
    page.get_by_role("button", name="Create key").click()
    shown = page.get_by_test_id("new-key")
    expect(shown).to_contain_text("shown only this once")
    raw = page.locator("#new-key-value").input_value()
    assert raw.startswith("sb_")
    expect(shown.get_by_role("button", name="Copy")).to_be_visible()
    screenshot(page, "team-keys")
    page.reload()
    expect(page.get_by_test_id("new-key")).to_have_count(0)
    assert raw not in page.content()
    row = page.locator(f'tr[data-key="{raw[:10]}"]')
    expect(row.get_by_label("Requests per minute for e2e-key")).to_have_value("30")
    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Revoke").click()
    expect(page.locator(f'tr[data-key="{raw[:10]}"]')).to_contain_text("revoked")
