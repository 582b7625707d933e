"""Writes and workflows of the playground: comparisons and votes, datasets, batch jobs (batch
compare and the jobs API), recommendations turned into routing rules, shadow sampling."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import logging
import random
import secrets
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from accounts.models import ApiKey, Team, User
from accounts.selectors import team_content_cutoffs
from core.audit import audit_record
from core.errors import (
    AppError,
    BadRequest,
    Conflict,
    Forbidden,
    InvalidVariables,
    PayloadTooLarge,
    ValidationFailed,
)
from core.patterns import pattern_problem
from playground import calls, checks, datasets
from playground.columns import ColumnSpec
from playground.models import (
    MAX_COLUMNS,
    Comparison,
    ComparisonColumn,
    Dataset,
    DatasetRow,
    Job,
    JobItem,
    RowVote,
    RunStatus,
    ShadowPair,
    Verdict,
    Vote,
)
from prompts.models import Prompt, PromptVersion

FLAGSHIP_TIER = "flagship"

logger = logging.getLogger(__name__)
BULK_BATCH = 500


def variables_check(*, version: PromptVersion, variables: dict[str, Any]) -> None:
    """Raise InvalidVariables (422, one entry per bad field) unless the version renders."""
    from prompts.rendering import render_version

    render_version(version, variables)


# --- comparisons ---------------------------------------------------------------------------


def _column_fields(spec: ColumnSpec) -> dict[str, Any]:
    return {
        "tier": spec.tier,
        "model_name": spec.model,
        "temperature": spec.temperature,
        "reasoning_effort": spec.reasoning_effort,
    }


def column_spec_of(column: ComparisonColumn) -> ColumnSpec:
    return ColumnSpec(
        tier=column.tier,
        model=column.model_name,
        temperature=column.temperature,
        reasoning_effort=column.reasoning_effort,
    )


_RESULT_RESET = {
    "output": "",
    "error": "",
    "model_used": "",
    "tier_used": "",
    "input_tokens": 0,
    "cached_input_tokens": 0,
    "output_tokens": 0,
    "reasoning_tokens": 0,
    "cost_usd": Decimal(0),
    "latency_ms": None,
    "ttft_ms": None,
    "json_valid": None,
    "schema_valid": None,
    "schema_error": "",
    "usage_record": None,
}


@transaction.atomic
def comparison_create(
    *,
    team: Team,
    user: User,
    columns: list[ColumnSpec],
    prompt_version: PromptVersion | None = None,
    variables: dict[str, Any] | None = None,
    instructions: str = "",
    input_text: str = "",
    run: bool = True,
) -> Comparison:
    """A new comparison; with `run`, every column is pending (its stream starts the call)."""
    from playground.columns import column_specs_check

    column_specs_check(columns, minimum=1)
    variables = variables or {}
    if prompt_version is not None:
        if prompt_version.prompt.team_id != team.pk:
            raise BadRequest("That prompt version belongs to another team.")
        variables_check(version=prompt_version, variables=variables)
    elif not input_text.strip():
        raise ValidationFailed("Write an input, or pick a prompt version.", param="input_text")
    comparison = Comparison.objects.create(
        team=team,
        created_by=user,
        prompt_version=prompt_version,
        variables=variables,
        instructions=instructions if prompt_version is None else "",
        input_text=input_text if prompt_version is None else "",
    )
    ComparisonColumn.objects.bulk_create(
        ComparisonColumn(
            comparison=comparison,
            position=position,
            status=RunStatus.PENDING if run else RunStatus.IDLE,
            run_token=secrets.token_hex(8) if run else "",
            **_column_fields(spec),
        )
        for position, spec in enumerate(columns)
    )
    return comparison


@transaction.atomic
def comparison_column_prepare(
    *, comparison: Comparison, position: int, spec: ColumnSpec | None = None
) -> ComparisonColumn:
    """Get one column ready to run again (a new column if `position` is the next one), with
    new settings if given. Its stream then starts the call."""
    from playground.columns import column_specs_check

    if comparison.content_purged_at is not None:
        raise Conflict(
            "This comparison's input was removed after the team's retention period; "
            "start a new comparison."
        )
    if not 0 <= position < MAX_COLUMNS:
        raise BadRequest(f"A comparison has at most {MAX_COLUMNS} columns.")
    column = (
        ComparisonColumn.objects.select_for_update()
        .filter(comparison=comparison, position=position)
        .first()
    )
    if column is None:
        if spec is None:
            raise BadRequest("A new column needs a tier or a model.")
        if position != comparison.columns.count():
            raise BadRequest("Add columns in order.")
        column = ComparisonColumn(comparison=comparison, position=position)
    if spec is not None:
        column_specs_check([spec])
        for name, value in _column_fields(spec).items():
            setattr(column, name, value)
    for name, value in _RESULT_RESET.items():
        setattr(column, name, value)
    column.status = RunStatus.PENDING
    column.run_token = secrets.token_hex(8)
    column.save()
    return column


def comparison_column_stop(*, column: ComparisonColumn) -> ComparisonColumn:
    ComparisonColumn.objects.filter(
        pk=column.pk, status__in=[RunStatus.PENDING, RunStatus.RUNNING]
    ).update(status=RunStatus.STOPPED, error="Stopped.")
    column.refresh_from_db()
    return column


@transaction.atomic
def comparison_save(*, comparison: Comparison, title: str, user: User) -> Comparison:
    comparison.title = title.strip()[:200] or comparison.title or f"Comparison {comparison.pk}"
    comparison.saved = True
    comparison.save(update_fields=["title", "saved", "updated_at"])
    return comparison


def column_metrics(column: ComparisonColumn) -> dict[str, Any]:
    """A column's figures as the page and the stream's last event show them."""
    return {
        "position": column.position,
        "status": column.status,
        "model": column.model_used,
        "tier": column.tier_used,
        "input_tokens": column.input_tokens,
        "cached_input_tokens": column.cached_input_tokens,
        "output_tokens": column.output_tokens,
        "reasoning_tokens": column.reasoning_tokens,
        "cost_usd": str(column.cost_usd),
        "latency_ms": column.latency_ms,
        "ttft_ms": column.ttft_ms,
        "json_valid": column.json_valid,
        "schema_valid": column.schema_valid,
        "schema_error": column.schema_error,
        "error": column.error,
        "output": checks.pretty(column.output) if column.json_valid else column.output,
    }


def _call_input_for_comparison(column: ComparisonColumn, purpose: str) -> calls.CallInput:
    comparison = column.comparison
    return calls.CallInput(
        team=comparison.team,
        purpose=purpose,
        column=column_spec_of(column),
        prompt_version=comparison.prompt_version,
        variables=comparison.variables,
        instructions=comparison.instructions,
        input=comparison.input_text if comparison.prompt_version is None else None,
        metadata={"comparison": str(comparison.pk), "column": column.letter},
    )


async def comparison_column_stream(*, column_id: int, run_token: str) -> AsyncIterator[dict]:
    """Run one pending column through the gateway's streaming path and yield events:
    `delta` (text), then `done` (figures) or `error`. A column that is not pending with this
    token (a reconnect, a second tab) replays its stored result instead of calling again."""
    from spend.models import Purpose

    claimed = await ComparisonColumn.objects.filter(
        pk=column_id, run_token=run_token, status=RunStatus.PENDING
    ).aupdate(status=RunStatus.RUNNING)
    column = await ComparisonColumn.objects.select_related(
        "comparison__team", "comparison__prompt_version__prompt"
    ).aget(pk=column_id)
    if not claimed:
        yield {
            "event": "error" if column.status == RunStatus.ERROR else "done",
            **column_metrics(column),
        }
        return
    result: calls.CallResult | None = None
    parts: list[str] = []
    try:
        async for piece in calls.stream(_call_input_for_comparison(column, Purpose.PLAYGROUND)):
            if isinstance(piece, calls.CallResult):
                result = piece
            else:
                parts.append(piece)
                yield {"event": "delta", "text": piece}
    except AppError as exc:
        await _column_finish(
            column, run_token, status=RunStatus.ERROR, output="".join(parts), error=exc.message
        )
        yield {"event": "error", **column_metrics(column)}
        return
    except (asyncio.CancelledError, GeneratorExit):
        await _column_finish(
            column, run_token, status=RunStatus.STOPPED, output="".join(parts), error="Stopped."
        )
        raise
    except Exception as exc:  # an unexpected failure ends this column only
        logger.exception("comparison column %s failed", column_id)
        await _column_finish(
            column,
            run_token,
            status=RunStatus.ERROR,
            output="".join(parts),
            error=f"Internal error: {type(exc).__name__}",
        )
        yield {"event": "error", **column_metrics(column)}
        return
    if result is None:
        await _column_finish(
            column,
            run_token,
            status=RunStatus.ERROR,
            output="".join(parts),
            error="The stream ended without a result.",
        )
        yield {"event": "error", **column_metrics(column)}
        return
    await _column_finish(column, run_token, status=RunStatus.DONE, result=result)
    yield {"event": "done", **column_metrics(column)}


async def _column_finish(
    column: ComparisonColumn,
    run_token: str,
    *,
    status: str,
    output: str = "",
    error: str = "",
    result: calls.CallResult | None = None,
) -> None:
    """Store the run's outcome, unless the column was stopped or re-run meanwhile."""
    fields: dict[str, Any] = {"status": status, "error": error[:500]}
    if result is not None:
        version = column.comparison.prompt_version
        verdict = checks.json_verdict(result.output, version.response_schema if version else None)
        fields.update(
            output=result.output,
            model_used=result.model_name,
            tier_used=result.tier_name,
            input_tokens=result.input_tokens,
            cached_input_tokens=result.cached_input_tokens,
            output_tokens=result.output_tokens,
            reasoning_tokens=result.reasoning_tokens,
            cost_usd=result.cost_usd,
            latency_ms=result.latency_ms,
            ttft_ms=result.ttft_ms,
            json_valid=verdict.json_valid,
            schema_valid=verdict.schema_valid,
            schema_error=verdict.error[:500],
            usage_record_id=result.usage_record_id,
            request_id=result.request_id,
        )
    else:
        fields["output"] = output
    await ComparisonColumn.objects.filter(
        pk=column.pk, run_token=run_token, status=RunStatus.RUNNING
    ).aupdate(**fields)
    await column.arefresh_from_db()


