"""Reads of evaluation results: a batch run's verdicts, the judge's agreement with people's
votes, and judge outcomes as recommendation evidence."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet

from core.stats import cohen_kappa
from evals.models import Evaluation, Evaluator, EvaluatorVersion, Outcome
from playground.hooks import JobVerdicts
from playground.models import Job, RowVote, ShadowPair, Verdict

KAPPA_WARNING = 0.4
# When several evaluators judged a row, the evidence is the first of these kinds that did.
_PRECEDENCE = (
    Evaluator.Kind.PAIRWISE_JUDGE,
    Evaluator.Kind.JSON_FIELDS,
    Evaluator.Kind.SCORE_JUDGE,
    Evaluator.Kind.CHECK,
)
_MATCH = (Outcome.CHEAP, Outcome.TIE)


def evaluators_of_prompt(*, prompt: Any) -> QuerySet[Evaluator]:
    return Evaluator.objects.filter(prompt=prompt).prefetch_related("versions")


def _best(evaluations: list[Evaluation]) -> Evaluation:
    """The evaluation that speaks for a row: by kind precedence, then the newest version."""
    return min(
        evaluations,
        key=lambda e: (
            _PRECEDENCE.index(e.evaluator_version.evaluator.kind),
            -e.evaluator_version_id,
        ),
    )


def _row_evaluations(qs: QuerySet[Evaluation]) -> dict[tuple, Evaluation]:
    grouped: dict[tuple, list[Evaluation]] = defaultdict(list)
    for evaluation in qs.select_related("judgment", "evaluator_version__evaluator"):
        key = (
            ("shadow", evaluation.shadow_pair_id)
            if evaluation.shadow_pair_id
            else ("batch", evaluation.job_id, evaluation.row_index, evaluation.cheap_column)
        )
        grouped[key].append(evaluation)
    return {key: _best(found) for key, found in grouped.items()}


def job_verdicts(*, job: Job, row_indexes: list[int] | None = None) -> JobVerdicts:
    """Per cheap column: wins, ties and losses against the reference column over every judged
    row; per row (of `row_indexes`, or all): each cheap column's outcome with its reasons."""
    qs = Evaluation.objects.filter(job=job)
    by_key = _row_evaluations(qs)
    if not by_key:
        return JobVerdicts()
    counts: dict[int, dict[str, int]] = defaultdict(lambda: {"cheap": 0, "tie": 0, "reference": 0})
    rows: dict[int, dict[int, dict[str, Any]]] = defaultdict(dict)
    wanted = set(row_indexes) if row_indexes is not None else None
    reference = None
    for (_, _, row, column), evaluation in by_key.items():
        judgment = evaluation.judgment
        reference = evaluation.reference_column
        outcome = judgment.outcome if judgment.outcome in ("cheap", "tie", "reference") else "tie"
        counts[column][outcome] += 1
        if wanted is None or row in wanted:
            rows[row][column] = {
                "outcome": outcome,
                "evaluator": evaluation.evaluator_version.evaluator.name,
                "version": evaluation.evaluator_version.number,
                "kind": evaluation.evaluator_version.evaluator.kind,
                "details": judgment.details,
                "cost_usd": judgment.cost_usd,
            }
    columns = {}
    for column, c in counts.items():
        total = sum(c.values())
        columns[column] = {
            **c,
            "rows": total,
            "win_percent": round(100 * c["cheap"] / total),
            "loss_percent": round(100 * c["reference"] / total),
            "as_good_percent": round(100 * (c["cheap"] + c["tie"]) / total),
        }
    return JobVerdicts(
        reference_column=reference,
        columns=columns,
        rows=dict(rows),
        evaluated_rows=len({row for (_, _, row, _) in by_key}),
    )


def _tier_of(job_columns: list[dict], index: int | None) -> str:
    if index is None or index >= len(job_columns):
        return ""
    return str(job_columns[index].get("tier") or "")


