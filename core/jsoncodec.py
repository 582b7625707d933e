"""JSON on the request path: orjson where it can, the standard library where it cannot.

orjson encodes and decodes in about a fifth of the json module's time; on a gateway request
(the upstream body, its answer, the usage spool's line and the usage writer's batch) that
was 4-8 % of the site's CPU. What orjson refuses and the json module accepts goes to the
json module, so nothing that worked before fails now: integers past 64 bits, strings with
lone surrogates and non-string keys on the way out; lone surrogate escapes and NaN on the
way in, and integers past 64 bits, which orjson would read as floats. Request bodies are
parsed by `core.jsonlimits`, with the json module and its limits.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import orjson

# Datetimes go to `default`, as they did with the json module: written as the caller says.
_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME


def as_text(value: object) -> str:
    """A `default` for the values JSON has no type for and the usage records hold: a Decimal
    as its digits, a date or datetime in ISO 8601."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.date):  # a datetime too
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(value: Any, *, default: Callable[[Any], Any] | None = None) -> bytes:
    """Compact JSON (no spaces after `,` and `:`) in UTF-8. Past orjson, text is escaped to
    ASCII, so that a lone surrogate (an upstream can answer with one) still encodes."""
    try:
        return orjson.dumps(value, default=default, option=_OPTIONS)
    except orjson.JSONEncodeError:
        return json.dumps(
            value, default=default, separators=(",", ":"), check_circular=False
        ).encode()


# orjson reads an integer past 64 bits as a float, without an error: a text with 20 digits in
# a row (in a number or a string) is read by the json module, exactly. Found by mapping every
# digit to 0 (a regex search cost more than the parse).
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_TWENTY_DIGITS = b"0" * 20


def loads(data: bytes | str) -> Any:
    raw = data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass")
    if _TWENTY_DIGITS not in raw.translate(_DIGITS_AS_ZERO):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    return json.loads(data)
