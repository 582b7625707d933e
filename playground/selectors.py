"""Reads for the playground pages and the jobs API. Every lookup is scoped to the teams the
user (or the key) may see: another team's object is a 404, never a 403."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db.models import Count, Q, QuerySet, Sum
from django.http import Http404
from django.utils import timezone

from accounts.models import Role, Team, User
from accounts.selectors import user_has_role, user_teams
from core.money import MoneySum
from playground import checks, hooks
from playground.models import (
    Comparison,
    ComparisonColumn,
    Dataset,
    Job,
    JobItem,
    RowVote,
    ShadowPair,
    Verdict,
    Vote,
)
from playground.recommendation import Case, Recommendation, recommend
from prompts.models import Label, Prompt, PromptVersion

FLAGSHIP_TIER = "flagship"
# Checks on what an answer says (not only on its form).
CONTENT_CHECKS = frozenset({"exact", "contains", "regex"})


def team_for_user(*, user: User, slug: str | None = None) -> Team:
    """The team named by `slug` if the user may see it, else their first team; 404 if none."""
    teams = user_teams(user=user)
    team = teams.filter(slug=slug).first() if slug else teams.first()
    if team is None:
        raise Http404("No such team.")
    return team


def user_can_edit(*, user: User, team: Team) -> bool:
    """Editors of the team's prompts may create routing rules and change shadow sampling."""
    return user_teams(user=user).filter(pk=team.pk).exists() and user_has_role(
        user=user, role=Role.PROMPT_EDITOR
    )


def _team_object(queryset: QuerySet, *, teams: QuerySet | list[int], pk: int, what: str):
    """One object of the given teams; another team's is a 404, as a missing one is."""
    found = queryset.filter(pk=pk, team__in=teams).first()
    if found is None:
        raise Http404(f"No such {what}.")
    return found


def comparison_get(*, user: User, pk: int) -> Comparison:
    return _team_object(
        Comparison.objects.select_related("prompt_version__prompt", "team", "created_by"),
        teams=user_teams(user=user),
        pk=pk,
        what="comparison",
    )


def dataset_get(*, user: User, pk: int) -> Dataset:
    return _team_object(Dataset.objects.all(), teams=user_teams(user=user), pk=pk, what="dataset")


def job_get(*, team_ids: QuerySet | list[int], pk: int) -> Job:
    return _team_object(
        Job.objects.select_related("prompt_version__prompt", "dataset", "team"),
        teams=team_ids,
        pk=pk,
        what="job",
    )


def prompt_get(*, user: User, pk: int) -> Prompt:
    return _team_object(Prompt.objects.all(), teams=user_teams(user=user), pk=pk, what="prompt")


def prompt_version_get(*, team: Team, pk: int) -> PromptVersion:
    version = (
        PromptVersion.objects.select_related("prompt").filter(pk=pk, prompt__team=team).first()
    )
    if version is None:
        raise Http404("No such prompt version.")
    return version


@dataclass(frozen=True, slots=True)
class VersionChoice:
    id: int
    label: str
    prompt_id: int


def version_choices(*, team: Team) -> list[VersionChoice]:
    """Every version of the team's prompts, newest first per prompt, labels named."""
    labels: dict[int, list[str]] = defaultdict(list)
    for version_id, name in Label.objects.filter(prompt__team=team).values_list(
        "version_id", "name"
    ):
        labels[version_id].append(name)
    choices = []
    for version in PromptVersion.objects.filter(prompt__team=team).select_related("prompt"):
        names = ", ".join(sorted(labels.get(version.pk, [])))
        text = f"{version.prompt.slug} · v{version.number}" + (f" ({names})" if names else "")
        choices.append(VersionChoice(version.pk, text, version.prompt_id))
    return sorted(choices, key=lambda c: (c.label.split(" · ")[0], -c.id))


