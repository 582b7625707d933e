"""Price sheets: read and write the catalog's prices as files, exactly.

Two formats are read:

- ours (YAML or JSON), which `export_prices` writes and which round-trips::

    format: switchboard-prices/1
    models:
      - name: gpt-5.4-mini
        provider: openai
        tier: mini                      # optional: the catalog tier
        context_window: 400000          # optional model fields...
        max_output_tokens: 128000
        capabilities: {tools: true, tool_search: true, computer_use: false, ...}
        shutdown_date: "2026-12-11"     # or null
        replacement: gpt-6.1-terra      # or null
        prices:
          - effective_from: "2026-01-01T00:00:00+00:00"   # optional: --effective-from
            input: "0.75"               # USD per 1M tokens
            cached_input: "0.075"
            cache_write: null           # null: cache writes bill as input
            output: "4.50"
            long_context_threshold: 272000
            long_context_input_multiplier: "2"
            long_context_output_multiplier: "1.5"

- the community price map LiteLLM publishes (JSON): `{"<model>": {"input_cost_per_token":
  7.5e-07, "litellm_provider": "openai", "mode": "chat", ...}}`. Per-token costs become
  per-1M prices by exact Decimal arithmetic on the number as written (the JSON is parsed with
  `parse_float=Decimal`, never through float). `*_above_<N>k_tokens` keys give the
  long-context threshold (N * 1000) and the multipliers (the above-threshold price divided by
  the base price). Keys we do not model (service-tier prices, audio, images...) are ignored.

Parsing validates everything and reports each problem with its line (YAML, and JSON syntax)
and key path; nothing is applied from a sheet with any error (see
`routing.services.price_sheet_import`).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import PurePath
from typing import Any

import yaml
from django.utils.dateparse import parse_date, parse_datetime

from core.money import MILLION, PRICE_DIGITS

OUR_FORMAT = "switchboard-prices/1"
PRICE_QUANTUM = Decimal(1).scaleb(-PRICE_DIGITS["decimal_places"])  # 0.000001
MULTIPLIER_QUANTUM = Decimal("0.001")
MAX_PRICE = Decimal(10) ** (PRICE_DIGITS["max_digits"] - PRICE_DIGITS["decimal_places"])
CAPABILITIES = ("tools", "tool_search", "computer_use", "json_schema", "vision", "reasoning")
MODEL_FIELDS = ("provider", "tier", "context_window", "max_output_tokens", "shutdown_date")
# LiteLLM's capability flags → ours
LITELLM_CAPABILITIES = {
    "supports_function_calling": "tools",
    "supports_tool_search": "tool_search",
    "supports_computer_use": "computer_use",
    "supports_response_schema": "json_schema",
    "supports_vision": "vision",
    "supports_reasoning": "reasoning",
}
LITELLM_MODES = {"chat", "responses"}
_ABOVE = re.compile(r"^(input_cost_per_token|output_cost_per_token)_above_(\d+)k_tokens$")


class PriceSheetError(ValueError):
    """A sheet that cannot be imported; `problems` lists every line/key-level message."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        shown = problems[:20]
        more = f"\n… and {len(problems) - 20} more" if len(problems) > 20 else ""
        super().__init__("The price sheet has errors:\n" + "\n".join(shown) + more)


@dataclass
class SheetPrice:
    effective_from: dt.datetime | None
    input_per_mtok: Decimal
    cached_input_per_mtok: Decimal
    cache_write_per_mtok: Decimal | None
    output_per_mtok: Decimal
    long_context_threshold: int | None
    long_context_input_multiplier: Decimal
    long_context_output_multiplier: Decimal
    where: str

    def values(self) -> dict[str, Any]:
        return {
            "input_per_mtok": self.input_per_mtok,
            "cached_input_per_mtok": self.cached_input_per_mtok,
            "cache_write_per_mtok": self.cache_write_per_mtok,
            "output_per_mtok": self.output_per_mtok,
            "long_context_threshold": self.long_context_threshold,
            "long_context_input_multiplier": self.long_context_input_multiplier,
            "long_context_output_multiplier": self.long_context_output_multiplier,
        }


