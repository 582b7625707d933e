"""The team's budgets and alert targets page: a team admin sets team and key budgets with a
preview of the last 7 days, adds and tests alert targets (a webhook goes out even when mail
is down), each audited; a member sees it read-only; an outsider gets 404."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from accounts.models import Membership, User
from accounts.services import api_key_create
from core.models import AuditEvent
from spend.models import AlertTarget, Budget
from spend.previews import budget_preview

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def team_admin(alice, team) -> User:
    Membership.objects.filter(user=alice, team=team).update(role=Membership.TeamRole.ADMIN)
    return alice


def _budget_post(**fields) -> dict:
    return {
        "api_key": "",
        "limit_usd": "10",
        "period": "daily",
        "action": "block",
        "downgrade_tier": "",
        "soft_threshold_pct": "80",
        **fields,
    }


def test_the_preview_counts_the_requests_a_limit_would_have_refused(make_usage, team):
    now = timezone.now()
    for days_ago in (1, 2, 3):
        at = now - dt.timedelta(days=days_ago)
        for minute in range(3):  # three $1 requests a day
            make_usage(team=team, at=at + dt.timedelta(minutes=minute), cost=Decimal("1"))
    make_usage(team=team, at=now - dt.timedelta(days=9), cost=Decimal("5"))  # outside the window
    preview = budget_preview(
        team_id=team.pk,
        api_key_id=None,
        limit_usd=Decimal("2"),
        period="daily",
        action="block",
        now=now,
    )
    assert (preview.requests, preview.affected, preview.verb) == (9, 3, "refused")
    assert preview.spend == Decimal("9")
    generous = budget_preview(
        team_id=team.pk,
        api_key_id=None,
        limit_usd=Decimal("3"),
        period="daily",
        action="downgrade",
        now=now,
    )
    assert (generous.affected, generous.verb) == (0, "downgraded")


def test_a_key_preview_counts_only_that_keys_requests(make_usage, team):
    key, _raw = api_key_create(team=team, name="bot")
    now = timezone.now()
    make_usage(team=team, at=now - dt.timedelta(hours=2), cost=Decimal("1"), api_key=key)
    make_usage(team=team, at=now - dt.timedelta(hours=1), cost=Decimal("1"))
    preview = budget_preview(
        team_id=team.pk,
        api_key_id=key.pk,
        limit_usd=Decimal("0.5"),
        period="monthly",
        action="block",
        now=now,
    )
    assert (preview.requests, preview.affected) == (1, 1)


def test_the_preview_endpoint_renders_the_count_for_the_admin(client, team_admin, team, make_usage):
    make_usage(team=team, at=timezone.now() - dt.timedelta(hours=1), cost=Decimal("1"))
    client.force_login(team_admin)
    response = client.post(
        reverse("team-budgets:preview", args=[team.slug]), _budget_post(limit_usd="0.5"), **HTMX
    )
    assert response.status_code == 200
    text = " ".join(response.content.decode().split())
    assert (
        "<strong>1</strong> of the last 7 days' 1 requests would have been <strong>refused</strong>"
        in text
    )


def test_a_team_admin_sets_the_team_budget_and_it_is_audited(client, team_admin, team, prices):
    client.force_login(team_admin)
    response = client.post(
        reverse("team-budgets:save", args=[team.slug]),
        _budget_post(limit_usd="25.50", action="downgrade", downgrade_tier="nano"),
    )
    assert response.status_code == 302
    budget = Budget.objects.get(team=team, api_key=None)
    assert budget.limit_usd == Decimal("25.5")
    assert (budget.period, budget.action, budget.downgrade_tier.name) == (
        "daily",
        "downgrade",
        "nano",
    )
    event = AuditEvent.objects.get(action="budget.create")
    assert event.actor == team_admin
    assert event.after["limit_usd"] == "25.5000000000"


def test_a_team_admin_sets_a_per_key_budget(client, team_admin, team, prices):
    key, _raw = api_key_create(team=team, name="bot")
    client.force_login(team_admin)
    response = client.post(
        reverse("team-budgets:save", args=[team.slug]),
        _budget_post(api_key=str(key.pk), limit_usd="3", soft_threshold_pct="50"),
    )
    assert response.status_code == 302
    budget = Budget.objects.get(team=team, api_key=key)
    assert (budget.limit_usd, budget.soft_threshold) == (Decimal("3"), Decimal("0.5"))
    assert AuditEvent.objects.get(action="budget.create").after["api_key"] == key.prefix
    assert not Budget.objects.filter(team=team, api_key=None).exists()


@pytest.mark.parametrize("limit", ["NaN", "Infinity", "-1", "1e300", "abc"])
def test_a_bad_limit_is_a_field_error_and_saves_nothing(client, team_admin, team, prices, limit):
    client.force_login(team_admin)
    response = client.post(
        reverse("team-budgets:save", args=[team.slug]), _budget_post(limit_usd=limit)
    )
    assert response.status_code == 400
    assert 'class="errorlist' in response.content.decode()
    assert not Budget.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="budget.").exists()


def test_a_downgrade_budget_without_a_tier_is_a_field_error(client, team_admin, team, prices):
    client.force_login(team_admin)
    response = client.post(
        reverse("team-budgets:save", args=[team.slug]), _budget_post(action="downgrade")
    )
    assert response.status_code == 400
    assert "needs a tier to downgrade to" in response.content.decode()


def test_a_key_of_another_team_is_not_found(client, team_admin, team, other_team, prices):
    key, _raw = api_key_create(team=other_team, name="theirs")
    client.force_login(team_admin)
    response = client.post(
        reverse("team-budgets:save", args=[team.slug]), _budget_post(api_key=str(key.pk))
    )
    assert response.status_code == 404
    assert not Budget.objects.exists()


def test_a_member_sees_budgets_read_only_and_cannot_change_them(client, bob, team, prices):
    target = AlertTarget.objects.create(team=team, name="ops", emails="ops@example.com")
    client.force_login(bob)
    html = client.get(reverse("team-budgets:index", args=[team.slug])).content.decode()
    assert "Read-only" in html
    assert "Save budget" not in html
    assert "Send a test" not in html
    for url in [
        reverse("team-budgets:save", args=[team.slug]),
        reverse("team-budgets:preview", args=[team.slug]),
        reverse("team-budgets:target-add", args=[team.slug]),
        reverse("team-budgets:target-test", args=[team.slug, target.pk]),
        reverse("team-budgets:target-delete", args=[team.slug, target.pk]),
    ]:
        assert client.post(url, _budget_post(name="x", emails="x@example.com")).status_code == 403
    assert not Budget.objects.exists()
    assert len(mail.outbox) == 0


def test_an_outsider_gets_404_for_the_budgets_page(client, charlie, team):
    client.force_login(charlie)
    assert client.get(reverse("team-budgets:index", args=[team.slug])).status_code == 404
    assert (
        client.post(reverse("team-budgets:save", args=[team.slug]), _budget_post()).status_code
        == 404
    )


def test_a_team_admin_adds_an_alert_target_and_sends_a_test(client, team_admin, team, receiver):
    client.force_login(team_admin)
    response = client.post(
        reverse("team-budgets:target-add", args=[team.slug]),
        {"name": "ops", "emails": "ops@example.com, cfo@example.com", "webhook_url": receiver.url},
    )
    assert response.status_code == 302
    target = AlertTarget.objects.get(team=team)
    response = client.post(
        reverse("team-budgets:target-test", args=[team.slug, target.pk]), follow=True
    )
    assert (
        "Test alert to ops: email: sent to ops@example.com, cfo@example.com; webhook: sent, HTTP 204"
        in response.content.decode()
    )
    assert mail.outbox[0].to == ["ops@example.com", "cfo@example.com"]
    headers, body = receiver.requests[0]
    assert headers["X-Switchboard-Event"] == "test"
    assert json.loads(body)["team"] == team.slug
    actions = list(AuditEvent.objects.order_by("id").values_list("action", flat=True))
    assert actions == ["alert_target.create", "alert_target.test"]


def test_a_test_alert_reaches_the_webhook_when_mail_is_down(
    client, team_admin, team, receiver, settings
):
    settings.EMAIL_BACKEND = "tests.routing.broken_mail.Backend"
    target = AlertTarget.objects.create(
        team=team, name="ops", emails="ops@example.com", webhook_url=receiver.url
    )
    client.force_login(team_admin)
    response = client.post(
        reverse("team-budgets:target-test", args=[team.slug, target.pk]), follow=True
    )
    html = response.content.decode()
    assert "email: failed: mail server unreachable" in html
    assert "webhook: sent, HTTP 204" in html
    assert len(receiver.requests) == 1


def test_an_alert_target_needs_an_address_or_a_webhook(client, team_admin, team):
    client.force_login(team_admin)
    response = client.post(reverse("team-budgets:target-add", args=[team.slug]), {"name": "x"})
    assert response.status_code == 400
    assert "at least one email address or a webhook URL" in response.content.decode()
    response = client.post(
        reverse("team-budgets:target-add", args=[team.slug]),
        {"name": "x", "emails": "not-an-email"},
    )
    assert response.status_code == 400
    assert not AlertTarget.objects.exists()
