"""Playground fixtures: team A's `triage` prompt (JSON answers) and the seeded catalog."""

from __future__ import annotations

import pytest
from django.core.cache import cache

from accounts.models import Team, User
from prompts.models import Label, Prompt, PromptVersion
from prompts.services import label_move, prompt_create, prompt_version_create

TRIAGE_SCHEMA = {
    "type": "object",
    "properties": {
        "category": {"type": "string", "enum": ["billing", "bug", "account", "other"]},
        "urgency": {"type": "string", "enum": ["low", "medium", "high"]},
    },
    "required": ["category", "urgency"],
    "additionalProperties": False,
}
TRIAGE_VARIABLES = [
    {"name": "message", "type": "string", "required": True, "max_length": 2000},
    {"name": "channel", "type": "enum", "enum": ["email", "chat", "phone"], "default": "email"},
    {"name": "priority", "type": "integer", "required": False},
]


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def tiers(db) -> None:
    """The seeded catalog, tiers and default policy, for tests that call no model."""
    from routing.seed import seed_catalog

    seed_catalog(simulator_url="http://127.0.0.1:9/v1")


def make_triage(team: Team, author: User | None, slug: str = "triage") -> PromptVersion:
    prompt = prompt_create(
        team=team, slug=slug, name="Triage", actor=author, task_tag="classification"
    )
    version = prompt_version_create(
        prompt=prompt,
        author=author,
        system_template="You triage support messages. Answer with JSON only.",
        user_template="Channel: {{ channel }}\n{% if priority %}Priority: {{ priority }}\n{% endif %}{{ message }}",
        variables=TRIAGE_VARIABLES,
        tier="mini",
        max_output_tokens=200,
        response_schema=TRIAGE_SCHEMA,
        change_note="first",
    )
    label_move(prompt=prompt, label=Label.PRODUCTION, version=version, actor=author)
    return version


@pytest.fixture
def triage(team: Team, alice: User) -> PromptVersion:
    return make_triage(team, alice)


@pytest.fixture
def triage_prompt(triage: PromptVersion) -> Prompt:
    return triage.prompt