@dataclass
class SheetModel:
    name: str
    where: str
    fields: dict[str, Any] = field(default_factory=dict)  # only the keys the sheet gives
    prices: list[SheetPrice] = field(default_factory=list)
    replacement: str | None = None
    has_replacement: bool = False


@dataclass
class PriceSheet:
    format: str  # "switchboard" or "litellm"
    models: list[SheetModel]
    warnings: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


# --- loading text with line numbers and exact decimals ---------------------------------------


class _LineDict(dict):
    line: int | None = None
    key_lines: dict[Any, int] | None = None


class _SheetLoader(yaml.SafeLoader):
    """Safe YAML with exact decimals (no float) and line numbers on every mapping."""


def _construct_mapping(loader: _SheetLoader, node: yaml.MappingNode) -> _LineDict:
    mapping = _LineDict(loader.construct_mapping(node, deep=True))
    mapping.line = node.start_mark.line + 1
    mapping.key_lines = {}
    for key_node, _value_node in node.value:
        if isinstance(key_node, yaml.ScalarNode):
            mapping.key_lines[key_node.value] = key_node.start_mark.line + 1
    return mapping


def _construct_decimal(loader: _SheetLoader, node: yaml.ScalarNode) -> Decimal | str:
    text = loader.construct_scalar(node).replace("_", "")
    try:
        value = Decimal(text)
    except InvalidOperation:
        return text  # .inf / .nan: rejected later as "not a number"
    return value if value.is_finite() else text


def _construct_timestamp(loader: _SheetLoader, node: yaml.ScalarNode) -> str:
    return loader.construct_scalar(node)  # keep dates as text; we parse them ourselves


_SheetLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_SheetLoader.add_constructor("tag:yaml.org,2002:float", _construct_decimal)
_SheetLoader.add_constructor("tag:yaml.org,2002:timestamp", _construct_timestamp)


def _load(text: str, filename: str) -> Any:
    suffix = PurePath(filename).suffix.lower()
    if suffix == ".json" or (suffix not in (".yaml", ".yml") and text.lstrip().startswith("{")):
        try:
            return json.loads(text, parse_float=Decimal)
        except json.JSONDecodeError as exc:
            raise PriceSheetError(
                [f"line {exc.lineno}, column {exc.colno}: invalid JSON ({exc.msg})"]
            ) from None
    try:
        return yaml.load(text, Loader=_SheetLoader)  # noqa: S506  (a SafeLoader subclass)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise PriceSheetError([f"{where}invalid YAML ({exc.problem})"]) from None
    except yaml.YAMLError as exc:
        raise PriceSheetError([f"invalid YAML ({exc})"]) from None


def price_sheet_parse(text: str, *, filename: str = "prices.yaml") -> PriceSheet:
    """Parse and validate a sheet in either format. Raises PriceSheetError with every problem."""
    data = _load(text, filename)
    if isinstance(data, dict) and "models" in data and "format" in data:
        return _parse_ours(data)
    if isinstance(data, dict) and data and all(isinstance(v, dict) for v in data.values()):
        return _parse_litellm(data)
    raise PriceSheetError(
        [
            f"unrecognised sheet: expected our format (a mapping with 'format: {OUR_FORMAT}' and "
            "'models') or a LiteLLM price map (a mapping of model names to objects)"
        ]
    )


# --- our format ------------------------------------------------------------------------------


class _Problems:
    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, where: str, message: str) -> None:
        self.items.append(f"{where}: {message}")


def _where(node: Any, path: str, key: str | None = None) -> str:
    """'line N, path.key' — the key's own line when the sheet is YAML, else the mapping's."""
    lines = getattr(node, "key_lines", None) or {}
    line = lines.get(key) if key else None
    line = line or getattr(node, "line", None)
    full = f"{path}.{key}" if key and path else (key or path)
    return f"line {line}, {full}" if line else full


