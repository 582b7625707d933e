"""Request checks and extraction shared by the Responses and Chat Completions endpoints."""

from __future__ import annotations

import json
from typing import Any

from simulator.engine import JSON_OBJECT_SCHEMA, MESSAGE_FRAMING_TOKENS
from simulator.failures import invalid_request
from simulator.profiles import REASONING_BUDGET
from simulator.schema import Schema
from simulator.text import count_tokens

# Where text lives in messages and items of both APIs: content parts, tool outputs, tool-call
# arguments (chat nests them in tool_calls[].function), reasoning summaries.
_TEXT_KEYS = ("content", "text", "output", "arguments", "summary", "tool_calls", "function")
TOOL_CHOICE_OPTIONS = ("auto", "required", "none")
# A function tool declared without parameters takes an empty object.
NO_PARAMETERS: Schema = {"type": "object", "properties": {}}


def text_of(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "\n".join(filter(None, map(text_of, value)))
    if isinstance(value, dict):
        return "\n".join(filter(None, (text_of(value[key]) for key in _TEXT_KEYS if key in value)))
    return ""


def framing_tokens(message_count: int, tools: Any, schema: Schema | None) -> int:
    """Tokens billed besides message text: message framing, tool definitions, output schema."""
    tokens = MESSAGE_FRAMING_TOKENS * message_count
    if tools:
        tokens += count_tokens(json.dumps(tools))
    if schema is not None:
        tokens += count_tokens(json.dumps(schema))
    return tokens


def max_tokens(body: dict[str, Any], *params: str) -> int | None:
    """The first of `params` present in the body, checked to be a positive integer."""
    for param in params:
        value = body.get(param)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise invalid_request(f"Invalid '{param}': expected an integer >= 1.", param=param)
        return value
    return None


def reasoning_effort(value: Any, param: str) -> str | None:
    if value is None or value in REASONING_BUDGET:
        return value
    efforts = ", ".join(REASONING_BUDGET)
    raise invalid_request(f"Invalid '{param}': expected one of {efforts}.", param=param)


def output_schema(format_type: Any, json_schema: Any, param: str) -> Schema | None:
    """The schema the output must satisfy: the given one, a generic object, or none for text."""
    if format_type in (None, "text"):
        return None
    if format_type == "json_object":
        return JSON_OBJECT_SCHEMA
    if format_type != "json_schema":
        raise invalid_request(f"Invalid '{param}.type': {format_type!r}.", param=f"{param}.type")
    if not isinstance(json_schema, dict) or not isinstance(json_schema.get("name"), str):
        raise invalid_request(f"Missing required parameter: '{param}.name'.", param=f"{param}.name")
    if not isinstance(json_schema.get("schema"), dict):
        raise invalid_request(
            f"Missing required parameter: '{param}.schema'.", param=f"{param}.schema"
        )
    return json_schema["schema"]


def require_list(value: Any, param: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise invalid_request(f"Invalid '{param}': expected an array of objects.", param=param)
    return value


def require_object(value: Any, param: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise invalid_request(f"Invalid '{param}': expected an object.", param=param)
    return value


def require_name(tool: dict[str, Any], param: str) -> str:
    name = tool.get("name")
    if not isinstance(name, str) or not name:
        raise invalid_request(f"Missing required parameter: '{param}'.", param=param)
    return name
