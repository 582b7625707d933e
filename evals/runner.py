"""Running evaluators: judge calls through the gateway (purpose `eval`), cached judgments, and
the evaluation of a batch run's rows, a shadow pair or a logged request.

A judgment is looked up by (evaluator version, SHA-256 of the task and the answers) before
any call, so re-running an evaluator on the same rows costs nothing."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import IntegrityError

from core.errors import AppError
from evals import judge
from evals.fields import compare_fields
from evals.judge import Task
from evals.models import Evaluation, Evaluator, EvaluatorVersion, Judgment, Outcome
from playground import calls, checks
from playground.columns import column_spec_parse
from playground.models import Job, JobItem
from prompts.rendering import render_version
from spend.models import Purpose

logger = logging.getLogger(__name__)
FLAGSHIP_TIER = "flagship"


def cache_key(version_id: int, task: Task, answers: tuple[str, ...], expected: str | None) -> str:
    blob = json.dumps(
        {"v": version_id, "task": task.as_dict(), "answers": answers, "expected": expected},
        sort_keys=True,
        ensure_ascii=False,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


@dataclass(slots=True)
class Spent:
    """What a judgment's calls cost, and their usage records."""

    cost: Decimal
    usage_ids: list[int]


async def judge_ask(
    version: EvaluatorVersion, team: Any, body: dict[str, Any], spent: Spent, api_key: Any
) -> str:
    """One judge call: an ordinary gateway call with purpose `eval`; its cost lands in `spent`."""
    result = await calls.call(
        calls.CallInput(
            team=team,
            purpose=Purpose.EVAL,
            column=column_spec_parse(target=version.config["judge"]),
            body=body,
            api_key=api_key,
            metadata={
                "evaluator": str(version.evaluator_id),
                "evaluator_version": str(version.number),
            },
        )
    )
    spent.cost += result.cost_usd
    if result.usage_record_id:
        spent.usage_ids.append(result.usage_record_id)
    return result.output


def check_passes(
    config: dict[str, Any], answer: str, expected: str | None, schema: dict | None
) -> bool:
    check = config["check"]
    conf = checks.CheckConfig.build(
        has_expected=check == "exact",
        schema=schema if check in ("json", "schema") else None,
        contains=config["value"] if check == "contains" else "",
        regex=config["value"] if check == "regex" else "",
    )
    results = checks.run_checks(answer, expected=expected, config=conf).results
    return bool(results.get(check, False))


async def _judge_pair(
    version: EvaluatorVersion,
    team: Any,
    task: Task,
    cheap: str,
    reference: str,
    expected: str | None,
    api_key: Any,
) -> dict[str, Any]:
    """The fields of a new judgment of a cheap answer against a reference answer."""
    config, kind = version.config, version.evaluator.kind
    spent = Spent(Decimal(0), [])
    if kind == Evaluator.Kind.PAIRWISE_JUDGE:
        rubric = config["rubric"]
        first, second = await asyncio.gather(
            judge_ask(
                version,
                team,
                judge.pairwise_body(rubric=rubric, task=task, answer_a=cheap, answer_b=reference),
                spent,
                api_key,
            ),
            judge_ask(
                version,
                team,
                judge.pairwise_body(rubric=rubric, task=task, answer_a=reference, answer_b=cheap),
                spent,
                api_key,
            ),
        )
        (v1, r1), (v2, r2) = judge.parse_verdict(first), judge.parse_verdict(second)
        outcome = judge.combine(v1, v2)
        details = {
            "first": {"order": judge.CHEAP_FIRST, "verdict": v1, "reason": r1},
            "second": {"order": judge.REFERENCE_FIRST, "verdict": v2, "reason": r2},
        }
        score = None
    elif kind == Evaluator.Kind.SCORE_JUDGE:
        rubric = config["rubric"]
        cheap_text, ref_text = await asyncio.gather(
            judge_ask(
                version,
                team,
                judge.score_body(rubric=rubric, task=task, answer=cheap),
                spent,
                api_key,
            ),
            judge_ask(
                version,
                team,
                judge.score_body(rubric=rubric, task=task, answer=reference),
                spent,
                api_key,
            ),
        )
        (s1, r1), (s2, r2) = judge.parse_score(cheap_text), judge.parse_score(ref_text)
        a, b = s1 or 0, s2 or 0
        outcome = Outcome.CHEAP if a > b else Outcome.REFERENCE if b > a else Outcome.TIE
        details = {"cheap": {"score": s1, "reason": r1}, "reference": {"score": s2, "reason": r2}}
        score = s1
    elif kind == Evaluator.Kind.JSON_FIELDS:
        fields, default = config["fields"], config["default"]
        if config["against"] == "expected" and expected:
            mine = compare_fields(cheap, expected, fields=fields, default=default) or []
            theirs = compare_fields(reference, expected, fields=fields, default=default) or []
        else:  # the reference answer is the truth
            mine = compare_fields(cheap, reference, fields=fields, default=default) or []
            theirs = []
        missed, ref_missed = sum(not f.match for f in mine), sum(not f.match for f in theirs)
        outcome = (
            Outcome.CHEAP
            if missed < ref_missed
            else Outcome.REFERENCE
            if missed > ref_missed
            else Outcome.TIE
        )
        details = {
            "against": config["against"],
            "fields": {
                f.name: {"match": f.match, "cheap": f.answer, "reference": f.reference}
                for f in mine
            },
        }
        score = None
    else:
        schema = task.output_schema
        cheap_ok = check_passes(config, cheap, expected, schema)
        ref_ok = check_passes(config, reference, expected, schema)
        outcome = (
            Outcome.REFERENCE
            if ref_ok and not cheap_ok
            else Outcome.CHEAP
            if cheap_ok and not ref_ok
            else Outcome.TIE
        )
        details = {"cheap": cheap_ok, "reference": ref_ok}
        score = None
    return {
        "outcome": outcome,
        "score": score,
        "details": details,
        "cost_usd": spent.cost,
        "usage_record_ids": spent.usage_ids,
    }


