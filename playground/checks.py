"""Automatic checks on an output, agreement between two outputs, and latency percentiles.

Pure functions: no database, no network."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from core.patterns import PatternError, pattern_search

_FENCE = re.compile(r"^\s*```(?:json)?\s*\n(.*?)\n\s*```\s*$", re.DOTALL)
_NOT_JSON = object()


def parse_json(text: str) -> Any:
    """The JSON value in `text` (a Markdown code fence around it is tolerated), or `_NOT_JSON`."""
    match = _FENCE.match(text or "")
    candidate = match.group(1) if match else (text or "")
    try:
        return json.loads(candidate)
    except (json.JSONDecodeError, TypeError):
        return _NOT_JSON


def is_json(value: Any) -> bool:
    return value is not _NOT_JSON


def pretty(text: str) -> str:
    """JSON output pretty-printed; anything else unchanged."""
    value = parse_json(text)
    if not is_json(value) or not isinstance(value, dict | list):
        return text
    return json.dumps(value, indent=2, ensure_ascii=False)


def schema_error(value: Any, schema: dict) -> str:
    """'' when `value` is valid against `schema`, else the first error, said plainly."""
    try:
        validator = Draft202012Validator(schema)
        error = next(iter(sorted(validator.iter_errors(value), key=lambda e: list(e.path))), None)
    except SchemaError as exc:
        return f"the prompt's schema is invalid: {exc.message}"
    if error is None:
        return ""
    where = "/".join(str(part) for part in error.path)
    return f"{where}: {error.message}" if where else error.message


@dataclass(frozen=True, slots=True)
class JsonVerdict:
    json_valid: bool | None  # None: no JSON expected
    schema_valid: bool | None
    error: str = ""
    pretty: str = ""


def json_verdict(text: str, schema: dict | None) -> JsonVerdict:
    """Whether an output that should be JSON (the prompt has a response schema) is."""
    if not schema:
        return JsonVerdict(None, None, "", text)
    value = parse_json(text)
    if not is_json(value):
        return JsonVerdict(False, False, "not valid JSON", text)
    error = schema_error(value, schema)
    return JsonVerdict(True, not error, error, pretty(text))


def normalized(text: str) -> Any:
    """What two outputs are compared on: parsed JSON if both are JSON, else collapsed text."""
    value = parse_json(text)
    if is_json(value):
        return ("json", value)
    return ("text", " ".join((text or "").split()).casefold())


def outputs_agree(a: str, b: str) -> bool:
    return normalized(a) == normalized(b)


@dataclass(frozen=True, slots=True)
class CheckConfig:
    """Which checks a batch runs. `exact` needs an expected output; `json`/`schema` apply
    when the prompt has a response schema."""

    exact: bool = False
    json: bool = False
    schema: dict | None = None
    contains: str = ""
    regex: str = ""
    names: tuple[str, ...] = field(default=())

    @classmethod
    def build(
        cls,
        *,
        has_expected: bool,
        schema: dict | None,
        contains: str = "",
        regex: str = "",
    ) -> CheckConfig:
        names = []
        if has_expected:
            names.append("exact")
        if schema:
            names += ["json", "schema"]
        if contains:
            names.append("contains")
        if regex:
            names.append("regex")
        return cls(
            exact=has_expected,
            json=bool(schema),
            schema=schema or None,
            contains=contains,
            regex=regex,
            names=tuple(names),
        )


@dataclass(frozen=True, slots=True)
class CheckRun:
    results: dict[str, bool]  # check name -> passed
    error: str = ""  # why a check could not decide (it counts as failed)


def run_checks(output: str, *, expected: str | None, config: CheckConfig) -> CheckRun:
    """Each configured check's result. A check without what it needs (no expected output on
    this row) is left out rather than failed; a regex that runs out of time fails with the
    reason in `error`."""
    results: dict[str, bool] = {}
    error = ""
    if config.exact and expected not in (None, ""):
        results["exact"] = outputs_agree(output, expected)
    if config.json:
        value = parse_json(output)
        results["json"] = is_json(value)
        results["schema"] = is_json(value) and not schema_error(value, config.schema or {})
    if config.contains:
        results["contains"] = config.contains.casefold() in (output or "").casefold()
    if config.regex:
        try:
            results["regex"] = pattern_search(config.regex, output or "")
        except PatternError as exc:
            results["regex"], error = False, f"regex check: {exc}"
    return CheckRun(results, error)


def passed(results: dict[str, bool]) -> bool | None:
    """All checks passed; None when no check applied."""
    return all(results.values()) if results else None


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile (p in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]
