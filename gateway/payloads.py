"""Reading upstream answers: usage, output text, and the checks that trigger escalation."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import jsonschema

from core.sizedcache import SizedCache
from gateway.calls import Usage
from gateway.upstream import CHAT


def _int(value: Any) -> int:
    return value if isinstance(value, int) and value >= 0 else 0


def usage_from_chat(usage: dict | None) -> Usage:
    return _usage(usage or {}, "prompt", "completion")


def usage_from_responses(usage: dict | None) -> Usage:
    return _usage(usage or {}, "input", "output")


def _usage(usage: dict, inward: str, outward: str) -> Usage:
    """An answer's `usage` object; Chat Completions names its counts `prompt_tokens` and
    `completion_tokens`, the Responses API `input_tokens` and `output_tokens`, and their
    details alike."""
    input_details = usage.get(f"{inward}_tokens_details") or {}
    output_details = usage.get(f"{outward}_tokens_details") or {}
    input_tokens = _int(usage.get(f"{inward}_tokens"))
    output_tokens = _int(usage.get(f"{outward}_tokens"))
    cached = min(_int(input_details.get("cached_tokens")), input_tokens)
    return Usage(
        input_tokens=input_tokens,
        cached_input_tokens=cached,
        cache_write_tokens=min(
            _int(input_details.get("cache_write_tokens")), input_tokens - cached
        ),
        output_tokens=output_tokens,
        reasoning_tokens=min(_int(output_details.get("reasoning_tokens")), output_tokens),
    )


def usage_of(api: str, data: dict) -> Usage:
    return (
        usage_from_chat(data.get("usage"))
        if api == CHAT
        else usage_from_responses(data.get("usage"))
    )


@dataclass(frozen=True, slots=True)
class Output:
    text: str
    tool_calls: bool = False
    refusal: str = ""


def output_of(api: str, data: dict) -> Output:
    if api == CHAT:
        choices = data.get("choices") or [{}]
        message = (choices[0] or {}).get("message") or {}
        return Output(
            text=message.get("content") or "",
            tool_calls=bool(message.get("tool_calls")),
            refusal=message.get("refusal") or "",
        )
    texts: list[str] = []
    refusal = ""
    tool_calls = False
    for item in data.get("output") or ():
        kind = item.get("type")
        if kind == "message":
            for part in item.get("content") or ():
                if part.get("type") == "output_text":
                    texts.append(part.get("text") or "")
                elif part.get("type") == "refusal":
                    refusal = part.get("refusal") or "refused"
        elif kind and kind != "reasoning":
            tool_calls = True  # function_call, computer_call, tool_search_call, ...
    return Output(text="".join(texts), tool_calls=tool_calls, refusal=refusal)


def _build_validator(schema_json: str) -> jsonschema.protocols.Validator:
    schema = json.loads(schema_json)
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    return cls(schema)


# Keyed by the schema a client sent: bounded by the schemas' size, not their count.
_VALIDATORS = SizedCache(2_000_000, _build_validator)


def _validator(schema_json: str) -> jsonschema.protocols.Validator:
    return _VALIDATORS.get(schema_json)


def check_output(output: Output, schema: dict | None) -> str | None:
    """Why the output fails its check (empty, refusal, not valid for the schema), or None."""
    if output.refusal:
        return "the model refused"
    if output.tool_calls:
        return None
    if not output.text.strip():
        return "empty output"
    if schema is None:
        return None
    try:
        value = json.loads(output.text)
    except ValueError:
        return "output is not valid JSON"
    error = jsonschema.exceptions.best_match(
        _validator(json.dumps(schema, sort_keys=True)).iter_errors(value)
    )
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "the output"
        return f"output does not match the JSON schema at {where}: {error.message[:120]}"
    return None


def schema_of_chat(body: dict) -> dict | None:
    response_format = body.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type") == "json_schema":
        return (response_format.get("json_schema") or {}).get("schema")
    return None


def schema_of_responses(body: dict) -> dict | None:
    text = body.get("text")
    if isinstance(text, dict):
        fmt = text.get("format")
        if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
            return fmt.get("schema")
    return None