@transaction.atomic
def vote_cast(
    *,
    comparison: Comparison,
    voter: User,
    verdict: str,
    winner_position: int | None = None,
    comment: str = "",
) -> Vote:
    """One vote per person per comparison; voting again replaces the earlier vote."""
    if verdict not in Verdict.values:
        raise BadRequest(f"Unknown verdict {verdict!r}.", param="verdict")
    winner = None
    if verdict == Verdict.WINNER:
        winner = comparison.columns.filter(position=winner_position).first()
        if winner is None:
            raise BadRequest("Choose the better column.", param="winner")
    vote, _ = Vote.objects.update_or_create(
        comparison=comparison,
        voter=voter,
        defaults={"verdict": verdict, "winner": winner, "comment": comment.strip()[:1000]},
    )
    return vote


def prompt_version_from_column(
    *, version: PromptVersion, spec: ColumnSpec, actor: User, note: str
) -> PromptVersion:
    """ "Save as new version": the version's templates with a column's tier or model,
    temperature and reasoning effort, as the prompt's next version. Editors only (the
    prompts service checks), audited there."""
    return _prompt_version_create(
        prompt=version.prompt,
        author=actor,
        system_template=version.system_template,
        user_template=version.user_template,
        few_shot=version.few_shot,
        variables=version.variables,
        tier=spec.tier if not spec.model else "",
        model_name=spec.model,
        temperature=spec.temperature if spec.temperature is not None else version.temperature,
        max_output_tokens=version.max_output_tokens,
        reasoning_effort=spec.reasoning_effort or version.reasoning_effort,
        tools=version.tools,
        response_schema=version.response_schema,
        change_note=note[:500],
    )


