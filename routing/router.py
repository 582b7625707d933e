"""The router: a pure decision from (request features, policy, catalog) to tiers and models.

No I/O here. The policy's rules are tried in order and the first match wins; its action
names a tier, a model, or `classify` (the caller runs the classifier and routes again with
its answer). A model lacking a capability the request needs is never chosen: the tier's
incapable models are dropped, and if none is left the decision moves up to the next tier
that has one. The decision also carries the tiers above the chosen one, for escalation
(the output failed its check) and tier fallback (every model of the tier failed).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from core.errors import BadRequest
from core.patterns import pattern_search
from routing.snapshot import ModelInfo, RuleInfo, Snapshot, TierInfo

AUTO = "auto"
TIER_PREFIX = "tier:"


class UnknownModel(BadRequest):
    code = "model_not_found"


class UnsupportedCapability(BadRequest):
    code = "unsupported_capability"


@dataclass(frozen=True, slots=True)
class RequestFeatures:
    """What the router looks at. `requested` is `auto`, `tier:<name>` or a catalog model."""

    team_id: int | None = None
    prompt_id: int | None = None
    task_tag: str | None = None
    estimated_input_tokens: int = 0
    tool_types: frozenset[str] = frozenset()
    required_capabilities: frozenset[str] = frozenset()
    metadata: Mapping[str, Any] = field(default_factory=dict)
    requested: str = AUTO
    # who pinned a tier or model when `requested` is not auto: "request" or "prompt version"
    pinned_by: str = "request"

    @property
    def tools_present(self) -> bool:
        return bool(self.tool_types)


def tool_kind(tool: Any) -> str:
    """A tool definition's kind as rules and capabilities name it (`computer*` is one kind)."""
    kind = str(tool.get("type", "function")) if isinstance(tool, dict) else "function"
    if kind.startswith("computer"):
        return "computer_use"
    return kind


def tool_capabilities(kinds: frozenset[str]) -> set[str]:
    """The capabilities a model needs for these tool kinds."""
    needed = {"tools"} if kinds else set()
    return needed | (kinds & {"computer_use", "tool_search"})


@dataclass(frozen=True, slots=True)
class TierPlan:
    tier: str
    models: tuple[ModelInfo, ...]


@dataclass(frozen=True, slots=True)
class Skipped:
    """A candidate dropped before any attempt: a model (or a whole tier, `model` empty)."""

    tier: str
    model: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"tier": self.tier, "model": self.model, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class Decision:
    rule: str
    reason: str
    plan: tuple[TierPlan, ...] = ()  # plan[0] is the chosen tier; the rest are tiers above
    escalate_on_failed_check: bool = False
    allow_tier_fallback: bool = False
    needs_classifier: bool = False
    rule_id: int | None = None
    skipped: tuple[Skipped, ...] = ()

    @property
    def tier(self) -> str:
        return self.plan[0].tier if self.plan else ""

    @property
    def model(self) -> ModelInfo | None:
        return self.plan[0].models[0] if self.plan and self.plan[0].models else None

    def as_dict(self) -> dict[str, str]:
        return {"rule": self.rule, "reason": self.reason}


def estimate_tokens(text: str) -> int:
    """A cheap estimate for routing: about four characters per token."""
    return (len(text) + 3) // 4


def route(
    features: RequestFeatures,
    snapshot: Snapshot,
    *,
    classified_tier: str | None = None,
    classifier_reason: str = "",
) -> Decision:
    """Decide. With a `classify` rule and no `classified_tier`, returns `needs_classifier`."""
    requested = features.requested or AUTO
    if requested != AUTO:
        return _pinned(features, snapshot, requested)
    skipped: list[Skipped] = []
    for rule in snapshot.rules:
        if not rule_matches(rule, features):
            continue
        label = f"{rule.name}"
        if rule.action == "model" and rule.target_model:
            model = snapshot.models.get(rule.target_model)
            if model is None:
                continue  # the rule names a retired model; the next rule decides
            missing = model.lacks(features.required_capabilities)
            if missing:
                why = f"rule '{rule.name}' skipped: no {', '.join(sorted(missing))}"
                skipped.append(Skipped(model.tier or "", model.name, why))
                continue
            return Decision(
                rule=label,
                reason=f"rule '{rule.name}' matched: model {model.name}",
                plan=(TierPlan(tier=model.tier or "", models=(model,)),),
                escalate_on_failed_check=False,
                allow_tier_fallback=False,
                rule_id=rule.id,
                skipped=tuple(skipped),
            )
        if rule.action == "classify":
            if classified_tier is None:
                return Decision(
                    rule=label,
                    reason=f"rule '{rule.name}' matched: the classifier picks the tier",
                    needs_classifier=True,
                    rule_id=rule.id,
                )
            tier_name = classified_tier
            why = f"rule '{rule.name}' matched: classifier chose {tier_name}"
            if classifier_reason:
                why += f" ({classifier_reason})"
        else:
            tier_name = rule.target_tier or snapshot.default_tier
            why = f"rule '{rule.name}' matched: tier {tier_name}"
        decision = _tier_decision(features, snapshot, tier_name, label, why, rule)
        break
    else:
        why = f"no rule matched: default tier {snapshot.default_tier}"
        decision = _tier_decision(features, snapshot, snapshot.default_tier, "default", why, None)
    return replace(decision, skipped=(*skipped, *decision.skipped)) if skipped else decision


