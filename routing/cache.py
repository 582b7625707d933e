"""Cache generations for catalog data read on the hot path.

Readers keep rows in process memory tagged with the generation they were loaded under, and
reload when the shared generation moves. Writers bump the generation (signals on save/delete,
and explicitly after bulk writes). With a per-process cache (LocMem) other processes do not
see the bump, so readers also reload after `PRICE_CACHE_SECONDS` at the latest.
"""

from __future__ import annotations

import uuid

from django.core.cache import cache
from django.db import transaction

PRICE_GENERATION_KEY = "routing:prices:generation"
PRICE_CACHE_SECONDS = 60


def _new_generation() -> str:
    return uuid.uuid4().hex


def price_generation() -> str:
    generation = cache.get(PRICE_GENERATION_KEY)
    if generation is None:
        generation = _new_generation()
        cache.add(PRICE_GENERATION_KEY, generation, None)
        generation = cache.get(PRICE_GENERATION_KEY, generation)
    return generation


async def aprice_generation() -> str:
    generation = await cache.aget(PRICE_GENERATION_KEY)
    if generation is None:
        generation = _new_generation()
        await cache.aadd(PRICE_GENERATION_KEY, generation, None)
        generation = await cache.aget(PRICE_GENERATION_KEY, generation)
    return generation


def price_generation_bump() -> None:
    """Invalidate every process's price cache.

    Bumped now and again after commit: a reader between the two could otherwise cache the
    pre-commit rows under the new generation."""
    cache.set(PRICE_GENERATION_KEY, _new_generation(), None)
    transaction.on_commit(lambda: cache.set(PRICE_GENERATION_KEY, _new_generation(), None))


ROUTING_GENERATION_KEY = "routing:generation"


def routing_generation() -> str:
    """Moves on every write to providers, models, tiers, tier members, policies or rules:
    a hot-path reader (the router's catalog/policy snapshot) reloads when it changes."""
    generation = cache.get(ROUTING_GENERATION_KEY)
    if generation is None:
        generation = _new_generation()
        cache.add(ROUTING_GENERATION_KEY, generation, None)
        generation = cache.get(ROUTING_GENERATION_KEY, generation)
    return generation


async def arouting_generation() -> str:
    generation = await cache.aget(ROUTING_GENERATION_KEY)
    if generation is None:
        generation = _new_generation()
        await cache.aadd(ROUTING_GENERATION_KEY, generation, None)
        generation = await cache.aget(ROUTING_GENERATION_KEY, generation)
    return generation


def routing_generation_bump() -> None:
    cache.set(ROUTING_GENERATION_KEY, _new_generation(), None)
    transaction.on_commit(lambda: cache.set(ROUTING_GENERATION_KEY, _new_generation(), None))