def _prompt_version_create(**kwargs: Any) -> PromptVersion:
    from prompts.services import prompt_version_create

    return prompt_version_create(**kwargs)


# --- datasets ------------------------------------------------------------------------------


@transaction.atomic
def dataset_create(
    *, team: Team, user: User | None, filename: str, data: bytes, name: str = ""
) -> Dataset:
    """Parse and store an uploaded dataset. Any bad line rejects the whole file: 422 with
    every error and its line number (nothing is stored); 413 over the size limit."""
    limit = settings.PLAYGROUND_DATASET_MAX_BYTES
    if len(data) > limit:
        raise PayloadTooLarge(f"The file is {len(data):,} bytes; the limit is {limit:,} bytes.")
    parsed = datasets.parse_dataset(filename, data, max_rows=settings.PLAYGROUND_DATASET_MAX_ROWS)
    if not parsed.ok:
        raise ValidationFailed(
            f"The file has {len(parsed.errors)} problem{'s' if len(parsed.errors) > 1 else ''}.",
            details=[{"line": e.line, "message": e.message} for e in parsed.errors],
        )
    dataset = Dataset.objects.create(
        team=team,
        created_by=user,
        name=(name or filename)[:200],
        format=parsed.format,
        columns=parsed.columns,
        row_count=len(parsed.rows),
        size_bytes=len(data),
    )
    DatasetRow.objects.bulk_create(
        (
            DatasetRow(dataset=dataset, index=index, line_number=line, values=values)
            for index, (line, values) in enumerate(parsed.rows)
        ),
        batch_size=BULK_BATCH,
    )
    return dataset


