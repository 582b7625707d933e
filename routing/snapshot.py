"""An immutable, in-process snapshot of the catalog and the active policy, for the hot path.

The router decides from plain frozen dataclasses, never from the ORM, so a routing decision
costs no query. The snapshot lives in the process's hot cache (`core.hot`): every write to
the catalog, prices or the policy, by any process, makes each process load it again.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from asgiref.sync import sync_to_async

from core.db import reconnecting
from core.hot import hot_get

# Capability names, as rules and requests spell them, and the Model flag behind each.
CAPABILITY_FLAGS = {
    "tools": "supports_tools",
    "tool_search": "supports_tool_search",
    "computer_use": "supports_computer_use",
    "json_schema": "supports_json_schema",
    "vision": "supports_vision",
    "reasoning": "supports_reasoning",
}
CAPABILITIES = frozenset(CAPABILITY_FLAGS)


@dataclass(frozen=True, slots=True)
class ProviderInfo:
    id: int
    name: str
    base_url: str
    api_key_env: str
    timeout_seconds: float


@dataclass(frozen=True, slots=True)
class ModelInfo:
    id: int
    name: str
    provider: ProviderInfo
    tier: str | None
    context_window: int
    max_output_tokens: int
    capabilities: frozenset[str]
    timeout_seconds: float
    shutdown_date: dt.date | None
    # routing.models.Price rows, newest first (plain loaded instances; never saved from here)
    prices: tuple[Any, ...] = ()

    def price_at(self, at: dt.datetime) -> Any:
        for price in self.prices:
            if price.effective_from <= at:
                return price
        raise LookupError(f"no price for {self.name} at {at:%Y-%m-%d %H:%M}")

    def lacks(self, required: frozenset[str]) -> frozenset[str]:
        return required - self.capabilities


@dataclass(frozen=True, slots=True)
class TierInfo:
    name: str
    rank: int
    reasoning_effort: str
    models: tuple[ModelInfo, ...]  # primary first, then fallbacks


@dataclass(frozen=True, slots=True)
class MetadataCondition:
    key: str
    op: str
    value: Any


@dataclass(frozen=True, slots=True)
class RuleInfo:
    id: int
    name: str
    position: int
    action: str  # tier | model | classify
    target_tier: str | None = None
    target_model: str | None = None
    team_id: int | None = None
    prompt_id: int | None = None
    task_tags: frozenset[str] = frozenset()
    min_input_tokens: int | None = None
    max_input_tokens: int | None = None
    tools_present: bool | None = None
    tool_types: frozenset[str] = frozenset()
    required_capability: str = ""
    metadata_conditions: tuple[MetadataCondition, ...] = ()
    escalate_on_failed_check: bool = False
    allow_tier_fallback: bool = True


@dataclass(frozen=True)
class Snapshot:
    tiers: tuple[TierInfo, ...]  # cheapest first
    models: dict[str, ModelInfo]
    rules: tuple[RuleInfo, ...]
    policy_name: str | None = None
    default_tier: str = "mini"
    tiers_by_name: dict[str, TierInfo] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tiers_by_name", {tier.name: tier for tier in self.tiers})

    def tier(self, name: str) -> TierInfo | None:
        return self.tiers_by_name.get(name)

    def tiers_above(self, name: str) -> tuple[TierInfo, ...]:
        tier = self.tiers_by_name.get(name)
        if tier is None:
            return ()
        return tuple(t for t in self.tiers if t.rank > tier.rank)


def _model_info(model: Any, providers: dict[int, ProviderInfo], prices: tuple) -> ModelInfo:
    provider = providers[model.provider_id]
    capabilities = frozenset(
        name for name, flag in CAPABILITY_FLAGS.items() if getattr(model, flag)
    )
    timeout = model.timeout_seconds if model.timeout_seconds is not None else None
    return ModelInfo(
        id=model.id,
        name=model.name,
        provider=provider,
        tier=model.tier.name if model.tier_id else None,
        context_window=model.context_window,
        max_output_tokens=model.max_output_tokens,
        capabilities=capabilities,
        timeout_seconds=float(timeout if timeout is not None else provider.timeout_seconds),
        shutdown_date=model.shutdown_date,
        prices=prices,
    )


def rule_info(rule: Any) -> RuleInfo:
    conditions = tuple(
        MetadataCondition(
            key=str(c.get("key", "")), op=str(c.get("op", "eq")), value=c.get("value")
        )
        for c in (rule.metadata_conditions or [])
        if isinstance(c, dict)
    )
    return RuleInfo(
        id=rule.id,
        name=rule.name,
        position=rule.position,
        action=rule.action,
        target_tier=rule.target_tier.name if rule.target_tier_id else None,
        target_model=rule.target_model.name if rule.target_model_id else None,
        team_id=rule.team_id,
        prompt_id=rule.prompt_id,
        task_tags=frozenset(rule.task_tags or ()),
        min_input_tokens=rule.min_input_tokens,
        max_input_tokens=rule.max_input_tokens,
        tools_present=rule.tools_present,
        tool_types=frozenset(rule.tool_types or ()),
        required_capability=rule.required_capability,
        metadata_conditions=conditions,
        escalate_on_failed_check=rule.escalate_on_failed_check,
        allow_tier_fallback=rule.allow_tier_fallback,
    )


@reconnecting
def snapshot_load() -> Snapshot:
    """Read the catalog and the active policy from the database (a handful of queries)."""
    from routing.models import Model, Policy, Price, Provider, Rule, Tier, TierModel

    providers = {
        p.id: ProviderInfo(
            id=p.id,
            name=p.name,
            base_url=p.base_url,
            api_key_env=p.api_key_env,
            timeout_seconds=float(p.timeout_seconds),
        )
        for p in Provider.objects.all()
    }
    prices: dict[int, list] = {}
    for price in Price.objects.order_by("model_id", "-effective_from"):
        prices.setdefault(price.model_id, []).append(price)
    models = {
        m.name: _model_info(m, providers, tuple(prices.get(m.id, ())))
        for m in Model.objects.select_related("tier").filter(is_active=True)
    }
    by_id = {m.id: m for m in models.values()}
    members: dict[int, list[ModelInfo]] = {}
    for tm in TierModel.objects.order_by("tier_id", "position", "id"):
        if tm.model_id in by_id:
            members.setdefault(tm.tier_id, []).append(by_id[tm.model_id])
    tiers = tuple(
        TierInfo(
            name=t.name,
            rank=t.rank,
            reasoning_effort=t.reasoning_effort,
            models=tuple(members.get(t.id, ())),
        )
        for t in Tier.objects.order_by("rank", "id")
    )
    policy = Policy.objects.filter(is_active=True).first()
    rules: tuple[RuleInfo, ...] = ()
    if policy is not None:
        rules = tuple(
            rule_info(rule)
            for rule in Rule.objects.select_related("target_tier", "target_model")
            .filter(policy=policy, enabled=True)
            .order_by("position", "id")
        )
    names = {t.name for t in tiers}
    default_tier = "mini" if "mini" in names else (tiers[0].name if tiers else "")
    return Snapshot(
        tiers=tiers,
        models=models,
        rules=rules,
        policy_name=policy.name if policy else None,
        default_tier=default_tier,
    )


SNAPSHOT_KEY = ("routing-snapshot",)
# Built once: a `sync_to_async` wrapper costs more to make than the cache hit it would serve.
_snapshot_load_async = sync_to_async(snapshot_load)


async def snapshot_get() -> Snapshot:
    """The current snapshot, from the process's hot cache (`core.hot`): reloaded once after
    any write to the catalog, prices or the policy, by any process."""
    return await hot_get(SNAPSHOT_KEY, _snapshot_load_async)
