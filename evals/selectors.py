"""Reads of evaluation results: a batch run's verdicts, the judge's agreement with people's
votes, and judge outcomes as recommendation evidence."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet
from django.http import Http404
from django.urls import reverse

from accounts.selectors import user_teams
from core.errors import AppError
from core.stats import cohen_kappa
from evals.judge import Task
from evals.models import Evaluation, Evaluator, EvaluatorVersion, Outcome, RequestRun
from evals.runner import job_task, reference_column
from playground.hooks import JobVerdicts
from playground.models import Job, JobItem, RowVote, ShadowPair, Verdict
from prompts.models import Prompt
from prompts.rendering import render_version

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

    @property
    def edit_url(self) -> str:
        """Where the rubric that disagrees is edited."""
        return reverse("evals:evaluator", args=[self.evaluator_id]) if self.evaluator_id else ""


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


def evaluator_for_user(*, user: Any, pk: int) -> Evaluator:
    """An evaluator of one of the user's teams; another team's is a 404, as a missing one is."""
    found = (
        Evaluator.objects.select_related("prompt", "team")
        .filter(pk=pk, team__in=user_teams(user=user))
        .first()
    )
    if found is None:
        raise Http404("No such evaluator.")
    return found


def prompt_for_user(*, user: Any, pk: int) -> Prompt:
    found = Prompt.objects.select_related("team").filter(pk=pk, team__in=user_teams(user=user))
    prompt = found.first()
    if prompt is None:
        raise Http404("No such prompt.")
    return prompt


@dataclass(frozen=True, slots=True)
class Sample:
    """A row the editor shows the judge's prompt on: the task and two answers to it."""

    task: Task
    cheap: str
    reference: str
    source: str


PLACEHOLDER_CHEAP = "(the cheap column's answer)"
PLACEHOLDER_REFERENCE = "(the reference column's answer)"


def _batch_sample(prompt: Prompt) -> Sample | None:
    """The first row of the prompt's latest finished batch run that both the reference column
    and another column answered (content kept)."""
    jobs = Job.objects.filter(
        prompt_version__prompt=prompt,
        kind=Job.Kind.COMPARE,
        status=Job.Status.DONE,
        content_purged_at__isnull=True,
    ).select_related("prompt_version")
    for job in jobs.order_by("-pk")[:3]:
        ref = reference_column(job.columns)
        items = JobItem.objects.filter(job=job, status=JobItem.Status.DONE).exclude(output="")
        by_row: dict[int, dict[int, JobItem]] = defaultdict(dict)
        for item in items.order_by("row_index", "column_index")[:40]:
            by_row[item.row_index][item.column_index] = item
        for row, columns in sorted(by_row.items()):
            cheap = next((i for c, i in sorted(columns.items()) if c != ref), None)
            if ref in columns and cheap is not None:
                try:
                    task = job_task(job, cheap.input or {})
                except AppError:
                    continue
                return Sample(
                    task,
                    cheap.output,
                    columns[ref].output,
                    f"row {row + 1} of {job}, column {'ABCD'[cheap.column_index]} against "
                    f"{'ABCD'[ref]}",
                )
    return None


def _sample_value(spec: dict[str, Any]) -> Any:
    if spec.get("default") is not None:
        return spec["default"]
    if spec.get("enum"):
        return spec["enum"][0]
    kind = spec.get("type") or "string"
    return {"integer": 1, "number": 1, "boolean": True, "list": [], "json": {}}.get(
        kind, f"(sample {spec.get('name')})"
    )


def preview_sample(*, prompt: Prompt) -> Sample:
    """What the editor's preview renders the judge's prompt on: a real batch row when the
    prompt has one, else its production (or newest) version with sample values and
    placeholder answers."""
    found = _batch_sample(prompt)
    if found is not None:
        return found
    label = prompt.labels.filter(name="production").select_related("version").first()
    version = label.version if label else prompt.versions.order_by("-number").first()
    if version is None:
        return Sample(
            Task("", "(no version yet)", None), PLACEHOLDER_CHEAP, PLACEHOLDER_REFERENCE, ""
        )
    values = {
        spec["name"]: _sample_value(spec)
        for spec in version.variables or []
        if spec.get("required") or spec.get("default") is not None
    }
    try:
        rendered = render_version(version, values)
        messages = rendered.input_messages
        last = messages[-1] if isinstance(messages, list) and messages else messages
        text = last.get("content", "") if isinstance(last, dict) else str(last or "")
        task = Task(rendered.instructions or "", str(text), version.response_schema)
    except AppError:
        task = Task(version.system_template, version.user_template, version.response_schema)
    return Sample(
        task,
        PLACEHOLDER_CHEAP,
        PLACEHOLDER_REFERENCE,
        f"v{version.number} with sample values (no batch run yet)",
    )