def _decimal(value: Any, where: str, problems: _Problems, *, nullable: bool = False) -> Any:
    if value is None:
        if not nullable:
            problems.add(where, "is required")
        return None
    if isinstance(value, bool | float):
        # floats only come from callers that bypass our loaders; refuse, never round-trip them
        problems.add(where, f"must be a decimal number written as text or a number, got {value!r}")
        return None
    try:
        number = Decimal(str(value)) if not isinstance(value, Decimal) else value
    except InvalidOperation:
        problems.add(where, f"not a number: {value!r}")
        return None
    if not number.is_finite() or number < 0:
        problems.add(where, f"must be a non-negative number, got {value!r}")
        return None
    return number


def _price_value(value: Any, where: str, problems: _Problems, *, nullable: bool = False) -> Any:
    number = _decimal(value, where, problems, nullable=nullable)
    if number is None:
        return None
    if number != number.quantize(PRICE_QUANTUM) or number >= MAX_PRICE:
        problems.add(
            where,
            f"{value} does not fit a price per 1M tokens "
            f"(at most {PRICE_DIGITS['decimal_places']} decimal places, below {MAX_PRICE})",
        )
        return None
    return number


def _multiplier(value: Any, where: str, problems: _Problems) -> Any:
    number = _decimal(value if value is not None else "1", where, problems)
    if number is None:
        return None
    if number != number.quantize(MULTIPLIER_QUANTUM) or number >= 1000:
        problems.add(where, f"{value} does not fit a multiplier (3 decimal places, below 1000)")
        return None
    return number


def _positive_int(value: Any, where: str, problems: _Problems, *, nullable: bool = True) -> Any:
    if value is None and nullable:
        return None
    if isinstance(value, bool) or not isinstance(value, int | Decimal) or value != int(value):
        problems.add(where, f"must be a whole number, got {value!r}")
        return None
    if value < 0 or value > 2_147_483_647:
        problems.add(where, f"out of range: {value}")
        return None
    return int(value)


def _datetime(value: Any, where: str, problems: _Problems) -> dt.datetime | None:
    if value is None:
        return None
    parsed = None
    if isinstance(value, str):
        parsed = parse_datetime(value)
        if parsed is None and (day := parse_date(value)) is not None:
            parsed = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    if parsed is None:
        problems.add(where, f"not a date/time: {value!r} (use ISO 8601, e.g. 2026-12-01T00:00:00Z)")
        return None
    if parsed.tzinfo is None:
        problems.add(where, f"needs a time zone (e.g. a trailing Z for UTC): {value!r}")
        return None
    return parsed


def _date(value: Any, where: str, problems: _Problems) -> dt.date | None:
    if value is None:
        return None
    parsed = parse_date(value) if isinstance(value, str) else None
    if parsed is None:
        problems.add(where, f"not a date: {value!r} (use YYYY-MM-DD)")
    return parsed


_OUR_MODEL_KEYS = {*MODEL_FIELDS, "name", "capabilities", "replacement", "prices"}
_OUR_PRICE_KEYS = {
    "effective_from",
    "input",
    "cached_input",
    "cache_write",
    "output",
    "long_context_threshold",
    "long_context_input_multiplier",
    "long_context_output_multiplier",
}


