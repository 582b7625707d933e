"""Per-model behaviour: latency and reasoning.

The numbers are shaped like the real families (nano fastest, reasoning models slowest), not
measured: they make the playground's latency columns and the benchmarks' tail behaviour
plausible.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LatencyProfile:
    first_token_ms: float
    tokens_per_second: float


CATALOG: dict[str, LatencyProfile] = {
    "gpt-5.4-nano": LatencyProfile(first_token_ms=150, tokens_per_second=250),
    "gpt-5.4-mini": LatencyProfile(first_token_ms=250, tokens_per_second=180),
    "gpt-5.4": LatencyProfile(first_token_ms=600, tokens_per_second=90),
    "gpt-5.5": LatencyProfile(first_token_ms=1200, tokens_per_second=70),
    "gpt-6-luna": LatencyProfile(first_token_ms=120, tokens_per_second=300),
    "gpt-6.1-terra": LatencyProfile(first_token_ms=300, tokens_per_second=160),
    "gpt-6.1-sol": LatencyProfile(first_token_ms=700, tokens_per_second=85),
    "gpt-6-astra": LatencyProfile(first_token_ms=1500, tokens_per_second=60),
}
DEFAULT_PROFILE = LatencyProfile(first_token_ms=400, tokens_per_second=120)

# Models whose prices include a cache-write rate report the tokens they wrote to the cache.
CACHE_WRITE_MODELS = frozenset({"gpt-6.1-terra", "gpt-6.1-sol"})

# Reasoning tokens per effort level, before a per-request jitter of up to a quarter.
REASONING_BUDGET: dict[str, int] = {
    "none": 0,
    "minimal": 16,
    "low": 64,
    "medium": 192,
    "high": 512,
    "xhigh": 1024,
}
_REASONING_MARKERS = ("5.5", "astra", "sol")


def catalog_name(model: str) -> str | None:
    """The catalog model that `model` is, or is a dated snapshot of ("gpt-5.4-mini-2026-03-17")."""
    if model in CATALOG:
        return model
    prefixes = [name for name in CATALOG if model.startswith(f"{name}-")]
    return max(prefixes, key=len) if prefixes else None


def latency_profile(model: str) -> LatencyProfile:
    name = catalog_name(model)
    return CATALOG[name] if name else DEFAULT_PROFILE


def writes_cache(model: str) -> bool:
    return catalog_name(model) in CACHE_WRITE_MODELS


def reasoning_tokens(model: str, effort: str | None, seed: int) -> int:
    """Reasoning models think at "medium" unless told otherwise; others only when asked to."""
    if effort is None:
        effort = "medium" if any(marker in model for marker in _REASONING_MARKERS) else "none"
    budget = REASONING_BUDGET[effort]
    return budget + seed % (budget // 4 + 1) if budget else 0