def dataset_row_errors(
    *, dataset: Dataset, version: PromptVersion, mapping: dict[str, str], limit: int = 50
) -> list[datasets.RowError]:
    """Rows whose variables do not fit the version's schema, with their line numbers."""
    errors: list[datasets.RowError] = []
    for row in dataset.rows.all().iterator(chunk_size=1000):
        try:
            variables = datasets.row_variables(
                row.values, mapping=mapping, variables=version.variables
            )
            variables_check(version=version, variables=variables)
        except ValueError as exc:
            errors.append(datasets.RowError(row.line_number, str(exc)))
        except InvalidVariables as exc:
            errors.append(datasets.RowError(row.line_number, _invalid_variables_text(exc)))
        if len(errors) >= limit:
            break
    return errors


def _invalid_variables_text(exc: InvalidVariables) -> str:
    details = exc.details
    if isinstance(details, dict):
        return "; ".join(f"{k}: {v}" for k, v in details.items())
    if isinstance(details, list) and details:
        return "; ".join(
            f"{d.get('name') or d.get('field') or d.get('param')}: {d.get('message')}"
            if isinstance(d, dict)
            else str(d)
            for d in details
        )
    return exc.message


# --- jobs (batch compare and the jobs API) -------------------------------------------------


def job_enqueue(job: Job) -> None:
    """Start the job's runner once the job is committed."""
    from playground.tasks import job_run

    transaction.on_commit(lambda: job_run.delay(job.pk))


@transaction.atomic
def batch_compare_create(
    *,
    team: Team,
    user: User,
    dataset: Dataset,
    version: PromptVersion,
    columns: list[ColumnSpec],
    mapping: dict[str, str],
    expected_column: str = "",
    contains: str = "",
    regex: str = "",
    name: str = "",
) -> Job:
    """Every dataset row on every column, as one job. 422 naming an unmapped variable, or
    listing the rows whose variables do not fit the schema (with line numbers)."""
    from playground.columns import column_specs_check

    column_specs_check(columns, minimum=1)
    if dataset.team_id != team.pk or version.prompt.team_id != team.pk:
        raise BadRequest("The dataset and the prompt must belong to the team.")
    mapping = {k: v for k, v in mapping.items() if v}
    unknown = sorted(set(mapping.values()) - set(dataset.columns))
    if unknown:
        raise ValidationFailed(f"No column named {unknown[0]!r} in the dataset.")
    missing = datasets.unmapped_variables(version.variables, mapping)
    if missing:
        raise ValidationFailed(
            f"Map a column to the variable {missing[0]!r}.",
            details=[{"variable": name, "message": "no column"} for name in missing],
        )
    if expected_column and expected_column not in dataset.columns:
        raise ValidationFailed(f"No column named {expected_column!r} in the dataset.")
    if regex and (problem := pattern_problem(regex)):
        raise ValidationFailed(f"The regular expression is not usable: {problem}.", param="regex")
    errors = dataset_row_errors(dataset=dataset, version=version, mapping=mapping)
    if errors:
        raise ValidationFailed(
            f"{len(errors)} row{'s' if len(errors) > 1 else ''} do not fit the prompt's variables.",
            details=[{"line": e.line, "message": e.message} for e in errors],
        )
    total = dataset.row_count * len(columns)
    if total > settings.PLAYGROUND_JOB_MAX_ITEMS:
        raise PayloadTooLarge(
            f"{total:,} calls is over the limit of {settings.PLAYGROUND_JOB_MAX_ITEMS:,} per job."
        )
    job = Job.objects.create(
        team=team,
        kind=Job.Kind.COMPARE,
        name=name or f"{version} on {dataset.name}",
        created_by=user,
        prompt_version=version,
        dataset=dataset,
        columns=[spec.to_dict() for spec in columns],
        mapping=mapping,
        expected_column=expected_column,
        checks={"contains": contains, "regex": regex},
        total_items=total,
    )

    def items():
        for row in dataset.rows.all().iterator(chunk_size=1000):
            variables = datasets.row_variables(
                row.values, mapping=mapping, variables=version.variables
            )
            expected = datasets.expected_text(row.values, expected_column)
            for column_index in range(len(columns)):
                yield JobItem(
                    job=job,
                    row_index=row.index,
                    column_index=column_index,
                    input={"variables": variables},
                    expected=expected,
                )

    JobItem.objects.bulk_create(items(), batch_size=BULK_BATCH)
    job_enqueue(job)
    return job


