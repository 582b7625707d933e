"""Judge prompts and verdicts: what a judge model is asked, and how its answers combine. Pure.

A pairwise judgement asks twice, with the answers' positions swapped (judges favour a
position). The cheap answer wins only when both orders say so, the reference likewise;
any disagreement between the two orders is a tie."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

PAIRWISE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "verdict": {"type": "string", "enum": ["A", "B", "tie"]},
        "reason": {"type": "string"},
    },
    "required": ["verdict", "reason"],
    "additionalProperties": False,
}
SCORE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "score": {"type": "integer", "minimum": 1, "maximum": 5},
        "reason": {"type": "string"},
    },
    "required": ["score", "reason"],
    "additionalProperties": False,
}
JUDGE_MAX_OUTPUT_TOKENS = 400
CHEAP_FIRST, REFERENCE_FIRST = "cheap first", "reference first"


@dataclass(frozen=True, slots=True)
class Task:
    """What the answers answer: the prompt's instructions, the user's input, the output schema."""

    instructions: str
    input: str
    output_schema: dict | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "instructions": self.instructions,
            "input": self.input,
            "output_schema": self.output_schema,
        }


def _format(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"format": {"type": "json_schema", "name": name, "schema": schema, "strict": True}}


def pairwise_body(*, rubric: str, task: Task, answer_a: str, answer_b: str) -> dict[str, Any]:
    """A Responses API body asking which of two answers is better."""
    payload = {"task": task.as_dict(), "answers": {"A": answer_a, "B": answer_b}}
    return {
        "instructions": (
            "You judge two answers (A and B) to the same task. Rubric:\n"
            f"{rubric}\n\n"
            'Reply with the verdict "A", "B" or "tie" and a one-sentence reason.'
        ),
        "input": "The task and the two answers, as JSON:\n" + json.dumps(payload, indent=1),
        "text": _format("pairwise_verdict", PAIRWISE_SCHEMA),
        "max_output_tokens": JUDGE_MAX_OUTPUT_TOKENS,
    }


def score_body(*, rubric: str, task: Task, answer: str) -> dict[str, Any]:
    """A Responses API body asking for a 1-5 score of one answer."""
    payload = {"task": task.as_dict(), "answer": answer}
    return {
        "instructions": (
            "You grade an answer to a task from 1 (useless) to 5 (fully correct). Rubric:\n"
            f"{rubric}\n\nReply with the score and a one-sentence reason."
        ),
        "input": "The task and the answer, as JSON:\n" + json.dumps(payload, indent=1),
        "text": _format("score_verdict", SCORE_SCHEMA),
        "max_output_tokens": JUDGE_MAX_OUTPUT_TOKENS,
    }


def parse_verdict(text: str) -> tuple[str, str]:
    """(verdict, reason) from a pairwise judge's answer; an unreadable answer is a tie."""
    try:
        data = json.loads(text)
    except (TypeError, ValueError):
        return "tie", f"Unreadable verdict: {text[:200]!r}"
    verdict = data.get("verdict") if isinstance(data, dict) else None
    if verdict not in ("A", "B", "tie"):
        return "tie", f"Unreadable verdict: {text[:200]!r}"
    return verdict, str(data.get("reason", ""))[:1000]


def parse_score(text: str) -> tuple[int | None, str]:
    try:
        data = json.loads(text)
    except (TypeError, ValueError):
        return None, f"Unreadable score: {text[:200]!r}"
    score = data.get("score") if isinstance(data, dict) else None
    if not isinstance(score, int) or isinstance(score, bool) or not 1 <= score <= 5:
        return None, f"Unreadable score: {text[:200]!r}"
    return score, str(data.get("reason", ""))[:1000]


def combine(cheap_first: str, reference_first: str) -> str:
    """The outcome from the two verdicts: `cheap_first` judged (A=cheap, B=reference),
    `reference_first` judged (A=reference, B=cheap). A win needs both orders to agree."""
    first = {"A": "cheap", "B": "reference"}.get(cheap_first, "tie")
    second = {"A": "reference", "B": "cheap"}.get(reference_first, "tie")
    return first if first == second else "tie"