async def judgment_for_pair(
    *,
    version: EvaluatorVersion,
    team: Any,
    task: Task,
    cheap: str,
    reference: str,
    expected: str | None = None,
    api_key: Any = None,
) -> tuple[Judgment, bool]:
    """The judgment of `cheap` against `reference`, and whether it came from the cache."""
    return await judgment_cached(
        version,
        cache_key(version.pk, task, (cheap, reference), expected),
        lambda: _judge_pair(version, team, task, cheap, reference, expected, api_key),
    )


async def judgment_cached(
    version: EvaluatorVersion, key: str, judge_fields: Callable[[], Awaitable[dict[str, Any]]]
) -> tuple[Judgment, bool]:
    """The version's judgment stored under `key`, else a new one from `judge_fields()`; and
    whether it came from the cache (a concurrent run may store the same key first)."""
    cached = await Judgment.objects.filter(evaluator_version=version, key=key).afirst()
    if cached is not None:
        return cached, True
    fields = await judge_fields()
    try:
        return await Judgment.objects.acreate(evaluator_version=version, key=key, **fields), False
    except IntegrityError:
        return await Judgment.objects.aget(evaluator_version=version, key=key), True


def _last_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value:
        last = value[-1]
        content = last.get("content") if isinstance(last, dict) else last
        return content if isinstance(content, str) else json.dumps(content)
    return ""


def job_task(job: Job, item_input: dict[str, Any]) -> Task:
    """The task a batch row's answers answer, as the judge is shown it."""
    version = job.prompt_version
    if version is None:
        return Task("", _last_text(item_input.get("input")), None)
    rendered = render_version(version, item_input.get("variables") or {})
    return Task(
        rendered.instructions or "", _last_text(rendered.input_messages), version.response_schema
    )


def reference_column(columns: list[dict[str, Any]]) -> int:
    """The column the others are judged against: the flagship tier's, else the last one."""
    for index, column in enumerate(columns):
        if column.get("tier") == FLAGSHIP_TIER or column.get("target") == f"tier:{FLAGSHIP_TIER}":
            return index
    return len(columns) - 1


def evaluators_for_prompt(prompt_id: int) -> list[EvaluatorVersion]:
    """The newest version of each enabled evaluator of the prompt."""
    versions = []
    for evaluator in Evaluator.objects.filter(prompt_id=prompt_id, enabled=True).order_by("pk"):
        latest = evaluator.versions.order_by("-number").select_related("evaluator").first()
        if latest is not None:
            versions.append(latest)
    return versions


@dataclass(slots=True)
class RunSummary:
    judged: int = 0
    cached: int = 0
    failed: int = 0
    cost_usd: Decimal = Decimal(0)
    error: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "judged": self.judged,
            "cached": self.cached,
            "failed": self.failed,
            "cost_usd": str(self.cost_usd),
            "error": self.error,
        }