def judged_cases(*, prompt: Any, cheap_tier: str, flagship_tier: str) -> dict[tuple, bool]:
    """Judge outcomes as recommendation evidence: ("batch", job, row) or ("shadow", pair) ->
    the cheap tier's answer is at least as good."""
    qs = Evaluation.objects.filter(evaluator_version__evaluator__prompt=prompt)
    jobs = dict(Job.objects.filter(pk__in=qs.values("job_id")).values_list("pk", "columns"))
    shadow_tiers = {
        pk: (prod, shadow)
        for pk, prod, shadow in ShadowPair.objects.filter(
            pk__in=qs.values("shadow_pair_id")
        ).values_list("pk", "production_tier", "shadow_tier")
    }
    cases: dict[tuple, bool] = {}
    for key, evaluation in _row_evaluations(qs).items():
        match = evaluation.judgment.outcome in _MATCH
        if key[0] == "shadow":
            if shadow_tiers.get(key[1]) == (cheap_tier, flagship_tier):
                cases[key] = match
            continue
        _, job_id, row, column = key
        columns = jobs.get(job_id) or []
        if (
            _tier_of(columns, column) == cheap_tier
            and _tier_of(columns, evaluation.reference_column) == flagship_tier
        ):
            cases[("batch", job_id, row)] = match
    return cases


@dataclass(frozen=True, slots=True)
class Agreement:
    """How the judge's verdicts agree with people's votes on the same rows."""

    cases: int
    percent: int
    kappa: float
    evaluator_id: int | None

    @property
    def warn(self) -> bool:
        return self.kappa < KAPPA_WARNING


def _vote_label(verdict: str, winner: int | None, cheap: int, reference: int) -> str | None:
    if verdict in (Verdict.TIE, Verdict.ALL_BAD):
        return "tie"
    if winner == cheap:
        return "cheap"
    if winner == reference:
        return "reference"
    return None


def agreement(*, prompt: Any) -> Agreement | None:
    """Judge outcome vs each person's vote, on batch rows and shadow pairs of this prompt that
    have both; None when none has both."""
    qs = Evaluation.objects.filter(
        evaluator_version__evaluator__prompt=prompt,
        evaluator_version__evaluator__kind__in=[
            Evaluator.Kind.PAIRWISE_JUDGE,
            Evaluator.Kind.SCORE_JUDGE,
        ],
    )
    by_key = _row_evaluations(qs)
    if not by_key:
        return None
    votes: dict[tuple[int, int], list[tuple[str, int | None]]] = defaultdict(list)
    for job_id, row, verdict, winner in RowVote.objects.filter(
        job_id__in={k[1] for k in by_key if k[0] == "batch"}
    ).values_list("job_id", "row_index", "verdict", "winner_column"):
        votes[(job_id, row)].append((verdict, winner))
    reviews = {
        pk: (verdict, winner)
        for pk, verdict, winner in ShadowPair.objects.filter(
            pk__in=[k[1] for k in by_key if k[0] == "shadow"]
        )
        .exclude(verdict="")
        .values_list("pk", "verdict", "verdict_winner")
    }
    pairs: list[tuple[str, str]] = []
    evaluator_id = None
    for key, evaluation in by_key.items():
        judged = evaluation.judgment.outcome
        if key[0] == "shadow":
            if key[1] in reviews:
                verdict, winner = reviews[key[1]]
                label = _vote_label(verdict, {"production": 0, "shadow": 1}.get(winner), 0, 1)
                if label:
                    pairs.append((judged, label))
                    evaluator_id = evaluation.evaluator_version.evaluator_id
            continue
        _, job_id, row, column = key
        for verdict, winner in votes.get((job_id, row), []):
            label = _vote_label(verdict, winner, column, evaluation.reference_column)
            if label:
                pairs.append((judged, label))
                evaluator_id = evaluation.evaluator_version.evaluator_id
    result = cohen_kappa(pairs)
    if result is None:
        return None
    observed, kappa = result
    return Agreement(len(pairs), round(observed * 100), kappa, evaluator_id)


def evaluator_versions(*, evaluator: Evaluator) -> QuerySet[EvaluatorVersion]:
    return evaluator.versions.order_by("-number")
