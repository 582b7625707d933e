"""Jobs (batch compare and the jobs API): create, submit idempotently, cancel, count, resume,
row votes, judge a finished run again."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from accounts.models import ApiKey, Role, Team, User
from accounts.selectors import user_has_role, user_teams
from core.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    InvalidVariables,
    PayloadTooLarge,
    ValidationFailed,
)
from core.money import MoneySum
from core.patterns import pattern_problem
from playground import datasets, hooks
from playground.columns import ColumnSpec
from playground.models import Dataset, Job, JobItem, RowVote, Verdict
from playground.selectors import job_default_name, job_name_unique
from playground.services.datasets import BULK_BATCH, dataset_row_errors
from playground.services.variables import invalid_variables_text, variables_check
from prompts.models import PromptVersion

log = logging.getLogger(__name__)


def job_enqueue(job: Job) -> None:
    """Start the job's runner once the job is committed. The job is committed whatever the
    broker says: if it cannot take the task now, the job stays queued and beat's
    `jobs_resume_stale` starts it once the broker is back (the caller still gets its 202)."""
    transaction.on_commit(lambda: _job_run_queue(job.pk))


def _job_run_queue(job_id: int) -> None:
    from playground.tasks import job_run

    try:
        job_run.delay(job_id)
    except Exception:
        log.warning("could not queue job %s now: jobs_resume_stale will", job_id, exc_info=True)


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
    deadline: Any = None,
) -> Job:
    """Every dataset row on every column, as one job. 422 naming an unmapped variable, or
    listing the rows whose variables do not fit the schema (with line numbers). A `deadline`
    of "24h" makes it work that can wait (`playground.waiting`)."""
    from playground.columns import column_specs_check
    from playground.waiting import deadline_parse

    deadline = deadline_parse(deadline)

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
            f"{len(errors)} row{'s do' if len(errors) > 1 else ' does'} not fit the prompt's variables.",
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
        name=job_name_unique(team=team, name=name[:190])
        if name
        else job_default_name(dataset=dataset),
        created_by=user,
        prompt_version=version,
        dataset=dataset,
        columns=[spec.to_dict() for spec in columns],
        mapping=mapping,
        expected_column=expected_column,
        checks={"contains": contains, "regex": regex},
        total_items=total,
        deadline=deadline,
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
    deadline: Any = None,
) -> tuple[Job, bool]:
    """A job from the API: each input (a variable set for the prompt version, or a raw input)
    runs on `column`. With an idempotency key, the same key and body give back the same job
    (created False); the same key with another body is a 409. A `deadline` of "24h" makes it
    work that can wait (`playground.waiting`); any other value is a 400."""
    from playground.waiting import deadline_parse

    deadline = deadline_parse(deadline)
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
                    {"index": index, "message": invalid_variables_text(exc), "errors": exc.details}
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
                deadline=deadline,
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
    if in_flight and job.batch_id:
        # its items are in a batch: the batch is cancelled, and settles them when it ends
        from gateway.batches import batch_cancel

        batch_cancel(team_id=job.team_id, public_id=job.batch.public_id)
        job.status = Job.Status.CANCELLING
    elif in_flight and job.runner_token:
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


def job_evaluate_request(*, job: Job, actor: User) -> bool:
    """Judge a finished run's rows (again) with its prompt's enabled evaluators, in the
    background: rows a version already judged are skipped and cached judgments cost nothing,
    so this catches up on rows left over (an evaluator added later, a budget refusal). An
    editor's action; False when the prompt has no enabled evaluator."""
    if not (
        user_teams(user=actor).filter(pk=job.team_id).exists()
        and user_has_role(user=actor, role=Role.PROMPT_EDITOR)
    ):
        raise Forbidden("Only the team's prompt editors can run the judge.")
    if not job.finished:
        raise Conflict("The run is not finished yet; the judge runs when it is.")
    if job.prompt_version_id is None:
        raise BadRequest("Only a prompt's batch runs are judged.")
    return bool(hooks.evaluation().job_finished(job_id=job.pk))


def job_counters_refresh(*, job_id: int) -> None:
    """Recount a job's progress from its items (exact, whatever happened to the runner)."""
    from django.db.models import Count

    counts = JobItem.objects.filter(job_id=job_id).aggregate(
        done=Count("id", filter=Q(status=JobItem.Status.DONE)),
        failed=Count("id", filter=Q(status=JobItem.Status.ERROR)),
        cancelled=Count("id", filter=Q(status=JobItem.Status.CANCELLED)),
        cost=MoneySum("cost_usd"),
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
