"""Compare columns stream through the gateway under uvicorn, each on its own SSE connection."""

from __future__ import annotations

import asyncio
import json
import time
from decimal import Decimal

import httpx
import pytest
from django.db.models import Sum
from django.test import Client

from playground import services
from playground.columns import ColumnSpec
from playground.models import ComparisonColumn, RunStatus
from routing.models import Model, Price, Provider
from spend.models import Purpose, UsageRecord
from tests.playground.conftest import make_triage, use_upstream, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def _session_cookie(user) -> dict[str, str]:
    client = Client()
    client.force_login(user)
    return {"sessionid": client.cookies["sessionid"].value}


async def _read_stream(client: httpx.AsyncClient, url: str) -> dict:
    """Every event of one column's stream, with the time of the first delta."""
    started = time.perf_counter()
    events: list[tuple[str, dict]] = []
    first_delta = None
    async with client.stream("GET", url) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        name = None
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                events.append((name, json.loads(line[6:])))
                if name == "delta" and first_delta is None:
                    first_delta = time.perf_counter() - started
    return {"events": events, "first_delta": first_delta, "seconds": time.perf_counter() - started}


def _stream_urls(base: str, comparison) -> list[str]:
    return [
        f"{base}/playground/c/{comparison.pk}/col/{c.position}/stream?token={c.run_token}"
        for c in comparison.columns.order_by("position")
    ]


def _run(base: str, cookies: dict, urls: list[str]) -> tuple[list[dict], float]:
    async def main():
        async with httpx.AsyncClient(cookies=cookies, timeout=30) as client:
            started = time.perf_counter()
            results = await asyncio.gather(*(_read_stream(client, u) for u in urls))
            return results, time.perf_counter() - started

    return asyncio.run(main())


def test_columns_stream_at_the_same_time_and_cost_what_their_usage_records_say(
    live_site, slow_simulator_url, team, alice, catalog
):
    use_upstream(slow_simulator_url)
    version = make_triage(team, alice)
    comparison = services.comparison_create(
        team=team,
        user=alice,
        columns=[ColumnSpec(tier="mini"), ColumnSpec(tier="flagship"), ColumnSpec(tier="flagship")],
        prompt_version=version,
        variables={"message": "The invoice shows a charge twice and the app logs me out."},
    )
    results, wall = _run(live_site, _session_cookie(alice), _stream_urls(live_site, comparison))

    columns = list(ComparisonColumn.objects.filter(comparison=comparison).order_by("position"))
    assert [c.status for c in columns] == [RunStatus.DONE] * 3
    latencies = [c.latency_ms / 1000 for c in columns]
    # concurrent: the wall time is near the slowest column, far from the sum
    assert wall < 0.7 * sum(latencies), (wall, latencies)
    assert wall >= max(latencies) * 0.9
    for result, column in zip(results, columns, strict=True):
        names = [name for name, _ in result["events"]]
        assert names.count("delta") > 1, names  # the text grew before the end
        assert names[-1] == "done"
        done = result["events"][-1][1]
        assert json.loads(done["output"]) == json.loads(column.output)  # pretty-printed JSON
        assert done["json_valid"] is True
        assert done["schema_valid"] is True
        assert "TTFT" in done["metrics_html"]
        assert column.ttft_ms is not None
        assert column.ttft_ms < column.latency_ms
        # the column's cost is exactly what its usage records say
        records = UsageRecord.objects.filter(request_id=column.request_id)
        assert records.count() == 1
        record = records.get()
        assert record.purpose == Purpose.PLAYGROUND
        assert column.usage_record_id == record.pk
        assert column.cost_usd == record.cost_usd > 0
        assert (column.input_tokens, column.output_tokens) == (
            record.input_tokens,
            record.output_tokens,
        )
    assert (columns[0].model_used, columns[1].model_used) == ("gpt-5.4-mini", "gpt-5.4")
    assert columns[0].cost_usd < columns[1].cost_usd  # mini is visibly cheaper
    total = UsageRecord.objects.filter(purpose=Purpose.PLAYGROUND).aggregate(t=Sum("cost_usd"))
    assert total["t"] == sum(c.cost_usd for c in columns)


def test_a_failing_column_shows_its_error_while_the_others_finish(live_site, team, alice, catalog):
    # the simulator answers 500 to a model named with the @500 suffix
    broken = Model.objects.create(
        name="gpt-5.4-mini@500", provider=Provider.objects.get(name="openai")
    )
    Price.objects.create(
        model=broken,
        effective_from="2026-01-01T00:00:00Z",
        input_per_mtok=Decimal("0.75"),
        cached_input_per_mtok=Decimal("0.075"),
        output_per_mtok=Decimal("4.5"),
    )
    comparison = services.comparison_create(
        team=team,
        user=alice,
        columns=[ColumnSpec(tier="mini"), ColumnSpec(model="gpt-5.4-mini@500")],
        input_text="Say hello.",
    )
    results, _ = _run(live_site, _session_cookie(alice), _stream_urls(live_site, comparison))
    assert results[0]["events"][-1][0] == "done"
    assert results[1]["events"][-1][0] == "error"
    good, bad = ComparisonColumn.objects.filter(comparison=comparison).order_by("position")
    assert good.status == RunStatus.DONE
    assert good.output
    assert bad.status == RunStatus.ERROR
    assert bad.error
    assert "error" in results[1]["events"][-1][1]["metrics_html"]


