"""Reading an uploaded CSV or JSONL dataset: rows with line numbers, or errors per line.

No database or network; the service stores what they return. CSV cells are strings and are typed here
from the prompt's variable schema (`row_variables`), JSONL values are kept as they are."""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from typing import Any

from prompts.rendering import parse_form_value

EXPECTED_COLUMN_NAMES = ("expected", "expected_output", "ideal", "answer")
MAX_ERRORS_SHOWN = 50


@dataclass(frozen=True, slots=True)
class RowError:
    line: int | None  # None: about the whole file
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line else self.message


@dataclass(frozen=True, slots=True)
class ErrorGroup:
    """One problem said once, with every line it was found on."""

    message: str
    lines: tuple[int, ...] = ()

    @property
    def where(self) -> str:
        """`Line 3`, or `Lines 2-5, 9` (with an en dash): consecutive lines as a range."""
        if not self.lines:
            return ""
        spans: list[str] = []
        start = prev = self.lines[0]
        for line in (*self.lines[1:], None):
            if line is not None and line == prev + 1:
                prev = line
                continue
            spans.append(str(start) if start == prev else f"{start}\u2013{prev}")
            if line is not None:
                start = prev = line
        return f"{'Lines' if len(self.lines) > 1 else 'Line'} {', '.join(spans)}"

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.lines else self.message


# "(got 2,100)" and the like: the part of a message that differs from row to row.
_PER_ROW_DETAIL = re.compile(r"\s*\(got [^)]*\)")


def group_errors(errors: list[tuple[int | None, str]]) -> list[ErrorGroup]:
    """Errors that say the same thing (a length limit broken on every row, say) as one
    message listing their lines, in the order they were first found."""
    groups: dict[str, list[int]] = {}
    for line, message in errors:
        lines = groups.setdefault(_PER_ROW_DETAIL.sub("", message), [])
        if line:
            lines.append(line)
    return [ErrorGroup(message, tuple(sorted(set(lines)))) for message, lines in groups.items()]


@dataclass(slots=True)
class ParsedDataset:
    format: str
    columns: list[str] = field(default_factory=list)
    rows: list[tuple[int, dict[str, Any]]] = field(default_factory=list)  # (line, values)
    errors: list[RowError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def dataset_format(filename: str) -> str | None:
    name = filename.lower()
    if name.endswith(".csv"):
        return "csv"
    if name.endswith((".jsonl", ".ndjson")):
        return "jsonl"
    return None


def parse_dataset(filename: str, data: bytes, *, max_rows: int) -> ParsedDataset:
    fmt = dataset_format(filename)
    if fmt is None:
        return ParsedDataset("", errors=[RowError(None, "Upload a .csv or .jsonl file.")])
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        return ParsedDataset(fmt, errors=[RowError(line, "not UTF-8 text")])
    parsed = _parse_csv(text) if fmt == "csv" else _parse_jsonl(text)
    if not parsed.errors:
        if not parsed.rows:
            parsed.errors.append(RowError(None, "The file has no data rows."))
        elif len(parsed.rows) > max_rows:
            parsed.errors.append(
                RowError(
                    None, f"The file has {len(parsed.rows):,} rows; the limit is {max_rows:,}."
                )
            )
    del parsed.errors[MAX_ERRORS_SHOWN:]
    return parsed


def _parse_csv(text: str) -> ParsedDataset:
    parsed = ParsedDataset("csv")
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        parsed.errors.append(RowError(1, f"unreadable header ({exc})"))
        return parsed
    if not header or not any(name.strip() for name in header):
        parsed.errors.append(RowError(1, "the first line must name the columns"))
        return parsed
    columns = [name.strip() for name in header]
    for position, name in enumerate(columns, start=1):
        if not name:
            parsed.errors.append(RowError(1, f"column {position} has no name"))
        elif columns.index(name) != position - 1:
            parsed.errors.append(RowError(1, f"column name {name!r} appears twice"))
    if parsed.errors:
        return parsed
    parsed.columns = columns
    line = reader.line_num
    while True:
        start = line + 1
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            parsed.errors.append(RowError(start, f"unreadable CSV ({exc})"))
            break
        line = reader.line_num
        if not record or (len(record) == 1 and not record[0].strip()):
            continue  # a blank line
        if len(record) != len(columns):
            parsed.errors.append(
                RowError(start, f"expected {len(columns)} fields, found {len(record)}")
            )
            continue
        parsed.rows.append((start, dict(zip(columns, record, strict=True))))
    return parsed


def _parse_jsonl(text: str) -> ParsedDataset:
    parsed = ParsedDataset("jsonl")
    columns: dict[str, None] = {}
    for line, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            parsed.errors.append(RowError(line, f"not valid JSON ({exc.msg}, column {exc.colno})"))
            continue
        if not isinstance(value, dict):
            parsed.errors.append(
                RowError(line, f"expected a JSON object, found {type(value).__name__}")
            )
            continue
        columns.update(dict.fromkeys(value))
        parsed.rows.append((line, value))
    parsed.columns = list(columns)
    return parsed


def guess_expected_column(columns: list[str], variable_names: set[str]) -> str:
    for name in columns:
        if name.lower() in EXPECTED_COLUMN_NAMES and name not in variable_names:
            return name
    return ""


def default_mapping(columns: list[str], variables: list[dict]) -> dict[str, str]:
    """Each variable maps to the column of the same name (case-insensitive), if there is one."""
    by_lower = {name.lower(): name for name in columns}
    mapping = {}
    for variable in variables:
        column = by_lower.get(variable["name"].lower())
        if column:
            mapping[variable["name"]] = column
    return mapping


def unmapped_variables(variables: list[dict], mapping: dict[str, str]) -> list[str]:
    """Required variables without a default that no column feeds: a batch cannot run."""
    return [
        v["name"]
        for v in variables
        if v.get("required") and v.get("default") in (None, "") and not mapping.get(v["name"])
    ]


def _typed(value: Any, variable: dict) -> Any:
    """A CSV cell (a string) typed by the variable's declared type, as the prompt editor's
    form does; JSONL values pass through (the prompt's validation checks them)."""
    if not isinstance(value, str):
        return value
    try:
        return parse_form_value(variable, value)
    except ValueError as exc:
        raise ValueError(f"{variable['name']}: {exc}") from None


def row_variables(
    values: dict[str, Any], *, mapping: dict[str, str], variables: list[dict]
) -> dict[str, Any]:
    """The variables of one row. An empty cell counts as absent (the default applies).
    Raises ValueError naming the variable when a cell cannot have the declared type."""
    result: dict[str, Any] = {}
    for variable in variables:
        column = mapping.get(variable["name"])
        if not column or column not in values:
            continue
        value = values[column]
        if value is None or (isinstance(value, str) and value == ""):
            continue
        result[variable["name"]] = _typed(value, variable)
    return result


def expected_text(values: dict[str, Any], column: str) -> str | None:
    if not column or values.get(column) in (None, ""):
        return None
    value = values[column]
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
