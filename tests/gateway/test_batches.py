"""/v1/files and /v1/batches through the official SDK, against the site, the simulator and a
real Celery worker: routing per line, one usage record per line at the batch price, the
team's budget settled exactly."""

from __future__ import annotations

import json
import time
from decimal import Decimal

import openai
import pytest

from gateway.models import Batch, BatchLine
from routing.models import Model
from spend.budgets import budget_set
from spend.models import Budget, BudgetReservation, Purpose, UsageRecord
from spend.pricing import cost_usd, price_at
from tests.gateway.conftest import team_ledger

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.celery_worker]


def line(custom_id: str, model: str, text: str, **body: object) -> dict:
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {
            "model": model,
            "messages": [{"role": "user", "content": text}],
            "max_completion_tokens": 300,
            **body,
        },
    }


def jsonl(*lines: dict) -> bytes:
    return "".join(json.dumps(x) + "\n" for x in lines).encode()


def wait_until(sdk: openai.OpenAI, batch_id: str, statuses: set[str], timeout: float = 90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        batch = sdk.batches.retrieve(batch_id)
        if batch.status in statuses:
            return batch
        time.sleep(0.1)
    raise AssertionError(f"{batch_id} is still {batch.status}")


def test_the_sdk_runs_a_batch_through_switchboard_with_one_record_per_line_at_the_batch_price(
    sdk: openai.OpenAI, team, celery_worker
) -> None:
    budget_set(team=team, limit_usd=Decimal("50"))
    content = jsonl(
        line("auto-1", "auto", "Classify: my invoice is wrong"),
        line("mini-1", "tier:mini", "Summarize: the meeting moved to Tuesday"),
        line("nano-1", "gpt-5.4-nano", "Extract the total: total due 42 EUR"),
    )
    uploaded = sdk.files.create(file=("requests.jsonl", content), purpose="batch")
    assert uploaded.bytes == len(content)
    created = sdk.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    assert created.status == "validating"
    assert created.request_counts.total == 3
    held = Budget.objects.get(team=team).reserved_usd
    assert held == Batch.objects.get(public_id=created.id).reserved_usd > 0

    done = wait_until(sdk, created.id, {"completed", "failed", "expired"})
    assert done.status == "completed"
    assert (done.request_counts.completed, done.request_counts.failed) == (3, 0)
    output = [json.loads(x) for x in sdk.files.content(done.output_file_id).text.splitlines()]
    assert sorted(entry["custom_id"] for entry in output) == ["auto-1", "mini-1", "nano-1"]
    by_id = {entry["custom_id"]: entry for entry in output}
    assert by_id["nano-1"]["response"]["body"]["model"] == "gpt-5.4-nano"
    assert by_id["mini-1"]["response"]["body"]["model"] == "gpt-5.4-mini"

    records = list(UsageRecord.objects.filter(team=team))
    assert len(records) == 3
    for record in records:
        assert record.purpose == Purpose.BATCH
        assert record.service_tier == "batch"
        assert record.status == UsageRecord.Status.SUCCESS
        price = price_at(Model.objects.get(name=record.model_name), record.created_at)
        standard = cost_usd(
            price=price,
            input_tokens=record.input_tokens,
            cached_input_tokens=record.cached_input_tokens,
            output_tokens=record.output_tokens,
            reasoning_tokens=record.reasoning_tokens,
        )
        assert record.cost_usd == standard / 2
        assert record.cost_usd > 0
    spent, reserved, total = team_ledger(team)
    assert spent == total == sum(r.cost_usd for r in records)
    assert reserved == 0
    assert not BudgetReservation.objects.filter(settled_at__isnull=True).exists()
    batch = Batch.objects.get(public_id=created.id)
    assert batch.cost_usd == total


def test_an_input_file_with_bad_lines_fails_by_line_number_and_nothing_goes_upstream(
    sdk: openai.OpenAI, team
) -> None:
    budget_set(team=team, limit_usd=Decimal("50"))
    content = (
        jsonl(
            line("ok", "auto", "fine"),
            line("ok", "auto", "a repeated custom_id"),
            {**line("get", "auto", "x"), "method": "GET"},
            line("no-messages", "auto", "x", messages=[]),
            line("unknown-model", "gpt-9000", "x"),
        )
        + b"{not json\n"
    )
    uploaded = sdk.files.create(file=("bad.jsonl", content), purpose="batch")
    batch = sdk.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    assert batch.status == "failed"
    assert [(e.line, e.code) for e in batch.errors.data] == [
        (2, "duplicate_custom_id"),
        (3, "invalid_method"),
        (4, "bad_request"),
        (5, batch.errors.data[3].code),
        (6, "invalid_json_line"),
    ]
    assert batch.errors.data[2].param == "body.messages"
    assert not BatchLine.objects.exists()
    assert Budget.objects.get(team=team).reserved_usd == 0


def test_a_batch_whose_worst_case_does_not_fit_the_budget_is_refused_with_402(
    sdk: openai.OpenAI, team
) -> None:
    budget_set(team=team, limit_usd=Decimal("0.001"))
    uploaded = sdk.files.create(
        file=("in.jsonl", jsonl(line("a", "tier:flagship", "hello"))), purpose="batch"
    )
    with pytest.raises(openai.APIStatusError) as refused:
        sdk.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
    assert refused.value.status_code == 402
    assert not Batch.objects.exists()


def test_failed_lines_are_recorded_as_errors_and_cost_nothing(
    sdk: openai.OpenAI, team, celery_worker
) -> None:
    budget_set(team=team, limit_usd=Decimal("50"))
    content = jsonl(
        line("good", "tier:mini", "hello"),
        line("broken", "tier:mini", "hello again", metadata={"simulator_fail": "500"}),
    )
    uploaded = sdk.files.create(file=("in.jsonl", content), purpose="batch")
    created = sdk.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    done = wait_until(sdk, created.id, {"completed"})
    assert (done.request_counts.completed, done.request_counts.failed) == (1, 1)
    errors = [json.loads(x) for x in sdk.files.content(done.error_file_id).text.splitlines()]
    assert errors[0]["custom_id"] == "broken"
    assert errors[0]["response"]["status_code"] == 500
    broken = UsageRecord.objects.get(request_id=f"{created.id}-2")
    assert (broken.status, broken.cost_usd) == (UsageRecord.Status.ERROR, 0)
    spent, reserved, total = team_ledger(team)
    assert spent == total > 0
    assert reserved == 0


def test_an_expired_batch_charges_only_the_lines_that_ran(
    sdk: openai.OpenAI, team, celery_worker
) -> None:
    budget_set(team=team, limit_usd=Decimal("50"))
    content = jsonl(*(line(f"l{i}", "tier:nano", f"message {i}") for i in range(4)))
    uploaded = sdk.files.create(file=("in.jsonl", content), purpose="batch")
    created = sdk.batches.create(
        input_file_id=uploaded.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={"simulator_fail": "expire"},
    )
    done = wait_until(sdk, created.id, {"expired", "completed"})
    assert done.status == "expired"
    ran = UsageRecord.objects.filter(team=team, status=UsageRecord.Status.SUCCESS).count()
    expired = BatchLine.objects.filter(status=BatchLine.Status.EXPIRED).count()
    assert ran + expired == 4
    assert expired > 0
    assert UsageRecord.objects.filter(team=team).count() == 4
    spent, reserved, total = team_ledger(team)
    assert spent == total
    assert reserved == 0


def test_a_cancelled_batch_ends_cancelled_with_its_hold_released(
    sdk: openai.OpenAI, team, celery_worker
) -> None:
    budget_set(team=team, limit_usd=Decimal("50"))
    content = jsonl(*(line(f"c{i}", "tier:nano", f"note {i}") for i in range(3)))
    uploaded = sdk.files.create(file=("in.jsonl", content), purpose="batch")
    created = sdk.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    assert sdk.batches.cancel(created.id).status == "cancelling"
    done = wait_until(sdk, created.id, {"cancelled"})
    assert done.request_counts.completed + done.request_counts.failed == 3
    spent, reserved, total = team_ledger(team)
    assert spent == total
    assert reserved == 0


def test_files_and_batches_are_the_teams_own(
    sdk: openai.OpenAI, site: str, other_api_key: str, team
) -> None:
    budget_set(team=team, limit_usd=Decimal("50"))
    uploaded = sdk.files.create(file=("in.jsonl", jsonl(line("a", "auto", "x"))), purpose="batch")
    outsider = openai.OpenAI(base_url=f"{site}/v1", api_key=other_api_key, max_retries=0)
    with pytest.raises(openai.NotFoundError):
        outsider.files.retrieve(uploaded.id)
    with pytest.raises(openai.NotFoundError):
        outsider.files.content(uploaded.id)
    with pytest.raises(openai.NotFoundError):
        outsider.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
    assert outsider.files.list().data == []
    assert [f.id for f in sdk.files.list().data] == [uploaded.id]
    created = sdk.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    with pytest.raises(openai.NotFoundError):
        outsider.batches.retrieve(created.id)
    with pytest.raises(openai.NotFoundError):
        outsider.batches.cancel(created.id)
    assert outsider.batches.list().data == []
    with pytest.raises(openai.NotFoundError):
        outsider.files.delete(uploaded.id)
    assert sdk.files.delete(uploaded.id).deleted


def test_a_file_over_the_size_limit_is_refused_with_413(simulator_url, catalog, api_key) -> None:
    from tests.conftest import serve_site, stop

    url, process = serve_site(simulator_url, GATEWAY_FILE_MAX_BYTES="2000")
    try:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=api_key, max_retries=0)
        with pytest.raises(openai.APIStatusError) as refused:
            client.files.create(file=("big.jsonl", b"x" * 5000), purpose="batch")
        assert refused.value.status_code == 413
        small = client.files.create(file=("small.jsonl", b"{}\n"), purpose="batch")
        assert small.bytes == 3
    finally:
        stop(process)
