"""Writes to the routing configuration: rules, tier members, lifecycle remaps, price sheets.

Every change is audited (core.audit) and saved row by row so that the cache-invalidation
signals fire (`core.hot`, watched in routing.apps)."""

from __future__ import annotations

import bisect
import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from accounts.models import User
from core.audit import audit_record
from core.errors import BadRequest
from core.hot import hot_bump
from core.money import usd_exact
from routing.models import Model, Policy, Price, Provider, Rule, Tier, TierModel
from routing.pricesheet import (
    CAPABILITIES,
    PriceSheet,
    PriceSheetError,
    price_row_export,
    price_sheet_parse,
    price_sheet_render,
)

# --- rules -----------------------------------------------------------------------------------

RULE_FIELDS = (
    "name",
    "enabled",
    "team",
    "prompt",
    "task_tags",
    "min_input_tokens",
    "max_input_tokens",
    "tools_present",
    "tool_types",
    "required_capability",
    "metadata_conditions",
    "action",
    "target_tier",
    "target_model",
    "escalate_on_failed_check",
    "allow_tier_fallback",
)


def rule_snapshot(rule: Rule) -> dict[str, Any]:
    """A rule as JSON for the audit trail (names, not ids, so it reads on its own)."""
    return {
        "position": rule.position,
        "name": rule.name,
        "enabled": rule.enabled,
        "team": rule.team.slug if rule.team_id else None,
        "prompt": rule.prompt.slug if rule.prompt_id else None,
        "task_tags": rule.task_tags,
        "min_input_tokens": rule.min_input_tokens,
        "max_input_tokens": rule.max_input_tokens,
        "tools_present": rule.tools_present,
        "tool_types": rule.tool_types,
        "required_capability": rule.required_capability,
        "metadata_conditions": rule.metadata_conditions,
        "action": rule.action,
        "target_tier": rule.target_tier.name if rule.target_tier_id else None,
        "target_model": rule.target_model.name if rule.target_model_id else None,
        "escalate_on_failed_check": rule.escalate_on_failed_check,
        "allow_tier_fallback": rule.allow_tier_fallback,
    }


def _rule_apply(rule: Rule, data: dict[str, Any]) -> None:
    unknown = set(data) - set(RULE_FIELDS)
    if unknown:
        raise BadRequest(f"Unknown rule fields: {', '.join(sorted(unknown))}")
    for name, value in data.items():
        setattr(rule, name, value)
    if rule.action == Rule.Action.TIER:
        rule.target_model = None
    elif rule.action == Rule.Action.MODEL:
        rule.target_tier = None
    else:
        rule.target_tier = rule.target_model = None
    rule.full_clean()


@transaction.atomic
def rule_create(*, policy: Policy, data: dict[str, Any], actor: User | None) -> Rule:
    """Add a rule at the end of the policy (first match wins, so new rules go last)."""
    last = policy.rules.aggregate(last=Max("position"))["last"]
    rule = Rule(policy=policy, position=0 if last is None else last + 1)
    _rule_apply(rule, data)
    rule.save()
    audit_record(actor=actor, action="rule.create", obj=rule, after=rule_snapshot(rule))
    return rule


@transaction.atomic
def rule_update(*, rule: Rule, data: dict[str, Any], actor: User | None) -> Rule:
    before = rule_snapshot(rule)
    _rule_apply(rule, data)
    rule.save()
    after = rule_snapshot(rule)
    if after != before:
        audit_record(actor=actor, action="rule.update", obj=rule, before=before, after=after)
    return rule


@transaction.atomic
def rule_set_enabled(*, rule: Rule, enabled: bool, actor: User | None) -> Rule:
    if rule.enabled != enabled:
        rule.enabled = enabled
        rule.save(update_fields=["enabled"])
        audit_record(
            actor=actor,
            action="rule.enable" if enabled else "rule.disable",
            obj=rule,
            before={"enabled": not enabled},
            after={"enabled": enabled},
        )
    return rule


@transaction.atomic
def rule_delete(*, rule: Rule, actor: User | None) -> None:
    audit_record(actor=actor, action="rule.delete", obj=rule, before=rule_snapshot(rule))
    policy = rule.policy
    rule.delete()
    _renumber(list(Rule.objects.filter(policy=policy).order_by("position", "id")))


def _renumber(rows: list[Any]) -> None:
    for position, row in enumerate(rows):
        if row.position != position:
            row.position = position
            row.save(update_fields=["position"])


