"""What each kind of evaluator's settings hold, validated into one normal form.

- pairwise_judge: {"rubric", "judge"} — judge is `tier:<name>` or `model:<name>`.
- score_judge: {"rubric", "judge", "pass_score"} — an answer passes at pass_score or above.
- json_fields: {"fields": {name: [normalizer, ...]}, "against": "reference" | "expected"} —
  no fields listed compares every field of the reference with the normalizers in "default".
- check: {"check": exact | contains | regex | json | schema, "value"}.
"""

from __future__ import annotations

from typing import Any

from core.errors import BadRequest
from core.patterns import PatternError, pattern_search
from evals.fields import NORMALIZERS
from playground.columns import column_spec_parse

JUDGE_KINDS = ("pairwise_judge", "score_judge")
CHECKS = ("exact", "contains", "regex", "json", "schema")
DEFAULT_JUDGE = "tier:flagship"
DEFAULT_RUBRIC = (
    "Prefer the answer that follows the instructions and gets every field right for the "
    "input. Length and style do not matter; a wrong or missing value does."
)
MAX_RUBRIC = 4000


def config_clean(*, kind: str, config: dict[str, Any]) -> dict[str, Any]:
    """The config in normal form; BadRequest naming the bad field otherwise."""
    if kind in JUDGE_KINDS:
        rubric = str(config.get("rubric") or "").strip()
        if not rubric:
            raise BadRequest("A judge needs a rubric.", param="rubric")
        if len(rubric) > MAX_RUBRIC:
            raise BadRequest(f"The rubric is longer than {MAX_RUBRIC} characters.", param="rubric")
        judge = str(config.get("judge") or DEFAULT_JUDGE).strip()
        try:
            column_spec_parse(target=judge)
        except BadRequest:
            raise BadRequest(
                "The judge is a tier (tier:flagship) or a model (model:gpt-5.4).", param="judge"
            ) from None
        cleaned: dict[str, Any] = {"rubric": rubric, "judge": judge}
        if kind == "score_judge":
            try:
                pass_score = int(config.get("pass_score", 4))
            except (TypeError, ValueError):
                raise BadRequest("The pass score is a whole number.", param="pass_score") from None
            if not 1 <= pass_score <= 5:
                raise BadRequest("The pass score is between 1 and 5.", param="pass_score")
            cleaned["pass_score"] = pass_score
        return cleaned
    if kind == "json_fields":
        fields = config.get("fields") or {}
        if not isinstance(fields, dict):
            raise BadRequest("fields maps a field name to its normalizers.", param="fields")
        for name, normalizers in {**fields, "default": config.get("default") or []}.items():
            if not isinstance(normalizers, list) or any(n not in NORMALIZERS for n in normalizers):
                raise BadRequest(
                    f"Normalizers of {name!r} are a list of: {', '.join(NORMALIZERS)}.",
                    param="fields",
                )
        against = config.get("against") or "reference"
        if against not in ("reference", "expected"):
            raise BadRequest("Compare against 'reference' or 'expected'.", param="against")
        return {
            "fields": {str(k): list(v) for k, v in fields.items()},
            "default": list(config.get("default") or []),
            "against": against,
        }
    if kind == "check":
        check = config.get("check")
        if check not in CHECKS:
            raise BadRequest(f"The check is one of: {', '.join(CHECKS)}.", param="check")
        value = str(config.get("value") or "")
        if check in ("contains", "regex") and not value:
            raise BadRequest(f"A {check} check needs a value.", param="value")
        if check == "regex":
            try:
                pattern_search(value, "")
            except PatternError as exc:
                raise BadRequest(f"Invalid regex: {exc}", param="value") from None
        return {"check": check, "value": value}
    raise BadRequest(f"Unknown evaluator kind {kind!r}.", param="kind")
