"""Fixtures for the operations tests: Redis when one is reachable, a clean rate limiter."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from core.ratelimit import rate_limit_reset

LOCAL_REDIS = "redis://127.0.0.1:6379/0"


def redis_reachable(host: str = "127.0.0.1", port: int = 6379) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


@pytest.fixture(autouse=True)
def _fresh_rate_limiter() -> Iterator[None]:
    rate_limit_reset()
    yield
    rate_limit_reset()


@pytest.fixture
def redis_url(settings) -> str:
    """The local Redis as the rate limiter's store; skipped where there is none."""
    if not redis_reachable():
        pytest.skip("no Redis on 127.0.0.1:6379")
    settings.RATE_LIMIT_REDIS_URL = LOCAL_REDIS
    settings.RATE_LIMIT_REDIS_TIMEOUT = 5  # a loaded CI machine must not look like an outage
    return LOCAL_REDIS
