"""Evaluator writes: create one on a prompt, save a new version of its settings, switch it on
or off. Editors of the prompt's team only; each change is an audit event."""

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
from evals.models import Evaluator, EvaluatorVersion
from prompts.models import Prompt


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
