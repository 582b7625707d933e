"""Team self-service: a team admin manages members and key limits, audited; a member sees the
page read-only and is refused every change; an outsider gets 404."""

from __future__ import annotations

import pytest
from django.urls import reverse

from accounts.models import ApiKey, Membership, User
from accounts.services import api_key_create
from core.models import AuditEvent

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def team_admin(alice, team) -> User:
    """alice, made her team's admin."""
    Membership.objects.filter(user=alice, team=team).update(role=Membership.TeamRole.ADMIN)
    return alice


@pytest.fixture
def erin(db) -> User:
    return User.objects.create_user("erin", "erin@example.com", "pw")


def test_a_team_admin_adds_a_member_by_email_and_it_is_audited(client, team_admin, team, erin):
    client.force_login(team_admin)
    response = client.post(
        reverse("accounts:member-add", args=[team.slug]),
        {"identifier": "ERIN@example.com", "role": "member"},
        **HTMX,
    )
    assert response.status_code == 201
    assert 'data-member="erin"' in response.content.decode()
    assert Membership.objects.filter(team=team, user=erin, role="member").exists()
    event = AuditEvent.objects.get(action="membership.add")
    assert event.actor == team_admin
    assert event.team == team
    assert event.after == {"user": "erin", "role": "member"}


def test_adding_an_unknown_person_says_so_in_the_form(client, team_admin, team):
    client.force_login(team_admin)
    response = client.post(
        reverse("accounts:member-add", args=[team.slug]), {"identifier": "nobody", "role": "member"}
    )
    assert response.status_code == 400
    assert "No one with the username or email" in response.content.decode()
    assert not AuditEvent.objects.filter(action="membership.add").exists()


def test_a_team_admin_changes_a_role_and_removes_a_member(client, team_admin, bob, team):
    client.force_login(team_admin)
    membership = Membership.objects.get(team=team, user=bob)
    response = client.post(
        reverse("accounts:member-role", args=[team.slug, membership.pk]), {"role": "admin"}, **HTMX
    )
    assert response.status_code == 200
    membership.refresh_from_db()
    assert membership.role == "admin"
    response = client.post(
        reverse("accounts:member-remove", args=[team.slug, membership.pk]), **HTMX
    )
    assert response.status_code == 200
    assert not Membership.objects.filter(team=team, user=bob).exists()
    actions = list(AuditEvent.objects.order_by("id").values_list("action", flat=True))
    assert actions == ["membership.role", "membership.remove"]


def test_the_last_team_admin_cannot_step_down_or_be_removed(client, team_admin, team):
    client.force_login(team_admin)
    membership = Membership.objects.get(team=team, user=team_admin)
    response = client.post(
        reverse("accounts:member-role", args=[team.slug, membership.pk]), {"role": "member"}
    )
    assert response.status_code == 400
    assert "only team admin" in response.content.decode()
    response = client.post(reverse("accounts:member-remove", args=[team.slug, membership.pk]))
    assert response.status_code == 400
    membership.refresh_from_db()
    assert membership.role == "admin"


def test_a_team_admin_changes_a_keys_rate_limits_and_it_is_audited(client, team_admin, team):
    key, _raw = api_key_create(team=team, name="bot", rate_limit_rpm=60)
    client.force_login(team_admin)
    response = client.post(
        reverse("accounts:key-limits", args=[team.slug, key.pk]),
        {"rate_limit_rpm": "120", "rate_limit_tpm": ""},
        **HTMX,
    )
    assert response.status_code == 200
    key.refresh_from_db()
    assert (key.rate_limit_rpm, key.rate_limit_tpm) == (120, None)
    event = AuditEvent.objects.get(action="api_key.limits")
    assert event.before == {"rate_limit_rpm": 60, "rate_limit_tpm": None}
    assert event.after == {"rate_limit_rpm": 120, "rate_limit_tpm": None}


def test_a_negative_rate_limit_is_a_field_error(client, team_admin, team):
    key, _raw = api_key_create(team=team, name="bot", rate_limit_rpm=60)
    client.force_login(team_admin)
    response = client.post(
        reverse("accounts:key-limits", args=[team.slug, key.pk]), {"rate_limit_rpm": "-5"}
    )
    assert response.status_code == 400
    key.refresh_from_db()
    assert key.rate_limit_rpm == 60


def test_a_team_admin_changes_retention(client, team_admin, team):
    client.force_login(team_admin)
    response = client.post(
        reverse("accounts:team-settings", args=[team.slug]),
        {"store_content": "on", "retention_days": "14"},
    )
    assert response.status_code == 302
    team.refresh_from_db()
    assert (team.store_content, team.retention_days) == (True, 14)
    assert AuditEvent.objects.get(action="team.content_settings").actor == team_admin


def test_a_member_sees_the_team_read_only_and_cannot_change_it(client, bob, team, erin):
    key, _raw = api_key_create(team=team, name="bot")
    membership = Membership.objects.get(team=team, user=bob)
    client.force_login(bob)
    html = client.get(reverse("accounts:team", args=[team.slug])).content.decode()
    assert "Add member" not in html
    assert "Team admins add and remove members." in html
    posts = [
        (reverse("accounts:member-add", args=[team.slug]), {"identifier": "erin"}),
        (reverse("accounts:member-role", args=[team.slug, membership.pk]), {"role": "admin"}),
        (reverse("accounts:member-remove", args=[team.slug, membership.pk]), {}),
        (reverse("accounts:key-create", args=[team.slug]), {"name": "x"}),
        (reverse("accounts:key-limits", args=[team.slug, key.pk]), {"rate_limit_rpm": "1"}),
        (reverse("accounts:key-revoke", args=[team.slug, key.pk]), {}),
        (reverse("accounts:team-settings", args=[team.slug]), {"retention_days": "1"}),
    ]
    for url, data in posts:
        assert client.post(url, data).status_code == 403, url
    assert not Membership.objects.filter(user=erin).exists()
    assert Membership.objects.get(pk=membership.pk).role == "member"
    assert ApiKey.objects.get(pk=key.pk).revoked_at is None
    assert not AuditEvent.objects.exclude(action="api_key.create").exists()


def test_a_team_admin_of_one_team_cannot_manage_another(client, team_admin, other_team, charlie):
    membership = Membership.objects.get(team=other_team, user=charlie)
    client.force_login(team_admin)
    assert client.get(reverse("accounts:team", args=[other_team.slug])).status_code == 404
    url = reverse("accounts:member-remove", args=[other_team.slug, membership.pk])
    assert client.post(url).status_code == 404
    assert Membership.objects.filter(pk=membership.pk).exists()


def test_an_outsider_gets_404_for_every_team_admin_action(client, charlie, team, bob):
    membership = Membership.objects.get(team=team, user=bob)
    client.force_login(charlie)
    for url in [
        reverse("accounts:member-add", args=[team.slug]),
        reverse("accounts:member-role", args=[team.slug, membership.pk]),
        reverse("accounts:member-remove", args=[team.slug, membership.pk]),
    ]:
        assert client.post(url, {"identifier": "charlie", "role": "admin"}).status_code == 404
    assert not Membership.objects.filter(team=team, user=charlie).exists()