def _ordered(rows: list[Any], ids: list[int], what: str) -> list[Any]:
    by_id = {row.pk: row for row in rows}
    if sorted(ids) != sorted(by_id) or len(ids) != len(set(ids)):
        raise BadRequest(
            f"The new order must list each of the {what} exactly once.",
            details={"expected": sorted(by_id), "got": ids},
        )
    return [by_id[pk] for pk in ids]


@transaction.atomic
def rules_reorder(*, policy: Policy, rule_ids: list[int], actor: User | None) -> list[Rule]:
    rules = list(Rule.objects.select_for_update().filter(policy=policy).order_by("position", "id"))
    before = [rule.name for rule in rules]
    ordered = _ordered(rules, rule_ids, "policy's rules")
    _renumber(ordered)
    after = [rule.name for rule in ordered]
    if after != before:
        audit_record(actor=actor, action="policy.reorder", obj=policy, before=before, after=after)
    return ordered


# --- tiers -----------------------------------------------------------------------------------


def tier_snapshot(tier: Tier) -> list[str]:
    return list(
        TierModel.objects.filter(tier=tier)
        .order_by("position", "id")
        .values_list("model__name", flat=True)
    )


@transaction.atomic
def tier_models_reorder(*, tier: Tier, model_ids: list[int], actor: User | None) -> None:
    """Put the tier's models in this order: the first is the primary, the rest fallbacks."""
    members = list(
        TierModel.objects.select_for_update().filter(tier=tier).order_by("position", "id")
    )
    before = [member.model.name for member in members]
    by_model = {member.model_id: member for member in members}
    ordered = _ordered(
        [_Keyed(pk=model_id, row=member) for model_id, member in by_model.items()],
        model_ids,
        "tier's models",
    )
    _renumber([keyed.row for keyed in ordered])
    after = tier_snapshot(tier)
    if after != before:
        audit_record(actor=actor, action="tier.reorder", obj=tier, before=before, after=after)


@dataclass
class _Keyed:
    pk: int
    row: Any


@transaction.atomic
def tier_model_add(*, tier: Tier, model: Model, actor: User | None) -> TierModel:
    before = tier_snapshot(tier)
    if TierModel.objects.filter(tier=tier, model=model).exists():
        raise BadRequest(f"{model} is already in the {tier} tier.")
    last = TierModel.objects.filter(tier=tier).aggregate(last=Max("position"))["last"]
    member = TierModel.objects.create(
        tier=tier, model=model, position=0 if last is None else last + 1
    )
    audit_record(
        actor=actor, action="tier.add_model", obj=tier, before=before, after=tier_snapshot(tier)
    )
    return member


@transaction.atomic
def tier_model_remove(*, tier: Tier, model: Model, actor: User | None) -> None:
    before = tier_snapshot(tier)
    TierModel.objects.filter(tier=tier, model=model).delete()
    _renumber(list(TierModel.objects.filter(tier=tier).order_by("position", "id")))
    audit_record(
        actor=actor, action="tier.remove_model", obj=tier, before=before, after=tier_snapshot(tier)
    )


# --- lifecycle -------------------------------------------------------------------------------


@dataclass
class RemapResult:
    model: Model
    replacement: Model
    tiers: list[str] = field(default_factory=list)
    rules: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.tiers or self.rules)


@transaction.atomic
def model_remap_to_replacement(*, model: Model, actor: User | None) -> RemapResult:
    """Move every tier slot and every rule that uses `model` to its replacement, in one step.

    The replacement takes the model's place in each tier (if the replacement was already a
    member of that tier, its old slot goes: a model appears once per tier)."""
    model = Model.objects.select_related("replacement").get(pk=model.pk)
    replacement = model.replacement
    if replacement is None:
        raise BadRequest(f"{model} has no replacement set; choose one in the catalog first.")
    if replacement.pk == model.pk:
        raise BadRequest(f"{model} cannot replace itself.")
    result = RemapResult(model=model, replacement=replacement)
    members = TierModel.objects.select_for_update(of=("self",)).filter(model=model)
    for member in members.select_related("tier"):
        tier = member.tier
        before = tier_snapshot(tier)
        TierModel.objects.filter(tier=tier, model=replacement).delete()
        member.model = replacement
        member.save(update_fields=["model"])
        _renumber(list(TierModel.objects.filter(tier=tier).order_by("position", "id")))
        after = tier_snapshot(tier)
        audit_record(actor=actor, action="tier.remap", obj=tier, before=before, after=after)
        result.tiers.append(tier.name)
    for rule in (
        # of=self: PostgreSQL cannot lock the nullable joined rows (team, prompt, tier)
        Rule.objects.select_for_update(of=("self",))
        .filter(target_model=model)
        .select_related("policy", "target_model", "target_tier", "team", "prompt")
    ):
        before = rule_snapshot(rule)
        rule.target_model = replacement
        rule.save(update_fields=["target_model"])
        audit_record(
            actor=actor, action="rule.remap", obj=rule, before=before, after=rule_snapshot(rule)
        )
        result.rules.append(f"{rule.policy}: {rule.name}")
    audit_record(
        actor=actor,
        action="model.remap",
        obj=model,
        before={"model": model.name},
        after={"replacement": replacement.name, "tiers": result.tiers, "rules": result.rules},
    )
    return result


