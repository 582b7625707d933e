"""Recommendation arithmetic: does a cheap tier match the flagship, and what would it save?

Pure: the evidence (cases) is gathered by `playground.selectors.recommendation_evidence`.

A *case* is one input that both tiers answered:
- a comparison vote: cheap column better, tie or all bad → match (the cheap tier is no worse);
  flagship better → no match; a vote for a third column says nothing about this pair;
- a batch row: a row vote decides as above; else, when the row has a check on what the
  answer says (exact match, contains, regex), the cheap output matches when it passed or the
  flagship's failed too; else (no check, or only JSON/schema checks on its form) when the two
  outputs agree and the cheap one is no worse formed;
- a shadow pair: its review verdict as above; else whether the outputs agree.

Monthly savings = the flagship's spend on this prompt in the last 30 days x (1 - cost ratio),
where the cost ratio is the cheap tier's cost over the flagship's on the same cases, so that
a difference in output length counts, not only the price sheet.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class Case:
    source: str  # "vote", "batch", "shadow"
    match: bool
    cheap_cost: Decimal | None = None
    flagship_cost: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Recommendation:
    cheap_tier: str
    flagship_tier: str
    cases: int
    matches: int
    by_source: dict[str, int]
    cost_ratio: Decimal | None  # cheap / flagship on the same cases
    flagship_spend_30d: Decimal
    monthly_savings: Decimal | None
    recommended: bool

    @property
    def match_rate(self) -> Decimal | None:
        if not self.cases:
            return None
        return Decimal(self.matches) / Decimal(self.cases)

    @property
    def match_percent(self) -> int | None:
        rate = self.match_rate
        return None if rate is None else int((rate * 100).quantize(Decimal("1"), ROUND_HALF_UP))

    @property
    def sentence(self) -> str:
        if not self.cases:
            return f"No evidence yet comparing {self.cheap_tier} with {self.flagship_tier}."
        text = (
            f"{self.cheap_tier} matches {self.flagship_tier} on {self.match_percent}% "
            f"of {self.cases} case{'s' if self.cases != 1 else ''}"
        )
        if self.monthly_savings is not None and self.monthly_savings > 0:
            text += (
                f"; routing this prompt to {self.cheap_tier} saves about "
                f"${self.monthly_savings:,.2f} per month at the last 30 days' volume"
            )
        return text + "."


def recommend(
    cases: list[Case],
    *,
    cheap_tier: str,
    flagship_tier: str,
    flagship_spend_30d: Decimal,
    min_cases: int,
    min_match_rate: Decimal,
) -> Recommendation:
    matches = sum(1 for case in cases if case.match)
    by_source: dict[str, int] = {}
    for case in cases:
        by_source[case.source] = by_source.get(case.source, 0) + 1
    priced = [c for c in cases if c.cheap_cost is not None and c.flagship_cost is not None]
    flagship_total = sum((c.flagship_cost for c in priced), Decimal(0))
    cost_ratio = (
        sum((c.cheap_cost for c in priced), Decimal(0)) / flagship_total
        if flagship_total > 0
        else None
    )
    savings = None
    if cost_ratio is not None:
        savings = (flagship_spend_30d * (1 - cost_ratio)).quantize(CENT, ROUND_HALF_UP)
    recommended = (
        len(cases) >= min_cases
        and matches >= min_match_rate * len(cases)
        and (cost_ratio is None or cost_ratio < 1)
    )
    return Recommendation(
        cheap_tier=cheap_tier,
        flagship_tier=flagship_tier,
        cases=len(cases),
        matches=matches,
        by_source=by_source,
        cost_ratio=cost_ratio,
        flagship_spend_30d=flagship_spend_30d,
        monthly_savings=savings,
        recommended=recommended,
    )
