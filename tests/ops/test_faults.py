"""Faults in the parts around the gateway, end to end: the site under uvicorn, the simulator
as its upstream. Each test checks that callers get an answer or a clean JSON error, and that
the budget ledger still equals the sum of the usage records with no reservation left open.

(The simulator's own faults are in tests/gateway/test_failures.py, a worker killed during a
job in tests/playground/test_batch_worker.py.)"""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest
from django.db import connection

from accounts.models import ApiKey
from accounts.services import api_key_create
from routing.models import Provider
from spend.budgets import budget_set
from spend.models import UsageRecord
from tests.conftest import wait_for_budgets
from tests.gateway.conftest import team_ledger
from tests.ops.conftest import serve

pytestmark = pytest.mark.django_db(transaction=True)

HELLO = {"model": "tier:mini", "messages": [{"role": "user", "content": "Hello there"}]}


def chat(site: str, key: str) -> httpx.Response:
    return httpx.post(
        f"{site}/v1/chat/completions",
        json=HELLO,
        headers={"Authorization": f"Bearer {key}"},
        timeout=60,
    )


def assert_answered_or_clean_error(response: httpx.Response) -> None:
    """A success, or an error in the OpenAI shape (JSON with a code), never an HTML page."""
    if response.status_code == 200:
        return
    assert response.headers["content-type"].startswith("application/json"), response.text[:300]
    assert response.json()["error"]["code"], response.text


def assert_ledger_matches_usage(team, answered: list[httpx.Response]) -> None:
    spent, reserved, total = team_ledger(team)
    assert (spent, reserved) == (total, 0)
    for response in answered:  # every answer was charged, once per upstream attempt
        records = UsageRecord.objects.filter(request_id=response.headers["x-request-id"])
        attempts = list(records.values_list("attempt", flat=True))
        assert attempts, response.headers["x-request-id"]
        assert len(attempts) == len(set(attempts))


@pytest.fixture(scope="module")
def slow_upstream() -> Iterator[str]:
    """A simulator that takes about a second per answer: requests stay in flight."""
    from simulator.testing import SimulatorServer

    with SimulatorServer(latency_scale=2.0) as server:
        yield server.url


# --- PostgreSQL connections dropped ------------------------------------------------------------


SITE_APP_NAME = "switchboard-faults-site"


def terminate_site_connections() -> int:
    """Drop the site's connections, both pools' (libpq names them from PGAPPNAME): never this
    process's own, nor another database's (other people's test runs share the server)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name = %s",
            [SITE_APP_NAME],
        )
        return cursor.fetchone()[0]


@pytest.fixture
def postgres() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("drops PostgreSQL connections")


def test_the_site_survives_its_database_connections_being_dropped(
    postgres, gateway_env, seeded, team, api_key, slow_upstream
):
    Provider.objects.filter(name="openai").update(base_url=slow_upstream)
    budget_set(team=team, limit_usd=Decimal("100"))
    with (
        serve(slow_upstream, PGAPPNAME=SITE_APP_NAME) as site,
        concurrent.futures.ThreadPoolExecutor(16) as pool,
    ):
        assert chat(site, api_key).status_code == 200  # both pools hold connections now
        in_flight = [pool.submit(chat, site, api_key) for _ in range(16)]
        time.sleep(0.5)
        assert terminate_site_connections() > 0
        during = [future.result() for future in in_flight]
        next_ones = list(pool.map(lambda _: chat(site, api_key), range(8)))
        terminate_site_connections()  # the pools' idle connections, between requests
        wait_for_budgets()  # the site's next requests load the budgets again
        after = list(pool.map(lambda _: chat(site, api_key), range(8)))
        ready = httpx.get(f"{site}/readyz", timeout=10)

    for response in during:
        assert_answered_or_clean_error(response)
    for answers in (next_ones, after):
        assert [r.status_code for r in answers] == [200] * 8, [r.text[:200] for r in answers]
    assert ready.json()["checks"]["database"] == "ok"
    answered = [r for r in during + next_ones + after if r.status_code == 200]
    assert_ledger_matches_usage(team, answered)


def test_a_connection_dropped_while_idle_fails_no_request(
    postgres, gateway_env, seeded, team, api_key, simulator_url
):
    """The lane's sync thread keeps its database connection between requests: a read that
    finds it dropped (here: a key and a prompt version no cache holds yet) reconnects and
    answers, instead of failing that request with a 503."""
    budget_set(team=team, limit_usd=Decimal("100"))
    with serve(simulator_url, PGAPPNAME=SITE_APP_NAME) as site:
        assert chat(site, api_key).status_code == 200  # the lane's thread holds a connection
        new_key = api_key_create(team=team, name="first used after the drop")[1]
        assert terminate_site_connections() > 0
        by_new_key = chat(site, new_key)
        terminate_site_connections()
        by_prompt = httpx.post(
            f"{site}/api/v1/prompts/support-triage/run",
            json={"variables": {"message": "I was charged twice"}},
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=60,
        )

    assert by_new_key.status_code == 200, by_new_key.text[:300]
    assert by_prompt.status_code == 200, by_prompt.text[:300]
    assert_ledger_matches_usage(team, [by_new_key, by_prompt])


# --- Redis down ------------------------------------------------------------------------------


def test_with_redis_down_the_gateway_serves_and_limits_locally(
    gateway_env, seeded, team, api_key, simulator_url
):
    ApiKey.objects.filter(team=team).update(rate_limit_rpm=3)
    budget_set(team=team, limit_usd=Decimal("100"))
    dead = "redis://127.0.0.1:1/0"  # nothing listens there
    env = {"REDIS_URL": dead, "RATE_LIMIT_FAIL_OPEN": "true"}
    with serve(simulator_url, **env) as site:
        answers = [chat(site, api_key) for _ in range(4)]
        ready = httpx.get(f"{site}/readyz", timeout=10)

    assert [r.status_code for r in answers] == [200, 200, 200, 429]
    assert answers[3].json()["error"]["code"] == "rate_limited"
    assert answers[3].headers["Retry-After"]
    assert ready.status_code == 503  # the probe names the outage
    assert ready.json()["checks"]["cache"].startswith("error")
    assert_ledger_matches_usage(team, answers[:3])
    refused = UsageRecord.objects.filter(request_id=answers[3].headers["x-request-id"])
    assert [(r.status, r.cost_usd) for r in refused] == [("refused", 0)]  # listed, not spend


def test_with_redis_down_and_failing_closed_limited_keys_get_a_clean_503(
    gateway_env, seeded, team, api_key, other_api_key, other_team, simulator_url
):
    ApiKey.objects.filter(team=team).update(rate_limit_rpm=3)
    env = {"REDIS_URL": "redis://127.0.0.1:1/0", "RATE_LIMIT_FAIL_OPEN": "false"}
    with serve(simulator_url, **env) as site:
        limited = chat(site, api_key)
        unlimited = chat(site, other_api_key)

    assert limited.status_code == 503
    assert limited.json()["error"]["type"]
    assert limited.headers["Retry-After"]
    assert unlimited.status_code == 200  # a key without limits never needs Redis
    assert not UsageRecord.objects.filter(team=team).exists()