# --- price sheets ----------------------------------------------------------------------------


@dataclass
class PlannedChange:
    action: str  # model.create | model.update | price.create | price.update
    model: str
    summary: str
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None


@dataclass
class PriceImportResult:
    format: str
    changes: list[PlannedChange]
    warnings: list[str]
    skipped: list[str]
    applied: bool
    effective_from: dt.datetime

    @property
    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for change in self.changes:
            counts[change.action] = counts.get(change.action, 0) + 1
        return counts


def _plain(value: Any) -> Any:
    """JSON-safe form of a field value for plans and the audit trail (money as text)."""
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, Model | Provider | Tier):
        return value.name
    if value is None or isinstance(value, bool | int | str):
        return value
    return str(value.normalize()) if hasattr(value, "normalize") else str(value)


def _price_values(price: Price) -> dict[str, Any]:
    return {
        "input_per_mtok": price.input_per_mtok,
        "cached_input_per_mtok": price.cached_input_per_mtok,
        "cache_write_per_mtok": price.cache_write_per_mtok,
        "output_per_mtok": price.output_per_mtok,
        "long_context_threshold": price.long_context_threshold,
        "long_context_input_multiplier": price.long_context_input_multiplier,
        "long_context_output_multiplier": price.long_context_output_multiplier,
    }


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return all(a[key] == b[key] for key in a)


def _describe_price(values: dict[str, Any]) -> str:
    def money(key: str) -> str:
        value = values[key]
        return "as input" if value is None else usd_exact(value)

    text = (
        f"in {money('input_per_mtok')} / cached {money('cached_input_per_mtok')} / "
        f"cache write {money('cache_write_per_mtok')} / out {money('output_per_mtok')} per 1M"
    )
    if values["long_context_threshold"] is not None:
        text += (
            f"; above {values['long_context_threshold']:,} input tokens "
            f"x{_plain(values['long_context_input_multiplier'])} in, "
            f"x{_plain(values['long_context_output_multiplier'])} out"
        )
    return text


def price_sheet_import(
    *,
    text: str,
    filename: str,
    actor: User | None = None,
    dry_run: bool = False,
    effective_from: dt.datetime | None = None,
    create_models: bool | None = None,
) -> PriceImportResult:
    """Plan (and unless `dry_run`, apply atomically) the changes a price sheet makes.

    - Rows without an effective date take `effective_from` (default: now).
    - A price row identical to the one already in force at its date is not added again, so
      re-importing the same sheet changes nothing. A row at an existing (model, date) with
      other values updates that row. Rows the sheet does not mention are left alone: an
      import never deletes.
    - New models are created from our format by default; from a LiteLLM map only with
      `create_models=True` (the map lists hundreds of models; by default we update the
      catalog's own).
    Raises PriceSheetError (every problem, line/key-level) and applies nothing on error."""
    sheet = price_sheet_parse(text, filename=filename)
    effective_from = effective_from or timezone.now().replace(microsecond=0)
    if timezone.is_naive(effective_from):
        raise PriceSheetError([f"effective_from needs a time zone: {effective_from!r}"])
    if create_models is None:
        create_models = sheet.format == "switchboard"
    with transaction.atomic():
        changes, skipped, chosen = _plan(
            sheet, effective_from=effective_from, create_models=create_models
        )
        result = PriceImportResult(
            format=sheet.format,
            changes=changes,
            warnings=sheet.warnings,
            skipped=sheet.skipped + skipped,
            applied=False,
            effective_from=effective_from,
        )
        if dry_run or not changes:
            return result
        _apply(sheet, chosen, changes, effective_from=effective_from, actor=actor, source=filename)
        result.applied = True
        hot_bump()  # bulk writes: not every row goes through a signal
    return result


