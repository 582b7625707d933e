from __future__ import annotations

from pathlib import Path

import pytest

from routing.seed import seed_catalog
from spend.pricing import price_cache_clear

DATA = Path(__file__).parent / "data"


@pytest.fixture(autouse=True)
def _fresh_price_cache():
    price_cache_clear()
    yield
    price_cache_clear()


@pytest.fixture
def seeded(db) -> None:
    """The seeded catalog, tiers and default policy (no upstream needed)."""
    seed_catalog(simulator_url="http://127.0.0.1:9/v1")
