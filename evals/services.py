"""Evaluator writes: create one on a prompt, save a new version of its settings, switch it on
or off, evaluate a selection of its logged requests. Editors of the prompt's team only; each
change to an evaluator is an audit event."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Max

from accounts.models import Role, User
from accounts.selectors import user_has_role, user_teams
from core.audit import audit_record
from core.errors import BadRequest, Conflict, Forbidden
from evals.configs import config_clean
from evals.logged import MAX_REQUESTS, versions_for_requests
from evals.models import Evaluator, EvaluatorVersion, RequestRun
from evals.tasks import request_run_evaluate
from prompts.models import Prompt
from spend.models import Purpose, UsageRecord


def _require_editor(*, actor: User, team_id: int) -> None:
    if not (
        user_teams(user=actor).filter(pk=team_id).exists()
        and user_has_role(user=actor, role=Role.PROMPT_EDITOR)
    ):
        raise Forbidden("Only the team's prompt editors can change evaluators.")


def _rate(value: Any) -> Decimal:
    try:
        rate = Decimal(str(value))
    except InvalidOperation:
        raise BadRequest(
            "The shadow sample rate is a number.", param="shadow_sample_rate"
        ) from None
    if not Decimal(0) <= rate <= Decimal(1):
        raise BadRequest("The shadow sample rate is between 0 and 1.", param="shadow_sample_rate")
    return rate


@transaction.atomic
def evaluator_create(
    *,
    prompt: Prompt,
    name: str,
    kind: str,
    config: dict[str, Any],
    actor: User,
    shadow_sample_rate: Any = 0,
) -> Evaluator:
    _require_editor(actor=actor, team_id=prompt.team_id)
    name = name.strip()
    if not name:
        raise BadRequest("An evaluator needs a name.", param="name")
    if kind not in Evaluator.Kind.values:
        raise BadRequest(f"Unknown evaluator kind {kind!r}.", param="kind")
    cleaned = config_clean(kind=kind, config=config)
    try:
        with transaction.atomic():
            evaluator = Evaluator.objects.create(
                team_id=prompt.team_id,
                prompt=prompt,
                name=name[:100],
                kind=kind,
                shadow_sample_rate=_rate(shadow_sample_rate),
                created_by=actor,
            )
    except IntegrityError:
        raise Conflict(f"This prompt already has an evaluator named {name!r}.") from None
    EvaluatorVersion.objects.create(evaluator=evaluator, number=1, config=cleaned, created_by=actor)
    audit_record(
        actor=actor,
        action="evaluator.create",
        obj=evaluator,
        team=prompt.team,
        after={
            "prompt": prompt.slug,
            "name": evaluator.name,
            "kind": kind,
            "version": 1,
            "config": cleaned,
        },
    )
    return evaluator


@transaction.atomic
def evaluator_version_create(
    *, evaluator: Evaluator, config: dict[str, Any], actor: User, note: str = ""
) -> EvaluatorVersion:
    """A new immutable version of the settings; the earlier ones and their judgments stay."""
    _require_editor(actor=actor, team_id=evaluator.team_id)
    cleaned = config_clean(kind=evaluator.kind, config=config)
    Evaluator.objects.select_for_update().filter(pk=evaluator.pk).first()
    latest = evaluator_latest_version(evaluator=evaluator)
    if latest is not None and latest.config == cleaned:
        raise BadRequest("Nothing changed since the latest version.")
    number = (evaluator.versions.aggregate(top=Max("number"))["top"] or 0) + 1
    version = EvaluatorVersion.objects.create(
        evaluator=evaluator, number=number, config=cleaned, note=note[:200], created_by=actor
    )
    audit_record(
        actor=actor,
        action="evaluator.version",
        obj=evaluator,
        team=evaluator.team,
        before={"version": latest.number, "config": latest.config} if latest else None,
        after={"version": number, "config": cleaned, "note": note[:200]},
    )
    return version


@transaction.atomic
def evaluator_settings_set(
    *, evaluator: Evaluator, actor: User, enabled: bool, shadow_sample_rate: Any
) -> Evaluator:
    _require_editor(actor=actor, team_id=evaluator.team_id)
    before = {"enabled": evaluator.enabled, "shadow_sample_rate": str(evaluator.shadow_sample_rate)}
    evaluator.enabled = enabled
    evaluator.shadow_sample_rate = _rate(shadow_sample_rate)
    evaluator.save(update_fields=["enabled", "shadow_sample_rate", "updated_at"])
    audit_record(
        actor=actor,
        action="evaluator.settings",
        obj=evaluator,
        team=evaluator.team,
        before=before,
        after={"enabled": enabled, "shadow_sample_rate": str(evaluator.shadow_sample_rate)},
    )
    return evaluator


def evaluator_latest_version(*, evaluator: Evaluator) -> EvaluatorVersion | None:
    return evaluator.versions.order_by("-number").first()


def request_run_start(*, prompt: Prompt, request_ids: list[str], actor: User) -> RequestRun:
    """Evaluate these logged requests of the prompt with its enabled single-answer evaluators,
    in the background (`evals.tasks.request_run_evaluate`). Ids that are not the prompt's
    team's gateway requests of this prompt are dropped here (and again by the runner)."""
    _require_editor(actor=actor, team_id=prompt.team_id)
    wanted = list(dict.fromkeys(request_ids))
    if len(wanted) > MAX_REQUESTS:
        raise BadRequest(f"At most {MAX_REQUESTS} requests are evaluated at a time.")
    mine = set(
        UsageRecord.objects.filter(
            request_id__in=wanted,
            team_id=prompt.team_id,
            purpose=Purpose.GATEWAY,
            prompt_version__prompt=prompt,
        ).values_list("request_id", flat=True)
    )
    selected = [rid for rid in wanted if rid in mine]
    if not selected:
        raise BadRequest("None of these requests is a gateway request of this prompt.")
    versions, skipped = versions_for_requests(prompt.pk)
    if not versions:
        raise BadRequest(
            "This prompt has no enabled evaluator that grades a single answer "
            "(a score judge or a check)."
        )
    with transaction.atomic():
        run = RequestRun.objects.create(
            team_id=prompt.team_id,
            prompt=prompt,
            created_by=actor,
            request_ids=selected,
            version_ids=[v.pk for v in versions],
            skipped_evaluators=skipped,
        )
        transaction.on_commit(lambda: request_run_evaluate.delay(run.pk))
    return run
