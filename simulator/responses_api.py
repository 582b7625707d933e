"""POST /v1/responses: the request read as a Conversation, the answer as a Response object or
as an event stream, in the shapes the openai SDK (3.x) accepts under strict validation."""

from __future__ import annotations

import itertools
import secrets
import time
from dataclasses import dataclass
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


def conversation(body: dict[str, Any], model: str) -> Conversation:
    raw_input = body.get("input")
    if isinstance(raw_input, str):
        items: list[dict[str, Any]] = [{"role": "user", "content": raw_input}]
    else:
        items = require_list(raw_input, "input")
    instructions = body.get("instructions")
    texts = [instructions] if isinstance(instructions, str) and instructions else []
    texts += [text_of(item) for item in items]
    tools = require_list(body.get("tools"), "tools")
    text_format = require_object(
        require_object(body.get("text"), "text").get("format"), "text.format"
    )
    schema = output_schema(text_format.get("type"), text_format, "text.format")
    forced_tool, tools_allowed = _tool_choice(body.get("tool_choice"))
    reasoning = require_object(body.get("reasoning"), "reasoning")
    return Conversation(
        model=model,
        texts=tuple(texts),
        framing_tokens=framing_tokens(len(texts), tools, schema),
        tools=_function_tools(tools),
        tools_allowed=tools_allowed,
        forced_tool=forced_tool,
        # function_call_output, and the outputs of custom and computer tools alike
        has_tool_result=any(str(item.get("type", "")).endswith("_call_output") for item in items),
        output_schema=schema,
        reasoning_effort=reasoning_effort(reasoning.get("effort"), "reasoning.effort"),
        max_output_tokens=max_tokens(body, "max_output_tokens"),
    )


def response_object(completion: Completion, body: dict[str, Any]) -> dict[str, Any]:
    return _response(completion, body, _Ids.new())


def event_stream(completion: Completion, body: dict[str, Any]) -> EventStream:
    ids = _Ids.new()
    final = _response(completion, body, ids)
    started = {
        **final,
        "status": "in_progress",
        "completed_at": None,
        "incomplete_details": None,
        "output": [],
        "usage": None,
    }
    event = _Sequence()
    head: list[Event] = [
        (0.0, event("response.created", response=started)),
        (0.0, event("response.in_progress", response=started)),
    ]
    *reasoning, answer = final["output"]
    index = len(reasoning)
    delay = completion.first_token_delay
    for item in reasoning:
        head.append((delay, event("response.output_item.added", output_index=0, item=item)))
        head.append((0.0, event("response.output_item.done", output_index=0, item=item)))
        delay = 0.0
    item_events = _function_call_events if completion.tool_name else _message_events
    start, deltas, tail = item_events(completion, event, answer, index, delay)
    head += start
    tail.append((0.0, event("response.output_item.done", output_index=index, item=answer)))
    terminal = "response.incomplete" if completion.truncated else "response.completed"
    tail.append((0.0, event(terminal, response=final)))
    return EventStream(head=head, deltas=deltas, tail=tail)


def usage(completion: Completion) -> dict[str, Any]:
    return {
        "input_tokens": completion.input_tokens,
        "input_tokens_details": {
            "cached_tokens": completion.cached_tokens,
            "cache_write_tokens": completion.cache_write_tokens,
        },
        "output_tokens": completion.output_tokens,
        "output_tokens_details": {"reasoning_tokens": completion.reasoning_tokens},
        "total_tokens": completion.input_tokens + completion.output_tokens,
    }


def _tool_choice(value: Any) -> tuple[str | None, bool]:
    """(the function the call must use, whether tools may be called at all)."""
    if value is None or value in TOOL_CHOICE_OPTIONS:
        return None, value != "none"
    if isinstance(value, dict):
        if value.get("type") == "function":
            return require_name(value, "tool_choice.name"), True
        return None, True  # hosted-tool choices: the simulator only calls functions
    raise invalid_request("Invalid 'tool_choice'.", param="tool_choice")


def _function_tools(tools: list[dict[str, Any]]) -> tuple[FunctionTool, ...]:
    return tuple(
        FunctionTool(
            require_name(tool, f"tools[{i}].name"), tool.get("parameters") or NO_PARAMETERS
        )
        for i, tool in enumerate(tools)
        if tool.get("type") == "function"
    )


@dataclass(frozen=True, slots=True)
class _Ids:
    response: str
    message: str
    function_call: str
    call: str
    reasoning: str

    @classmethod
    def new(cls) -> _Ids:
        token = secrets.token_hex(12)
        return cls(f"resp_{token}", f"msg_{token}", f"fc_{token}", f"call_{token}", f"rs_{token}")


