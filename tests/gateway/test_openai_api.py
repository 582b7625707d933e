"""/v1 through the real openai SDK, against the site under uvicorn and the simulator."""

from __future__ import annotations

import json
from decimal import Decimal

import openai
import pytest

from prompts.models import PromptVersion
from spend.models import Purpose, UsageRecord
from spend.pricing import cost_usd, price_at
from tests.gateway.conftest import usage_for

pytestmark = pytest.mark.django_db(transaction=True)

TRIAGE = "I was charged twice for my subscription this month, please refund one of them."
WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
}


def assert_priced(record: UsageRecord) -> None:
    """The record's cost is exactly its tokens at the price in force when it ran."""
    price = price_at(record.model, record.created_at)
    expected = cost_usd(
        price=price,
        input_tokens=record.input_tokens,
        cached_input_tokens=record.cached_input_tokens,
        cache_write_tokens=record.cache_write_tokens,
        output_tokens=record.output_tokens,
        reasoning_tokens=record.reasoning_tokens,
        service_tier=record.service_tier,
    )
    assert record.cost_usd == expected
    assert record.cost_usd > 0


def test_chat_with_model_auto_answers_and_records_a_priced_usage_record(sdk, team):
    raw = sdk.chat.completions.with_raw_response.create(
        model="auto",
        messages=[{"role": "user", "content": TRIAGE}],
        metadata={"task_tag": "classification"},
    )
    completion = raw.parse()

    assert completion.choices[0].message.content
    assert completion.model == "gpt-5.4-mini"  # the seeded policy: routine tasks to mini
    headers = raw.headers
    assert headers["x-switchboard-model"] == "gpt-5.4-mini"
    assert headers["x-switchboard-tier"] == "mini"
    assert headers["x-switchboard-route"].startswith("Routine tasks to mini:")
    [record] = usage_for(headers["x-request-id"])
    assert record.team_id == team.id
    assert record.purpose == Purpose.GATEWAY
    assert record.status == UsageRecord.Status.SUCCESS
    assert record.input_tokens == completion.usage.prompt_tokens
    assert record.output_tokens == completion.usage.completion_tokens
    assert record.rule == "Routine tasks to mini"
    assert_priced(record)
    assert Decimal(headers["x-switchboard-cost-usd"]) == record.cost_usd


def test_a_chat_stream_relays_deltas_and_usage_then_records_the_call(sdk):
    stream = sdk.chat.completions.with_raw_response.create(
        model="tier:mini",
        messages=[{"role": "user", "content": "Summarize our meeting about the Q3 roadmap."}],
        stream=True,
        stream_options={"include_usage": True},
    )
    request_id = stream.headers["x-request-id"]
    chunks = list(stream.parse())

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    usage_chunks = [c for c in chunks if c.usage]
    assert text
    assert len(usage_chunks) == 1
    [record] = usage_for(request_id)
    assert record.stream
    assert record.status == UsageRecord.Status.SUCCESS
    assert record.output_tokens == usage_chunks[0].usage.completion_tokens
    assert record.ttft_ms is not None
    assert_priced(record)
    assert stream.headers["content-type"].startswith("text/event-stream")
    assert stream.headers["x-switchboard-tier"] == "mini"


