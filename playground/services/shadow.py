"""Shadow sampling: enqueue a sample of production traffic, rerun it on the flagship, review the pair."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from asgiref.sync import sync_to_async
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from core.errors import AppError, BadRequest
from core.middleware import internal_request_id
from playground import calls, checks, hooks
from playground.columns import ColumnSpec
from playground.models import ShadowPair, Verdict
from playground.selectors import FLAGSHIP_TIER
from prompts.models import PromptVersion

logger = logging.getLogger(__name__)


# What a shadow pair holds of the traffic itself (cleared when content is not retained).
SHADOW_CONTENT = {"request_body": None, "production_output": "", "shadow_output": ""}


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
                content_retained=not prompt.team.no_content
                and (prompt.store_content or prompt.team.store_content),
            )
            from playground.tasks import shadow_run

            transaction.on_commit(lambda: shadow_run.delay(pair.pk))
        return pair.pk
    except Exception:  # shadow sampling must never disturb production traffic
        logger.exception("shadow sampling failed")
        return None


def shadow_on_production_answer(sender: Any, **kwargs: Any) -> None:
    """Receiver of the gateway's `production_answer` signal."""
    kwargs.pop("signal", None)
    shadow_maybe_enqueue(**kwargs)


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
                    request_id=internal_request_id(f"shadow-{pair.pk}"),
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
            await hooks.evaluation().shadow_pair_done(
                pair=pair, production_output=pair.production_output, shadow_output=result.output
            )
    if pair.production_request_id:
        fields["production_usage_record_id"] = await calls.usage_record_id(
            pair.production_request_id, team_id=pair.team_id
        )
    if not pair.content_retained:
        fields.update(SHADOW_CONTENT)
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
