"""Pieces of the hot path that a live test cannot see well: the schema documentation, the
routing snapshot, the hot caches, the start-up heap freeze, the open-files check and the
shutdown flush."""

from __future__ import annotations

import gc
import resource
from collections.abc import Callable, Iterator
from decimal import Decimal

import pytest
from django.utils import timezone

from core.hot import hot_clear, hot_get
from gateway import upstream
from gateway.asgi import GATEWAY_PATHS, YOUNG_COLLECTION_THRESHOLD, with_gateway
from routing.models import Model, Rule
from routing.snapshot import snapshot_load
from spend.models import UsageRecord
from spend.pg import pg_close
from spend.usage import Ledger


@pytest.mark.django_db
def test_the_run_and_route_endpoints_are_in_the_openapi_schema(client):
    schema = client.get("/api/schema/?format=json").json()

    run = schema["paths"]["/api/v1/prompts/{slug}/run"]["post"]
    route = schema["paths"]["/api/v1/route"]["post"]
    assert run["operationId"] == "prompts_run"
    assert {"200", "401", "402", "404", "422", "502", "504"} <= set(run["responses"])
    assert route["operationId"] == "route_explain"


@pytest.mark.django_db
def test_the_snapshot_reads_the_seeded_catalog_and_the_active_policy(catalog):
    snapshot = snapshot_load()

    assert [tier.name for tier in snapshot.tiers] == ["nano", "mini", "flagship", "reasoning"]
    assert [m.name for m in snapshot.tier("mini").models] == ["gpt-5.4-mini", "gpt-6.1-terra"]
    assert snapshot.tier("reasoning").reasoning_effort == "high"
    assert [rule.name for rule in snapshot.rules] == [
        "Computer use needs flagship",
        "Routine tasks to mini",
        "Reasoning tasks",
        "Everything else: classifier",
    ]
    assert "computer_use" not in snapshot.models["gpt-5.4-mini"].capabilities
    assert "computer_use" in snapshot.models["gpt-5.4"].capabilities
    price = snapshot.models["gpt-5.4-mini"].price_at(timezone.now())
    assert (price.input_per_mtok, price.output_per_mtok) == (Decimal("0.75"), Decimal("4.50"))


@pytest.mark.django_db
def test_disabled_rules_and_inactive_models_are_left_out(catalog):
    Rule.objects.filter(name="Reasoning tasks").update(enabled=False)
    Model.objects.filter(name="gpt-5.4-mini").update(is_active=False)

    snapshot = snapshot_load()

    assert "Reasoning tasks" not in [rule.name for rule in snapshot.rules]
    assert [m.name for m in snapshot.tier("mini").models] == ["gpt-6.1-terra"]


def test_the_fast_lane_takes_only_the_gateway_paths():
    assert GATEWAY_PATHS.match("/v1/chat/completions")
    assert GATEWAY_PATHS.match("/api/v1/prompts/support-triage/run")
    assert GATEWAY_PATHS.match("/api/v1/route")
    assert not GATEWAY_PATHS.match("/api/v1/prompts/support-triage")
    assert not GATEWAY_PATHS.match("/api/v1/routes")
    assert not GATEWAY_PATHS.match("/prompts/")


@pytest.mark.django_db(transaction=True)
async def test_hot_cache_loads_once_and_forgets_on_clear():
    hot_clear()
    calls = []

    async def load():
        calls.append(1)
        return len(calls)

    assert await hot_get("k", load) == 1
    assert await hot_get("k", load) == 1
    hot_clear()
    assert await hot_get("k", load) == 2


@pytest.fixture
def unfrozen() -> Iterator[None]:
    """The start-up tuning of the collector, undone after the test: the test process is not
    a server."""
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


async def run_lifespan(monkeypatch) -> list[str]:
    """The server's start-up then shutdown, as uvicorn sends them; the messages sent back."""
    from spend import pg

    monkeypatch.setitem(pg._serving, "on", False)
    messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    sent = []

    async def receive():
        return next(messages)

    async def send(message):
        sent.append(message["type"])

    async def never(scope, receive, send):
        raise AssertionError("the site must not see lifespan events")

    try:
        await with_gateway(never)({"type": "lifespan"}, receive, send)
    finally:
        await pg_close()
    return sent


@pytest.mark.django_db(transaction=True)
async def test_shutdown_flushes_the_usage_not_yet_written(team, monkeypatch, unfrozen):
    record = UsageRecord(
        created_at=timezone.now(), request_id="req_flush", team_id=team.id, model_name="m"
    )
    ledger = Ledger()
    ledger.add(record)
    ledger.close()  # queued; the writer waits a moment to batch

    sent = await run_lifespan(monkeypatch)

    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert await UsageRecord.objects.filter(request_id="req_flush").aexists()


@pytest.mark.django_db(transaction=True)
async def test_start_up_takes_the_loaded_heap_out_of_the_collector_s_walks(monkeypatch, unfrozen):
    """A full collection walks every tracked object but the frozen ones: after start-up it
    walks only what was made since, a small fraction of the process's objects."""
    gc.unfreeze()
    tracked_before = len(gc.get_objects())

    await run_lifespan(monkeypatch)

    assert gc.get_freeze_count() >= tracked_before * 0.9
    assert len(gc.get_objects()) < tracked_before * 0.1
    # and the young generation is collected less often than Python's every 700 objects
    assert gc.get_threshold()[0] == YOUNG_COLLECTION_THRESHOLD > 700


def test_the_fast_lane_resolves_the_same_views_under_the_same_names():
    from django.urls import resolve

    for path in ("/v1/chat/completions", "/v1/models", "/api/v1/route", "/api/v1/prompts/x/run"):
        site, fast = resolve(path), resolve(path, urlconf="gateway.fast_urls")
        assert (fast.func, fast.view_name, fast.route) == (site.func, site.view_name, site.route)


def test_usage_rows_carry_only_usage_record_fields():
    from spend.usage import UsageRow

    columns = {f.attname for f in UsageRecord._meta.concrete_fields}
    assert set(UsageRow.__dataclass_fields__) == columns - {"id"}


# --- open files ---------------------------------------------------------------------------


@pytest.fixture
def open_files_limit() -> Iterator[Callable[[int], None]]:
    """Set this process's soft limit of open files; the old one is set back after."""
    old = resource.getrlimit(resource.RLIMIT_NOFILE)

    def set_soft(soft: int) -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, old[1]))

    yield set_soft
    resource.setrlimit(resource.RLIMIT_NOFILE, old)


def test_a_server_that_may_open_too_few_files_for_a_burst_says_so(open_files_limit, caplog):
    open_files_limit(1024)

    upstream.serving()

    (warning,) = [r for r in caplog.records if r.name == "gateway.upstream"]
    assert "only 1024 files" in warning.getMessage()
    assert "about 512 requests in flight" in warning.getMessage()


def test_a_server_that_may_open_enough_files_says_nothing(open_files_limit, caplog):
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard < upstream.OPEN_FILES_WANTED:
        pytest.skip(f"this machine's hard limit is {hard}")
    open_files_limit(upstream.OPEN_FILES_WANTED)

    upstream.serving()

    assert not [r for r in caplog.records if r.name == "gateway.upstream"]