def _parse_ours(data: dict) -> PriceSheet:
    problems = _Problems()
    if data.get("format") != OUR_FORMAT:
        problems.add(
            _where(data, "", "format"), f"expected {OUR_FORMAT!r}, got {data.get('format')!r}"
        )
    unknown = set(data) - {"format", "models", "exported_at"}
    if unknown:
        problems.add(_where(data, "(top level)"), f"unknown keys: {', '.join(sorted(unknown))}")
    entries = data.get("models")
    if not isinstance(entries, list):
        problems.add(_where(data, "", "models"), "must be a list")
        raise PriceSheetError(problems.items)
    models: list[SheetModel] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        path = f"models[{index}]"
        if not isinstance(entry, dict):
            problems.add(path, "must be a mapping")
            continue
        name = entry.get("name")
        label = f"{path} ({name})" if isinstance(name, str) and name else path
        where = _where(entry, label)
        if not isinstance(name, str) or not name.strip():
            problems.add(where, "name is required")
            continue
        if name in seen:
            problems.add(where, f"model {name!r} appears twice")
        seen.add(name)
        unknown = set(entry) - _OUR_MODEL_KEYS
        if unknown:
            problems.add(where, f"unknown keys: {', '.join(sorted(unknown))}")
        model = SheetModel(name=name, where=where)
        for key in ("provider", "tier"):
            if key in entry:
                if entry[key] is not None and not isinstance(entry[key], str):
                    problems.add(_where(entry, label, key), "must be text")
                model.fields[key] = entry[key]
        for key in ("context_window", "max_output_tokens"):
            if key in entry:
                model.fields[key] = _positive_int(entry[key], _where(entry, label, key), problems)
        if "shutdown_date" in entry:
            model.fields["shutdown_date"] = _date(
                entry["shutdown_date"], _where(entry, label, "shutdown_date"), problems
            )
        if "replacement" in entry:
            model.has_replacement = True
            model.replacement = entry["replacement"]
        capabilities = entry.get("capabilities") or {}
        if not isinstance(capabilities, dict):
            problems.add(_where(entry, label, "capabilities"), "must be a mapping")
            capabilities = {}
        for key, value in capabilities.items():
            at = _where(capabilities, f"{label}.capabilities", key)
            if key not in CAPABILITIES:
                problems.add(at, "unknown capability")
            elif not isinstance(value, bool):
                problems.add(at, f"must be true or false, got {value!r}")
            else:
                model.fields[f"supports_{key}"] = value
        prices = entry.get("prices", [])
        if not isinstance(prices, list):
            problems.add(_where(entry, label, "prices"), "must be a list")
            prices = []
        starts: set[dt.datetime | None] = set()
        for position, row in enumerate(prices):
            row_path = f"{path}.prices[{position}]"
            if not isinstance(row, dict):
                problems.add(row_path, "must be a mapping")
                continue
            unknown = set(row) - _OUR_PRICE_KEYS
            if unknown:
                problems.add(_where(row, row_path), f"unknown keys: {', '.join(sorted(unknown))}")

            def at(key: str, row: dict = row, row_path: str = row_path) -> str:
                return _where(row, row_path, key)

            price = SheetPrice(
                effective_from=_datetime(row.get("effective_from"), at("effective_from"), problems),
                input_per_mtok=_price_value(row.get("input"), at("input"), problems),
                cached_input_per_mtok=_price_value(
                    row.get("cached_input", row.get("input")), at("cached_input"), problems
                ),
                cache_write_per_mtok=_price_value(
                    row.get("cache_write"), at("cache_write"), problems, nullable=True
                ),
                output_per_mtok=_price_value(row.get("output"), at("output"), problems),
                long_context_threshold=_positive_int(
                    row.get("long_context_threshold"), at("long_context_threshold"), problems
                ),
                long_context_input_multiplier=_multiplier(
                    row.get("long_context_input_multiplier"),
                    at("long_context_input_multiplier"),
                    problems,
                ),
                long_context_output_multiplier=_multiplier(
                    row.get("long_context_output_multiplier"),
                    at("long_context_output_multiplier"),
                    problems,
                ),
                where=_where(row, row_path),
            )
            if price.effective_from in starts:
                problems.add(_where(row, row_path), "two prices start at the same time")
            starts.add(price.effective_from)
            model.prices.append(price)
        models.append(model)
    if problems.items:
        raise PriceSheetError(problems.items)
    return PriceSheet(format="switchboard", models=models)


# --- LiteLLM's price map ---------------------------------------------------------------------


