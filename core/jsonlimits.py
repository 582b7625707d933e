"""Parse request JSON with limits, so that hostile input is a clear 400, never a 500.

- malformed JSON, or a body that is not UTF-8 → 400 `invalid_json`
- nesting deeper than JSON_MAX_DEPTH (Python's own parser would hit the recursion limit and
  raise RecursionError, a 500) → 400 `json_too_deep`
- more than JSON_MAX_ITEMS keys and list items in total → 400 `json_too_large`
- NaN, Infinity, or a number too large for a double (it would read as infinity) → 400
  `invalid_json`
- NUL characters (PostgreSQL cannot store them) or lone UTF-16 surrogates (they cannot be
  encoded as UTF-8, so they would fail later, on write or on the upstream call) → 400
  `invalid_unicode`

`json_loads_limited` is for plain async views (the gateway); `LimitedJSONParser` is the DRF
parser configured for every /api endpoint. `body_read_limited`, `utf8_decode` and
`structure_check` let parsers of other formats (the prompts' YAML import) apply the same limits.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from django.conf import settings
from rest_framework.parsers import JSONParser

from core.errors import BadRequest, PayloadTooLarge

_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]", re.ASCII)


class JsonError(BadRequest):
    code = "invalid_json"


class JsonTooDeep(BadRequest):
    code = "json_too_deep"


class JsonTooLarge(BadRequest):
    code = "json_too_large"


class InvalidUnicode(BadRequest):
    code = "invalid_unicode"


def json_loads_limited(
    body: bytes | str, *, max_depth: int | None = None, max_items: int | None = None
) -> Any:
    """`json.loads` that raises a BadRequest subclass (400) for anything hostile."""
    max_depth = max_depth or settings.JSON_MAX_DEPTH
    max_items = max_items or settings.JSON_MAX_ITEMS
    raw = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
    if not raw.strip():
        raise JsonError("The request body is empty; a JSON object was expected.")
    text = utf8_decode(raw)
    if b"\\u0000" in raw:
        raise InvalidUnicode("NUL characters (\\u0000) are not allowed.")
    try:
        data = _decode(text)
    except RecursionError:
        raise JsonTooDeep(f"JSON nesting is deeper than the limit of {max_depth}.") from None
    except ValueError as exc:
        raise JsonError(f"Malformed JSON: {exc}.") from None
    check_strings = _SURROGATE_ESCAPE.search(raw) is not None
    structure_check(data, max_depth=max_depth, max_items=max_items, check_strings=check_strings)
    return data


def _non_finite(name: str) -> float:
    # NaN and Infinity are not JSON; Python's parser accepts them unless told otherwise.
    raise JsonError(f"Malformed JSON: {name} is not a JSON number.")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise JsonError(f"Malformed JSON: the number {text[:40]} is out of range.")
    return value


# One decoder for every body: `json.loads` with hooks builds a new JSONDecoder (and its C
# scanner) per call.
_decode = json.JSONDecoder(parse_constant=_non_finite, parse_float=_finite_float).decode


def utf8_decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidUnicode(f"The request body is not valid UTF-8 (byte {exc.start}).") from None


def body_read_limited(stream: Any) -> bytes:
    """A DRF parser's stream, read up to MAX_REQUEST_BYTES (413 past it)."""
    limit = settings.MAX_REQUEST_BYTES
    raw = stream.read(limit + 1) if stream is not None else b""
    if len(raw) > limit:
        raise PayloadTooLarge(f"The request body is larger than the limit of {limit} bytes.")
    return raw


def structure_check(
    data: Any,
    *,
    max_depth: int | None = None,
    max_items: int | None = None,
    check_strings: bool = True,
) -> None:
    """Iterative walk: depth and item count, and (with `check_strings`) that every string is
    free of NUL and encodes as UTF-8."""
    max_depth = max_depth or settings.JSON_MAX_DEPTH
    max_items = max_items or settings.JSON_MAX_ITEMS
    if not isinstance(data, dict | list) and not check_strings:
        return
    items = 0
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
            if check_strings:
                for key in node:
                    _check_string(key)
        elif isinstance(node, list):
            children = node
        else:
            if check_strings and isinstance(node, str):
                _check_string(node)
            continue
        if depth > max_depth:
            raise JsonTooDeep(f"JSON nesting is deeper than the limit of {max_depth}.")
        items += len(node)
        if items > max_items:
            raise JsonTooLarge(f"The JSON body has more than {max_items} keys and items.")
        for child in children:
            if isinstance(child, dict | list) or (check_strings and isinstance(child, str)):
                stack.append((child, depth + 1))


def _check_string(value: str) -> None:
    if "\x00" in value:
        raise InvalidUnicode("NUL characters (\\u0000) are not allowed.")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidUnicode(
            "The JSON body holds a lone UTF-16 surrogate (\\ud800-\\udfff) that is not a "
            "valid character."
        ) from None


class LimitedJSONParser(JSONParser):
    """DRF's JSON parser with our limits. Its errors are AppErrors, which DRF passes to
    core.errors.api_exception_handler: 400 in our one shape, with a specific code."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        return json_loads_limited(body_read_limited(stream))
