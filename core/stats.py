"""Small statistics shared by the evidence pages: Wilson lower bounds and Cohen's kappa."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Iterable

Z_95 = 1.959963984540054  # two-sided 95%


def wilson_lower_bound(successes: int, trials: int, *, z: float = Z_95) -> float | None:
    """The lower end of the Wilson score interval for a proportion (None without trials).

    Unlike p - z·sqrt(p(1-p)/n) it stays inside [0, 1] and is honest for small samples and
    proportions near 1, which is where a "mini is good enough" claim lives."""
    if trials <= 0:
        return None
    if not 0 <= successes <= trials:
        raise ValueError("successes must be between 0 and trials")
    p = successes / trials
    z2 = z * z
    centre = p + z2 / (2 * trials)
    spread = z * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials))
    return max(0.0, (centre - spread) / (1 + z2 / trials))


def cohen_kappa(pairs: Iterable[tuple[Hashable, Hashable]]) -> tuple[float, float] | None:
    """Observed agreement and Cohen's kappa of two raters' labels on the same items.

    kappa = (p_o - p_e) / (1 - p_e), with p_e the agreement expected by chance from each
    rater's own label frequencies. When chance agreement is total (both raters always gave the
    same single label) kappa is 1 if they agree, else 0. None without items."""
    items = list(pairs)
    if not items:
        return None
    n = len(items)
    observed = sum(1 for a, b in items if a == b) / n
    first, second = Counter(a for a, _ in items), Counter(b for _, b in items)
    expected = sum(first[label] * second[label] for label in first) / (n * n)
    if expected >= 1:
        return observed, 1.0 if observed == 1 else 0.0
    return observed, (observed - expected) / (1 - expected)
