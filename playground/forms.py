"""Reading the playground's forms: columns, prompt variables and batch settings."""

from __future__ import annotations

from typing import Any

from django.http import QueryDict

from core.errors import InvalidVariables
from playground.columns import LETTERS, ColumnSpec, column_spec_parse
from prompts.rendering import parse_form_value


def columns_from_post(data: QueryDict) -> list[ColumnSpec]:
    """Columns `col-<i>-target`, `-temperature`, `-effort`, in order, up to four."""
    specs = []
    for index in range(len(LETTERS)):
        if not data.get(f"col-{index}-target"):
            continue  # absent, or "none" in the batch form
        specs.append(column_from_post(data, index))
    return specs


def column_from_post(data: QueryDict, index: int) -> ColumnSpec:
    return column_spec_parse(
        target=data.get(f"col-{index}-target", ""),
        temperature=data.get(f"col-{index}-temperature") or None,
        reasoning_effort=data.get(f"col-{index}-effort", ""),
    )


def variables_from_post(data: QueryDict, variables: list[dict]) -> dict[str, Any]:
    """Fields `var-<name>` typed by the schema; an empty field is left out (its default
    applies). InvalidVariables names every field that could not be read."""
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for spec in variables:
        raw = data.get(f"var-{spec['name']}")
        if raw is None or raw == "":
            continue
        try:
            values[spec["name"]] = parse_form_value(spec, raw)
        except ValueError as exc:
            errors[spec["name"]] = str(exc)
    if errors:
        raise InvalidVariables(f"Invalid variables: {', '.join(sorted(errors))}.", details=errors)
    return values


def variable_field_kind(spec: dict) -> str:
    """How the variables form shows a variable."""
    kind = spec.get("type", "string")
    if kind == "enum" or spec.get("enum"):
        return "select"
    if kind == "boolean":
        return "boolean"
    if kind in ("integer", "number"):
        return "number"
    if kind == "string" and spec.get("max_length") and spec["max_length"] <= 120:
        return "text"
    return "textarea"


def form_value(value: Any) -> str:
    """A variable's value as a form field shows it."""
    import json

    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)