def target_choices() -> list[tuple[str, str]]:
    """The target select: tiers first (cheapest first), then active catalog models."""
    from routing.models import Model, Tier

    tiers = [(f"tier:{t.name}", f"Tier: {t.name}") for t in Tier.objects.order_by("rank")]
    models = [
        (f"model:{m.name}", m.name)
        for m in Model.objects.filter(is_active=True).select_related("tier")
    ]
    return [*tiers, ("auto", "Auto (routing policy)"), *models]


def comparisons_saved(*, team: Team, limit: int = 50) -> QuerySet[Comparison]:
    return (
        Comparison.objects.filter(team=team, saved=True)
        .select_related("prompt_version__prompt", "created_by")
        .annotate(vote_count=Count("votes"))[:limit]
    )


@dataclass(slots=True)
class VoteSummary:
    """Per column: wins, losses, ties (ties and all-bad votes count for every column)."""

    total: int = 0
    ties: int = 0
    all_bad: int = 0
    wins: dict[int, int] = field(default_factory=dict)
    losses: dict[int, int] = field(default_factory=dict)


def vote_summary(*, comparison: Comparison) -> VoteSummary:
    summary = VoteSummary()
    positions = list(comparison.columns.values_list("position", flat=True))
    summary.wins = dict.fromkeys(positions, 0)
    summary.losses = dict.fromkeys(positions, 0)
    for verdict, winner_position in comparison.votes.values_list("verdict", "winner__position"):
        summary.total += 1
        if verdict == Verdict.TIE:
            summary.ties += 1
        elif verdict == Verdict.ALL_BAD:
            summary.all_bad += 1
        elif winner_position is not None:
            summary.wins[winner_position] = summary.wins.get(winner_position, 0) + 1
            for position in positions:
                if position != winner_position:
                    summary.losses[position] += 1
    return summary


# --- batch results -------------------------------------------------------------------------


@dataclass(slots=True)
class ColumnTotals:
    index: int
    label: str
    letter: str = ""
    items: int = 0
    done: int = 0
    errors: int = 0
    cost_usd: Decimal = Decimal(0)
    input_tokens: int = 0
    output_tokens: int = 0
    avg_latency_ms: float | None = None
    p50_latency_ms: float | None = None
    p95_latency_ms: float | None = None
    checked: int = 0
    passed: int = 0
    wins: int = 0
    agreement: float | None = None  # share of rows whose output agrees with column A's

    @property
    def pass_rate(self) -> float | None:
        return self.passed / self.checked if self.checked else None


def job_column_totals(*, job: Job) -> list[ColumnTotals]:
    """Per-column totals of a job: cost and tokens summed in the database; latency
    percentiles, pass rate and agreement with the first column from the done items."""
    from playground.columns import LETTERS, ColumnSpec

    totals = [
        ColumnTotals(index=i, label=ColumnSpec.from_dict(spec).label, letter=LETTERS[i])
        for i, spec in enumerate(job.columns)
    ]
    sums = (
        JobItem.objects.filter(job=job)
        .values("column_index")
        .annotate(
            items=Count("id"),
            done=Count("id", filter=Q(status=JobItem.Status.DONE)),
            errors=Count("id", filter=Q(status=JobItem.Status.ERROR)),
            cost=MoneySum("cost_usd"),
            input_tokens=Sum("input_tokens"),
            output_tokens=Sum("output_tokens"),
            checked=Count("id", filter=Q(passed__isnull=False)),
            passed=Count("id", filter=Q(passed=True)),
        )
    )
    for row in sums:
        if row["column_index"] >= len(totals):
            continue
        t = totals[row["column_index"]]
        t.items, t.done, t.errors = row["items"], row["done"], row["errors"]
        t.cost_usd = row["cost"] or Decimal(0)
        t.input_tokens, t.output_tokens = row["input_tokens"] or 0, row["output_tokens"] or 0
        t.checked, t.passed = row["checked"], row["passed"]
    latencies: dict[int, list[int]] = defaultdict(list)
    outputs: dict[int, dict[int, str]] = defaultdict(dict)
    for column, row_index, latency, output in JobItem.objects.filter(
        job=job, status=JobItem.Status.DONE
    ).values_list("column_index", "row_index", "latency_ms", "output"):
        if latency is not None:
            latencies[column].append(latency)
        outputs[column][row_index] = output
    for t in totals:
        values = latencies.get(t.index, [])
        if values:
            t.avg_latency_ms = sum(values) / len(values)
            t.p50_latency_ms = checks.percentile(values, 50)
            t.p95_latency_ms = checks.percentile(values, 95)
        if t.index > 0 and job.content_purged_at is None:
            base, mine = outputs.get(0, {}), outputs.get(t.index, {})
            common = base.keys() & mine.keys()
            if common:
                agree = sum(1 for r in common if checks.outputs_agree(base[r], mine[r]))
                t.agreement = agree / len(common)
    for winner, count in (
        RowVote.objects.filter(job=job, verdict=Verdict.WINNER)
        .values_list("winner_column")
        .annotate(n=Count("id"))
    ):
        if winner is not None and winner < len(totals):
            totals[winner].wins = count
    return totals


