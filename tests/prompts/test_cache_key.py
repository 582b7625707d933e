"""Each prompt version's `prompt_cache_key`: stable, per version, no content in it, and
overridable per prompt (the settings form, validated and audited)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from core.errors import ValidationFailed
from core.models import AuditEvent
from prompts.caching import version_cache_key
from prompts.models import Prompt
from prompts.services import prompt_update
from tests.prompts.conftest import make_prompt, new_version


def test_the_key_is_stable_and_differs_per_version(prompt, alice):
    v1 = prompt.versions.get(number=1)
    v2 = new_version(prompt, alice, "Hi {{ name }}, {{ tone }}.")
    key = version_cache_key(v1)
    assert key == version_cache_key(type(v1).objects.get(pk=v1.pk))  # a fresh load agrees
    assert key.startswith("sb-")
    assert len(key) == 35
    assert version_cache_key(v2) != key


def test_the_key_names_neither_the_prompt_nor_its_template(prompt):
    key = version_cache_key(prompt.versions.get(number=1))
    for leaked in ("greet", "hello", "team-a", str(prompt.team_id) + ":"):
        assert leaked not in key


def test_the_same_slug_in_another_team_gets_another_key(prompt, other_team):
    _other, other_v1 = make_prompt(other_team, None)
    assert version_cache_key(other_v1) != version_cache_key(prompt.versions.get(number=1))


def test_a_prompt_override_is_sent_by_every_version(prompt, alice):
    v2 = new_version(prompt, alice, "Hi {{ name }}, {{ tone }}.")
    prompt_update(prompt=prompt, actor=alice, cache_key="greet-shared:v")
    for version in (prompt.versions.get(number=1), v2):
        version = type(version).objects.select_related("prompt").get(pk=version.pk)
        assert version_cache_key(version) == "greet-shared:v"


@pytest.mark.parametrize("bad", ["has space", "x" * 65, "ü", 7])
def test_a_malformed_override_is_refused(prompt, alice, bad):
    with pytest.raises(ValidationFailed) as caught:
        prompt_update(prompt=prompt, actor=alice, cache_key=bad)
    assert "cache_key" in caught.value.details


def _settings_url(prompt: Prompt) -> str:
    return reverse("prompts:settings", args=[prompt.team.slug, prompt.slug])


def test_an_editor_sets_the_key_in_the_settings_and_it_is_audited(client, prompt, alice):
    client.force_login(alice)
    detail = client.get(reverse("prompts:detail", args=[prompt.team.slug, prompt.slug]))
    assert 'name="cache_key"' in detail.content.decode()
    client.post(
        _settings_url(prompt),
        {"name": prompt.name, "task_tag": prompt.task_tag, "cache_key": " greet-2026 "},
    )
    prompt.refresh_from_db()
    assert prompt.cache_key == "greet-2026"
    event = AuditEvent.objects.get(action="prompt.update", actor=alice)
    assert event.after == {"cache_key": "greet-2026"}


def test_an_outsider_cannot_set_the_key(client, prompt, charlie):
    client.force_login(charlie)
    response = client.post(_settings_url(prompt), {"name": "x", "cache_key": "stolen"})
    assert response.status_code == 404
    prompt.refresh_from_db()
    assert prompt.cache_key == ""
