"""instance_from_schema: the generator behind tool-call arguments and structured output."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from simulator.schema import instance_from_schema
from simulator.text import count_tokens

TREE: dict[str, Any] = {
    "$ref": "#/definitions/node",
    "definitions": {
        "node": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "children": {"type": "array", "items": {"$ref": "#/definitions/node"}},
            },
            "required": ["name"],
            "additionalProperties": False,
        }
    },
}
SCHEMAS: dict[str, dict[str, Any]] = {
    "recursive $ref into definitions": TREE,
    "bounded strings": {"type": "string", "minLength": 30, "maxLength": 32},
    "exclusive bounds": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
    "integer with a maximum only": {"type": "integer", "maximum": -5},
    "unique enum items": {
        "type": "array",
        "items": {"enum": ["a", "b", "c"]},
        "minItems": 3,
        "uniqueItems": True,
    },
    "nullable type list": {"type": ["null", "integer"], "minimum": 3, "maximum": 3},
    "oneOf": {"oneOf": [{"type": "boolean"}, {"type": "string"}]},
    "const": {"const": {"version": 2}},
    "formats": {
        "type": "object",
        "properties": {
            kind: {"type": "string", "format": kind}
            for kind in ("date", "date-time", "time", "email", "uri", "uuid")
        },
    },
    "required names missing from properties": {"type": "object", "required": ["id"]},
    "empty schema": {},
}


@pytest.mark.parametrize("schema", SCHEMAS.values(), ids=SCHEMAS.keys())
@pytest.mark.parametrize("seed", [0, 1, 2**63])
def test_instances_are_valid_for_their_schema(schema: dict[str, Any], seed: int) -> None:
    instance = instance_from_schema(schema, seed)

    jsonschema.validate(instance, schema, format_checker=jsonschema.FormatChecker())


def test_the_same_seed_gives_the_same_instance_and_another_seed_another() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "number"}}}

    assert instance_from_schema(schema, 7) == instance_from_schema(schema, 7)
    assert instance_from_schema(schema, 7) != instance_from_schema(schema, 8)


def test_nullable_branches_prefer_a_value_over_null() -> None:
    schema = {"anyOf": [{"type": "null"}, {"type": "integer", "minimum": 5, "maximum": 5}]}

    assert instance_from_schema(schema, 0) == 5


def test_deep_recursion_stops_at_required_properties() -> None:
    def depth(node: dict[str, Any]) -> int:
        return 1 + max((depth(child) for child in node.get("children", [])), default=0)

    assert all(depth(instance_from_schema(TREE, seed)) <= 8 for seed in range(20))


def test_remote_refs_are_refused() -> None:
    with pytest.raises(ValueError, match="local"):
        instance_from_schema({"$ref": "https://example.com/schema.json"}, 0)


def test_tokens_are_counted_at_four_characters_each() -> None:
    assert [count_tokens(text) for text in ("", "abcd", "abcde", "x" * 400)] == [0, 1, 2, 100]
