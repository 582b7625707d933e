"""Judge mode: a request whose structured output is a judge's verdict is answered from what the
simulator knows of the answers' quality (see `simulator.quality`).

Recognised by the output schema alone: an object of exactly `verdict` (enum A, B, tie) and
`reason` is a pairwise judgement; exactly `score` (integer) and `reason` is a 1-5 score. The
last message holds the task and the answers as a JSON object after its first `{`:
`{"task": {"input": str, "output_schema": {...} | null}, "answers": {"A": str, "B": str}}` or,
to score, `{"task": {...}, "answer": str}`.

Answers are graded against the right answer for the task's input: fewer flawed fields wins, as
many is a tie. Like real judges, this one favours the first position: on a quarter of the ties
(deterministic per judge model and prompt) it says "A" anyway, which the caller's position
swap turns back into a tie. A task without an output schema (free text) cannot be graded: tie,
score 3.
"""

from __future__ import annotations

import json
from typing import Any

from simulator.quality import flaws
from simulator.schema import Schema
from simulator.text import seed_for

FIRST_POSITION_BIAS = 0.25  # share of ties the judge calls for answer A


def answer(schema: Schema, model: str, texts: tuple[str, ...]) -> str | None:
    """The judge's JSON answer, or None when the request is not a judgement."""
    kind = _kind(schema)
    payload = _payload(texts[-1]) if kind and texts else None
    if payload is None:
        return None
    task = payload.get("task") if isinstance(payload.get("task"), dict) else {}
    if kind == "score":
        found = _flaws(task, payload.get("answer"))
        if found is None:
            return json.dumps({"score": 3, "reason": "A free-text answer; nothing to grade."})
        score = max(1, 5 - 2 * len(found))
        return json.dumps({"score": score, "reason": _explain("The answer", found)})
    answers = payload.get("answers") if isinstance(payload.get("answers"), dict) else {}
    flaws_a, flaws_b = _flaws(task, answers.get("A")), _flaws(task, answers.get("B"))
    if flaws_a is None or flaws_b is None:
        verdict, reason = "tie", "Free-text answers; neither is clearly better."
    elif len(flaws_a) < len(flaws_b):
        verdict, reason = "A", _explain("Answer B", flaws_b)
    elif len(flaws_b) < len(flaws_a):
        verdict, reason = "B", _explain("Answer A", flaws_a)
    else:
        verdict, reason = "tie", "Both answers are as complete and correct as each other."
        if seed_for("bias", model, texts[-1]) % 100 < FIRST_POSITION_BIAS * 100:
            verdict, reason = "A", "Answer A reads slightly better."
    return json.dumps({"verdict": verdict, "reason": reason})


def _kind(schema: Schema) -> str | None:
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return None
    if set(properties) == {"verdict", "reason"}:
        return "pairwise" if properties["verdict"].get("enum") == ["A", "B", "tie"] else None
    if set(properties) == {"score", "reason"}:
        return "score"
    return None


def _payload(text: str) -> dict[str, Any] | None:
    start = text.find("{")
    if start < 0:
        return None
    try:
        payload = json.loads(text[start:])
    except ValueError:
        return None
    return payload if isinstance(payload, dict) else None


def _flaws(task: dict[str, Any], answer: Any) -> list[tuple[str, Any, Any]] | None:
    schema = task.get("output_schema")
    if not isinstance(schema, dict):
        return None
    try:
        parsed = json.loads(answer) if isinstance(answer, str) else None
    except ValueError:
        parsed = None
    return flaws(schema, str(task.get("input", "")), parsed)


def _explain(who: str, found: list[tuple[str, Any, Any]]) -> str:
    if not found:
        return f"{who} is complete and correct."
    field, given, right = found[0]
    more = f" (and {len(found) - 1} more field(s))" if len(found) > 1 else ""
    return f"{who} has {field} = {json.dumps(given)} where the input calls for {json.dumps(right)}{more}."