def request_hash(body: Any) -> str:
    return hashlib.sha256(
        json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()
    ).hexdigest()


def job_submit(
    *,
    team: Team,
    inputs: list[Any],
    column: ColumnSpec,
    prompt_version: PromptVersion | None = None,
    api_key: ApiKey | None = None,
    user: User | None = None,
    idempotency_key: str = "",
    body_hash: str = "",
    name: str = "",
) -> tuple[Job, bool]:
    """A job from the API: each input (a variable set for the prompt version, or a raw input)
    runs on `column`. With an idempotency key, the same key and body give back the same job
    (created False); the same key with another body is a 409."""
    if idempotency_key:
        existing = Job.objects.filter(team=team, idempotency_key=idempotency_key).first()
        if existing is not None:
            return _idempotent_replay(existing, body_hash), False
    if not inputs:
        raise BadRequest("Give at least one input.", param="inputs")
    if len(inputs) > settings.PLAYGROUND_JOB_MAX_ITEMS:
        raise PayloadTooLarge(
            f"{len(inputs):,} inputs is over the limit of {settings.PLAYGROUND_JOB_MAX_ITEMS:,}."
        )
    from playground.columns import column_specs_check

    column_specs_check([column])
    if prompt_version is not None:
        bad = []
        for index, variables in enumerate(inputs):
            if not isinstance(variables, dict):
                bad.append({"index": index, "message": "a variable set must be an object"})
                continue
            try:
                variables_check(version=prompt_version, variables=variables)
            except InvalidVariables as exc:
                bad.append(
                    {"index": index, "message": _invalid_variables_text(exc), "errors": exc.details}
                )
            if len(bad) >= 50:
                break
        if bad:
            raise InvalidVariables(
                f"{len(bad)} input{'s' if len(bad) > 1 else ''} do not fit the prompt's variables.",
                details=bad,
            )
        item_inputs = [{"variables": v} for v in inputs]
    else:
        item_inputs = []
        for index, raw in enumerate(inputs):
            if not (isinstance(raw, str) and raw.strip()) and not _is_messages(raw):
                raise BadRequest(
                    f"Input {index} must be a non-empty string or a list of messages.",
                    param="inputs",
                )
            item_inputs.append({"input": raw})
    try:
        with transaction.atomic():
            job = Job.objects.create(
                team=team,
                kind=Job.Kind.API,
                name=name[:200],
                created_by=user if user and user.is_authenticated else None,
                api_key=api_key,
                idempotency_key=idempotency_key,
                request_hash=body_hash,
                prompt_version=prompt_version,
                columns=[column.to_dict()],
                total_items=len(item_inputs),
            )
            JobItem.objects.bulk_create(
                (JobItem(job=job, row_index=i, input=value) for i, value in enumerate(item_inputs)),
                batch_size=BULK_BATCH,
            )
            job_enqueue(job)
    except IntegrityError:
        # a concurrent request with the same key won the race
        existing = Job.objects.filter(team=team, idempotency_key=idempotency_key).first()
        if existing is None:
            raise
        return _idempotent_replay(existing, body_hash), False
    return job, True


def _idempotent_replay(job: Job, body_hash: str) -> Job:
    if job.request_hash != body_hash:
        from core.idempotency import IdempotencyKeyReused

        raise IdempotencyKeyReused(
            "This Idempotency-Key was used with a different request body.",
            details={"job": job.pk},
        )
    return job


def _is_messages(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(
            isinstance(m, dict) and isinstance(m.get("role"), str) and "content" in m for m in value
        )
    )


@transaction.atomic
def job_cancel(*, job: Job, actor: Any = None) -> Job:
    """Stop a job: pending items are cancelled at once (never started, never charged); items
    already in flight finish; the runner then marks the job cancelled."""
    job = Job.objects.select_for_update().get(pk=job.pk)
    if job.finished:
        return job
    cancelled = JobItem.objects.filter(job=job, status=JobItem.Status.PENDING).update(
        status=JobItem.Status.CANCELLED, finished_at=timezone.now()
    )
    job.cancelled_items = F("cancelled_items") + cancelled
    in_flight = JobItem.objects.filter(job=job, status=JobItem.Status.RUNNING).exists()
    if in_flight and job.runner_token:
        job.status = Job.Status.CANCELLING
    else:
        job.status = Job.Status.CANCELLED
        job.finished_at = timezone.now()
        JobItem.objects.filter(job=job, status=JobItem.Status.RUNNING).update(
            status=JobItem.Status.CANCELLED, finished_at=timezone.now()
        )
    job.save(update_fields=["status", "cancelled_items", "finished_at", "updated_at"])
    job.refresh_from_db()
    job_counters_refresh(job_id=job.pk)
    job.refresh_from_db()
    return job


