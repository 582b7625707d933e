"""The simulator's Files and Batches: OpenAI's life cycle on a time scale, through the SDK."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import openai
import pytest

from simulator.batches_api import (
    FINALIZING_SECONDS,
    IN_PROGRESS_SECONDS,
    LINE_SECONDS,
    VALIDATING_SECONDS,
    parse_input,
    phase,
)
from simulator.testing import SimulatorServer


def _line(custom_id: str, text: str = "hello", **body: object) -> dict:
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {
            "model": "gpt-5.4-mini",
            "messages": [{"role": "user", "content": text}],
            **body,
        },
    }


def _jsonl(*lines: dict) -> bytes:
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


def _wait(client: openai.OpenAI, batch_id: str, statuses: set[str]) -> object:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        batch = client.batches.retrieve(batch_id)
        if batch.status in statuses:
            return batch
        time.sleep(0.05)
    raise AssertionError(f"batch {batch_id} never reached {statuses}")


@pytest.fixture(scope="module")
def batch_client() -> Iterator[openai.OpenAI]:
    with SimulatorServer(latency_scale=0, batch_time_scale=0.01) as server:
        yield openai.OpenAI(base_url=server.url, api_key="test", max_retries=0)


def test_a_batch_goes_through_validating_in_progress_and_finalizing_to_completed() -> None:
    scale, lines = 1.0, 10
    running = IN_PROGRESS_SECONDS + LINE_SECONDS * lines
    at = [
        (0, "validating", 0),
        (VALIDATING_SECONDS + running / 2, "in_progress", 5),
        (VALIDATING_SECONDS + running + 1, "finalizing", 10),
        (VALIDATING_SECONDS + running + FINALIZING_SECONDS + 1, "completed", 10),
    ]
    for offset, status, done in at:
        now = phase(created=1000.0, now=1000.0 + offset, lines=lines, scale=scale)
        assert (now.status, now.lines_done) == (status, done)


def test_an_invalid_batch_fails_after_validating_and_a_cancelled_one_stops_where_it_was() -> None:
    failed = phase(created=0, now=VALIDATING_SECONDS + 1, lines=3, scale=1, valid=False)
    assert failed.status == "failed"
    cancel_at = VALIDATING_SECONDS + (IN_PROGRESS_SECONDS + LINE_SECONDS * 4) / 2
    cancelling = phase(created=0, now=cancel_at + 1, lines=4, scale=1, cancelled_at=cancel_at)
    assert (cancelling.status, cancelling.lines_done) == ("cancelling", 2)
    later = cancel_at + FINALIZING_SECONDS + 1
    cancelled = phase(created=0, now=later, lines=4, scale=1, cancelled_at=cancel_at)
    assert (cancelled.status, cancelled.lines_done) == ("cancelled", 2)


def test_input_errors_are_reported_by_line_number() -> None:
    content = _jsonl(_line("a"), _line("a"), {**_line("c"), "url": "/v1/responses"})
    content += b"not json\n"
    _requests, errors = parse_input(content, "/v1/chat/completions")
    assert [(e.line, e.code) for e in errors] == [
        (2, "duplicate_custom_id"),
        (3, "mismatched_url"),
        (4, "invalid_json_line"),
    ]


def test_the_sdk_uploads_a_file_runs_a_batch_and_reads_its_output(
    batch_client: openai.OpenAI,
) -> None:
    uploaded = batch_client.files.create(
        file=("in.jsonl", _jsonl(_line("one", "first"), _line("two", "second"))), purpose="batch"
    )
    assert uploaded.purpose == "batch"
    assert uploaded.bytes > 0
    batch = batch_client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    assert batch.status == "validating"
    done = _wait(batch_client, batch.id, {"completed"})
    assert done.request_counts.total == 2
    assert done.request_counts.completed == 2
    assert done.error_file_id is None
    output = [
        json.loads(line)
        for line in batch_client.files.content(done.output_file_id).text.splitlines()
    ]
    assert [line["custom_id"] for line in output] == ["one", "two"]
    body = output[0]["response"]["body"]
    assert body["object"] == "chat.completion"
    assert body["usage"]["prompt_tokens"] > 0
    # Deterministic: the live endpoint answers the same input with the same text.
    live = batch_client.chat.completions.create(
        model="gpt-5.4-mini", messages=[{"role": "user", "content": "first"}]
    )
    assert body["choices"][0]["message"]["content"] == live.choices[0].message.content


def test_failed_lines_go_to_the_error_file_and_the_others_complete(
    batch_client: openai.OpenAI,
) -> None:
    content = _jsonl(_line("ok"), _line("bad", metadata={"simulator_fail": "500"}))
    uploaded = batch_client.files.create(file=("in.jsonl", content), purpose="batch")
    batch = batch_client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    done = _wait(batch_client, batch.id, {"completed"})
    assert (done.request_counts.completed, done.request_counts.failed) == (1, 1)
    errors = [
        json.loads(x) for x in batch_client.files.content(done.error_file_id).text.splitlines()
    ]
    assert errors[0]["custom_id"] == "bad"
    assert errors[0]["response"]["status_code"] == 500


def test_an_expiring_batch_ends_expired_with_its_unrun_lines_in_the_error_file(
    batch_client: openai.OpenAI,
) -> None:
    content = _jsonl(*(_line(f"l{i}", f"text {i}") for i in range(4)))
    uploaded = batch_client.files.create(file=("in.jsonl", content), purpose="batch")
    batch = batch_client.batches.create(
        input_file_id=uploaded.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={"simulator_fail": "expire"},
    )
    done = _wait(batch_client, batch.id, {"expired"})
    errors = [
        json.loads(x) for x in batch_client.files.content(done.error_file_id).text.splitlines()
    ]
    assert errors
    assert all(e["error"]["code"] == "batch_expired" for e in errors)
    assert done.request_counts.completed + len(errors) == 4


def test_a_cancelled_batch_ends_cancelled(batch_client: openai.OpenAI) -> None:
    uploaded = batch_client.files.create(file=("in.jsonl", _jsonl(_line("x"))), purpose="batch")
    batch = batch_client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    assert batch_client.batches.cancel(batch.id).status == "cancelling"
    assert _wait(batch_client, batch.id, {"cancelled"}).status == "cancelled"


def test_a_batch_with_a_bad_input_file_fails_with_errors_by_line(
    batch_client: openai.OpenAI,
) -> None:
    content = _jsonl(_line("a"), {**_line("b"), "method": "GET"})
    uploaded = batch_client.files.create(file=("in.jsonl", content), purpose="batch")
    batch = batch_client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    failed = _wait(batch_client, batch.id, {"failed"})
    assert [(e.line, e.code) for e in failed.errors.data] == [(2, "invalid_method")]


def test_flex_requests_are_refused_when_the_switch_is_on() -> None:
    with SimulatorServer(latency_scale=0, refuse_flex=True) as server:
        client = openai.OpenAI(base_url=server.url, api_key="test", max_retries=0)
        with pytest.raises(openai.RateLimitError) as refused:
            client.chat.completions.create(
                model="gpt-5.4-mini",
                messages=[{"role": "user", "content": "hi"}],
                service_tier="flex",
            )
        assert refused.value.code == "resource_unavailable"
        served = client.chat.completions.create(
            model="gpt-5.4-mini", messages=[{"role": "user", "content": "hi"}]
        )
        assert served.service_tier == "default"


def test_an_accepted_flex_request_says_it_was_served_by_flex(client: openai.OpenAI) -> None:
    reply = client.responses.create(model="gpt-5.4-mini", input="hi", service_tier="flex")
    assert reply.service_tier == "flex"
