"""Evaluating logged requests: a prompt's single-answer evaluators (score judge, checks) run on
the answers its gateway requests got, read from the content the team stored.

A request without stored content is skipped and counted, never judged from nothing; a
pairwise judge or a JSON-fields comparison needs a second answer, which a logged request does
not have, so they are left out with the reason. Judgments are cached like every other
(evaluator version, task, answer), so evaluating the same requests again costs nothing."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import IntegrityError
from django.db.models import F
from django.utils import timezone

from core.errors import AppError
from evals import judge
from evals.judge import Task
from evals.models import Evaluation, Evaluator, EvaluatorVersion, Judgment, Outcome, RequestRun
from evals.runner import (
    Spent,
    cache_key,
    check_passes,
    evaluators_for_prompt,
    judge_ask,
    judgment_cached,
)
from gateway.payloads import output_of
from gateway.upstream import CHAT, RESPONSES
from playground import checks
from spend.explorer import request_input_text
from spend.models import Purpose, UsageRecord

MAX_REQUESTS = 200
NEEDS_REFERENCE = "needs a reference answer, which a logged request does not have"
NEEDS_EXPECTED = "needs an expected output, which a logged request does not have"


def version_skip_reason(version: EvaluatorVersion) -> str:
    """Why an evaluator version cannot grade a single logged answer, or ""."""
    kind = version.evaluator.kind
    if kind in (Evaluator.Kind.PAIRWISE_JUDGE, Evaluator.Kind.JSON_FIELDS):
        return NEEDS_REFERENCE
    if kind == Evaluator.Kind.CHECK and version.config.get("check") == "exact":
        return NEEDS_EXPECTED
    return ""


def versions_for_requests(prompt_id: int) -> tuple[list[EvaluatorVersion], list[dict[str, str]]]:
    """(the versions that run on logged requests, the evaluators left out with why)."""
    runs, skipped = [], []
    for version in evaluators_for_prompt(prompt_id):
        why = version_skip_reason(version)
        if why:
            evaluator = version.evaluator
            skipped.append({"name": evaluator.name, "kind": evaluator.kind, "why": why})
        else:
            runs.append(version)
    return runs, skipped


def _needs_schema(version: EvaluatorVersion) -> bool:
    return version.evaluator.kind == Evaluator.Kind.CHECK and version.config["check"] == "schema"


def _schema_of(body: dict[str, Any]) -> dict | None:
    """The structured-output schema a stored request asked for (Responses or Chat shape)."""
    fmt = (body.get("text") or {}).get("format") or {}
    if fmt.get("type") == "json_schema" and isinstance(fmt.get("schema"), dict):
        return fmt["schema"]
    response_format = body.get("response_format") or {}
    if response_format.get("type") == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema")
        return schema if isinstance(schema, dict) else None
    return None


def answer_text(body: Any) -> str:
    """The answer's text in a stored response body (Chat, Responses, or a stream's text)."""
    if not isinstance(body, dict):
        return ""
    if "choices" in body:
        return output_of(CHAT, body).text
    if isinstance(body.get("output"), list):
        return output_of(RESPONSES, body).text
    text = body.get("output_text")
    return text if isinstance(text, str) else ""


@dataclass(frozen=True, slots=True)
class Logged:
    """What a logged request gives the evaluators: the task it answered and its answer."""

    record: UsageRecord  # the answering (last) record: evaluations hang on it
    task: Task
    answer: str


def logged_request(records: list[UsageRecord]) -> Logged | str:
    """The task and answer of a request's records (ordered), or why it cannot be evaluated:
    "no_content" (the team did not store it, or it was purged) or "no_answer"."""
    last = records[-1]
    stored = next((r for r in reversed(records) if r.request_body is not None), None)
    if stored is None:
        return "no_content"
    if last.status != UsageRecord.Status.SUCCESS or last.response_body is None:
        return "no_answer"
    answer = answer_text(last.response_body)
    if not answer.strip():
        return "no_answer"
    body = stored.request_body if isinstance(stored.request_body, dict) else {}
    instructions, input_text = request_input_text(body)
    return Logged(last, Task(instructions, input_text, _schema_of(body)), answer)


async def _judge_answer(
    version: EvaluatorVersion, team: Any, task: Task, answer: str
) -> dict[str, Any]:
    config, kind = version.config, version.evaluator.kind
    spent = Spent(Decimal(0), [])
    if kind == Evaluator.Kind.SCORE_JUDGE:
        text = await judge_ask(
            version,
            team,
            judge.score_body(rubric=config["rubric"], task=task, answer=answer),
            spent,
            None,
        )
        score, reason = judge.parse_score(text)
        passed = score is not None and score >= int(config.get("pass_score", 4))
        outcome, details = (Outcome.PASS if passed else Outcome.FAIL), {"reason": reason}
    else:
        score = None
        if config["check"] == "json":  # valid JSON, whether or not the request gave a schema
            passed = checks.is_json(checks.parse_json(answer))
        else:
            passed = check_passes(config, answer, None, task.output_schema)
        outcome = Outcome.PASS if passed else Outcome.FAIL
        details = {"check": config["check"], "passed": passed}
    return {
        "outcome": outcome,
        "score": score,
        "details": details,
        "cost_usd": spent.cost,
        "usage_record_ids": spent.usage_ids,
    }


async def judgment_for_answer(
    *, version: EvaluatorVersion, team: Any, task: Task, answer: str
) -> tuple[Judgment, bool]:
    """The judgment of one answer on its own, and whether it came from the cache."""
    return await judgment_cached(
        version,
        cache_key(version.pk, task, (answer,), None),
        lambda: _judge_answer(version, team, task, answer),
    )


def _selected_requests(run: RequestRun) -> dict[str, list[UsageRecord]]:
    """The run's requests, as records per request id, only the run's team's gateway requests
    of its prompt: an id of another team or prompt in the selection is never evaluated."""
    mine = UsageRecord.objects.filter(
        team_id=run.team_id,
        request_id__in=run.request_ids[:MAX_REQUESTS],
    )
    ids = set(
        mine.filter(purpose=Purpose.GATEWAY, prompt_version__prompt_id=run.prompt_id).values_list(
            "request_id", flat=True
        )
    )
    by_request: dict[str, list[UsageRecord]] = {}
    for record in mine.filter(request_id__in=ids).select_related("team").order_by("attempt", "id"):
        by_request.setdefault(record.request_id, []).append(record)
    return {rid: by_request[rid] for rid in run.request_ids if rid in by_request}


async def _bump(run_id: int, **counts: Any) -> None:
    await RequestRun.objects.filter(pk=run_id).aupdate(
        **{name: F(name) + value for name, value in counts.items()}
    )


async def request_run_evaluate(*, run_id: int) -> RequestRun | None:
    """Evaluate a run's requests with its evaluator versions, counting progress as it goes. A
    budget refusal stops the run and says so; the evaluations made until then stay."""
    run = await RequestRun.objects.select_related("team").filter(pk=run_id).afirst()
    if run is None or run.finished:  # deleted with its prompt, or done by an earlier delivery
        return run
    versions = [
        v
        async for v in EvaluatorVersion.objects.filter(
            pk__in=run.version_ids, evaluator__prompt_id=run.prompt_id
        ).select_related("evaluator")
    ]
    selected = await sync_to_async(_selected_requests)(run)
    logged: list[Logged] = []
    no_content = no_answer = 0
    for records in selected.values():
        found = logged_request(records)
        if isinstance(found, Logged):
            logged.append(found)
        elif found == "no_content":
            no_content += 1
        else:
            no_answer += 1
    # A redelivered task (its worker died) counts from zero: what the first delivery evaluated
    # is found again and counted as cached.
    await RequestRun.objects.filter(pk=run_id).aupdate(
        status=RequestRun.Status.RUNNING,
        done=0,
        judged=0,
        cached=0,
        failed=0,
        cost_usd=0,
        total=len(logged) * len(versions),
        skipped_no_content=no_content,
        skipped_no_answer=no_answer,
    )
    semaphore = asyncio.Semaphore(max(1, settings.PLAYGROUND_BATCH_CONCURRENCY))
    stop = asyncio.Event()
    errors: list[str] = []
    # requests with the same task and answer share a judgment: judged once, not concurrently
    same_answer: dict[str, asyncio.Lock] = {}

    async def one(version: EvaluatorVersion, item: Logged) -> None:
        async with semaphore:
            if stop.is_set():
                await _bump(run_id, done=1, failed=1)
                return
            if _needs_schema(version) and item.task.output_schema is None:
                await _bump(run_id, done=1)  # nothing to check this answer against
                return
            done = await Evaluation.objects.filter(
                evaluator_version=version, usage_record=item.record
            ).aexists()
            if done:
                await _bump(run_id, done=1, cached=1)
                return
            key = cache_key(version.pk, item.task, (item.answer,), None)
            try:
                async with same_answer.setdefault(key, asyncio.Lock()):
                    judgment, from_cache = await judgment_for_answer(
                        version=version, team=run.team, task=item.task, answer=item.answer
                    )
            except AppError as exc:
                errors.append(exc.message)
                if exc.code == "budget_exceeded":
                    stop.set()
                await _bump(run_id, done=1, failed=1)
                return
            with contextlib.suppress(IntegrityError):  # evaluated meanwhile by another run
                await Evaluation.objects.acreate(
                    team_id=run.team_id,
                    evaluator_version=version,
                    judgment=judgment,
                    usage_record=item.record,
                )
            if from_cache:
                await _bump(run_id, done=1, cached=1)
            else:
                await _bump(run_id, done=1, judged=1, cost_usd=judgment.cost_usd)

    try:
        await asyncio.gather(*(one(v, item) for item in logged for v in versions))
    except Exception as exc:
        await RequestRun.objects.filter(pk=run_id).aupdate(
            status=RequestRun.Status.FAILED, error=str(exc)[:500], finished_at=timezone.now()
        )
        raise
    await RequestRun.objects.filter(pk=run_id).aupdate(
        status=RequestRun.Status.DONE,
        error=(errors[-1] if errors else "")[:500],
        finished_at=timezone.now(),
    )
    return await RequestRun.objects.aget(pk=run_id)
