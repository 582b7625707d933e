"""json_fields: compare two JSON answers (or an answer and the expected output) field by field,
after per-field normalizers. Pure."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from playground.checks import is_json, parse_json

_NUMBER = re.compile(r"[-+]?\d[\d,]*(?:\.\d+)?|[-+]?\.\d+")
_DATE_FORMATS = (
    "%Y-%m-%d",
    "%d/%m/%Y",
    "%m/%d/%Y",
    "%d.%m.%Y",
    "%B %d, %Y",
    "%d %B %Y",
    "%b %d, %Y",
)


def _case(value: Any) -> Any:
    return value.casefold() if isinstance(value, str) else value


def _whitespace(value: Any) -> Any:
    return " ".join(value.split()) if isinstance(value, str) else value


def _number(value: Any) -> Any:
    """1,234.50 / "1234.5" / 1234.5 are the same number; text without a number is unchanged."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return Decimal(str(value)).normalize()
    if isinstance(value, str) and (match := _NUMBER.search(value)):
        try:
            return Decimal(match.group().replace(",", "")).normalize()
        except InvalidOperation:
            return value
    return value


def _date(value: Any) -> Any:
    """Dates written differently (2026-03-01, 01/03/2026, March 1, 2026) as ISO dates; day
    first is tried before month first for slashed dates."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    with_time = text[:10] if re.match(r"\d{4}-\d{2}-\d{2}T", text) else text
    for fmt in _DATE_FORMATS:
        try:
            return dt.datetime.strptime(with_time, fmt).date().isoformat()
        except ValueError:
            continue
    return value


NORMALIZERS: dict[str, Callable[[Any], Any]] = {
    "case": _case,
    "whitespace": _whitespace,
    "numbers": _number,
    "dates": _date,
}


@dataclass(frozen=True, slots=True)
class FieldResult:
    name: str
    match: bool
    answer: Any
    reference: Any


def compare_fields(
    answer: str,
    reference: str,
    *,
    fields: dict[str, list[str]],
    default: list[str] | tuple[str, ...] = (),
) -> list[FieldResult] | None:
    """One result per field (the listed ones, else every field of the reference), or None
    when the reference is not a JSON object. An answer that is not JSON misses every field."""
    ref = parse_json(reference)
    if not is_json(ref) or not isinstance(ref, dict):
        return None
    got = parse_json(answer)
    got = got if is_json(got) and isinstance(got, dict) else {}
    names = list(fields) or list(ref)
    results = []
    for name in names:
        normalizers = [NORMALIZERS[n] for n in fields.get(name, default)]
        a, b = got.get(name), ref.get(name)
        for normalize in normalizers:
            a, b = normalize(a), normalize(b)
        results.append(FieldResult(name, name in got and a == b, got.get(name), ref.get(name)))
    return results