def job_counters_refresh(*, job_id: int) -> None:
    """Recount a job's progress from its items (exact, whatever happened to the runner)."""
    from django.db.models import Count, Sum

    counts = JobItem.objects.filter(job_id=job_id).aggregate(
        done=Count("id", filter=Q(status=JobItem.Status.DONE)),
        failed=Count("id", filter=Q(status=JobItem.Status.ERROR)),
        cancelled=Count("id", filter=Q(status=JobItem.Status.CANCELLED)),
        cost=Sum("cost_usd"),
    )
    Job.objects.filter(pk=job_id).update(
        done_items=counts["done"],
        failed_items=counts["failed"],
        cancelled_items=counts["cancelled"],
        cost_usd=counts["cost"] or Decimal(0),
    )


def jobs_resume_stale(*, now: dt.datetime | None = None) -> list[int]:
    """Restart the runner of every unfinished job whose runner stopped renewing its lease
    (its worker died) or that never started. Done items are never run again."""
    from playground.tasks import job_run

    now = now or timezone.now()
    stale = now - dt.timedelta(seconds=settings.PLAYGROUND_JOB_LEASE_SECONDS)
    ids = list(
        Job.objects.filter(
            status__in=[Job.Status.QUEUED, Job.Status.RUNNING, Job.Status.CANCELLING]
        )
        .filter(Q(heartbeat_at__lt=stale) | Q(heartbeat_at__isnull=True, created_at__lt=stale))
        .values_list("pk", flat=True)
    )
    for job_id in ids:
        job_run.delay(job_id)
    return ids


@transaction.atomic
def row_vote_cast(
    *,
    job: Job,
    row_index: int,
    voter: User,
    verdict: str,
    winner_column: int | None = None,
    comment: str = "",
) -> RowVote:
    if verdict not in Verdict.values:
        raise BadRequest(f"Unknown verdict {verdict!r}.", param="verdict")
    if not JobItem.objects.filter(job=job, row_index=row_index).exists():
        raise BadRequest("No such row.")
    if verdict == Verdict.WINNER:
        if winner_column is None or not 0 <= winner_column < len(job.columns):
            raise BadRequest("Choose the better column.", param="winner")
    else:
        winner_column = None
    vote, _ = RowVote.objects.update_or_create(
        job=job,
        row_index=row_index,
        voter=voter,
        defaults={
            "verdict": verdict,
            "winner_column": winner_column,
            "comment": comment.strip()[:1000],
        },
    )
    return vote


# --- recommendations -----------------------------------------------------------------------


@transaction.atomic
def recommendation_apply(*, prompt: Prompt, cheap_tier: str, actor: User) -> Any:
    """Route this prompt to the cheap tier: a rule at the top of the active policy, matching
    the prompt's team and the prompt. An editor's action, audited."""
    from accounts.models import Role
    from accounts.selectors import user_has_role, user_teams
    from routing.models import Policy, Rule, Tier

    if not (
        user_teams(user=actor).filter(pk=prompt.team_id).exists()
        and user_has_role(user=actor, role=Role.PROMPT_EDITOR)
    ):
        raise Forbidden("Only the team's prompt editors can change routing.")
    tier = Tier.objects.filter(name=cheap_tier).first()
    if tier is None:
        raise BadRequest(f"No tier named {cheap_tier!r}.")
    policy = Policy.objects.select_for_update().filter(is_active=True).first()
    if policy is None:
        raise Conflict("There is no active routing policy.")
    rules = list(Rule.objects.filter(policy=policy).order_by("position", "id"))
    for position, rule in enumerate(rules, start=1):
        if rule.position != position:
            rule.position = position
            rule.save(update_fields=["position"])
    rule = Rule.objects.create(
        policy=policy,
        position=0,
        name=f"{prompt.slug} → {tier.name} (playground evidence)"[:100],
        team=prompt.team,
        prompt=prompt,
        action=Rule.Action.TIER,
        target_tier=tier,
    )
    audit_record(
        actor=actor,
        action="routing.rule.create",
        obj=rule,
        team=prompt.team,
        after={
            "policy": policy.name,
            "prompt": prompt.slug,
            "target_tier": tier.name,
            "position": 0,
            "source": "playground recommendation",
        },
    )
    return rule