class _Sequence:
    """Formats events with the increasing sequence_number the SDK's stream state relies on."""

    def __init__(self) -> None:
        self._numbers = itertools.count()

    def __call__(self, type_: str, **fields: Any) -> str:
        payload = {"type": type_, "sequence_number": next(self._numbers), **fields}
        return f"event: {type_}\ndata: {dumps(payload)}\n\n"

    def deltas(self, type_: str, chunks: list[str], **fields: Any) -> list[str]:
        """Events that differ only in `delta`: streams are mostly these, so the fields they
        share are encoded once."""
        shared = dumps(fields)[1:-1]
        return [
            f'event: {type_}\ndata: {{"type":"{type_}","sequence_number":{next(self._numbers)},'
            f'{shared},"delta":{dumps(chunk)}}}\n\n'
            for chunk in chunks
        ]


def _response(completion: Completion, body: dict[str, Any], ids: _Ids) -> dict[str, Any]:
    now = int(time.time())
    text_config = body.get("text") or {}
    return {
        "id": ids.response,
        "object": "response",
        "created_at": now,
        "completed_at": now,
        "model": completion.model,
        "status": "incomplete" if completion.truncated else "completed",
        "incomplete_details": {"reason": "max_output_tokens"} if completion.truncated else None,
        "error": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "output": _output(completion, ids),
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        # echoed, as OpenAI does: tests see the key the gateway sent
        "prompt_cache_key": body.get("prompt_cache_key"),
        "reasoning": {"effort": (body.get("reasoning") or {}).get("effort"), "summary": None},
        "service_tier": body.get("service_tier") or "default",
        "text": {"format": text_config.get("format") or {"type": "text"}},
        "tool_choice": body.get("tool_choice") or "auto",
        "tools": body.get("tools") or [],
        "usage": usage(completion),
    }


def _output(completion: Completion, ids: _Ids) -> list[dict[str, Any]]:
    status = "incomplete" if completion.truncated else "completed"
    items: list[dict[str, Any]] = []
    if completion.reasoning_tokens:
        items.append({"id": ids.reasoning, "type": "reasoning", "summary": []})
    if completion.tool_name:
        items.append(
            {
                "id": ids.function_call,
                "type": "function_call",
                "call_id": ids.call,
                "name": completion.tool_name,
                "arguments": completion.text,
                "status": status,
            }
        )
    else:
        items.append(
            {
                "id": ids.message,
                "type": "message",
                "role": "assistant",
                "status": status,
                "content": [_text_part(completion.text)],
            }
        )
    return items


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": []}


def _message_events(
    completion: Completion,
    event: _Sequence,
    message: dict[str, Any],
    index: int,
    delay: float,
) -> tuple[list[Event], list[Event], list[Event]]:
    """(the item's start events, its deltas, its done events) for a message."""
    where = {"item_id": message["id"], "output_index": index, "content_index": 0}
    started = {**message, "status": "in_progress", "content": []}
    start = [
        (delay, event("response.output_item.added", output_index=index, item=started)),
        (0.0, event("response.content_part.added", **where, part=_text_part(""))),
    ]
    chunks = completion.chunks()
    texts = event.deltas("response.output_text.delta", chunks, **where, logprobs=[])
    deltas = [
        (completion.chunk_delay(chunk), text) for chunk, text in zip(chunks, texts, strict=True)
    ]
    text = completion.text
    tail = [
        (0.0, event("response.output_text.done", **where, text=text, logprobs=[])),
        (0.0, event("response.content_part.done", **where, part=_text_part(text))),
    ]
    return start, deltas, tail


def _function_call_events(
    completion: Completion,
    event: _Sequence,
    call: dict[str, Any],
    index: int,
    delay: float,
) -> tuple[list[Event], list[Event], list[Event]]:
    """(the item's start events, its deltas, its done events) for a function call."""
    where = {"item_id": call["id"], "output_index": index}
    started = {**call, "arguments": "", "status": "in_progress"}
    start = [(delay, event("response.output_item.added", output_index=index, item=started))]
    chunks = completion.chunks()
    texts = event.deltas("response.function_call_arguments.delta", chunks, **where)
    deltas = [
        (completion.chunk_delay(chunk), text) for chunk, text in zip(chunks, texts, strict=True)
    ]
    done = event(
        "response.function_call_arguments.done",
        **where,
        name=call["name"],
        arguments=completion.text,
    )
    return start, deltas, [(0.0, done)]