def _plan(
    sheet: PriceSheet, *, effective_from: dt.datetime, create_models: bool
) -> tuple[list[PlannedChange], list[str], dict[str, Any]]:
    problems: list[str] = []
    changes: list[PlannedChange] = []
    skipped: list[str] = []
    existing = {
        model.name: model
        for model in Model.objects.select_related("provider", "tier", "replacement")
    }
    providers = {provider.name: provider for provider in Provider.objects.all()}
    tiers = {tier.name: tier for tier in Tier.objects.all()}
    chosen: dict[str, Any] = {}
    names_after = set(existing)
    for entry in sheet.models:
        model = existing.get(entry.name)
        provider_name = entry.fields.get("provider")
        if model is not None and sheet.format == "litellm" and provider_name != model.provider.name:
            # e.g. "azure/gpt-5.4" must not reprice our openai gpt-5.4
            skipped.append(
                f"{entry.where}: {entry.name} in the catalog is served by {model.provider}"
            )
            continue
        if entry.name in chosen:
            skipped.append(f"{entry.where}: {entry.name} is listed twice; the first entry wins")
            continue
        if model is None:
            if not create_models:
                skipped.append(f"{entry.where}: not in the catalog")
                continue
            if provider_name not in providers:
                if sheet.format == "litellm":
                    skipped.append(f"{entry.where}: provider {provider_name!r} is not configured")
                    continue
                problems.append(
                    f"{entry.where}.provider: "
                    + (
                        f"provider {provider_name!r} does not exist"
                        if provider_name
                        else "a new model needs a provider"
                    )
                )
                continue
            names_after.add(entry.name)
        if entry.fields.get("tier") is not None and entry.fields["tier"] not in tiers:
            problems.append(f"{entry.where}.tier: tier {entry.fields['tier']!r} does not exist")
        chosen[entry.name] = entry
    for entry in chosen.values():
        if entry.has_replacement and entry.replacement is not None:
            if entry.replacement not in names_after:
                problems.append(
                    f"{entry.where}.replacement: model {entry.replacement!r} is not in the "
                    "catalog or the sheet"
                )
            elif entry.replacement == entry.name:
                problems.append(f"{entry.where}.replacement: a model cannot replace itself")
    if problems:
        raise PriceSheetError(problems)

    for entry in chosen.values():
        model = existing.get(entry.name)
        wanted = _wanted_fields(entry, sheet, providers, tiers, existing=model is not None)
        if model is None:
            after = {key: _plain(value) for key, value in wanted.items()}
            if entry.has_replacement:
                after["replacement"] = entry.replacement
            changes.append(
                PlannedChange(
                    action="model.create",
                    model=entry.name,
                    summary=f"add {entry.name} ({wanted['provider'].name})",
                    after=after,
                )
            )
            current_rows: list[tuple[dt.datetime, dict[str, Any]]] = []
        else:
            before, after = {}, {}
            for key, value in wanted.items():
                current = getattr(model, key)
                if current != value:
                    before[key], after[key] = _plain(current), _plain(value)
            current_replacement = model.replacement.name if model.replacement_id else None
            if entry.has_replacement and entry.replacement != current_replacement:
                before["replacement"], after["replacement"] = current_replacement, entry.replacement
            if after:
                changes.append(
                    PlannedChange(
                        action="model.update",
                        model=entry.name,
                        summary=", ".join(f"{key}: {before[key]} → {after[key]}" for key in after),
                        before=before,
                        after=after,
                    )
                )
            current_rows = [
                (price.effective_from, _price_values(price))
                for price in Price.objects.filter(model=model).order_by("effective_from")
            ]
        changes.extend(_plan_prices(entry, current_rows, effective_from))
    return changes, skipped, chosen


def _wanted_fields(
    entry: Any,
    sheet: PriceSheet,
    providers: dict[str, Provider],
    tiers: dict[str, Tier],
    *,
    existing: bool,
) -> dict[str, Any]:
    """The model fields the sheet sets (the replacement is handled on its own)."""
    wanted: dict[str, Any] = {}
    for key, value in entry.fields.items():
        if key == "provider":
            # LiteLLM's provider names are its own: they pick models, never move ours
            if value in providers and not (existing and sheet.format == "litellm"):
                wanted["provider"] = providers[value]
        elif key == "tier":
            wanted["tier"] = tiers[value] if value is not None else None
        else:
            wanted[key] = value
    return wanted