@dataclass(slots=True)
class ResultRow:
    row_index: int
    line_number: int | None
    input: dict[str, Any]
    expected: str | None
    items: list[JobItem | None]
    votes: list[RowVote]
    different: bool
    failed: bool

    @property
    def cells(self) -> list[tuple[str, JobItem | None]]:
        return list(zip("ABCD", self.items, strict=False))


RESULT_FILTERS = ("all", "failures", "different")


def job_result_rows(
    *,
    job: Job,
    filter: str = "all",
    search: str = "",
    offset: int = 0,
    limit: int = 50,
    row_index: int | None = None,
) -> tuple[list[ResultRow], int]:
    """One page of the results matrix (rows x columns) and the number of matching rows.

    `failures`: a row with an item that errored or failed a check. `different`: the columns'
    outputs do not all agree. `search` looks in the outputs and the input."""
    columns = len(job.columns)
    items = JobItem.objects.filter(job=job)
    if row_index is not None:
        items = items.filter(row_index=row_index)
    row_filter = Q()
    if search:
        row_filter &= Q(output__icontains=search) | Q(input__icontains=search)
        matching = items.filter(row_filter).values("row_index")
        items = items.filter(row_index__in=matching)
    if filter == "failures":
        failing = items.filter(Q(status=JobItem.Status.ERROR) | Q(passed=False)).values("row_index")
        items = items.filter(row_index__in=failing)
    if filter == "different":
        rows = _rows_with_different_outputs(items, columns)
        items = items.filter(row_index__in=rows)
    row_indexes = list(items.values_list("row_index", flat=True).distinct().order_by("row_index"))
    total = len(row_indexes)
    page_rows = row_indexes[offset : offset + limit]
    page_items = JobItem.objects.filter(job=job, row_index__in=page_rows)
    by_row: dict[int, list[JobItem | None]] = {r: [None] * columns for r in page_rows}
    for item in page_items:
        if item.column_index < columns:
            by_row[item.row_index][item.column_index] = item
    votes: dict[int, list[RowVote]] = defaultdict(list)
    for vote in RowVote.objects.filter(job=job, row_index__in=page_rows).select_related("voter"):
        votes[vote.row_index].append(vote)
    lines: dict[int, int] = {}
    if job.dataset_id:
        lines = dict(
            job.dataset.rows.filter(index__in=page_rows).values_list("index", "line_number")
        )
    result = []
    for r in page_rows:
        row_items = by_row[r]
        first = next((i for i in row_items if i is not None), None)
        done_outputs = [i.output for i in row_items if i and i.status == JobItem.Status.DONE]
        result.append(
            ResultRow(
                row_index=r,
                line_number=lines.get(r),
                input=(first.input if first else {}),
                expected=first.expected if first else None,
                items=row_items,
                votes=votes.get(r, []),
                different=len(done_outputs) > 1
                and any(not checks.outputs_agree(done_outputs[0], o) for o in done_outputs[1:]),
                failed=any(
                    i and (i.status == JobItem.Status.ERROR or i.passed is False) for i in row_items
                ),
            )
        )
    return result, total


