"""The simulator over real HTTP, through the real openai SDK in strict validation mode."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import time
from collections.abc import Iterable, Iterator
from typing import Any, Literal

import httpx2
import jsonschema
import openai
import pytest
from pydantic import BaseModel, Field

from simulator.engine import Conversation, complete
from simulator.profiles import CATALOG, latency_profile
from simulator.testing import SimulatorServer

MINI, FLAGSHIP = "gpt-5.4-mini", "gpt-5.4"
WEATHER_PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "minLength": 2, "maxLength": 40},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer", "minimum": 1, "maximum": 7},
        "hourly": {"type": "boolean"},
        "date": {"type": "string", "format": "date"},
        "where": {
            "type": "object",
            "properties": {
                "lat": {"type": "number", "minimum": -90, "maximum": 90},
                "lon": {"type": "number", "minimum": -180, "maximum": 180},
            },
            "required": ["lat", "lon"],
            "additionalProperties": False,
        },
        "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 3},
        "note": {"type": ["string", "null"]},
    },
    "required": ["city", "unit", "days"],
    "additionalProperties": False,
}
INVOICE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "vendor": {"type": "string"},
        "total": {"type": "number", "minimum": 0},
        "currency": {"type": "string", "enum": ["USD", "EUR", "GBP"]},
        "due_date": {"type": "string", "format": "date"},
        "lines": {"type": "array", "items": {"$ref": "#/$defs/line"}},
        "notes": {"anyOf": [{"type": "string"}, {"type": "null"}]},
    },
    "required": ["vendor", "total", "currency", "due_date", "lines", "notes"],
    "additionalProperties": False,
    "$defs": {
        "line": {
            "type": "object",
            "properties": {
                "description": {"type": "string"},
                "quantity": {"type": "integer", "minimum": 1},
            },
            "required": ["description", "quantity"],
            "additionalProperties": False,
        }
    },
}
RESPONSES_WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "parameters": WEATHER_PARAMETERS,
}
CHAT_WEATHER_TOOL = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": WEATHER_PARAMETERS},
}
LONG_INPUT = "Please summarise this meeting transcript. " * 200


def assert_valid(instance: Any, schema: dict[str, Any]) -> None:
    jsonschema.validate(instance, schema, format_checker=jsonschema.FormatChecker())


def ask(client: openai.OpenAI, api: str, text: str = "Hello", **kwargs: Any) -> Any:
    if api == "responses":
        return client.responses.create(input=text, **kwargs)
    return client.chat.completions.create(messages=[{"role": "user", "content": text}], **kwargs)


def read_into(seen: list[Any], stream: Iterable[Any]) -> None:
    """Keeps what arrived before a stream broke."""
    for item in stream:
        seen.append(item)


def failing(mode: str, selected_by: str, model: str = MINI) -> dict[str, Any]:
    if selected_by == "header":
        return {"model": model, "extra_headers": {"x-simulator-fail": mode}}
    return {"model": f"{model}@{mode}"}


# --- Responses API -------------------------------------------------------------------------


def test_responses_create_returns_text_and_complete_usage(client: openai.OpenAI) -> None:
    response = client.responses.create(model=MINI, input="Classify this ticket: refund please")

    assert response.status == "completed"
    assert response.model == MINI
    assert len(response.output_text.split()) >= 12
    usage = response.usage
    assert usage is not None
    assert usage.input_tokens > 0
    assert usage.input_tokens_details.cached_tokens == 0
    assert usage.input_tokens_details.cache_write_tokens == 0
    assert usage.output_tokens_details.reasoning_tokens == 0
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens


def test_responses_stream_deltas_add_up_to_the_completed_response(client: openai.OpenAI) -> None:
    events = list(client.responses.create(model=MINI, input="Summarise the call", stream=True))

    types = [event.type for event in events]
    assert types[:2] == ["response.created", "response.in_progress"]
    assert types[-1] == "response.completed"
    numbers = [event.sequence_number for event in events]
    assert numbers == sorted(numbers) == list(range(len(events)))
    deltas = [event.delta for event in events if event.type == "response.output_text.delta"]
    assert len(deltas) > 5
    completed = events[-1].response
    assert "".join(deltas) == completed.output_text
    assert completed.usage is not None
    assert completed.usage.output_tokens > 0
    assert completed.usage.input_tokens_details.cache_write_tokens == 0


def test_responses_stream_helper_gives_the_same_answer_as_create(client: openai.OpenAI) -> None:
    with client.responses.stream(model=FLAGSHIP, input="Draft a reply") as stream:
        final = stream.get_final_response()

    assert (
        final.output_text
        == client.responses.create(model=FLAGSHIP, input="Draft a reply").output_text
    )


def test_unknown_model_names_are_answered_under_their_own_name(client: openai.OpenAI) -> None:
    response = client.responses.create(model="acme-large-2", input="Hello")

    assert response.model == "acme-large-2"
    assert response.output_text


def test_instructions_and_message_items_all_count_as_input(client: openai.OpenAI) -> None:
    short = client.responses.create(model=MINI, input="Hi")
    longer = client.responses.create(
        model=MINI,
        instructions="You are a careful support agent. " * 10,
        input=[
            {"role": "user", "content": [{"type": "input_text", "text": "Hi"}]},
            {"role": "assistant", "content": "Hello, how can I help?"},
            {"type": "message", "role": "user", "content": "My invoice is wrong."},
        ],
    )

    assert short.usage is not None
    assert longer.usage is not None
    assert longer.usage.input_tokens > short.usage.input_tokens + 80


# --- Chat Completions API ------------------------------------------------------------------


def test_chat_completion_returns_a_message_and_complete_usage(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model=MINI,
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Where is my order?"}]},
        ],
    )

    choice = completion.choices[0]
    assert choice.finish_reason == "stop"
    assert choice.message.content
    usage = completion.usage
    assert usage is not None
    assert usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 0
    assert usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens == 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_chat_stream_with_include_usage_ends_with_a_usage_chunk(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model=MINI,
            messages=[{"role": "user", "content": "Where is my order?"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )

    *answer, last = chunks
    assert last.choices == []
    assert last.usage is not None
    assert last.usage.completion_tokens > 0
    assert answer[-1].choices[0].finish_reason == "stop"
    text = "".join(chunk.choices[0].delta.content or "" for chunk in answer)
    assert len(answer) > 5
    assert text == ask(client, "chat", "Where is my order?", model=MINI).choices[0].message.content


def test_chat_stream_without_include_usage_sends_no_usage(client: openai.OpenAI) -> None:
    chunks = list(ask(client, "chat", model=MINI, stream=True))

    assert all(chunk.choices and chunk.usage is None for chunk in chunks)


# --- Determinism, tokens, latency ----------------------------------------------------------


@pytest.mark.parametrize("api", ["responses", "chat"])
def test_same_input_gives_the_same_output_and_different_input_a_different_one(
    client: openai.OpenAI, api: str
) -> None:
    def text(prompt: str, model: str = MINI) -> str:
        answer = ask(client, api, prompt, model=model)
        return answer.output_text if api == "responses" else answer.choices[0].message.content

    assert text("Summarise Q3") == text("Summarise Q3")
    assert text("Summarise Q3") != text("Summarise Q4")
    assert text("Summarise Q3") != text("Summarise Q3", model=FLAGSHIP)


def test_a_long_input_reports_cached_tokens_in_steps_of_128(client: openai.OpenAI) -> None:
    usage = client.responses.create(model=MINI, input=LONG_INPUT).usage
    chat_usage = ask(client, "chat", LONG_INPUT, model=MINI).usage

    assert usage is not None
    assert chat_usage is not None
    cached = usage.input_tokens_details.cached_tokens
    assert usage.input_tokens > 1024
    assert 0 < cached < usage.input_tokens
    assert cached % 128 == 0
    assert chat_usage.prompt_tokens_details is not None
    assert chat_usage.prompt_tokens_details.cached_tokens == cached


def test_models_priced_for_cache_writes_report_cache_write_tokens(client: openai.OpenAI) -> None:
    terra = client.responses.create(model="gpt-6.1-terra", input=LONG_INPUT).usage
    mini = client.responses.create(model=MINI, input=LONG_INPUT).usage

    assert terra is not None
    assert mini is not None
    assert terra.input_tokens_details.cache_write_tokens > 0
    assert terra.input_tokens_details.cache_write_tokens % 128 == 0
    assert mini.input_tokens_details.cache_write_tokens == 0


@pytest.mark.parametrize("model", ["gpt-5.5", "gpt-6.1-sol", "gpt-6-astra"])
def test_reasoning_models_bill_reasoning_tokens_as_output(
    client: openai.OpenAI, model: str
) -> None:
    response = client.responses.create(model=model, input="Why did churn rise?")

    usage = response.usage
    assert usage is not None
    reasoning = usage.output_tokens_details.reasoning_tokens
    assert reasoning > 0
    assert usage.output_tokens > reasoning
    assert [item.type for item in response.output] == ["reasoning", "message"]


def test_reasoning_effort_raises_reasoning_tokens(client: openai.OpenAI) -> None:
    def reasoning(effort: Any) -> int:
        usage = client.responses.create(
            model=MINI, input="Plan", reasoning={"effort": effort}
        ).usage
        assert usage is not None
        return usage.output_tokens_details.reasoning_tokens

    chat_usage = ask(client, "chat", "Plan", model=MINI, reasoning_effort="high").usage

    assert reasoning("none") == 0
    assert 0 < reasoning("low") < reasoning("medium") < reasoning("high")
    assert chat_usage is not None
    assert chat_usage.completion_tokens_details is not None
    assert chat_usage.completion_tokens_details.reasoning_tokens == reasoning("high")


def test_max_output_tokens_cuts_the_answer_and_marks_it_incomplete(client: openai.OpenAI) -> None:
    response = client.responses.create(
        model="gpt-5.5", input="Write an essay", max_output_tokens=20
    )
    events = list(
        client.responses.create(
            model=MINI, input="Write an essay", max_output_tokens=8, stream=True
        )
    )

    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.usage is not None
    assert response.usage.output_tokens <= 20
    assert events[-1].type == "response.incomplete"


@pytest.mark.parametrize("limit", ["max_completion_tokens", "max_tokens"])
def test_chat_token_limits_cut_the_answer_with_finish_reason_length(
    client: openai.OpenAI, limit: str
) -> None:
    completion = ask(client, "chat", "Write an essay", model=MINI, **{limit: 10})

    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None
    assert completion.usage.completion_tokens <= 10


def test_latency_profiles_rank_nano_mini_flagship_and_reasoning() -> None:
    nano, mini, flagship, reasoning = (
        latency_profile(name) for name in ("gpt-5.4-nano", MINI, FLAGSHIP, "gpt-5.5")
    )

    assert (
        nano.first_token_ms
        < mini.first_token_ms
        < flagship.first_token_ms
        < reasoning.first_token_ms
    )
    assert nano.tokens_per_second > mini.tokens_per_second > flagship.tokens_per_second
    assert flagship.tokens_per_second > reasoning.tokens_per_second
    assert latency_profile("gpt-5.4-mini-2026-03-17") == mini


@pytest.fixture(scope="module")
def paced_client() -> Iterator[openai.OpenAI]:
    """A simulator at half the real latencies: slow enough to measure, fast enough for tests."""
    with SimulatorServer(latency_scale=0.5) as server:
        client = openai.OpenAI(base_url=server.url, api_key="test", max_retries=0)
        # The first stream pays one-off costs on both sides (0.1-0.5 s on a busy machine),
        # which would be counted against whichever model a test asks first.
        client.responses.create(model=MINI, input="Hi", stream=True).close()
        yield client


def test_mini_streams_its_first_token_sooner_than_the_flagship(paced_client: openai.OpenAI) -> None:
    def time_to_first_token(model: str) -> float:
        started = time.perf_counter()
        with paced_client.responses.create(model=model, input="Hi", stream=True) as stream:
            for event in stream:
                if event.type == "response.output_text.delta":
                    return time.perf_counter() - started
        raise AssertionError("no delta")

    mini, flagship = time_to_first_token(MINI), time_to_first_token(FLAGSHIP)

    assert 0.1 < mini < flagship
    assert flagship - mini > 0.1


def test_answer_seconds_fixes_the_answer_time_whatever_the_model_and_length() -> None:
    short = Conversation(model=MINI, texts=("Hi",), framing_tokens=4)
    long = Conversation(model=FLAGSHIP, texts=("word " * 2000,), framing_tokens=4)
    thinking = Conversation(model=MINI, texts=("Hi",), framing_tokens=4, reasoning_effort="high")

    for conversation in (short, long, thinking):
        paced = complete(conversation, 0.0, answer_seconds=1.0)
        assert paced.total_delay == pytest.approx(1.0)
        assert paced.text == complete(conversation, 0.0).text

    assert complete(short, 5.0, answer_seconds=0.0).total_delay == 0


def test_a_simulator_with_answer_seconds_answers_after_that_time() -> None:
    with SimulatorServer(answer_seconds=0.3) as server:
        client = openai.OpenAI(base_url=server.url, api_key="test", max_retries=0)
        for max_tokens in (5, 400):
            started = time.perf_counter()
            client.chat.completions.create(
                model=MINI, messages=[{"role": "user", "content": "Hi"}], max_tokens=max_tokens
            )
            assert time.perf_counter() - started >= 0.3


# --- Tools ---------------------------------------------------------------------------------


def test_responses_call_a_function_with_arguments_valid_for_its_schema(
    client: openai.OpenAI,
) -> None:
    response = client.responses.create(
        model=MINI, input="Weather in Paris?", tools=[RESPONSES_WEATHER_TOOL]
    )

    call = response.output[-1]
    assert call.type == "function_call"
    assert call.name == "get_weather"
    assert call.call_id
    assert_valid(json.loads(call.arguments), WEATHER_PARAMETERS)


def test_responses_answer_in_text_after_a_tool_result(client: openai.OpenAI) -> None:
    question = {"role": "user", "content": "Weather in Paris?"}
    call = client.responses.create(
        model=MINI, input=[question], tools=[RESPONSES_WEATHER_TOOL]
    ).output[-1]
    assert call.type == "function_call"

    answer = client.responses.create(
        model=MINI,
        tools=[RESPONSES_WEATHER_TOOL],
        input=[
            question,
            {
                "type": "function_call",
                "call_id": call.call_id,
                "name": call.name,
                "arguments": call.arguments,
            },
            {"type": "function_call_output", "call_id": call.call_id, "output": "18 C, sunny"},
        ],
    )

    assert [item.type for item in answer.output] == ["message"]
    assert answer.output_text


def test_chat_calls_a_function_with_arguments_valid_for_its_schema(client: openai.OpenAI) -> None:
    completion = ask(client, "chat", "Weather in Paris?", model=MINI, tools=[CHAT_WEATHER_TOOL])

    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert_valid(json.loads(call.function.arguments), WEATHER_PARAMETERS)


def test_chat_answers_in_text_after_a_tool_result(client: openai.OpenAI) -> None:
    messages: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
    first = client.chat.completions.create(model=MINI, messages=messages, tools=[CHAT_WEATHER_TOOL])
    message = first.choices[0].message
    messages += [
        message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": message.tool_calls[0].id, "content": "18 C, sunny"},
    ]

    answer = client.chat.completions.create(
        model=MINI, messages=messages, tools=[CHAT_WEATHER_TOOL]
    )

    assert answer.choices[0].finish_reason == "stop"
    assert answer.choices[0].message.tool_calls is None
    assert answer.choices[0].message.content


def test_streamed_function_call_arguments_are_valid_for_the_schema(client: openai.OpenAI) -> None:
    events = list(
        client.responses.create(
            model=MINI, input="Weather?", tools=[RESPONSES_WEATHER_TOOL], stream=True
        )
    )
    chunks = list(
        client.chat.completions.create(
            model=MINI,
            messages=[{"role": "user", "content": "Weather?"}],
            tools=[CHAT_WEATHER_TOOL],
            stream=True,
        )
    )

    deltas = [e.delta for e in events if e.type == "response.function_call_arguments.delta"]
    done = next(e for e in events if e.type == "response.function_call_arguments.done")
    assert len(deltas) > 1
    assert "".join(deltas) == done.arguments
    assert_valid(json.loads(done.arguments), WEATHER_PARAMETERS)
    assert events[-1].type == "response.completed"
    calls = [call for chunk in chunks for call in chunk.choices[0].delta.tool_calls or []]
    assert calls[0].function.name == "get_weather"
    assert calls[0].id
    assert_valid(
        json.loads("".join(call.function.arguments or "" for call in calls)), WEATHER_PARAMETERS
    )
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_tool_choice_none_answers_in_text(client: openai.OpenAI) -> None:
    response = client.responses.create(
        model=MINI, input="Weather?", tools=[RESPONSES_WEATHER_TOOL], tool_choice="none"
    )
    completion = ask(
        client, "chat", "Weather?", model=MINI, tools=[CHAT_WEATHER_TOOL], tool_choice="none"
    )

    assert [item.type for item in response.output] == ["message"]
    assert completion.choices[0].message.content


def test_tool_choice_naming_a_function_calls_that_function(client: openai.OpenAI) -> None:
    lookup = {"type": "function", "name": "lookup_order", "parameters": {"type": "object"}}
    response = client.responses.create(
        model=MINI,
        input="Where is order 42?",
        tools=[RESPONSES_WEATHER_TOOL, lookup],
        tool_choice={"type": "function", "name": "lookup_order"},
    )

    assert response.output[-1].type == "function_call"
    assert response.output[-1].name == "lookup_order"


def test_hosted_tools_are_accepted_and_the_first_function_is_called(client: openai.OpenAI) -> None:
    computer = {
        "type": "computer_use_preview",
        "display_width": 1024,
        "display_height": 768,
        "environment": "browser",
    }
    response = client.responses.create(
        model=MINI,
        input="Weather?",
        tools=[{"type": "tool_search"}, computer, RESPONSES_WEATHER_TOOL],
    )
    only_hosted = client.responses.create(model=MINI, input="Weather?", tools=[computer])

    assert response.output[-1].type == "function_call"
    assert response.output[-1].name == "get_weather"
    assert [tool.type for tool in response.tools] == [
        "tool_search",
        "computer_use_preview",
        "function",
    ]
    assert only_hosted.output_text


# --- Structured output ---------------------------------------------------------------------


def test_responses_json_schema_output_is_valid_for_the_schema(client: openai.OpenAI) -> None:
    text_format = {
        "type": "json_schema",
        "name": "invoice",
        "schema": INVOICE_SCHEMA,
        "strict": True,
    }
    response = client.responses.create(model=MINI, input="Extract", text={"format": text_format})

    assert_valid(json.loads(response.output_text), INVOICE_SCHEMA)


def test_chat_json_schema_output_is_valid_for_the_schema(client: openai.OpenAI) -> None:
    response_format = {
        "type": "json_schema",
        "json_schema": {"name": "invoice", "schema": INVOICE_SCHEMA, "strict": True},
    }
    completion = ask(client, "chat", "Extract", model=MINI, response_format=response_format)

    assert_valid(json.loads(completion.choices[0].message.content), INVOICE_SCHEMA)


def test_json_object_mode_answers_a_json_object(client: openai.OpenAI) -> None:
    response = client.responses.create(
        model=MINI, input="JSON", text={"format": {"type": "json_object"}}
    )
    completion = ask(client, "chat", "JSON", model=MINI, response_format={"type": "json_object"})

    assert isinstance(json.loads(response.output_text), dict)
    assert isinstance(json.loads(completion.choices[0].message.content), dict)


class InvoiceLine(BaseModel):
    description: str
    quantity: int = Field(ge=1)


class Invoice(BaseModel):
    vendor: str
    total: float
    currency: Literal["USD", "EUR"]
    due_date: datetime.date
    lines: list[InvoiceLine]
    notes: str | None


def test_the_sdk_parse_helpers_get_their_pydantic_models(client: openai.OpenAI) -> None:
    response = client.responses.parse(model=MINI, input="Extract", text_format=Invoice)
    completion = client.chat.completions.parse(
        model=MINI, messages=[{"role": "user", "content": "Extract"}], response_format=Invoice
    )

    assert isinstance(response.output_parsed, Invoice)
    assert isinstance(completion.choices[0].message.parsed, Invoice)


# --- Failure injection ---------------------------------------------------------------------

APIS = pytest.mark.parametrize("api", ["responses", "chat"])
SELECTORS = pytest.mark.parametrize("selected_by", ["header", "suffix"])


@APIS
@SELECTORS
def test_429_raises_rate_limit_error_with_retry_after(
    client: openai.OpenAI, api: str, selected_by: str
) -> None:
    with pytest.raises(openai.RateLimitError) as raised:
        ask(client, api, **failing("429", selected_by))

    error = raised.value
    assert error.status_code == 429
    assert error.response.headers["retry-after"] == "1"
    assert error.code == "rate_limit_exceeded"
    assert error.type == "rate_limit_error"
    assert error.request_id


@APIS
@SELECTORS
def test_500_raises_internal_server_error(
    client: openai.OpenAI, api: str, selected_by: str
) -> None:
    with pytest.raises(openai.InternalServerError) as raised:
        ask(client, api, **failing("500", selected_by))

    assert raised.value.type == "server_error"


@APIS
@SELECTORS
def test_400_raises_bad_request_error(client: openai.OpenAI, api: str, selected_by: str) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        ask(client, api, **failing("400", selected_by))

    assert raised.value.type == "invalid_request_error"


@SELECTORS
def test_hang_raises_timeout_error(client: openai.OpenAI, selected_by: str) -> None:
    started = time.perf_counter()
    with pytest.raises(openai.APITimeoutError):
        ask(client, "responses", **failing("hang", selected_by), timeout=0.5)

    assert time.perf_counter() - started < 2


@SELECTORS
def test_cut_responses_stream_raises_connection_error_before_completion(
    client: openai.OpenAI, selected_by: str
) -> None:
    seen: list[Any] = []
    with pytest.raises(openai.APIConnectionError) as raised:
        read_into(seen, ask(client, "responses", **failing("cut", selected_by), stream=True))

    assert isinstance(raised.value.__cause__, httpx2.RemoteProtocolError)
    types = [event.type for event in seen]
    assert "response.output_text.delta" in types
    assert "response.completed" not in types
    assert seen[0].response.model == MINI


@SELECTORS
def test_cut_chat_stream_raises_connection_error_before_finishing(
    client: openai.OpenAI, selected_by: str
) -> None:
    seen: list[Any] = []
    with pytest.raises(openai.APIConnectionError):
        read_into(seen, ask(client, "chat", **failing("cut", selected_by), stream=True))

    assert any(chunk.choices[0].delta.content for chunk in seen)
    assert all(chunk.choices[0].finish_reason is None for chunk in seen)
    assert {chunk.model for chunk in seen} == {MINI}


@APIS
def test_cut_non_streamed_answer_raises_connection_error(client: openai.OpenAI, api: str) -> None:
    with pytest.raises(openai.APIConnectionError) as raised:
        ask(client, api, **failing("cut", "suffix"))

    assert isinstance(raised.value.__cause__, httpx2.RemoteProtocolError)


def test_an_unknown_failure_mode_is_a_bad_request(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        ask(client, "responses", **failing("explode", "header"))

    assert raised.value.code == "unknown_failure_mode"


@pytest.mark.asyncio
async def test_a_hanging_request_does_not_hold_up_others(async_client: openai.AsyncOpenAI) -> None:
    hanging = asyncio.create_task(
        async_client.responses.create(model=f"{MINI}@hang", input="Wait", timeout=5)
    )
    started = time.perf_counter()
    answers = await asyncio.gather(
        *(async_client.responses.create(model=MINI, input=f"Question {i}") for i in range(20))
    )

    assert time.perf_counter() - started < 2
    assert all(answer.output_text for answer in answers)
    assert not hanging.done()
    hanging.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await hanging


# --- Bad requests, models, async -----------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("responses", {"input": "Hello"}, "model"),
        ("chat/completions", {"model": MINI}, "messages"),
        (
            "responses",
            {"model": MINI, "input": "Hi", "reasoning": {"effort": "max"}},
            "reasoning.effort",
        ),
        (
            "responses",
            {"model": MINI, "input": "Hi", "text": {"format": {"type": "json_schema"}}},
            "text.format.name",
        ),
        ("chat/completions", {"model": MINI, "messages": "Hi"}, "messages"),
    ],
)
def test_invalid_requests_get_400_naming_the_parameter(
    simulator_url: str, path: str, body: dict[str, Any], param: str
) -> None:
    response = httpx2.post(f"{simulator_url}/{path}", json=body)

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param


def test_a_body_that_is_not_json_gets_400(simulator_url: str) -> None:
    response = httpx2.post(f"{simulator_url}/responses", content=b"{not json")

    assert response.status_code == 400
    assert set(response.json()["error"]) == {"message", "type", "code", "param"}


def test_an_unknown_path_gets_404_in_openai_shape(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as raised:
        client.embeddings.create(model="text-embedding-3-small", input="Hi")

    assert raised.value.type == "invalid_request_error"


def test_models_list_names_the_catalog(client: openai.OpenAI) -> None:
    assert [model.id for model in client.models.list()] == list(CATALOG)


@pytest.mark.asyncio
async def test_the_async_client_streams_and_creates(async_client: openai.AsyncOpenAI) -> None:
    stream = await async_client.responses.create(model="gpt-5.4-nano", input="Hello", stream=True)
    events = [event async for event in stream]
    completion = await async_client.chat.completions.create(
        model="gpt-5.4-nano", messages=[{"role": "user", "content": "Hello"}]
    )

    assert events[-1].type == "response.completed"
    assert completion.choices[0].message.content
