"""Comparisons: create, run a column through the gateway, stop, save, vote, save a column as a version."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from accounts.models import Team, User
from core.errors import AppError, BadRequest, Conflict, ValidationFailed
from playground import calls, checks
from playground.columns import ColumnSpec
from playground.models import MAX_COLUMNS, Comparison, ComparisonColumn, RunStatus, Verdict, Vote
from playground.services.variables import variables_check
from prompts.models import PromptVersion

logger = logging.getLogger(__name__)


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

    async def stop_asked() -> bool:
        return await ComparisonColumn.objects.filter(
            pk=column_id, run_token=run_token, status=RunStatus.STOPPED
        ).aexists()

    try:
        async for piece in calls.stream(
            _call_input_for_comparison(column, Purpose.PLAYGROUND), stop=stop_asked
        ):
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
    if result.stopped:
        # Stop asked for: the text so far and what it cost are kept and shown.
        await _column_finish(
            column, run_token, status=RunStatus.STOPPED, error="Stopped.", result=result
        )
        yield {"event": "stopped", **column_metrics(column), "output": result.output}
        return
    await _column_finish(column, run_token, status=RunStatus.DONE, result=result)
    # The browser gets the answer live even where the team stores none (the stored column's
    # output is then empty).
    live = checks.pretty(result.output) if column.json_valid else result.output
    yield {"event": "done", **column_metrics(column), "output": live}


async def _column_finish(
    column: ComparisonColumn,
    run_token: str,
    *,
    status: str,
    output: str = "",
    error: str = "",
    result: calls.CallResult | None = None,
) -> None:
    """Store the run's outcome, unless the column was re-run meanwhile, or stopped (a stop
    keeps the text and figures the stream had when it ended)."""
    fields: dict[str, Any] = {"status": status, "error": error[:500]}
    if result is not None:
        version = column.comparison.prompt_version
        verdict = (
            checks.JsonVerdict(None, None, "")
            if result.stopped  # a text cut short is not judged as JSON
            else checks.json_verdict(result.output, version.response_schema if version else None)
        )
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
    no_content = column.comparison.team.no_content
    if no_content:
        fields.update(output="", schema_error="")
    current = (
        [RunStatus.RUNNING, RunStatus.STOPPED]
        if status == RunStatus.STOPPED
        else [RunStatus.RUNNING]
    )
    await ComparisonColumn.objects.filter(
        pk=column.pk, run_token=run_token, status__in=current
    ).aupdate(**fields)
    await column.arefresh_from_db()
    if no_content:
        await _content_drop_when_idle(column.comparison_id)


async def _content_drop_when_idle(comparison_id: int) -> None:
    """A comparison of a team that stores no content holds its input only while a column
    runs: once none is pending or running, the input goes (the page says why)."""
    busy = ComparisonColumn.objects.filter(
        comparison_id=comparison_id, status__in=[RunStatus.PENDING, RunStatus.RUNNING]
    )
    if await busy.aexists():
        return
    await Comparison.objects.filter(pk=comparison_id, content_purged_at__isnull=True).aupdate(
        variables={}, instructions="", input_text="", content_purged_at=timezone.now()
    )


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