def test_a_chat_stream_without_include_usage_gets_no_usage_chunk_but_is_recorded(sdk):
    raw = sdk.chat.completions.with_raw_response.create(
        model="tier:nano", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    chunks = list(raw.parse())

    assert not [c for c in chunks if c.usage]
    [record] = usage_for(raw.headers["x-request-id"])
    assert record.output_tokens > 0


def test_responses_with_model_auto_non_streamed_and_streamed(sdk):
    raw = sdk.responses.with_raw_response.create(
        model="auto", input=TRIAGE, metadata={"task_tag": "extraction"}
    )
    response = raw.parse()
    with sdk.responses.stream(
        model="auto", input=TRIAGE, metadata={"task_tag": "extraction"}
    ) as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()

    assert response.output_text
    assert response.model == "gpt-5.4-mini"
    assert "".join(deltas) == final.output_text == response.output_text  # deterministic upstream
    [record] = usage_for(raw.headers["x-request-id"])
    assert record.input_tokens == response.usage.input_tokens
    assert_priced(record)
    streamed = wait_for_stream_record()
    assert streamed.output_tokens == final.usage.output_tokens


def wait_for_stream_record() -> UsageRecord:
    from tests.gateway.conftest import wait_for

    return wait_for(lambda: UsageRecord.objects.filter(stream=True).first())


def test_models_lists_auto_the_tiers_and_the_catalog(sdk):
    ids = [model.id for model in sdk.models.list()]

    assert ids[:5] == ["auto", "tier:nano", "tier:mini", "tier:flagship", "tier:reasoning"]
    assert {"gpt-5.4-nano", "gpt-5.4-mini", "gpt-5.4", "gpt-5.5", "gpt-6.1-terra"} <= set(ids)
    assert sdk.models.retrieve("gpt-5.4").id == "gpt-5.4"
    with pytest.raises(openai.NotFoundError):
        sdk.models.retrieve("gpt-1")


def test_a_named_catalog_model_is_used_as_asked(sdk):
    raw = sdk.chat.completions.with_raw_response.create(
        model="gpt-5.5", messages=[{"role": "user", "content": "hello"}]
    )

    assert raw.parse().model == "gpt-5.5"
    assert raw.headers["x-switchboard-tier"] == "reasoning"
    assert raw.headers["x-switchboard-route"] == "pinned: model gpt-5.5 set by the request"


def test_function_tools_pass_through_to_the_model(sdk):
    response = sdk.responses.create(
        model="tier:mini", input="Weather in Oslo?", tools=[WEATHER_TOOL]
    )
    chat = sdk.chat.completions.create(
        model="tier:mini",
        messages=[{"role": "user", "content": "Weather in Oslo?"}],
        tools=[
            {"type": "function", "function": {k: v for k, v in WEATHER_TOOL.items() if k != "type"}}
        ],
    )

    call = response.output[-1]
    assert call.type == "function_call"
    assert call.name == "get_weather"
    assert "city" in json.loads(call.arguments)
    assert chat.choices[0].message.tool_calls[0].function.name == "get_weather"


def test_the_responses_prompt_parameter_runs_a_stored_prompt(sdk, team):
    by_label = sdk.responses.with_raw_response.create(
        prompt={"id": "support-triage", "version": "production", "variables": {"message": TRIAGE}},
    )
    by_number = sdk.responses.create(
        prompt={"id": "support-triage", "version": "1", "variables": {"message": TRIAGE}},
    )

    answer = json.loads(by_label.parse().output_text)
    assert set(answer) == {"category", "urgency"}
    assert by_number.output_text == by_label.parse().output_text
    [record] = usage_for(by_label.headers["x-request-id"])
    version = PromptVersion.objects.get(prompt__team=team, prompt__slug="support-triage", number=1)
    assert record.prompt_version_id == version.id
    assert record.tier_name == "mini"  # task tag classification → the seeded rule


def test_computer_use_goes_to_a_model_that_has_it(sdk):
    computer = {
        "type": "computer_use_preview",
        "display_width": 1024,
        "display_height": 768,
        "environment": "browser",
    }

    raw = sdk.responses.with_raw_response.create(
        model="auto", input="Open the billing page", tools=[computer]
    )
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.responses.create(model="tier:mini", input="Open the billing page", tools=[computer])

    assert raw.headers["x-switchboard-tier"] == "flagship"
    assert raw.headers["x-switchboard-route"].startswith("Computer use needs flagship")
    assert refused.value.code == "unsupported_capability"
    assert "computer_use" in refused.value.message


def test_a_route_reason_outside_latin_1_is_percent_encoded_not_lost(catalog, request):
    from urllib.parse import unquote

    from routing.models import Rule

    Rule.objects.filter(name="Routine tasks to mini").update(name="定型タスク → mini 100%")
    sdk = request.getfixturevalue("sdk")  # the site starts after the rename
    raw = sdk.chat.completions.with_raw_response.create(
        model="auto",
        messages=[{"role": "user", "content": TRIAGE}],
        metadata={"task_tag": "classification"},
    )
    header = raw.headers["x-switchboard-route"]
    assert header.isascii()
    assert "?" not in header
    assert unquote(header).startswith("定型タスク → mini 100%:")


def _flex_call(sdk: openai.OpenAI, surface: str, model: str) -> tuple[str, str | None]:
    """One `service_tier: "flex"` request on `surface` through the SDK: its request id and
    the service tier the answer (or the stream's last event) says served it."""
    hello = "Say hello."
    if surface == "chat":
        raw = sdk.chat.completions.with_raw_response.create(
            model=model, messages=[{"role": "user", "content": hello}], service_tier="flex"
        )
        return raw.headers["x-request-id"], raw.parse().service_tier
    if surface == "chat-stream":
        raw = sdk.chat.completions.with_raw_response.create(
            model=model,
            messages=[{"role": "user", "content": hello}],
            service_tier="flex",
            stream=True,
            stream_options={"include_usage": True},
        )
        return raw.headers["x-request-id"], list(raw.parse())[-1].service_tier
    if surface == "responses":
        raw = sdk.responses.with_raw_response.create(model=model, input=hello, service_tier="flex")
        return raw.headers["x-request-id"], raw.parse().service_tier
    raw = sdk.responses.with_raw_response.create(
        model=model, input=hello, service_tier="flex", stream=True
    )
    *_, last = raw.parse()
    return raw.headers["x-request-id"], last.response.service_tier


@pytest.mark.parametrize("surface", ["chat", "chat-stream", "responses", "responses-stream"])
@pytest.mark.parametrize(
    ("model", "served"), [("gpt-5.4-mini@noflex", "default"), ("gpt-5.4-mini", "flex")]
)
def test_a_flex_request_is_billed_at_the_tier_the_upstream_served(sdk, surface, model, served):
    """The simulator's `@noflex` model serves flex requests at default (and says so in the
    answer and the stream): the record is priced at default, not at flex's half price."""
    from tests.gateway.conftest import add_model

    if model.endswith("@noflex"):
        add_model(model)
    request_id, answered = _flex_call(sdk, surface, model)

    assert answered == served
    [record] = usage_for(request_id)
    assert record.service_tier == served
    assert_priced(record)  # at the served tier's price
