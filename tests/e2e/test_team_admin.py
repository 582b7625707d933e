"""Team self-service in a real browser: a team admin adds a member, sets a key's budget (after
its preview), sends a test alert and changes retention, each audited; a member cannot."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import E2EServer, create_users

_LEAD_CODE = """
from accounts.models import Membership, Team, User
from accounts.services import api_key_create
Membership.objects.filter(user__username="lead", team__slug="demo").update(role="admin")
User.objects.get_or_create(username="newbie", defaults={"email": "newbie@example.com"})
team = Team.objects.get(slug="demo")
if not team.api_keys.filter(name="e2e-bot").exists():
    api_key_create(team=team, name="e2e-bot")
"""

_AUDIT_CODE = """
import json
from core.models import AuditEvent
print(json.dumps(sorted(set(AuditEvent.objects.filter(actor__username="lead").values_list("action", flat=True)))))
"""


@pytest.fixture(scope="module")
def lead(e2e_server: E2EServer) -> str:
    create_users(e2e_server, {"lead": (("team_member",), "demo")})
    e2e_server.shell(_LEAD_CODE)
    return "lead"


def test_a_team_admin_manages_the_team_and_each_change_is_audited(logged_in_page, lead, e2e_server):
    page = logged_in_page(lead)
    page.goto("/accounts/teams/demo/")
    form = page.get_by_test_id("member-add")
    form.get_by_label("Username or email").fill("newbie@example.com")
    form.get_by_role("button", name="Add member").click()
    expect(page.locator("tr[data-member=newbie]")).to_be_visible()

    page.get_by_label("Retention (days)").fill("9")
    page.locator("section[aria-labelledby=content-h]").get_by_role("button", name="Save").click()
    expect(page.get_by_text("Content settings saved.")).to_be_visible()

    page.get_by_role("link", name="Budgets & alerts").click()
    details = page.locator("details.key-budget", has_text="e2e-bot")
    details.locator("summary").click()
    key_form = details.locator("form.budget-form")
    key_form.get_by_label("Limit (USD)").fill("0.01")
    expect(key_form.get_by_test_id("preview-result")).to_contain_text("of the last 7 days'")
    key_form.get_by_role("button", name="Save budget").click()
    expect(page.get_by_text("Budget of key e2e-bot saved.")).to_be_visible()

    target_form = page.get_by_test_id("target-add")
    target_form.get_by_label("Name").fill("ops")
    target_form.get_by_label("Emails").fill("ops@example.com")
    target_form.get_by_role("button", name="Add target").click()
    page.locator("tr[data-target=ops]").get_by_role("button", name="Send a test").click()
    expect(page.get_by_text("Test alert to ops: email: sent to ops@example.com.")).to_be_visible()

    actions = json.loads(e2e_server.shell(_AUDIT_CODE).strip().splitlines()[-1])
    for action in [
        "membership.add",
        "team.content_settings",
        "budget.create",
        "alert_target.create",
        "alert_target.test",
    ]:
        assert action in actions


def test_a_member_sees_the_team_pages_read_only(logged_in_page, lead):
    page = logged_in_page("member")
    page.goto("/accounts/teams/demo/")
    expect(page.get_by_text("Team admins add and remove members.")).to_be_visible()
    expect(page.get_by_role("button", name="Add member")).to_have_count(0)
    page.goto("/accounts/teams/demo/budgets/")
    expect(page.get_by_test_id("read-only")).to_be_visible()
    expect(page.get_by_role("button", name="Save budget")).to_have_count(0)
    expect(page.get_by_role("button", name="Send a test")).to_have_count(0)