def _rows_with_different_outputs(items: QuerySet[JobItem], columns: int) -> list[int]:
    outputs: dict[int, list[str]] = defaultdict(list)
    for row_index, output in items.filter(status=JobItem.Status.DONE).values_list(
        "row_index", "output"
    ):
        outputs[row_index].append(output)
    return [
        r
        for r, values in outputs.items()
        if len(values) > 1 and any(not checks.outputs_agree(values[0], v) for v in values[1:])
    ]


def job_baseline_choices(*, job: Job) -> list[Job]:
    """The runs this one can be compared with: the other finished runs on its dataset,
    latest first."""
    if not job.dataset_id:
        return []
    return list(
        Job.objects.filter(dataset_id=job.dataset_id, status=Job.Status.DONE)
        .exclude(pk=job.pk)
        .order_by("-created_at")[:50]
    )


def job_baseline(*, job: Job, choices: list[Job] | None = None) -> Job | None:
    """The latest earlier finished run on the same dataset (the comparison baseline)."""
    if choices is None:
        choices = job_baseline_choices(job=job)
    return next((c for c in choices if c.created_at < job.created_at), None)


def job_baseline_columns(*, job: Job, baseline: Job) -> list[int | None]:
    """For each column of `job`, the column of `baseline` that ran on the same tier or model
    (one with the same temperature and effort too, if there is one), or None: a delta only
    means something between those."""
    from playground.columns import ColumnSpec

    theirs = [ColumnSpec.from_dict(spec) for spec in baseline.columns]
    matches: list[int | None] = []
    for data in job.columns:
        mine = ColumnSpec.from_dict(data)
        same_target = [i for i, spec in enumerate(theirs) if spec.target == mine.target]
        exact = [i for i in same_target if theirs[i] == mine]
        matches.append((exact or same_target or [None])[0])
    return matches


def dataset_last_setup(*, dataset: Dataset, version: PromptVersion) -> tuple[dict[str, str], str]:
    """The column mapping and expected-output column of the latest run on `dataset` (of the
    same prompt if it has one), kept to what `version` and the dataset still have; ({}, "")
    when the dataset never ran."""
    runs = Job.objects.filter(dataset=dataset, kind=Job.Kind.COMPARE).order_by("-created_at")
    last = runs.filter(prompt_version__prompt_id=version.prompt_id).first() or runs.first()
    if last is None:
        return {}, ""
    names = {v["name"] for v in version.variables}
    mapping = {
        name: column
        for name, column in (last.mapping or {}).items()
        if name in names and column in dataset.columns
    }
    expected = last.expected_column if last.expected_column in dataset.columns else ""
    return mapping, expected


def job_default_name(*, dataset: Dataset) -> str:
    """A name no run of the team has yet: the dataset's name and the run's number on it."""
    prefix = f"{dataset.name[:185]} #"  # a job name holds 200 characters
    taken = set(
        Job.objects.filter(team_id=dataset.team_id, name__startswith=prefix).values_list(
            "name", flat=True
        )
    )
    number = Job.objects.filter(dataset=dataset, kind=Job.Kind.COMPARE).count() + 1
    while f"{prefix}{number}" in taken:
        number += 1
    return f"{prefix}{number}"


def job_name_unique(*, team: Team, name: str) -> str:
    """`name`, or `name (2)`, `name (3)`…: the first that no run of the team has."""
    taken = set(Job.objects.filter(team=team, name__startswith=name).values_list("name", flat=True))
    candidate, number = name, 2
    while candidate in taken:
        candidate, number = f"{name} ({number})", number + 1
    return candidate


def jobs_for_team(*, team: Team, kind: str | None = None, limit: int = 50) -> QuerySet[Job]:
    qs = Job.objects.filter(team=team).select_related("prompt_version__prompt", "dataset")
    if kind:
        qs = qs.filter(kind=kind)
    return qs[:limit]


