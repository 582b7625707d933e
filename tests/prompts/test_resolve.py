from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from django.core.cache import cache
from django.db import connections

from accounts.models import Team
from core.errors import NotFound
from core.hot import hot_clear
from prompts.models import Label, Prompt, PromptVersion
from prompts.selectors import prompt_version_resolve, prompt_version_resolve_sync


def _prompt(team: Team, slug: str = "greet") -> Prompt:
    prompt = Prompt.objects.create(team=team, slug=slug, name=slug)
    v1 = PromptVersion.objects.create(prompt=prompt, number=1, user_template="one")
    PromptVersion.objects.create(prompt=prompt, number=2, user_template="two")
    Label.objects.create(prompt=prompt, name=Label.PRODUCTION, version=v1)
    return prompt


@pytest.fixture(autouse=True)
def _clear_cache():
    cache.clear()
    hot_clear()
    yield
    cache.clear()
    hot_clear()


@pytest.fixture
async def _close_thread_connections():
    """The async ORM runs in a worker thread with its own connection: hand it back, or
    PostgreSQL cannot drop the test database at the end."""
    yield
    await sync_to_async(connections.close_all)()


@pytest.mark.usefixtures("_close_thread_connections")
@pytest.mark.django_db(transaction=True)
async def test_resolve_defaults_to_production_and_version_wins(team):
    await sync_to_async(_prompt)(team)
    assert (await prompt_version_resolve(team_id=team.id, slug="greet")).number == 1
    found = await prompt_version_resolve(team_id=team.id, slug="greet", label="x", version=2)
    assert found.number == 2
    assert found.prompt.slug == "greet"  # select_related: no query needed later


@pytest.mark.usefixtures("_close_thread_connections")
@pytest.mark.django_db(transaction=True)
async def test_resolve_refuses_other_teams_and_unknown_labels(team, other_team):
    await sync_to_async(_prompt)(team)
    with pytest.raises(NotFound):
        await prompt_version_resolve(team_id=other_team.id, slug="greet")
    with pytest.raises(NotFound):
        await prompt_version_resolve(team_id=team.id, slug="greet", label="staging")
    with pytest.raises(NotFound):
        await prompt_version_resolve(team_id=team.id, slug="greet", version=9)


@pytest.mark.django_db(transaction=True)
def test_cached_resolve_makes_no_query_and_label_moves_invalidate(
    team, settings, django_assert_num_queries
):
    prompt = _prompt(team)
    # The generation is read (a query where the cache is per process) once now and not again
    # during the test, so the counts below are the resolves' own on a slow machine too.
    settings.HOT_CHECK_SECONDS = 600
    with pytest.raises(NotFound):
        prompt_version_resolve_sync(team_id=team.id, slug="absent")
    with django_assert_num_queries(1):
        prompt_version_resolve_sync(team_id=team.id, slug="greet")
    with django_assert_num_queries(0):
        assert prompt_version_resolve_sync(team_id=team.id, slug="greet").number == 1
    label = Label.objects.get(prompt=prompt)
    label.version = prompt.versions.get(number=2)
    label.save()
    assert prompt_version_resolve_sync(team_id=team.id, slug="greet").number == 2


@pytest.mark.django_db(transaction=True)
def test_a_cached_miss_is_forgotten_when_the_version_appears(team):
    prompt = _prompt(team)
    with pytest.raises(NotFound):
        prompt_version_resolve_sync(team_id=team.id, slug="greet", version=3)
    PromptVersion.objects.create(prompt=prompt, number=3, user_template="three")
    assert prompt_version_resolve_sync(team_id=team.id, slug="greet", version=3).number == 3
