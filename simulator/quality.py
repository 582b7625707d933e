"""Tier-dependent quality of structured answers: cheaper models miss fields and enum values more often.

Every structured answer starts from the *right* answer for its input: a value built from the
output schema and a seed of the conversation's last text (the user's input), the same for every
model. A model then gets it wrong, deterministically per (model, input), at its family's rate:

| family (model names)               | flawed answers |
|------------------------------------|----------------|
| nano (`gpt-5.4-nano`, `gpt-6-luna`) | 40%           |
| mini (`gpt-5.4-mini`, `gpt-6.1-terra`) | 15%        |
| flagship (`gpt-5.4`, `gpt-6.1-sol`, others) | 5%   |
| reasoning (`gpt-5.5`, `gpt-6-astra`) | 2%          |

A flawed answer has one top-level field wrong: an enum takes another of its values, a boolean
flips, a number is off, a string is left empty, an optional field is dropped. The answer stays
valid against the schema, as strict structured outputs are. So nano against the flagship: the
flagship's answer is better on 0.40 x 0.95 = 38% of inputs, nano's on 0.60 x 0.05 = 3%, and
they are as good (identical, or one flaw each) on the other 59%. `simulator.judge` grades answers
against the same right answer.
"""

from __future__ import annotations

import json
import random
from typing import Any

from simulator.schema import Schema, instance_from_schema
from simulator.text import seed_for

FLAW_RATES: dict[str, float] = {"nano": 0.40, "mini": 0.15, "flagship": 0.05, "reasoning": 0.02}
_FAMILY_MARKERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("nano", ("nano", "luna")),
    ("mini", ("mini", "terra")),
    ("reasoning", ("5.5", "astra")),
)


def family(model: str) -> str:
    return next(
        (name for name, markers in _FAMILY_MARKERS if any(m in model for m in markers)),
        "flagship",
    )


def right_answer(schema: Schema, task_input: str) -> Any:
    """The answer every model aims at for this input. Built from the schema with its keys
    sorted, so that a schema stored where key order is not kept (PostgreSQL's jsonb) gives the
    same answer; the answer's fields then follow the schema's own order."""
    canonical = json.loads(json.dumps(schema, sort_keys=True))
    answer = instance_from_schema(canonical, seed_for("right-answer", task_input))
    if isinstance(answer, dict) and isinstance(schema.get("properties"), dict):
        order = [name for name in schema["properties"] if name in answer]
        answer = {name: answer[name] for name in [*order, *answer] if name in answer}
    return answer


def structured_answer(schema: Schema, model: str, texts: tuple[str, ...]) -> Any:
    task_input = texts[-1] if texts else ""
    answer = right_answer(schema, task_input)
    rng = random.Random(seed_for("flaw", family(model), model, task_input))
    if rng.random() >= FLAW_RATES[family(model)] or not isinstance(answer, dict) or not answer:
        return answer
    field = rng.choice(sorted(answer))
    properties = schema.get("properties", {})
    field_schema = properties.get(field, {})
    if field not in schema.get("required", []):
        return {name: value for name, value in answer.items() if name != field}
    return {**answer, field: _wrong(field_schema, answer[field], rng)}


def _wrong(schema: Schema, value: Any, rng: random.Random) -> Any:
    others = [option for option in schema.get("enum", []) if option != value]
    if others:
        return rng.choice(others)
    if "enum" in schema or "const" in schema:
        return value  # nothing else is allowed
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        low, high = schema.get("minimum"), schema.get("maximum")
        wrong = value + 1 if high is None or value + 1 <= high else value - 1
        return wrong if low is None or wrong >= low else value
    if isinstance(value, str):
        return "" if schema.get("minLength", 0) == 0 and "format" not in schema else value
    if isinstance(value, list):
        return value[: schema.get("minItems", 0)]
    return value


def flaws(schema: Schema, task_input: str, answer: Any) -> list[tuple[str, Any, Any]]:
    """The top-level fields where `answer` differs from the right answer: (field, given, right).
    An answer that is not a JSON object counts as wrong on every field."""
    right = right_answer(schema, task_input)
    if not isinstance(right, dict):
        return [] if answer == right else [("answer", answer, right)]
    if not isinstance(answer, dict):
        return [(name, None, value) for name, value in right.items()]
    return [
        (name, answer.get(name), value)
        for name, value in right.items()
        if answer.get(name) != value
    ]
