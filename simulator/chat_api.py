"""POST /v1/chat/completions: the request read as a Conversation, the answer as a ChatCompletion
or as a chunk stream, in the shapes the openai SDK (3.x) accepts under strict validation."""

from __future__ import annotations

import secrets
import time
from typing import Any

from simulator.engine import Completion, Conversation, FunctionTool
from simulator.failures import invalid_request
from simulator.parsing import (
    NO_PARAMETERS,
    TOOL_CHOICE_OPTIONS,
    framing_tokens,
    max_tokens,
    output_schema,
    reasoning_effort,
    require_list,
    require_name,
    require_object,
    text_of,
)
from simulator.streaming import Event, EventStream, dumps

_DONE = "data: [DONE]\n\n"


def conversation(body: dict[str, Any], model: str) -> Conversation:
    messages = require_list(body.get("messages"), "messages")
    if not messages:
        raise invalid_request("Missing required parameter: 'messages'.", param="messages")
    texts = tuple(text_of(message) for message in messages)
    tools = require_list(body.get("tools"), "tools")
    response_format = require_object(body.get("response_format"), "response_format")
    schema = output_schema(
        response_format.get("type"),
        response_format.get("json_schema"),
        "response_format.json_schema",
    )
    forced_tool, tools_allowed = _tool_choice(body.get("tool_choice"))
    return Conversation(
        model=model,
        texts=texts,
        framing_tokens=framing_tokens(len(texts), tools, schema),
        tools=_function_tools(tools),
        tools_allowed=tools_allowed,
        forced_tool=forced_tool,
        has_tool_result=any(message.get("role") in ("tool", "function") for message in messages),
        output_schema=schema,
        reasoning_effort=reasoning_effort(body.get("reasoning_effort"), "reasoning_effort"),
        max_output_tokens=max_tokens(body, "max_completion_tokens", "max_tokens"),
    )


def completion_object(completion: Completion, body: dict[str, Any]) -> dict[str, Any]:
    return {
        **_envelope(completion, body, "chat.completion", _new_id()),
        "choices": [
            {
                "index": 0,
                "message": _message(completion),
                "finish_reason": _finish_reason(completion),
                "logprobs": None,
            }
        ],
        "usage": usage(completion),
    }


def event_stream(completion: Completion, body: dict[str, Any]) -> EventStream:
    envelope = _envelope(completion, body, "chat.completion.chunk", _new_id())
    # Streams are mostly deltas: the envelope they share is encoded once, not once per chunk.
    envelope_json = dumps(envelope)[:-1]

    def chunk(delta_json: str, finish_reason: str | None = None) -> str:
        choice = f'{{"index":0,"delta":{delta_json},"finish_reason":{dumps(finish_reason)},"logprobs":null}}'
        return f'data: {envelope_json},"choices":[{choice}]}}\n\n'

    if completion.tool_name:
        # The first chunk names the call; index 0 is what the SDK's accumulator keys it by.
        call = {"index": 0, **_tool_call(completion, "")}
        start = {"role": "assistant", "content": None, "tool_calls": [call]}
        deltas = [
            (
                completion.chunk_delay(piece),
                chunk(dumps({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})),
            )
            for piece in completion.chunks()
        ]
    else:
        start = {"role": "assistant", "content": ""}
        deltas = [
            (completion.chunk_delay(piece), chunk(f'{{"content":{dumps(piece)}}}'))
            for piece in completion.chunks()
        ]
    tail: list[Event] = [(0.0, chunk("{}", _finish_reason(completion)))]
    if require_object(body.get("stream_options"), "stream_options").get("include_usage"):
        usage_chunk = {**envelope, "choices": [], "usage": usage(completion)}
        tail.append((0.0, f"data: {dumps(usage_chunk)}\n\n"))
    tail.append((0.0, _DONE))
    return EventStream(
        head=[(completion.first_token_delay, chunk(dumps(start)))], deltas=deltas, tail=tail
    )


def usage(completion: Completion) -> dict[str, Any]:
    return {
        "prompt_tokens": completion.input_tokens,
        "completion_tokens": completion.output_tokens,
        "total_tokens": completion.input_tokens + completion.output_tokens,
        "prompt_tokens_details": {
            "cached_tokens": completion.cached_tokens,
            "cache_write_tokens": completion.cache_write_tokens,
            "audio_tokens": 0,
        },
        "completion_tokens_details": {
            "reasoning_tokens": completion.reasoning_tokens,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _tool_choice(value: Any) -> tuple[str | None, bool]:
    """(the function the call must use, whether tools may be called at all)."""
    if value is None or value in TOOL_CHOICE_OPTIONS:
        return None, value != "none"
    if isinstance(value, dict) and value.get("type") == "function":
        function = require_object(value.get("function"), "tool_choice.function")
        return require_name(function, "tool_choice.function.name"), True
    raise invalid_request("Invalid 'tool_choice'.", param="tool_choice")


def _function_tools(tools: list[dict[str, Any]]) -> tuple[FunctionTool, ...]:
    functions = []
    for i, tool in enumerate(tools):
        if tool.get("type") != "function":
            continue  # custom tools: the simulator only calls functions
        function = require_object(tool.get("function"), f"tools[{i}].function")
        name = require_name(function, f"tools[{i}].function.name")
        functions.append(FunctionTool(name, function.get("parameters") or NO_PARAMETERS))
    return tuple(functions)


def _new_id() -> str:
    return f"chatcmpl-{secrets.token_hex(12)}"


def _envelope(
    completion: Completion, body: dict[str, Any], object_type: str, completion_id: str
) -> dict[str, Any]:
    return {
        "id": completion_id,
        "object": object_type,
        "created": int(time.time()),
        "model": completion.model,
        "service_tier": body.get("service_tier") or "default",
        "system_fingerprint": None,
    }


def _message(completion: Completion) -> dict[str, Any]:
    if completion.tool_name:
        return {
            "role": "assistant",
            "content": None,
            "refusal": None,
            "tool_calls": [_tool_call(completion, completion.text)],
        }
    return {"role": "assistant", "content": completion.text, "refusal": None, "annotations": []}


def _tool_call(completion: Completion, arguments: str) -> dict[str, Any]:
    return {
        "id": f"call_{secrets.token_hex(12)}",
        "type": "function",
        "function": {"name": completion.tool_name, "arguments": arguments},
    }


def _finish_reason(completion: Completion) -> str:
    if completion.truncated:
        return "length"
    return "tool_calls" if completion.tool_name else "stop"
