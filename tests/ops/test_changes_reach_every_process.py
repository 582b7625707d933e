"""A write through any path reaches every server process within 2 s (core.hot).

Two real site processes serve the same database. Each has the old state in its hot cache
(a request reads it first); then a write is made, and each site is polled until it answers
with the new state. The 2 s bound is the contract (HOT_CHECK_SECONDS at its production
default, 0.5 s, plus one load); it is asserted against a generous 2.5 s, measured from the
moment the write has committed. Keys: /v1, REST and job submission all refuse a dead key.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator

import pytest
from django.core.management import call_command
from django.utils import timezone

from accounts.models import ApiKey
from accounts.services import api_key_create, api_key_revoke, hash_key
from prompts.models import Prompt
from prompts.seed import seed_prompts
from prompts.services import prompt_update
from routing.models import Provider
from tests.conftest import ROOT, serve_site, stop, subprocess_env

BOUND_SECONDS = 2.5  # the contract is 2 s; the margin is for a loaded test machine
GIVE_UP_SECONDS = 20.0

pytestmark = pytest.mark.django_db(transaction=True)


def call(
    url: str, path: str, key: str, *, body: dict | None = None, scheme: str = "Bearer"
) -> tuple[int, dict]:
    request = urllib.request.Request(
        url + path,
        data=json.dumps(body).encode() if body is not None else None,
        method="POST" if body is not None else "GET",
        headers={"Authorization": f"{scheme} {key}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def seconds_until(sites: list[str], changed: Callable[[str], bool]) -> list[float]:
    """For each site, the seconds from now until `changed(site)` holds (polled)."""
    started = time.monotonic()
    waits: list[float | None] = [None] * len(sites)
    while None in waits and time.monotonic() - started < GIVE_UP_SECONDS:
        for index, site in enumerate(sites):
            if waits[index] is None and changed(site):
                waits[index] = time.monotonic() - started
        time.sleep(0.05)
    assert None not in waits, f"a site never saw the change: {waits}"
    return waits  # type: ignore[return-value]


@pytest.fixture
def sites(catalog, simulator_url: str) -> Iterator[list[str]]:
    """Two site processes with the production check interval."""
    Provider.objects.filter(name="openai").update(base_url=simulator_url)
    started = [serve_site(simulator_url, HOT_CHECK_SECONDS="0.5") for _ in range(2)]
    try:
        yield [url for url, _ in started]
    finally:
        for _, process in started:
            stop(process)


# ------------------------------------------------------------------------------ keys


def refused_everywhere(site: str, key: str) -> bool:
    """/v1, a REST read (with the scheme in lower case) and a job submission all say 401."""
    return (
        call(site, "/v1/models", key)[0] == 401
        and call(site, "/api/v1/prompts", key, scheme="bearer")[0] == 401
        and call(site, "/api/v1/jobs", key, body={})[0] == 401
    )


def accepted_everywhere(site: str, key: str) -> bool:
    return (
        call(site, "/v1/models", key)[0] == 200
        and call(site, "/api/v1/prompts", key, scheme="bearer")[0] == 200
        and call(site, "/api/v1/jobs", key, body={})[0] not in (401, 403)  # an empty job
    )


@pytest.mark.parametrize(
    "kill",
    [
        pytest.param(lambda key, team: api_key_revoke(api_key=key), id="revoked"),
        pytest.param(lambda key, team: key.delete(), id="deleted"),
        pytest.param(lambda key, team: team.delete(), id="team-deleted"),
    ],
)
def test_a_dead_key_is_refused_by_every_process_within_two_seconds(sites, team, kill):
    raw = api_key_create(team=team, name="doomed")[1]
    for site in sites:
        assert accepted_everywhere(site, raw)
    kill(ApiKey.objects.get(hashed_key=hash_key(raw)), team)

    waits = seconds_until(sites, lambda site: refused_everywhere(site, raw))

    assert max(waits) < BOUND_SECONDS, waits


def test_a_deactivated_team_s_keys_are_refused_by_every_process_within_two_seconds(sites, team):
    raw = api_key_create(team=team, name="doomed")[1]
    for site in sites:
        assert accepted_everywhere(site, raw)
    team.is_active = False
    team.save()

    waits = seconds_until(sites, lambda site: refused_everywhere(site, raw))

    assert max(waits) < BOUND_SECONDS, waits


def test_an_idempotent_replay_is_refused_once_its_key_is_revoked(sites, team):
    seed_prompts(team=team, author=None)
    raw = api_key_create(team=team, name="replayed")[1]
    site = sites[0]
    body = json.dumps({"variables": {"document": "Invoice 7: $12"}}).encode()

    def run() -> int:
        request = urllib.request.Request(
            f"{site}/api/v1/prompts/invoice-extract/run",
            data=body,
            method="POST",
            headers={
                "Authorization": f"bearer {raw}",
                "Content-Type": "application/json",
                "Idempotency-Key": "once",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=20) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code

    assert run() == 200
    assert run() == 200  # the replay
    api_key_revoke(api_key=ApiKey.objects.get(hashed_key=hash_key(raw)))

    seconds_until([site], lambda _site: run() == 401)


# ------------------------------------------------------------------------------ settings


def explain(site: str, key: str, body: dict) -> dict:
    status, payload = call(site, "/api/v1/route", key, body=body)
    assert status == 200, payload
    return payload


def test_a_prompt_s_task_tag_reaches_every_process_within_two_seconds(sites, team, api_key):
    seed_prompts(team=team, author=None)
    body = {"prompt": "invoice-extract", "variables": {"document": "Invoice 7: $12"}}
    for site in sites:
        assert explain(site, api_key, body)["features"]["task_tag"] == "extraction"

    prompt_update(
        prompt=Prompt.objects.get(team=team, slug="invoice-extract"),
        actor=None,
        task_tag="classification",
    )

    waits = seconds_until(
        sites,
        lambda site: explain(site, api_key, body)["features"]["task_tag"] == "classification",
    )
    assert max(waits) < BOUND_SECONDS, waits


def test_a_price_imported_by_the_command_reaches_every_process_within_two_seconds(
    sites, api_key, tmp_path
):
    body = {"input": "hello", "model": "tier:mini", "max_output_tokens": 1000}
    before = {explain(site, api_key, body)["worst_case_cost_usd"] for site in sites}
    assert len(before) == 1
    sheet = tmp_path / "prices.yaml"
    effective = (timezone.now() - dt.timedelta(minutes=1)).isoformat()
    sheet.write_text(
        "format: switchboard-prices/1\n"
        "models:\n"
        "  - name: gpt-5.4-mini\n"
        "    prices:\n"
        f'      - effective_from: "{effective}"\n'
        '        input: "75.00"\n'
        '        cached_input: "7.50"\n'
        "        cache_write: null\n"
        '        output: "450.00"\n'
        "        long_context_threshold: 272000\n"
        "        long_context_input_multiplier: 2\n"
        "        long_context_output_multiplier: 1.5\n"
    )
    subprocess.run(
        [sys.executable, "manage.py", "import_prices", str(sheet)],
        cwd=ROOT,
        env=subprocess_env(),
        check=True,
        capture_output=True,
    )

    waits = seconds_until(
        sites, lambda site: explain(site, api_key, body)["worst_case_cost_usd"] not in before
    )
    assert max(waits) < BOUND_SECONDS, waits


def test_a_budget_set_by_the_command_reaches_every_process_within_two_seconds(sites, team, api_key):
    body = {"input": "hello", "model": "tier:mini"}
    for site in sites:
        assert explain(site, api_key, body)["budgets"] == []

    call_command("set_budget", team=team.slug, limit="12.50")

    waits = seconds_until(
        sites,
        lambda site: (
            [b["limit_usd"] for b in explain(site, api_key, body)["budgets"]] == ["12.5000000000"]
        ),
    )
    assert max(waits) < BOUND_SECONDS, waits
