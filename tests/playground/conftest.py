"""Playground fixtures: team A's `triage` prompt (JSON answers) and the seeded catalog."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator

import pytest
from django.core.cache import cache

from accounts.models import Team, User
from prompts.models import Label, Prompt, PromptVersion
from prompts.services import label_move, prompt_create, prompt_version_create
from tests.conftest import start_worker, stop_worker

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
def _roles(request):
    """The role groups come from a data migration, which a transactional test's flush
    deletes; put them back before the people fixtures look them up."""
    marker = request.node.get_closest_marker("django_db")
    transactional = "transactional_db" in request.fixturenames or (
        marker is not None and marker.kwargs.get("transaction")
    )
    if not (transactional or marker or "db" in request.fixturenames):
        return
    request.getfixturevalue("transactional_db" if transactional else "db")
    from django.contrib.auth.models import Group

    from accounts.models import Role

    for role in Role.values:
        Group.objects.get_or_create(name=role)


@pytest.fixture(autouse=True)
def _fresh_cache():
    """An empty cache, and none of the gateway's in-process copies (the routing snapshot, the
    hot keys and prompts): a test's catalog rows are new rows with new ids."""
    from core.hot import hot_clear

    def forget() -> None:
        cache.clear()
        hot_clear()

    forget()
    yield
    forget()


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


# --- real Celery workers ---------------------------------------------------------------------

WORKER_ENV = {
    # a short lease so that a killed worker's job is resumed within seconds
    "PLAYGROUND_JOB_LEASE_SECONDS": "2",
    "PLAYGROUND_BATCH_CONCURRENCY": "4",
}


@pytest.fixture
def job_worker(transactional_db, settings) -> Iterator[subprocess.Popen]:
    """One worker with a 2 s job lease and a concurrency of 4; this process uses the same."""
    settings.PLAYGROUND_JOB_LEASE_SECONDS = 2
    settings.PLAYGROUND_BATCH_CONCURRENCY = 4
    process = start_worker(**WORKER_ENV)
    yield process
    stop_worker(process)


@pytest.fixture(scope="module")
def slow_simulator_url() -> Iterator[str]:
    """A second simulator with the catalog's per-model latency (mini ~0.5 s, flagship ~1.3 s)."""
    from simulator.testing import SimulatorServer

    with SimulatorServer(latency_scale=2.0) as server:
        yield server.url


def use_upstream(url: str) -> None:
    from routing.models import Provider

    provider = Provider.objects.get(name="openai")
    provider.base_url = url
    provider.save()  # a save (not an update) bumps the routing snapshot's version


def wait_for(predicate, *, timeout: float = 60, interval: float = 0.2, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")