def _per_token_to_per_mtok(
    value: Any, where: str, problems: _Problems, warnings: list[str]
) -> Decimal | None:
    number = _decimal(value, where, problems)
    if number is None:
        return None
    per_mtok = number * MILLION
    if per_mtok != per_mtok.quantize(PRICE_QUANTUM):
        rounded = per_mtok.quantize(PRICE_QUANTUM, rounding=ROUND_HALF_UP)
        warnings.append(
            f"{where}: {value} per token is {per_mtok} per 1M; rounded to {rounded} "
            f"({PRICE_DIGITS['decimal_places']} decimal places)"
        )
        per_mtok = rounded
    if per_mtok >= MAX_PRICE:
        problems.add(where, f"{value} per token is too large for a price")
        return None
    return per_mtok.quantize(PRICE_QUANTUM)


def _ratio(high: Decimal, base: Decimal, where: str, warnings: list[str]) -> Decimal:
    if base == 0:
        warnings.append(f"{where}: base price is 0; long-context multiplier set to 1")
        return Decimal("1")
    ratio = high / base
    rounded = ratio.quantize(MULTIPLIER_QUANTUM, rounding=ROUND_HALF_UP)
    if rounded != ratio:
        warnings.append(f"{where}: multiplier {ratio} rounded to {rounded}")
    return rounded


def _parse_litellm(data: dict) -> PriceSheet:
    problems = _Problems()
    warnings: list[str] = []
    skipped: list[str] = []
    models: list[SheetModel] = []
    for key, entry in data.items():
        if key == "sample_spec":
            continue
        mode = entry.get("mode")
        provider = entry.get("litellm_provider")
        if mode not in LITELLM_MODES:
            skipped.append(f"{key}: mode {mode!r}")
            continue
        if not isinstance(provider, str) or not provider:
            problems.add(key, "litellm_provider is required")
            continue
        if entry.get("input_cost_per_token") is None or entry.get("output_cost_per_token") is None:
            skipped.append(f"{key}: no per-token prices")
            continue
        name = key.removeprefix(f"{provider}/")
        model = SheetModel(name=name, where=key)
        model.fields["provider"] = provider
        input_price = _per_token_to_per_mtok(
            entry["input_cost_per_token"], f"{key}.input_cost_per_token", problems, warnings
        )
        output_price = _per_token_to_per_mtok(
            entry["output_cost_per_token"], f"{key}.output_cost_per_token", problems, warnings
        )
        cached = entry.get("cache_read_input_token_cost")
        cached_price = (
            _per_token_to_per_mtok(cached, f"{key}.cache_read_input_token_cost", problems, warnings)
            if cached is not None
            else input_price
        )
        write = entry.get("cache_creation_input_token_cost")
        write_price = (
            _per_token_to_per_mtok(
                write, f"{key}.cache_creation_input_token_cost", problems, warnings
            )
            if write is not None
            else None
        )
        threshold, input_multiplier, output_multiplier = _long_context(
            key, entry, problems, warnings
        )
        if "max_input_tokens" in entry and entry["max_input_tokens"] is not None:
            model.fields["context_window"] = _positive_int(
                entry["max_input_tokens"], f"{key}.max_input_tokens", problems
            )
        if "max_output_tokens" in entry and entry["max_output_tokens"] is not None:
            model.fields["max_output_tokens"] = _positive_int(
                entry["max_output_tokens"], f"{key}.max_output_tokens", problems
            )
        if entry.get("deprecation_date") is not None:
            model.fields["shutdown_date"] = _date(
                entry["deprecation_date"], f"{key}.deprecation_date", problems
            )
        for flag, capability in LITELLM_CAPABILITIES.items():
            if flag in entry and entry[flag] is not None:
                if not isinstance(entry[flag], bool):
                    problems.add(f"{key}.{flag}", f"must be true or false, got {entry[flag]!r}")
                else:
                    model.fields[f"supports_{capability}"] = entry[flag]
        if None not in (input_price, output_price, cached_price):
            model.prices.append(
                SheetPrice(
                    effective_from=None,
                    input_per_mtok=input_price,
                    cached_input_per_mtok=cached_price,
                    cache_write_per_mtok=write_price,
                    output_per_mtok=output_price,
                    long_context_threshold=threshold,
                    long_context_input_multiplier=input_multiplier,
                    long_context_output_multiplier=output_multiplier,
                    where=key,
                )
            )
        models.append(model)
    if problems.items:
        raise PriceSheetError(problems.items)
    return PriceSheet(format="litellm", models=models, warnings=warnings, skipped=skipped)