def rule_matches(rule: RuleInfo, features: RequestFeatures) -> bool:
    if rule.team_id is not None and rule.team_id != features.team_id:
        return False
    if rule.prompt_id is not None and rule.prompt_id != features.prompt_id:
        return False
    if rule.task_tags and features.task_tag not in rule.task_tags:
        return False
    tokens = features.estimated_input_tokens
    if rule.min_input_tokens is not None and tokens < rule.min_input_tokens:
        return False
    if rule.max_input_tokens is not None and tokens > rule.max_input_tokens:
        return False
    if rule.tools_present is not None and rule.tools_present != features.tools_present:
        return False
    if rule.tool_types and not rule.tool_types & features.tool_types:
        return False
    if rule.required_capability and rule.required_capability not in features.required_capabilities:
        return False
    return all(
        _metadata_matches(c.key, c.op, c.value, features.metadata) for c in rule.metadata_conditions
    )


def _metadata_matches(key: str, op: str, expected: Any, metadata: Mapping[str, Any]) -> bool:
    if key not in metadata:
        return False
    actual = metadata[key]
    try:
        if op == "eq":
            return actual == expected or str(actual) == str(expected)
        if op == "in":
            values = expected if isinstance(expected, list | tuple) else [expected]
            return actual in values or str(actual) in {str(v) for v in values}
        if op == "gt":
            return float(actual) > float(expected)
        if op == "lt":
            return float(actual) < float(expected)
        if op == "regex":
            # a pattern too slow on this value does not match (PatternError is a ValueError)
            return pattern_search(str(expected), str(actual))
    except (TypeError, ValueError):
        return False
    return False


def _capable(tier: TierInfo, required: frozenset[str]) -> tuple[ModelInfo, ...]:
    return tuple(model for model in tier.models if not model.lacks(required))


def _incapable(tier: TierInfo, required: frozenset[str]) -> list[Skipped]:
    return [
        Skipped(tier.name, model.name, f"no {', '.join(sorted(missing))}")
        for model in tier.models
        if (missing := model.lacks(required))
    ]


def _tier_decision(
    features: RequestFeatures,
    snapshot: Snapshot,
    tier_name: str,
    rule_label: str,
    why: str,
    rule: RuleInfo | None,
    *,
    pinned: bool = False,
) -> Decision:
    tier = snapshot.tier(tier_name)
    if tier is None:
        raise BadRequest(f"Unknown tier {tier_name!r}.", param="model")
    required = features.required_capabilities
    models = _capable(tier, required)
    skipped = _incapable(tier, required) if required else []
    if not models:
        if pinned:
            raise UnsupportedCapability(
                f"No model of tier {tier.name} supports {', '.join(sorted(required))}.",
                param="model",
            )
        for higher in snapshot.tiers_above(tier.name):
            models = _capable(higher, required)
            if models:
                skipped += _incapable(higher, required)
                why += (
                    f"; {tier.name} has no model with {', '.join(sorted(required))}: "
                    f"moved up to {higher.name}"
                )
                tier = higher
                break
        else:
            raise UnsupportedCapability(
                f"No model in the catalog supports {', '.join(sorted(required))}.",
                param="tools",
            )
    above = () if pinned else snapshot.tiers_above(tier.name)
    plan = [TierPlan(tier=tier.name, models=models)]
    plan += [TierPlan(t.name, capable) for t in above if (capable := _capable(t, required))]
    return Decision(
        rule=rule_label,
        reason=why,
        plan=tuple(plan),
        escalate_on_failed_check=bool(rule and rule.escalate_on_failed_check),
        allow_tier_fallback=bool(rule and rule.allow_tier_fallback)
        or (rule is None and not pinned),
        rule_id=rule.id if rule else None,
        skipped=tuple(skipped),
    )


def _pinned(features: RequestFeatures, snapshot: Snapshot, requested: str) -> Decision:
    who = features.pinned_by
    if requested.startswith(TIER_PREFIX):
        tier_name = requested[len(TIER_PREFIX) :]
        if snapshot.tier(tier_name) is None:
            raise UnknownModel(
                f"Unknown tier {tier_name!r}; tiers: {', '.join(t.name for t in snapshot.tiers)}.",
                param="model",
            )
        return _tier_decision(
            features,
            snapshot,
            tier_name,
            "pinned",
            f"tier {tier_name} set by the {who}",
            None,
            pinned=True,
        )
    model = snapshot.models.get(requested)
    if model is None:
        raise UnknownModel(
            f"The model '{requested}' does not exist in the catalog; use 'auto', "
            "'tier:<name>' or a catalog model name (GET /v1/models).",
            param="model",
        )
    missing = model.lacks(features.required_capabilities)
    if missing:
        raise UnsupportedCapability(
            f"The model '{model.name}' does not support {', '.join(sorted(missing))}.",
            param="model",
        )
    return Decision(
        rule="pinned",
        reason=f"model {model.name} set by the {who}",
        plan=(TierPlan(tier=model.tier or "", models=(model,)),),
    )


def downgrade(
    decision: Decision, tier_name: str, snapshot: Snapshot, features: RequestFeatures, why: str
) -> Decision | None:
    """The same request sent to a cheaper tier (a budget's `downgrade` action), or None."""
    target = snapshot.tier(tier_name)
    current = snapshot.tier(decision.tier)
    if target is None or (current is not None and target.rank >= current.rank):
        return None
    models = _capable(target, features.required_capabilities)
    if not models:
        return None
    return replace(
        decision,
        reason=f"{decision.reason}; {why}: downgraded from {decision.tier} to {target.name}",
        plan=(TierPlan(tier=target.name, models=models),),
        skipped=(
            *decision.skipped,
            Skipped(decision.tier, "", f"{why}: downgraded to {target.name}"),
            *_incapable(target, features.required_capabilities),
        ),
        escalate_on_failed_check=False,
        allow_tier_fallback=False,
    )
