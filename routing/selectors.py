"""Reads for the routing pages, the lifecycle warnings and other apps."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.db.models import Prefetch, QuerySet
from django.utils import timezone

from accounts.models import Role, User
from accounts.selectors import user_has_role
from routing.models import Model, Policy, Price, Rule, Tier, TierModel

SHUTDOWN_WARNING_DAYS = 30


def user_can_edit_routing(*, user: User) -> bool:
    """Policies, tiers, prices and lifecycle remaps are edited by admins (and superusers)."""
    return user.is_authenticated and (
        user.is_superuser or user_has_role(user=user, role=Role.ADMIN)
    )


@dataclass
class ShutdownNotice:
    """A model past or near its shutdown date, and where routing still uses it."""

    model: Model
    shutdown_date: dt.date
    days_left: int
    replacement: Model | None
    tiers: list[str] = field(default_factory=list)
    rules: list[str] = field(default_factory=list)

    @property
    def is_past(self) -> bool:
        return self.days_left < 0

    @property
    def in_use(self) -> bool:
        return bool(self.tiers or self.rules)


def models_near_shutdown(
    today: dt.date | None = None, days: int = SHUTDOWN_WARNING_DAYS, *, in_use_only: bool = False
) -> list[ShutdownNotice]:
    """Models whose shutdown date is past or within `days` of `today`, soonest first, with
    the tiers and rules (of any policy) that still route to them."""
    today = today or timezone.localdate()
    models = (
        Model.objects.filter(
            shutdown_date__isnull=False, shutdown_date__lte=today + dt.timedelta(days)
        )
        .select_related("replacement")
        .prefetch_related(
            Prefetch(
                "tier_memberships",
                queryset=TierModel.objects.select_related("tier").order_by("tier__rank"),
            )
        )
        .order_by("shutdown_date", "name")
    )
    rules_by_model: dict[int, list[str]] = {}
    for rule in (
        Rule.objects.filter(target_model__in=models)
        .select_related("policy")
        .order_by("policy__name", "position")
    ):
        rules_by_model.setdefault(rule.target_model_id, []).append(f"{rule.policy}: {rule.name}")
    notices = []
    for model in models:
        notice = ShutdownNotice(
            model=model,
            shutdown_date=model.shutdown_date,
            days_left=(model.shutdown_date - today).days,
            replacement=model.replacement,
            tiers=[membership.tier.name for membership in model.tier_memberships.all()],
            rules=rules_by_model.get(model.pk, []),
        )
        if notice.in_use or not in_use_only:
            notices.append(notice)
    return notices


def tiers_with_models() -> QuerySet[Tier]:
    """Tiers by rank, each with `.ordered_members` (primary first, then the fallbacks)."""
    return Tier.objects.order_by("rank").prefetch_related(
        Prefetch(
            "members",
            queryset=TierModel.objects.select_related("model").order_by("position", "id"),
            to_attr="ordered_members",
        )
    )


def policy_for_page(*, policy_id: int | str | None = None) -> Policy | None:
    """The policy a page shows: the one asked for, else the active one, else the first."""
    policies = Policy.objects.order_by("-is_active", "name")
    if policy_id and str(policy_id).isdigit():
        return policies.filter(pk=policy_id).first()
    return policies.first()


def policy_rules(*, policy: Policy) -> QuerySet[Rule]:
    return (
        Rule.objects.filter(policy=policy)
        .select_related("team", "prompt", "target_tier", "target_model")
        .order_by("position", "id")
    )


@dataclass
class CatalogRow:
    model: Model
    price: Price | None
    history: list[Price]


def catalog_with_prices(*, at: dt.datetime | None = None) -> list[CatalogRow]:
    """Every model with the price in force at `at` (now by default) and its price history,
    newest first (future rows included, so scheduled changes show)."""
    at = at or timezone.now()
    models = (
        Model.objects.select_related("provider", "tier", "replacement")
        .prefetch_related(Prefetch("prices", queryset=Price.objects.order_by("-effective_from")))
        .order_by("tier__rank", "name")
    )
    rows = []
    for model in models:
        history = list(model.prices.all())
        current = next((price for price in history if price.effective_from <= at), None)
        rows.append(CatalogRow(model=model, price=current, history=history))
    return rows