def _long_context(
    key: str, entry: dict, problems: _Problems, warnings: list[str]
) -> tuple[int | None, Decimal, Decimal]:
    """Threshold and multipliers from `input/output_cost_per_token_above_<N>k_tokens`."""
    tiers: dict[int, dict[str, Any]] = {}
    for name, value in entry.items():
        match = _ABOVE.match(name)
        if match and value is not None:
            kind = "input" if match.group(1).startswith("input") else "output"
            tiers.setdefault(int(match.group(2)) * 1000, {})[kind] = (name, value)
    one = Decimal("1")
    if not tiers:
        return None, one, one
    threshold = min(tiers)
    if len(tiers) > 1:
        warnings.append(
            f"{key}: several long-context thresholds; using the lowest ({threshold} tokens)"
        )
    tier = tiers[threshold]
    input_multiplier = output_multiplier = one
    base_in = _decimal(entry.get("input_cost_per_token"), f"{key}.input_cost_per_token", problems)
    base_out = _decimal(
        entry.get("output_cost_per_token"), f"{key}.output_cost_per_token", problems
    )
    if "input" in tier and base_in is not None:
        name, value = tier["input"]
        high = _decimal(value, f"{key}.{name}", problems)
        if high is not None:
            input_multiplier = _ratio(high, base_in, f"{key}.{name}", warnings)
    if "output" in tier and base_out is not None:
        name, value = tier["output"]
        high = _decimal(value, f"{key}.{name}", problems)
        if high is not None:
            output_multiplier = _ratio(high, base_out, f"{key}.{name}", warnings)
    cached_key = f"cache_read_input_token_cost_above_{threshold // 1000}k_tokens"
    cached, cached_high = entry.get("cache_read_input_token_cost"), entry.get(cached_key)
    if cached is not None and cached_high is not None:
        high = _decimal(cached_high, f"{key}.{cached_key}", problems)
        base = _decimal(cached, f"{key}.cache_read_input_token_cost", problems)
        if high is not None and base and high / base != input_multiplier:
            warnings.append(
                f"{key}.{cached_key}: cached input multiplier {high / base} differs from the "
                f"input multiplier {input_multiplier}; cached input uses {input_multiplier}"
            )
    return threshold, input_multiplier, output_multiplier


# --- writing our format ----------------------------------------------------------------------


def _text(value: Decimal | None) -> str | None:
    if value is None:
        return None
    normalized = value.normalize()
    # keep "15" rather than "1.5E+1"
    return format(normalized, "f")


def price_sheet_render(models: list[dict[str, Any]], *, filename: str) -> str:
    """Serialize exported catalog entries (see services.price_sheet_export) as YAML or JSON.

    Money is written as strings, so no reader ever sees a float."""
    document = {"format": OUR_FORMAT, "models": models}
    if PurePath(filename).suffix.lower() == ".json":
        return json.dumps(document, indent=2) + "\n"
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100)


def price_row_export(price: Any) -> dict[str, Any]:
    return {
        "effective_from": price.effective_from.astimezone(dt.UTC).isoformat(),
        "input": _text(price.input_per_mtok),
        "cached_input": _text(price.cached_input_per_mtok),
        "cache_write": _text(price.cache_write_per_mtok),
        "output": _text(price.output_per_mtok),
        "long_context_threshold": price.long_context_threshold,
        "long_context_input_multiplier": _text(price.long_context_input_multiplier),
        "long_context_output_multiplier": _text(price.long_context_output_multiplier),
    }