# --- recommendation ------------------------------------------------------------------------


def _vote_case(verdict: str, winner: int | None, cheap: int, flagship: int) -> bool | None:
    if verdict in (Verdict.TIE, Verdict.ALL_BAD):
        return True
    if winner == cheap:
        return True
    if winner == flagship:
        return False
    return None


def recommendation_evidence(*, prompt: Prompt, cheap_tier: str, flagship_tier: str) -> list[Case]:
    """Every case where both tiers answered the same input for this prompt (see
    playground.recommendation for how each kind of case counts)."""
    cases: list[Case] = []
    # comparisons with a column on each tier, and a vote
    columns = ComparisonColumn.objects.filter(
        comparison__prompt_version__prompt=prompt,
        status="done",
        tier_used__in=[cheap_tier, flagship_tier],
    ).values_list("comparison_id", "position", "tier_used", "cost_usd")
    by_comparison: dict[int, dict[str, tuple[int, Decimal]]] = defaultdict(dict)
    for comparison_id, position, tier, cost in columns:
        by_comparison[comparison_id].setdefault(tier, (position, cost))
    pairs = {k: v for k, v in by_comparison.items() if len(v) == 2}
    for comparison_id, verdict, winner in Vote.objects.filter(comparison_id__in=pairs).values_list(
        "comparison_id", "verdict", "winner__position"
    ):
        (cheap_pos, cheap_cost), (flag_pos, flag_cost) = (
            pairs[comparison_id][cheap_tier],
            pairs[comparison_id][flagship_tier],
        )
        match = _vote_case(verdict, winner, cheap_pos, flag_pos)
        if match is not None:
            cases.append(Case("vote", match, cheap_cost, flag_cost))
    # batch rows of this prompt's jobs with a column on each tier
    items = JobItem.objects.filter(
        job__prompt_version__prompt=prompt,
        job__kind=Job.Kind.COMPARE,
        status=JobItem.Status.DONE,
        tier_name__in=[cheap_tier, flagship_tier],
    ).values_list(
        "job_id",
        "row_index",
        "column_index",
        "tier_name",
        "output",
        "passed",
        "checks",
        "cost_usd",
        "job__content_purged_at",
    )
    rows: dict[tuple[int, int], dict[str, tuple]] = defaultdict(dict)
    purged_jobs: set[int] = set()
    for job_id, row_index, column, tier, output, item_passed, item_checks, cost, purged in items:
        rows[(job_id, row_index)].setdefault(
            tier, (column, output, item_passed, item_checks or {}, cost)
        )
        if purged is not None:
            purged_jobs.add(job_id)
    row_votes: dict[tuple[int, int], list[tuple[str, int | None]]] = defaultdict(list)
    for job_id, row_index, verdict, winner in RowVote.objects.filter(
        job__prompt_version__prompt=prompt
    ).values_list("job_id", "row_index", "verdict", "winner_column"):
        row_votes[(job_id, row_index)].append((verdict, winner))
    judged = hooks.evaluation().judged_cases(
        prompt=prompt, cheap_tier=cheap_tier, flagship_tier=flagship_tier
    )
    for key, by_tier in rows.items():
        if len(by_tier) != 2:
            continue
        cheap_col, cheap_out, cheap_pass, cheap_checks, cheap_cost = by_tier[cheap_tier]
        flag_col, flag_out, flag_pass, _, flag_cost = by_tier[flagship_tier]
        if key in row_votes:
            for verdict, winner in row_votes[key]:
                match = _vote_case(verdict, winner, cheap_col, flag_col)
                if match is not None:
                    cases.append(Case("vote", match, cheap_cost, flag_cost))
            continue
        if ("batch", *key) in judged:
            cases.append(Case("judge", judged[("batch", *key)], cheap_cost, flag_cost))
            continue
        no_worse = cheap_pass is not False or flag_pass is False
        if CONTENT_CHECKS & set(cheap_checks):
            # the row has a check on what the answer says: passing it is the evidence
            match = no_worse
        elif key[0] in purged_jobs:
            continue  # agreement needs the outputs, gone with the job's content
        else:
            # JSON/schema checks only say the answer is well formed: the answers must agree
            match = no_worse and checks.outputs_agree(cheap_out, flag_out)
        cases.append(Case("batch", match, cheap_cost, flag_cost))
    # shadow pairs: production on the cheap tier, re-run on the flagship
    for pk, verdict, winner, agree, prod_cost, shadow_cost in ShadowPair.objects.filter(
        prompt=prompt,
        status=ShadowPair.Status.DONE,
        production_tier=cheap_tier,
        shadow_tier=flagship_tier,
    ).values_list(
        "pk", "verdict", "verdict_winner", "agree", "production_cost_usd", "shadow_cost_usd"
    ):
        source = "shadow"
        if verdict:
            match = _vote_case(verdict, {"production": 0, "shadow": 1}.get(winner), 0, 1)
        elif ("shadow", pk) in judged:
            source, match = "judge", judged[("shadow", pk)]
        else:
            match = bool(agree)
        if match is not None:
            cases.append(Case(source, match, prod_cost, shadow_cost))
    return cases


