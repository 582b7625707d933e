from __future__ import annotations

import logging
import time

import pytest

from core.cache import ResilientRedisCache
from tests.ops.conftest import LOCAL_REDIS, redis_reachable


def make(location: str, retry: float = 5.0) -> ResilientRedisCache:
    return ResilientRedisCache(
        location,
        {
            "KEY_PREFIX": f"sbtest-cache-{time.monotonic_ns()}",
            "OPTIONS": {"socket_connect_timeout": 0.5, "RETRY_SECONDS": retry},
        },
    )


def test_an_unreachable_redis_reads_as_an_empty_cache(caplog):
    cache = make("redis://127.0.0.1:1/0")
    with caplog.at_level(logging.WARNING, logger="core.cache"):
        cache.set("k", "v")
        assert cache.get("k") is None
        assert cache.get("k", "default") == "default"
        assert cache.add("k", "v") is False
        assert cache.get_many(["a", "b"]) == {}
        assert cache.delete("k") is False
        assert cache.has_key("k") is False
        assert cache.get_or_set("k", "computed") == "computed"
        with pytest.raises(ValueError):
            cache.incr("k")
    assert len([r for r in caplog.records if "Cache unavailable" in r.getMessage()]) == 1


async def test_async_calls_degrade_the_same_way():
    cache = make("redis://127.0.0.1:1/0")
    await cache.aset("k", "v")
    assert await cache.aget("k") is None


def test_after_an_outage_calls_skip_redis_until_the_retry_time():
    cache = make("redis://127.0.0.1:1/0", retry=60)
    cache.get("k")
    started = time.perf_counter()
    for _ in range(1000):
        cache.get("k")
    assert cache.is_down
    assert time.perf_counter() - started < 0.5  # no connection attempts


def test_a_working_redis_caches_normally():
    if not redis_reachable():
        pytest.skip("no Redis on 127.0.0.1:6379")
    cache = make(LOCAL_REDIS)
    cache.set("k", {"v": 1}, 30)
    assert cache.get("k") == {"v": 1}
    assert cache.add("n", 1)
    assert cache.incr("n") == 2
    cache.delete("k")
    assert cache.get("k") is None
