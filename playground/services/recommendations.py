"""Acting on recommendations: a routing rule for the cheap tier, and a prompt's shadow sample rate."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db import transaction

from accounts.models import User
from core.audit import audit_record
from core.errors import BadRequest, Conflict, Forbidden
from prompts.models import Prompt


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
            "evidence": _evidence(prompt=prompt, cheap_tier=tier.name),
        },
    )
    return rule


def _evidence(*, prompt: Prompt, cheap_tier: str) -> dict[str, object] | None:
    """The recommendation a rule is made from, as it stood: cases, sources, bound, savings."""
    from playground.hooks import evaluation
    from playground.selectors import prompt_recommendations

    recommendation = next(
        (r for r in prompt_recommendations(prompt=prompt) if r.cheap_tier == cheap_tier), None
    )
    if recommendation is None:
        return None
    evidence = recommendation.evidence()
    # how far the judge's verdicts among those cases can be trusted, as people saw it then
    agreement = evaluation().agreement(prompt=prompt)
    evidence["judge_agreement"] = (
        {
            "cases": agreement.cases,
            "percent": agreement.percent,
            "kappa": round(agreement.kappa, 3),
            "evaluator": agreement.evaluator_id,
        }
        if agreement is not None
        else None
    )
    return evidence


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
