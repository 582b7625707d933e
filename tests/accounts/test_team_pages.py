"""Team and key pages: members see their teams, admins manage keys, outsiders get 404."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from accounts.keys import api_key_resolve_sync
from accounts.models import ApiKey
from accounts.services import api_key_create, hash_key
from core.models import AuditEvent

HTMX = {"HTTP_HX_REQUEST": "true"}


def _raw_key(html: str) -> str:
    match = re.search(r'id="new-key-value" value="(sb_[^"]+)"', html)
    assert match, "the new key is on the page"
    return match.group(1)


def test_the_teams_page_lists_only_the_users_teams(client, bob, other_team):
    client.force_login(bob)
    html = client.get(reverse("accounts:teams")).content.decode()
    assert "Team A" in html
    assert "Team B" not in html


def test_an_admin_sees_every_team(client, dana, other_team):
    client.force_login(dana)
    html = client.get(reverse("accounts:teams")).content.decode()
    assert "Team A" in html
    assert "Team B" in html


def test_a_member_sees_members_keys_and_retention_read_only(client, bob, alice, team):
    api_key_create(team=team, name="support-bot", rate_limit_rpm=60)
    client.force_login(bob)
    response = client.get(reverse("accounts:team", args=[team.slug]))
    html = response.content.decode()
    assert response.status_code == 200
    assert "alice" in html
    assert "bob" in html
    assert "support-bot" in html
    assert "60 req/min" in html
    assert "never" in html  # last used
    assert "not stored" in html
    assert "Create key" not in html
    assert "Revoke" not in html
    assert "Team admins create, limit and revoke keys." in html


def test_an_outsider_gets_404_for_every_team_page(client, charlie, team):
    key, _raw = api_key_create(team=team, name="support-bot")
    client.force_login(charlie)
    assert client.get(reverse("accounts:team", args=[team.slug])).status_code == 404
    assert (
        client.post(reverse("accounts:key-create", args=[team.slug]), {"name": "x"}).status_code
        == 404
    )
    assert client.post(reverse("accounts:key-revoke", args=[team.slug, key.pk])).status_code == 404
    assert (
        client.post(
            reverse("accounts:team-settings", args=[team.slug]), {"retention_days": 1}
        ).status_code
        == 404
    )
    assert ApiKey.objects.filter(team=team).count() == 1


def test_a_missing_team_is_404_too(client, bob):
    client.force_login(bob)
    assert client.get(reverse("accounts:team", args=["no-such-team"])).status_code == 404


def test_an_admin_creates_a_key_and_sees_it_once(client, dana, team):
    client.force_login(dana)
    response = client.post(
        reverse("accounts:key-create", args=[team.slug]),
        {"name": "billing-service", "rate_limit_rpm": "120", "rate_limit_tpm": ""},
        **HTMX,
    )
    assert response.status_code == 201
    assert "no-store" in response["Cache-Control"]
    html = response.content.decode()
    raw = _raw_key(html)
    assert "shown only this once" in html
    key = ApiKey.objects.get(name="billing-service")
    assert key.hashed_key == hash_key(raw)
    assert raw not in (key.prefix, key.hashed_key)
    assert (key.rate_limit_rpm, key.rate_limit_tpm, key.created_by) == (120, None, dana)
    assert api_key_resolve_sync(raw) == key
    # never again: the team page shows only the prefix
    page = client.get(reverse("accounts:team", args=[team.slug])).content.decode()
    assert raw not in page
    assert f"{key.prefix}…" in page
    assert AuditEvent.objects.filter(action="api_key.create", actor=dana).exists()


def test_a_key_needs_a_name(client, dana, team):
    client.force_login(dana)
    response = client.post(reverse("accounts:key-create", args=[team.slug]), {"name": ""})
    assert response.status_code == 400
    assert not ApiKey.objects.exists()


@pytest.mark.parametrize("user", ["alice", "bob"])
def test_teammates_without_admin_rights_cannot_create_or_revoke_keys(client, request, user, team):
    key, _raw = api_key_create(team=team, name="support-bot")
    client.force_login(request.getfixturevalue(user))
    assert (
        client.post(reverse("accounts:key-create", args=[team.slug]), {"name": "x"}).status_code
        == 403
    )
    assert client.post(reverse("accounts:key-revoke", args=[team.slug, key.pk])).status_code == 403
    key.refresh_from_db()
    assert key.revoked_at is None
    assert ApiKey.objects.count() == 1


def test_an_admin_revokes_a_key_and_it_stops_working(
    client, dana, team, django_capture_on_commit_callbacks
):
    key, raw = api_key_create(team=team, name="support-bot")
    assert api_key_resolve_sync(raw) == key  # cached as valid
    client.force_login(dana)
    with django_capture_on_commit_callbacks(execute=True):  # the cache is cleared on commit
        response = client.post(reverse("accounts:key-revoke", args=[team.slug, key.pk]), **HTMX)
    assert response.status_code == 200
    assert "revoked" in response.content.decode()
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert api_key_resolve_sync(raw) is None
    assert AuditEvent.objects.filter(action="api_key.revoke", actor=dana).exists()


def test_a_key_of_another_team_cannot_be_revoked_through_this_team(client, dana, team, other_team):
    key, _raw = api_key_create(team=other_team, name="b-key")
    client.force_login(dana)
    assert client.post(reverse("accounts:key-revoke", args=[team.slug, key.pk])).status_code == 404
    key.refresh_from_db()
    assert key.revoked_at is None


def test_an_admin_changes_the_content_retention(client, dana, team):
    client.force_login(dana)
    response = client.post(
        reverse("accounts:team-settings", args=[team.slug]),
        {"store_content": "on", "retention_days": "7"},
    )
    assert response.status_code == 302
    team.refresh_from_db()
    assert (team.store_content, team.retention_days) == (True, 7)
    event = AuditEvent.objects.get(action="team.content_settings")
    assert event.before == {"store_content": False, "no_content": False, "retention_days": 30}
    assert event.after == {"store_content": True, "no_content": False, "retention_days": 7}


def test_a_bad_retention_is_refused(client, dana, team):
    client.force_login(dana)
    response = client.post(
        reverse("accounts:team-settings", args=[team.slug]), {"retention_days": "0"}
    )
    assert response.status_code == 400
    team.refresh_from_db()
    assert team.retention_days == 30


def test_a_member_cannot_change_the_retention(client, bob, team):
    client.force_login(bob)
    response = client.post(
        reverse("accounts:team-settings", args=[team.slug]),
        {"store_content": "on", "retention_days": "7"},
    )
    assert response.status_code == 403
    team.refresh_from_db()
    assert team.store_content is False