def _plan_prices(
    entry: Any, current_rows: list[tuple[dt.datetime, dict[str, Any]]], default_start: dt.datetime
) -> list[PlannedChange]:
    changes = []
    starts = [start for start, _values in current_rows]
    values_at = dict(current_rows)
    for row in sorted(entry.prices, key=lambda row: row.effective_from or default_start):
        start = row.effective_from or default_start
        wanted = row.values()
        when = start.isoformat()
        if start in values_at:
            if not _same(wanted, values_at[start]):
                changes.append(
                    PlannedChange(
                        action="price.update",
                        model=entry.name,
                        summary=f"from {when}: {_describe_price(values_at[start])} → "
                        f"{_describe_price(wanted)}",
                        before={
                            "effective_from": when,
                            **{k: _plain(v) for k, v in values_at[start].items()},
                        },
                        after={"effective_from": when, **{k: _plain(v) for k, v in wanted.items()}},
                    )
                )
                values_at[start] = wanted
            continue
        index = bisect.bisect_right(starts, start) - 1
        in_force = values_at[starts[index]] if index >= 0 else None
        if in_force is not None and _same(wanted, in_force):
            continue  # the same price is already in force then: nothing to add
        changes.append(
            PlannedChange(
                action="price.create",
                model=entry.name,
                summary=f"from {when}: {_describe_price(wanted)}"
                + (f" (was {_describe_price(in_force)})" if in_force else ""),
                before={k: _plain(v) for k, v in in_force.items()} if in_force else None,
                after={"effective_from": when, **{k: _plain(v) for k, v in wanted.items()}},
            )
        )
        bisect.insort(starts, start)
        values_at[start] = wanted
    return changes


def _apply(
    sheet: PriceSheet,
    entries: dict[str, Any],
    changes: list[PlannedChange],
    *,
    effective_from: dt.datetime,
    actor: User | None,
    source: str,
) -> None:
    providers = {provider.name: provider for provider in Provider.objects.all()}
    tiers = {tier.name: tier for tier in Tier.objects.all()}
    action_by_model: dict[str, set[str]] = {}
    for change in changes:
        action_by_model.setdefault(change.model, set()).add(change.action)
    models: dict[str, Model] = {}
    pending_replacements: dict[str, str | None] = {}
    for name, actions in action_by_model.items():
        entry = entries[name]
        if "model.create" in actions:
            wanted = _wanted_fields(entry, sheet, providers, tiers, existing=False)
            model = Model.objects.create(name=name, **wanted)
            change = next(c for c in changes if c.model == name and c.action == "model.create")
            audit_record(
                actor=actor, action="price_sheet.model_create", obj=model, after=change.after
            )
            if entry.has_replacement:
                pending_replacements[name] = entry.replacement
        else:
            model = Model.objects.get(name=name)
            change = next(
                (c for c in changes if c.model == name and c.action == "model.update"), None
            )
            if change is not None:
                wanted = _wanted_fields(entry, sheet, providers, tiers, existing=True)
                for key, value in wanted.items():
                    setattr(model, key, value)
                model.save()
                if "replacement" in change.after:
                    pending_replacements[name] = change.after["replacement"]
                audit_record(
                    actor=actor,
                    action="price_sheet.model_update",
                    obj=model,
                    before=change.before,
                    after=change.after,
                )
        models[name] = model
    for name, replacement in pending_replacements.items():
        model = models[name]
        model.replacement = Model.objects.get(name=replacement) if replacement else None
        model.save(update_fields=["replacement", "updated_at"])
    for change in changes:
        if change.action not in ("price.create", "price.update"):
            continue
        model = models[change.model]
        start = dt.datetime.fromisoformat(change.after["effective_from"])
        entry = entries[change.model]
        row = next(r for r in entry.prices if (r.effective_from or effective_from) == start)
        price, created = Price.objects.update_or_create(
            model=model, effective_from=start, defaults={**row.values(), "source": source[:200]}
        )
        audit_record(
            actor=actor,
            action="price_sheet.price_create" if created else "price_sheet.price_update",
            obj=price,
            before=change.before,
            after=change.after,
        )


def price_sheet_export(*, filename: str) -> str:
    """The whole catalog with every price row, in our format (YAML, or JSON by extension)."""
    entries = []
    models = Model.objects.select_related("provider", "tier", "replacement").prefetch_related(
        "prices"
    )
    for model in models.order_by("name"):
        entries.append(
            {
                "name": model.name,
                "provider": model.provider.name,
                "tier": model.tier.name if model.tier_id else None,
                "context_window": model.context_window,
                "max_output_tokens": model.max_output_tokens,
                "capabilities": {
                    capability: model.supports(capability) for capability in CAPABILITIES
                },
                "shutdown_date": model.shutdown_date.isoformat() if model.shutdown_date else None,
                "replacement": model.replacement.name if model.replacement_id else None,
                "prices": [
                    price_row_export(price)
                    for price in sorted(model.prices.all(), key=lambda p: p.effective_from)
                ],
            }
        )
    return price_sheet_render(entries, filename=filename)