@transaction.atomic
def shadow_rate_set(*, prompt: Prompt, rate: Decimal, actor: User) -> Prompt:
    """Opt a prompt in to shadow sampling (0 turns it off). Editors only; audited."""
    from accounts.models import Role
    from accounts.selectors import user_has_role, user_teams

    if not (
        user_teams(user=actor).filter(pk=prompt.team_id).exists()
        and user_has_role(user=actor, role=Role.PROMPT_EDITOR)
    ):
        raise Forbidden("Only the team's prompt editors can change shadow sampling.")
    if not Decimal(0) <= rate <= Decimal(1):
        raise BadRequest("The sample rate is between 0 and 1.", param="rate")
    before = str(prompt.shadow_sample_rate)
    prompt.shadow_sample_rate = rate
    prompt.save(update_fields=["shadow_sample_rate", "updated_at"])
    audit_record(
        actor=actor,
        action="prompt.shadow_rate",
        obj=prompt,
        team=prompt.team,
        before={"shadow_sample_rate": before},
        after={"shadow_sample_rate": str(rate)},
    )
    return prompt


# --- shadow sampling -----------------------------------------------------------------------

# What a shadow pair holds of the traffic itself (cleared when content is not retained).
_SHADOW_CONTENT = {"request_body": None, "production_output": "", "shadow_output": ""}


def _sampled(rate: Decimal | float, rng: Callable[[], float]) -> bool:
    return Decimal(str(rate)) > 0 and Decimal(str(rng())) < Decimal(str(rate))


def shadow_maybe_enqueue(
    *,
    team_id: int,
    prompt_version_id: int | None,
    tier_name: str,
    request_body: dict[str, Any] | None,
    output: str,
    model_name: str = "",
    cost_usd: Decimal | None = None,
    request_id: str = "",
    sample_rate: Decimal | None = None,
    rng: Callable[[], float] = random.random,
) -> int | None:
    """Called by the gateway once a production response is complete (never on its way out,
    never raising): with the prompt's sample rate, queue a flagship re-run of an answer that a
    cheaper tier gave. Returns the ShadowPair id when sampled. Costs no query when the caller
    passes the prompt's `sample_rate` and the request is not sampled."""
    try:
        if prompt_version_id is None or not tier_name or not request_body:
            return None
        if sample_rate is not None and not _sampled(sample_rate, rng):
            return None
        version = (
            PromptVersion.objects.select_related("prompt__team")
            .filter(pk=prompt_version_id, prompt__team_id=team_id)
            .first()
        )
        if version is None:
            return None
        prompt = version.prompt
        if sample_rate is None and not _sampled(prompt.shadow_sample_rate, rng):
            return None
        if not _tier_is_cheaper_than_flagship(tier_name):
            return None
        with transaction.atomic():
            pair = ShadowPair.objects.create(
                team_id=team_id,
                prompt=prompt,
                prompt_version=version,
                production_request_id=request_id[:64],
                production_model=model_name[:100],
                production_tier=tier_name[:32],
                production_cost_usd=cost_usd or Decimal(0),
                request_body=request_body,
                production_output=output,
                content_retained=prompt.store_content or prompt.team.store_content,
            )
            from playground.tasks import shadow_run

            transaction.on_commit(lambda: shadow_run.delay(pair.pk))
        return pair.pk
    except Exception:  # shadow sampling must never disturb production traffic
        logger.exception("shadow sampling failed")
        return None


async def ashadow_maybe_enqueue(**kwargs: Any) -> int | None:
    return await sync_to_async(shadow_maybe_enqueue)(**kwargs)


def _tier_is_cheaper_than_flagship(tier_name: str) -> bool:
    from playground.selectors import cheap_tiers

    return tier_name in cheap_tiers()


def _budget_has_room(team_id: int) -> str:
    """'' if the team's budget leaves room for a shadow run, else why not. Shadow traffic is
    optional: it stops at the budget's soft threshold, so it never pushes production into a
    block or a downgrade."""
    from spend.models import Budget

    budget = Budget.objects.filter(team_id=team_id, api_key__isnull=True).first()
    if budget is None:
        return ""
    used = budget.spent_usd + budget.reserved_usd
    if used >= budget.limit_usd * budget.soft_threshold:
        return "the team's budget is past its soft threshold"
    return ""