def _job_pairs(job: Job) -> list[tuple[int, int, int, Any, str, str, str | None]]:
    """(row, cheap column, reference column, input, cheap answer, reference answer, expected)
    for each row where both answered."""
    ref = reference_column(job.columns)
    by_row: dict[int, dict[int, JobItem]] = {}
    for item in JobItem.objects.filter(job=job, status=JobItem.Status.DONE).order_by("row_index"):
        by_row.setdefault(item.row_index, {})[item.column_index] = item
    pairs = []
    for row, items in sorted(by_row.items()):
        if ref not in items:
            continue
        for column, item in sorted(items.items()):
            if column != ref:
                pairs.append(
                    (row, column, ref, item.input, item.output, items[ref].output, item.expected)
                )
    return pairs


async def job_evaluate(*, job_id: int, version_ids: list[int] | None = None) -> RunSummary:
    """Evaluate a finished batch run's rows with the prompt's evaluators (or the given
    versions): each cheap column against the reference column. Rows already evaluated by a
    version are skipped; a budget refusal stops the run and says so."""
    job = await Job.objects.select_related("team", "api_key", "prompt_version__prompt").aget(
        pk=job_id
    )
    summary = RunSummary()
    if job.prompt_version is None:
        return summary
    if version_ids:
        versions = [
            v
            async for v in EvaluatorVersion.objects.filter(
                pk__in=version_ids, evaluator__prompt_id=job.prompt_version.prompt_id
            ).select_related("evaluator")
        ]
    else:
        versions = await sync_to_async(evaluators_for_prompt)(job.prompt_version.prompt_id)
    pairs = await sync_to_async(_job_pairs)(job)
    semaphore = asyncio.Semaphore(max(1, settings.PLAYGROUND_BATCH_CONCURRENCY))
    stop = asyncio.Event()

    async def one(version: EvaluatorVersion, pair: tuple) -> None:
        row, cheap_col, ref_col, item_input, cheap, reference, expected = pair
        async with semaphore:
            if stop.is_set():
                return
            done = await Evaluation.objects.filter(
                evaluator_version=version, job=job, row_index=row, cheap_column=cheap_col
            ).aexists()
            if done:
                summary.cached += 1
                return
            try:
                task = await sync_to_async(job_task)(job, item_input or {})
                judgment, from_cache = await judgment_for_pair(
                    version=version,
                    team=job.team,
                    task=task,
                    cheap=cheap,
                    reference=reference,
                    expected=expected,
                    api_key=job.api_key,
                )
            except AppError as exc:
                summary.failed += 1
                summary.error = exc.message
                if exc.code == "budget_exceeded":
                    stop.set()
                return
            with contextlib.suppress(IntegrityError):  # evaluated meanwhile by another run
                await Evaluation.objects.acreate(
                    team=job.team,
                    evaluator_version=version,
                    judgment=judgment,
                    job=job,
                    row_index=row,
                    cheap_column=cheap_col,
                    reference_column=ref_col,
                )
            if from_cache:
                summary.cached += 1
            else:
                summary.judged += 1
                summary.cost_usd += judgment.cost_usd

    await asyncio.gather(*(one(v, p) for v in versions for p in pairs))
    return summary


async def shadow_pair_evaluate(
    *, pair: Any, production_output: str, shadow_output: str
) -> RunSummary:
    """Judge a fresh shadow pair (production = the cheap answer, shadow = the flagship's) with
    each enabled evaluator whose shadow sample takes it."""
    summary = RunSummary()
    versions = await sync_to_async(evaluators_for_prompt)(pair.prompt_id)
    body = pair.request_body or {}
    fmt = (body.get("text") or {}).get("format") or {}
    task = Task(
        str(body.get("instructions") or ""),
        _last_text(body.get("input")),
        fmt.get("schema") if fmt.get("type") == "json_schema" else None,
    )
    for version in versions:
        rate = version.evaluator.shadow_sample_rate
        if not rate or not _sampled(pair.pk, version.evaluator_id, rate):
            continue
        try:
            judgment, from_cache = await judgment_for_pair(
                version=version,
                team=pair.team,
                task=task,
                cheap=production_output,
                reference=shadow_output,
            )
        except AppError as exc:
            summary.failed += 1
            summary.error = exc.message
            continue
        await Evaluation.objects.acreate(
            team_id=pair.team_id, evaluator_version=version, judgment=judgment, shadow_pair=pair
        )
        summary.judged += 0 if from_cache else 1
        summary.cached += 1 if from_cache else 0
    return summary


def _sampled(pair_id: int, evaluator_id: int, rate: Decimal) -> bool:
    """A deterministic sample: the same pair is in or out of an evaluator's sample every time."""
    digest = hashlib.blake2b(f"{evaluator_id}:{pair_id}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") / 2**32 < float(rate)