def test_a_stream_is_not_run_twice_and_an_outsider_cannot_open_it(
    live_site, team, alice, charlie, catalog
):
    comparison = services.comparison_create(
        team=team, user=alice, columns=[ColumnSpec(tier="nano")], input_text="Hi"
    )
    [url] = _stream_urls(live_site, comparison)
    first, _ = _run(live_site, _session_cookie(alice), [url])
    again, _ = _run(live_site, _session_cookie(alice), [url])
    assert [n for n, _ in again[0]["events"]] == ["done"]  # replayed, not called again
    assert again[0]["events"][0][1]["output"] == first[0]["events"][-1][1]["output"]
    assert UsageRecord.objects.count() == 1

    cookies = _session_cookie(charlie)

    async def outsider():
        async with httpx.AsyncClient(cookies=cookies) as client:
            return (await client.get(url)).status_code

    assert asyncio.run(outsider()) == 404


def test_closing_a_columns_stream_stops_only_that_column(
    live_site, slow_simulator_url, team, alice, catalog
):
    use_upstream(slow_simulator_url)
    comparison = services.comparison_create(
        team=team,
        user=alice,
        columns=[ColumnSpec(tier="mini"), ColumnSpec(tier="flagship")],
        input_text="Write three paragraphs about lighthouses.",
    )
    mini_url, flagship_url = _stream_urls(live_site, comparison)
    cookies = _session_cookie(alice)

    async def main():
        async with httpx.AsyncClient(cookies=cookies, timeout=30) as client:

            async def stop_after_first_delta():
                async with client.stream("GET", flagship_url) as response:
                    async for line in response.aiter_lines():
                        if line == "event: delta":
                            return  # the user pressed Stop: the browser closes the stream

            return await asyncio.gather(_read_stream(client, mini_url), stop_after_first_delta())

    finished, _ = asyncio.run(main())
    assert finished["events"][-1][0] == "done"
    flagship = comparison.columns.get(position=1)

    def stopped():
        flagship.refresh_from_db()
        return flagship.status == RunStatus.STOPPED

    wait_for(stopped, timeout=10, what="the stopped column")
    assert flagship.output  # what had arrived is kept
    mini = comparison.columns.get(position=0)
    assert mini.status == RunStatus.DONE
    # the gateway recorded the cut stream as cancelled, with estimated tokens
    record = wait_for(
        lambda: UsageRecord.objects.filter(tier_name="flagship").first(),
        timeout=10,
        what="the cancelled usage record",
    )
    assert record.status == UsageRecord.Status.CANCELLED


def test_a_stop_ends_the_stream_with_the_text_so_far_and_its_tokens_and_cost(
    live_site, slow_simulator_url, team, alice, catalog
):
    use_upstream(slow_simulator_url)
    comparison = services.comparison_create(
        team=team,
        user=alice,
        columns=[ColumnSpec(tier="mini"), ColumnSpec(tier="flagship")],
        input_text="Write three paragraphs about lighthouses. " * 60,
    )
    _, flagship_url = _stream_urls(live_site, comparison)
    column = comparison.columns.get(position=1)
    cookies = _session_cookie(alice)

    async def main():
        events: list[tuple[str, dict]] = []
        async with (
            httpx.AsyncClient(cookies=cookies, timeout=30) as client,
            client.stream("GET", flagship_url) as response,
        ):
            name = None
            async for line in response.aiter_lines():
                if line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: "):
                    events.append((name, json.loads(line[6:])))
                    if name == "delta" and len(events) == 3:
                        # the user pressed Stop: the page asks the server, keeps listening
                        await asyncio.to_thread(services.comparison_column_stop, column=column)
        return events

    events = asyncio.run(main())
    names = [n for n, _ in events]
    assert names[-1] == "stopped", names
    assert "done" not in names
    last = events[-1][1]
    partial = "".join(e["text"] for n, e in events if n == "delta")
    assert last["output"] == partial
    assert last["input_tokens"] > 0
    assert last["output_tokens"] > 0
    assert Decimal(last["cost_usd"]) > 0
    assert "Tokens out" in last["metrics_html"]
    assert "so far" in last["metrics_html"]
    column.refresh_from_db()
    assert column.status == RunStatus.STOPPED
    assert column.output == partial  # kept for a reload
    assert column.model_used == "gpt-5.4"
    # the column costs what the gateway recorded for the cancelled attempt
    record = wait_for(
        lambda: UsageRecord.objects.filter(request_id=column.request_id).first(),
        timeout=10,
        what="the cancelled usage record",
    )
    assert record.status == UsageRecord.Status.CANCELLED
    assert column.cost_usd == record.cost_usd
    assert (column.input_tokens, column.output_tokens) == (
        record.input_tokens,
        record.output_tokens,
    )