async def shadow_pair_run(*, pair_id: int) -> ShadowPair:
    """Re-run a sampled production input on the flagship through the gateway (purpose
    shadow, budgets apply), store the pair, and drop the content unless it is retained."""
    from spend.models import Purpose

    pair = await ShadowPair.objects.select_related("team", "prompt_version__prompt").aget(
        pk=pair_id
    )
    if pair.status != ShadowPair.Status.PENDING:
        return pair
    reason = await sync_to_async(_budget_has_room)(pair.team_id)
    fields: dict[str, Any] = {"finished_at": timezone.now()}
    if reason:
        fields.update(status=ShadowPair.Status.SKIPPED, skip_reason=reason)
    else:
        try:
            result = await calls.call(
                calls.CallInput(
                    team=pair.team,
                    purpose=Purpose.SHADOW,
                    column=ColumnSpec(tier=FLAGSHIP_TIER),
                    prompt_version=pair.prompt_version,
                    body=pair.request_body or {},
                    request_id=f"shadow-{pair.pk}",
                    metadata={"shadow_of": pair.production_request_id},
                )
            )
        except AppError as exc:
            fields.update(status=ShadowPair.Status.ERROR, skip_reason=exc.message[:200])
        else:
            fields.update(
                status=ShadowPair.Status.DONE,
                shadow_output=result.output,
                shadow_model=result.model_name,
                shadow_tier=result.tier_name,
                shadow_cost_usd=result.cost_usd,
                shadow_usage_record_id=result.usage_record_id,
                agree=checks.outputs_agree(pair.production_output, result.output),
            )
    if pair.production_request_id:
        fields["production_usage_record_id"] = await calls.usage_record_id(
            pair.production_request_id
        )
    if not pair.content_retained:
        fields.update(_SHADOW_CONTENT)
    await ShadowPair.objects.filter(pk=pair.pk).aupdate(**fields)
    await pair.arefresh_from_db()
    return pair


@transaction.atomic
def shadow_pair_review(
    *, pair: ShadowPair, reviewer: User, verdict: str, winner: str = ""
) -> ShadowPair:
    if verdict not in Verdict.values:
        raise BadRequest(f"Unknown verdict {verdict!r}.", param="verdict")
    if verdict == Verdict.WINNER and winner not in ("production", "shadow"):
        raise BadRequest("Choose the better answer.", param="winner")
    pair.verdict = verdict
    pair.verdict_winner = winner if verdict == Verdict.WINNER else ""
    pair.reviewed_by = reviewer
    pair.save(update_fields=["verdict", "verdict_winner", "reviewed_by"])
    return pair


# --- content retention --------------------------------------------------------------------

# A shadow pair whose team and prompt store no content holds the production request only until
# its flagship run; if the run has not come after this long, the request is dropped anyway.
SHADOW_UNRETAINED_MAX = dt.timedelta(hours=1)


def playground_content_purge(*, now: dt.datetime | None = None) -> dict[str, int]:
    """Drop the playground's content past each team's retention period (docs/playground.md,
    "Content retention"): comparisons and finished jobs lose their inputs and outputs and keep
    their figures, checks and votes; datasets are deleted; shadow pairs that keep content
    lose it. Also drops the request of a not-retained shadow pair whose run never came.
    Returns how many of each were purged."""
    now = now or timezone.now()
    purged = dict.fromkeys(("comparisons", "jobs", "datasets", "shadow_pairs"), 0)
    for team_id, cutoff in team_content_cutoffs(now=now).items():
        with transaction.atomic():
            stale = Comparison.objects.filter(
                team_id=team_id, created_at__lt=cutoff, content_purged_at__isnull=True
            )
            ComparisonColumn.objects.filter(comparison__in=stale).update(output="", schema_error="")
            purged["comparisons"] += stale.update(
                variables={}, instructions="", input_text="", content_purged_at=now
            )
            stale = Job.objects.filter(
                team_id=team_id,
                created_at__lt=cutoff,
                content_purged_at__isnull=True,
                status__in=Job.FINISHED,
            )
            JobItem.objects.filter(job__in=stale).update(input={}, expected=None, output="")
            purged["jobs"] += stale.update(content_purged_at=now)
            _, deleted = Dataset.objects.filter(team_id=team_id, created_at__lt=cutoff).delete()
            purged["datasets"] += deleted.get(Dataset._meta.label, 0)
            purged["shadow_pairs"] += ShadowPair.objects.filter(
                team_id=team_id, content_retained=True, created_at__lt=cutoff
            ).update(**_SHADOW_CONTENT, content_retained=False)
    purged["shadow_pairs"] += ShadowPair.objects.filter(
        status=ShadowPair.Status.PENDING,
        content_retained=False,
        created_at__lt=now - SHADOW_UNRETAINED_MAX,
    ).update(
        **_SHADOW_CONTENT,
        status=ShadowPair.Status.SKIPPED,
        skip_reason="not run in time; the request is not kept (content is not stored)",
        finished_at=now,
    )
    return purged
