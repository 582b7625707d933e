"""What-if replay: route the last N days of logged requests again under a proposed policy and
price what they would have cost.

The ledger is summed in the database per (day, team, prompt version, tier, model, service
tier, pinned or not, input-size bucket); each group goes through the real router
(`routing.router.route`) once, and its tokens are priced at the chosen model's price of that
day. The input-size buckets are cut at every token threshold the policy's rules and the
catalog's long-context prices use, so every record of a group routes and prices exactly as
it would alone. Assumptions, stated on the page too:

- the projected model would have used the same input and output tokens;
- a `classify` rule's answer is the tier the request actually ran on (no model is called);
- request metadata and the tools of free-form (prompt-less) calls are not in the ledger, so
  rules on them do not match those records;
- requests that pinned a model or tier, and playground, classifier and shadow calls, keep
  their logged cost (the policy does not route them).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import Case, Count, IntegerField, Min, Sum, Value, When
from django.db.models.functions import TruncDate
from django.utils import timezone

from accounts.models import Team, User
from core.errors import AppError
from core.money import ZERO, MoneySum
from prompts.models import PromptVersion
from routing.models import Policy, Rule
from routing.router import tool_capabilities, tool_kind
from routing.snapshot import Snapshot, rule_info, snapshot_load
from spend.models import Purpose, ReplayRun, UsageRecord
from spend.rollups import day_bounds, group_flagship_cost, local_tz

log = logging.getLogger(__name__)

REPLAYED_PURPOSES = (Purpose.GATEWAY, Purpose.BATCH)
MAX_DAYS = 90
PINNED_RULE = "pinned"


# ------------------------------------------------------------------ the proposed policy


def policy_snapshot(policy: Policy):
    """The live catalog with `policy`'s rules in place of the active policy's."""
    base = snapshot_load()
    rules = tuple(
        rule_info(rule)
        for rule in Rule.objects.select_related("target_tier", "target_model")
        .filter(policy=policy, enabled=True)
        .order_by("position", "id")
    )
    return Snapshot(
        tiers=base.tiers,
        models=base.models,
        rules=rules,
        policy_name=policy.name,
        default_tier=base.default_tier,
    )


def _boundaries(snapshot) -> list[int]:
    """Input-token counts where a rule or a long-context price changes its answer."""
    cuts: set[int] = set()
    for rule in snapshot.rules:
        if rule.min_input_tokens is not None:
            cuts.add(rule.min_input_tokens)  # matches from min on
        if rule.max_input_tokens is not None:
            cuts.add(rule.max_input_tokens + 1)  # stops matching above max
    for model in snapshot.models.values():
        for price in model.prices:
            if price.long_context_threshold is not None:
                cuts.add(price.long_context_threshold + 1)  # long context is strictly above
    return sorted(c for c in cuts if c > 0)


def _bucket(cuts: list[int]) -> Case | Value:
    if not cuts:
        return Value(0, output_field=IntegerField())
    whens = [
        When(input_tokens__gte=cut, then=Value(index + 1))
        for index, cut in reversed(list(enumerate(cuts)))
    ]
    return Case(*whens, default=Value(0), output_field=IntegerField())


# ------------------------------------------------------------------ features from the ledger


def _version_features(version: PromptVersion | None) -> dict:
    if version is None:
        return {"prompt_id": None, "task_tag": None, "tool_types": frozenset(), "caps": set()}
    kinds = frozenset(tool_kind(tool) for tool in version.tools or ())
    caps = tool_capabilities(kinds)
    if version.response_schema:
        caps.add("json_schema")
    if version.reasoning_effort:
        caps.add("reasoning")
    return {
        "prompt_id": version.prompt_id,
        "task_tag": version.prompt.task_tag,
        "tool_types": kinds,
        "caps": caps,
    }


def _money(value: Decimal) -> str:
    return str(value.quantize(Decimal("0.0000000001")))


# ------------------------------------------------------------------ the replay


def replay_compute(
    *, policy: Policy, team_ids: list[int], start: dt.datetime, end: dt.datetime
) -> dict:
    """Replay the records of `team_ids` created in [start, end) under `policy`."""
    from routing.router import RequestFeatures, route

    snapshot = policy_snapshot(policy)
    cuts = _boundaries(snapshot)
    records = UsageRecord.objects.filter(
        team_id__in=team_ids, created_at__gte=start, created_at__lt=end
    ).exclude(status=UsageRecord.Status.REFUSED)
    kept = records.exclude(purpose__in=REPLAYED_PURPOSES).aggregate(
        requests=Count("id"), cost=MoneySum("cost_usd")
    )
    groups = list(
        records.filter(purpose__in=REPLAYED_PURPOSES)
        .annotate(
            day=TruncDate("created_at", tzinfo=local_tz()),
            bucket=_bucket(cuts),
            pinned=Case(
                When(rule=PINNED_RULE, then=Value(1)),
                default=Value(0),
                output_field=IntegerField(),
            ),
        )
        .values(
            "day",
            "team_id",
            "prompt_version_id",
            "tier_name",
            "model_name",
            "service_tier",
            "pinned",
            "bucket",
        )
        .annotate(
            min_input=Min("input_tokens"),  # before `input_tokens` is re-bound to its sum
            requests=Count("id"),
            cost_usd=MoneySum("cost_usd"),
            input_tokens=Sum("input_tokens"),
            cached_input_tokens=Sum("cached_input_tokens"),
            cache_write_tokens=Sum("cache_write_tokens"),
            output_tokens=Sum("output_tokens"),
        )
        .order_by()
    )
    versions = {
        v.id: v
        for v in PromptVersion.objects.filter(
            id__in={g["prompt_version_id"] for g in groups if g["prompt_version_id"]}
        ).select_related("prompt", "prompt__team")
    }
    features_of: dict[int | None, dict] = {vid: _version_features(v) for vid, v in versions.items()}
    features_of[None] = _version_features(None)

    totals: dict[str, Any] = {"actual": ZERO, "projected": ZERO, "requests": 0}
    counts: defaultdict[str, int] = defaultdict(int)
    moves: dict[tuple[str, str, str, str], dict] = {}
    prompts: dict[str, dict] = {}
    for group in groups:
        actual = group["cost_usd"] or ZERO
        projected, tier, model, how = _project(group, features_of, snapshot, route, RequestFeatures)
        counts[how] += group["requests"]
        totals["actual"] += actual
        totals["projected"] += projected
        totals["requests"] += group["requests"]
        move = moves.setdefault(
            (group["tier_name"], group["model_name"], tier, model),
            {"requests": 0, "actual": ZERO, "projected": ZERO},
        )
        move["requests"] += group["requests"]
        move["actual"] += actual
        move["projected"] += projected
        version = versions.get(group["prompt_version_id"])
        label = f"{version.prompt.team.slug}/{version.prompt.slug}" if version else "(no prompt)"
        row = prompts.setdefault(label, {"requests": 0, "actual": ZERO, "projected": ZERO})
        row["requests"] += group["requests"]
        row["actual"] += actual
        row["projected"] += projected
    kept_cost = kept["cost"] or ZERO
    actual_total = totals["actual"] + kept_cost
    projected_total = totals["projected"] + kept_cost
    return {
        "policy": policy.name,
        "window": {"start": start.isoformat(), "end": end.isoformat()},
        "requests": totals["requests"] + kept["requests"],
        "replayed": totals["requests"],
        "kept_as_logged": kept["requests"] + counts["pinned"] + counts["unrouted"],
        "classifier_assumed": counts["classified"],
        "actual_usd": _money(actual_total),
        "projected_usd": _money(projected_total),
        "difference_usd": _money(projected_total - actual_total),
        "moves": sorted(
            (
                {
                    "from_tier": k[0],
                    "from_model": k[1],
                    "to_tier": k[2],
                    "to_model": k[3],
                    "requests": v["requests"],
                    "actual_usd": _money(v["actual"]),
                    "projected_usd": _money(v["projected"]),
                }
                for k, v in moves.items()
            ),
            key=lambda m: -Decimal(m["actual_usd"]),
        ),
        "prompts": sorted(
            (
                {
                    "prompt": label,
                    "requests": v["requests"],
                    "actual_usd": _money(v["actual"]),
                    "projected_usd": _money(v["projected"]),
                    "difference_usd": _money(v["projected"] - v["actual"]),
                }
                for label, v in prompts.items()
            ),
            key=lambda p: Decimal(p["difference_usd"]),
        ),
    }


def _project(group: dict, features_of: dict, snapshot, route, request_features) -> tuple:
    """(projected cost, tier, model, how) for one group of records."""
    actual = group["cost_usd"] or ZERO
    kept = (actual, group["tier_name"], group["model_name"])
    if group["pinned"]:
        return (*kept, "pinned")
    known = features_of.get(group["prompt_version_id"], features_of[None])
    features = request_features(
        team_id=group["team_id"],
        prompt_id=known["prompt_id"],
        task_tag=known["task_tag"],
        estimated_input_tokens=group["min_input"] or 0,
        tool_types=known["tool_types"],
        required_capabilities=frozenset(known["caps"]),
    )
    how = "routed"
    try:
        decision = route(features, snapshot)
        if decision.needs_classifier:
            how = "classified"
            decision = route(features, snapshot, classified_tier=group["tier_name"] or None)
    except (AppError, LookupError):
        return (*kept, "unrouted")
    model = decision.model
    if model is None:
        return (*kept, "unrouted")
    day_start = day_bounds(group["day"])[0]
    try:
        price = model.price_at(day_start)
    except LookupError:
        return (*kept, "unrouted")
    threshold = price.long_context_threshold
    long_context = threshold is not None and (group["min_input"] or 0) > threshold
    cost = group_flagship_cost(price, {**group, "long_context": long_context})
    return cost, decision.tier, model.name, how


# ------------------------------------------------------------------ runs


@transaction.atomic
def replay_run_create(
    *, policy: Policy, days: int, teams: list[Team], user: User | None
) -> ReplayRun:
    """Queue a replay of the last `days` for `teams` (already access-checked)."""
    if not 1 <= days <= MAX_DAYS:
        raise ValueError(f"days must be between 1 and {MAX_DAYS}")
    run = ReplayRun.objects.create(
        policy=policy, days=days, team_ids=sorted(t.id for t in teams), requested_by=user
    )
    from spend.tasks import replay_run

    transaction.on_commit(lambda: replay_run.delay(run.id))
    return run


def replay_run_execute(*, run_id: int, now: dt.datetime | None = None) -> ReplayRun:
    """Compute a queued run (the Celery task calls this); a failure is recorded, not raised."""
    claimed = ReplayRun.objects.filter(id=run_id, status=ReplayRun.Status.QUEUED).update(
        status=ReplayRun.Status.RUNNING
    )
    run = ReplayRun.objects.select_related("policy").get(id=run_id)
    if not claimed:
        return run
    end = now or timezone.now()
    start = end - dt.timedelta(days=run.days)
    try:
        result = replay_compute(policy=run.policy, team_ids=run.team_ids, start=start, end=end)
    except Exception as exc:  # a replay is a report: record why it failed
        log.exception("replay %s failed", run_id)
        run.status, run.error = ReplayRun.Status.FAILED, f"{exc.__class__.__name__}: {exc}"[:500]
    else:
        run.status, run.result = ReplayRun.Status.DONE, result
    run.window_start, run.window_end, run.finished_at = start, end, timezone.now()
    run.save(
        update_fields=["status", "result", "error", "window_start", "window_end", "finished_at"]
    )
    return run


def replay_runs_visible(*, team_ids: set[int]):
    """Runs whose every team the viewer may see, newest first."""
    runs = ReplayRun.objects.select_related("policy", "requested_by").order_by("-created_at")[:50]
    return [run for run in runs if set(run.team_ids) <= team_ids]
