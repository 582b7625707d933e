"""Build a JSON value that is valid against a JSON schema: tool-call arguments and structured output.

Supported: type (a list means nullable: the first non-null type is used), properties, required,
additionalProperties (no extra keys are ever added), enum, const, items, minItems/maxItems,
uniqueItems, minimum/maximum and their exclusive forms, minLength/maxLength, format (date,
date-time, time, email, uri, uuid), anyOf/oneOf (the first non-null branch) and $ref into
$defs/definitions, recursive ones included. Not supported: pattern, allOf, multipleOf.
"""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Callable
from typing import Any

from simulator.text import VOCABULARY, words

Schema = dict[str, Any]

# Beyond this nesting depth only required properties and minItems are generated, so that
# recursive $refs (a tree of comments) terminate.
_MAX_DEPTH = 6
_DEFAULT_SPAN = 100


def instance_from_schema(schema: Schema, seed: int) -> Any:
    return _Generator(schema, random.Random(seed)).value(schema, 0)


class _Generator:
    def __init__(self, root: Schema, rng: random.Random) -> None:
        self.root = root
        self.rng = rng

    def value(self, schema: Schema, depth: int) -> Any:
        schema = self._resolve(schema)
        if "const" in schema:
            return schema["const"]
        if "enum" in schema:
            return self.rng.choice(schema["enum"])
        for keyword in ("anyOf", "oneOf"):
            if keyword in schema:
                return self.value(_first_non_null(schema[keyword]), depth)
        return _BUILDERS[_type_of(schema)](self, schema, depth)

    def _resolve(self, schema: Schema) -> Schema:
        seen = 0
        while "$ref" in schema:
            schema = self._lookup(schema["$ref"])
            seen += 1
            if seen > 32:
                raise ValueError("$ref chain does not end")
        return schema

    def _lookup(self, ref: str) -> Schema:
        if not ref.startswith("#"):
            raise ValueError(f"only local $refs are supported, not {ref!r}")
        node: Any = self.root
        for part in filter(None, ref[1:].split("/")):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node

    def object(self, schema: Schema, depth: int) -> dict[str, Any]:
        properties: dict[str, Schema] = schema.get("properties", {})
        required: list[str] = schema.get("required", [])
        names = [*properties, *(name for name in required if name not in properties)]
        if depth >= _MAX_DEPTH:
            names = [name for name in names if name in required]
        return {name: self.value(properties.get(name, {}), depth + 1) for name in names}

    def array(self, schema: Schema, depth: int) -> list[Any]:
        low = schema.get("minItems", 0)
        high = schema.get("maxItems", low + 3)
        count = low if depth >= _MAX_DEPTH else min(high, max(low, self.rng.randint(1, 3)))
        items = schema.get("items", {})
        if not schema.get("uniqueItems"):
            return [self.value(items, depth + 1) for _ in range(count)]
        unique: dict[str, Any] = {}
        for _ in range(count * 8):
            if len(unique) == count:
                break
            item = self.value(items, depth + 1)
            unique.setdefault(repr(item), item)
        return list(unique.values())

    def string(self, schema: Schema, depth: int) -> str:
        make = _FORMATS.get(schema.get("format", ""))
        text = make(self.rng) if make else words(self.rng, self.rng.randint(1, 4))
        while len(text) < schema.get("minLength", 0):
            text = f"{text} {self.rng.choice(VOCABULARY)}"
        return text[: schema.get("maxLength", len(text))]

    def integer(self, schema: Schema, depth: int) -> int:
        low, high = _bounds(schema, step=1)
        return self.rng.randint(math.ceil(low), math.floor(high))

    def number(self, schema: Schema, depth: int) -> float:
        low, high = _bounds(schema, step=0.01)
        value = round(self.rng.uniform(low, high), 2)
        return value if low <= value <= high else (low + high) / 2

    def boolean(self, schema: Schema, depth: int) -> bool:
        return self.rng.random() < 0.5

    def null(self, schema: Schema, depth: int) -> None:
        return None


_BUILDERS: dict[str, Callable[[_Generator, Schema, int], Any]] = {
    "object": _Generator.object,
    "array": _Generator.array,
    "string": _Generator.string,
    "integer": _Generator.integer,
    "number": _Generator.number,
    "boolean": _Generator.boolean,
    "null": _Generator.null,
}

_FORMATS: dict[str, Callable[[random.Random], str]] = {
    "date": lambda rng: f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
    "date-time": lambda rng: f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T09:30:00Z",
    "time": lambda rng: f"{rng.randint(8, 18):02d}:{rng.choice((0, 15, 30, 45)):02d}:00",
    "email": lambda rng: f"{rng.choice(VOCABULARY)}@example.com",
    "uri": lambda rng: f"https://example.com/{rng.choice(VOCABULARY)}",
    "uuid": lambda rng: str(uuid.UUID(int=rng.getrandbits(128), version=4)),
}


def _type_of(schema: Schema) -> str:
    declared = schema.get("type")
    if isinstance(declared, list):
        declared = next((kind for kind in declared if kind != "null"), "null")
    if declared:
        return declared
    if "properties" in schema:
        return "object"
    if "items" in schema:
        return "array"
    return "string"


def _first_non_null(branches: list[Schema]) -> Schema:
    return next((branch for branch in branches if branch.get("type") != "null"), branches[0])


def _bounds(schema: Schema, *, step: float) -> tuple[float, float]:
    """The inclusive range allowed by minimum/maximum and their exclusive forms (numbers, as in
    draft 6+), defaulting to a span of 100 that starts at 0 when the schema says nothing."""
    low = _number(schema.get("minimum"))
    high = _number(schema.get("maximum"))
    if (exclusive := _number(schema.get("exclusiveMinimum"))) is not None:
        low = max(low, exclusive + step) if low is not None else exclusive + step
    if (exclusive := _number(schema.get("exclusiveMaximum"))) is not None:
        high = min(high, exclusive - step) if high is not None else exclusive - step
    if low is None:
        low = min(0, high) if high is not None else 0
    if high is None:
        high = low + _DEFAULT_SPAN
    return low, high


def _number(value: Any) -> float | None:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None