@dataclass(frozen=True, slots=True)
class EvaluatorRow:
    evaluator: Evaluator
    latest: EvaluatorVersion | None


def evaluators_with_latest(*, prompt: Prompt) -> list[EvaluatorRow]:
    """The prompt's evaluators, each with its newest version (the one that runs)."""
    return [
        EvaluatorRow(e, max(e.versions.all(), key=lambda v: v.number, default=None))
        for e in evaluators_of_prompt(prompt=prompt)
    ]


# --------------------------------------------------------------------------- logged requests


def request_run_latest(*, prompt_id: int) -> RequestRun | None:
    return RequestRun.objects.filter(prompt_id=prompt_id).order_by("-created_at", "-pk").first()


def request_run_for_user(*, user: Any, pk: int) -> RequestRun:
    """A run of one of the user's teams; another team's is a 404."""
    run = RequestRun.objects.filter(pk=pk, team__in=user_teams(user=user)).first()
    if run is None:
        raise Http404("No such evaluation run.")
    return run


@dataclass(frozen=True, slots=True)
class VersionResult:
    """One evaluator version over a run's requests: mean score (score judge), pass rate."""

    name: str
    kind: str
    number: int
    evaluated: int
    passed: int
    mean_score: float | None

    @property
    def pass_percent(self) -> int:
        return round(100 * self.passed / self.evaluated) if self.evaluated else 0


def request_run_results(*, run: RequestRun) -> list[VersionResult]:
    """Per evaluator version of the run, what its evaluations of the run's requests say."""
    evaluations = (
        Evaluation.objects.filter(
            team_id=run.team_id,
            evaluator_version_id__in=run.version_ids,
            usage_record__request_id__in=run.request_ids,
        )
        .select_related("judgment")
        .only("evaluator_version_id", "judgment__outcome", "judgment__score")
    )
    by_version: dict[int, list[Evaluation]] = defaultdict(list)
    for evaluation in evaluations:
        by_version[evaluation.evaluator_version_id].append(evaluation)
    results = []
    versions = EvaluatorVersion.objects.filter(pk__in=run.version_ids).select_related("evaluator")
    for version in sorted(versions, key=lambda v: v.evaluator.name):
        found = by_version.get(version.pk, [])
        scores = [e.judgment.score for e in found if e.judgment.score is not None]
        results.append(
            VersionResult(
                name=version.evaluator.name,
                kind=version.evaluator.kind,
                number=version.number,
                evaluated=len(found),
                passed=sum(e.judgment.outcome == Outcome.PASS for e in found),
                mean_score=round(sum(scores) / len(scores), 2) if scores else None,
            )
        )
    return results


def request_evaluations(*, record_ids: list[int], team_id: int) -> list[dict[str, Any]]:
    """The evaluations of a request's records (the drawer): newest version first per
    evaluator, with the score and reason or the check's result."""
    evaluations = (
        Evaluation.objects.filter(usage_record_id__in=record_ids, team_id=team_id)
        .select_related("judgment", "evaluator_version__evaluator")
        .order_by("evaluator_version__evaluator__name", "-evaluator_version__number")
    )
    return [
        {
            "evaluator": e.evaluator_version.evaluator.name,
            "evaluator_id": e.evaluator_version.evaluator_id,
            "kind": e.evaluator_version.evaluator.kind,
            "version": e.evaluator_version.number,
            "outcome": e.judgment.outcome,
            "score": e.judgment.score,
            "reason": e.judgment.details.get("reason", ""),
            "check": e.judgment.details.get("check", ""),
            "cost_usd": e.judgment.cost_usd,
            "at": e.created_at,
        }
        for e in evaluations
    ]
