"""Prompt fixtures: team A's prompt `greet` with v1 on production, written by alice, plus
erin (team A editor, not an approver) and vera (team A approver)."""

from __future__ import annotations

import pytest
from django.core.cache import cache

from accounts.models import Role, Team, User
from prompts.models import Label, Prompt, PromptVersion
from prompts.services import label_move, prompt_create, prompt_update, prompt_version_create
from tests.conftest import _user

GREET_VARIABLES = [
    {"name": "name", "type": "string", "required": True, "max_length": 50},
    {"name": "tone", "type": "enum", "enum": ["warm", "dry"], "default": "warm"},
]


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def erin(team: Team) -> User:
    """Team A's editor without approval rights."""
    return _user("erin", team, Role.PROMPT_EDITOR, Role.TEAM_MEMBER)


@pytest.fixture
def vera(team: Team) -> User:
    """Team A's second approver (and editor)."""
    return _user("vera", team, Role.PROMPT_EDITOR, Role.PROMPT_APPROVER, Role.TEAM_MEMBER)


def make_prompt(
    team: Team, author: User | None, slug: str = "greet", **fields
) -> tuple[Prompt, PromptVersion]:
    prompt = prompt_create(team=team, slug=slug, name=slug.title(), actor=author, **fields)
    v1 = prompt_version_create(
        prompt=prompt,
        author=author,
        system_template="You greet people.",
        user_template="Say hello to {{ name }} in a {{ tone }} tone.",
        variables=GREET_VARIABLES,
        tier="mini",
        temperature="0.2",
        change_note="first",
    )
    label_move(prompt=prompt, label=Label.PRODUCTION, version=v1, actor=author)
    return prompt, v1


def new_version(prompt: Prompt, author: User | None, text: str, **fields) -> PromptVersion:
    return prompt_version_create(
        prompt=prompt,
        author=author,
        system_template="You greet people.",
        user_template=text,
        variables=GREET_VARIABLES,
        **fields,
    )


@pytest.fixture
def prompt(team: Team, alice: User) -> Prompt:
    return make_prompt(team, alice)[0]


@pytest.fixture
def protected(team: Team, alice: User) -> Prompt:
    """A prompt whose production label needs an approver's OK."""
    guarded = make_prompt(team, alice, slug="guarded")[0]
    return prompt_update(prompt=guarded, actor=alice, requires_approval=True)
