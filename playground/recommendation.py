"""Recommendation arithmetic: does a cheap tier match the flagship, and what would it save?

Pure: the evidence (cases) is gathered by `playground.selectors.recommendation_evidence`.

A *case* is one input that both tiers answered:
- a comparison vote: cheap column better, tie or all bad → match (the cheap tier is no worse);
  flagship better → no match; a vote for a third column says nothing about this pair;
- a batch row: a row vote decides as above; else a judge's verdict (an evaluator of the
  `evals` app: the cheap answer won or tied); else, when the row has a check on what the
  answer says (exact match, contains, regex), the cheap output matches when it passed or the
  flagship's failed too; else (no check, or only JSON/schema checks on its form) when the two
  outputs agree and the cheap one is no worse formed;
- a shadow pair: its review verdict as above; else a judge's verdict; else whether the
  outputs agree.

The claim is stated with its uncertainty: the 95% Wilson lower bound of the match rate and the
number of cases ("mini is at least as good as flagship on >= 91% of cases (95% lower bound,
400 cases)").

Monthly savings = the flagship's spend on this prompt in the last 30 days x (1 - cost ratio),
where the cost ratio is the cheap tier's cost over the flagship's on the same cases, so that
a difference in output length counts, not only the price sheet.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal

from core.money import usd
from core.stats import wilson_lower_bound

CENT = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class Case:
    source: str  # "vote", "judge", "batch", "shadow"
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
    def lower_bound(self) -> float | None:
        """The 95% Wilson lower bound of the match rate."""
        return wilson_lower_bound(self.matches, self.cases)

    @property
    def lower_bound_percent(self) -> int | None:
        """The bound in whole percent, rounded down so the claim is never overstated."""
        bound = self.lower_bound
        if bound is None:
            return None
        return int((Decimal(str(bound)) * 100).to_integral_value(ROUND_FLOOR))

    @property
    def sentence(self) -> str:
        if not self.cases:
            return f"No evidence yet comparing {self.cheap_tier} with {self.flagship_tier}."
        plural = "s" if self.cases != 1 else ""
        text = (
            f"{self.cheap_tier} is at least as good as {self.flagship_tier} on "
            f"≥ {self.lower_bound_percent}% of cases (95% lower bound, {self.cases} case{plural}; "
            f"observed {self.match_percent}%)"
        )
        if self.monthly_savings is not None and self.monthly_savings > 0:
            text += (
                f" — routing this prompt to {self.cheap_tier} saves about "
                f"{usd(self.monthly_savings)} a month at the last 30 days' volume"
            )
        return text + "."

    def evidence(self) -> dict[str, object]:
        """What a rule made from this recommendation was based on (kept in its audit event)."""
        return {
            "cases": self.cases,
            "matches": self.matches,
            "by_source": self.by_source,
            "match_percent": self.match_percent,
            "lower_bound_percent": self.lower_bound_percent,
            "cost_ratio": None if self.cost_ratio is None else str(self.cost_ratio),
            "monthly_savings": None if self.monthly_savings is None else str(self.monthly_savings),
        }


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