def flagship_spend_30d(*, prompt: Prompt, flagship_tier: str, now: dt.datetime | None = None):
    from spend.models import Purpose, UsageRecord

    since = (now or timezone.now()) - dt.timedelta(days=30)
    total = UsageRecord.objects.filter(
        prompt_version__prompt=prompt,
        purpose=Purpose.GATEWAY,
        tier_name=flagship_tier,
        created_at__gte=since,
    ).aggregate(total=MoneySum("cost_usd"))["total"]
    return total or Decimal(0)


def tier_names() -> list[str]:
    """Every tier's name, cheapest first."""
    from routing.models import Tier

    return list(Tier.objects.order_by("rank").values_list("name", flat=True))


def cheap_tiers() -> list[str]:
    from routing.models import Tier

    flagship = Tier.objects.filter(name=FLAGSHIP_TIER).first()
    if flagship is None:
        return []
    return list(
        Tier.objects.filter(rank__lt=flagship.rank).order_by("rank").values_list("name", flat=True)
    )


def prompt_recommendations(*, prompt: Prompt) -> list[Recommendation]:
    """One recommendation per cheaper tier that has evidence against the flagship."""
    spend = flagship_spend_30d(prompt=prompt, flagship_tier=FLAGSHIP_TIER)
    result = []
    for tier in cheap_tiers():
        cases = recommendation_evidence(prompt=prompt, cheap_tier=tier, flagship_tier=FLAGSHIP_TIER)
        if not cases:
            continue
        result.append(
            recommend(
                cases,
                cheap_tier=tier,
                flagship_tier=FLAGSHIP_TIER,
                flagship_spend_30d=spend,
                min_cases=settings.PLAYGROUND_RECOMMEND_MIN_CASES,
                min_match_rate=Decimal(str(settings.PLAYGROUND_RECOMMEND_MIN_MATCH_RATE)),
            )
        )
    return result


def prompt_routed_to(*, prompt: Prompt) -> str | None:
    """The tier an enabled rule of the active policy sends this prompt to, if one names it."""
    from routing.models import Rule

    rule = (
        Rule.objects.filter(
            policy__is_active=True, enabled=True, prompt=prompt, action=Rule.Action.TIER
        )
        .select_related("target_tier")
        .order_by("position", "id")
        .first()
    )
    return rule.target_tier.name if rule and rule.target_tier else None


def shadow_pairs(*, team: Team, prompt: Prompt | None = None, limit: int = 100):
    qs = ShadowPair.objects.filter(team=team).select_related("prompt")
    if prompt is not None:
        qs = qs.filter(prompt=prompt)
    return qs[:limit]
