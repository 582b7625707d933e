from __future__ import annotations

import asyncio
import itertools
import logging

import pytest

from core import ratelimit
from core.errors import RateLimited, ServiceUnavailable
from core.ratelimit import Counts, rate_limit_hit, rate_limit_record_tokens, retry_after_seconds

_ids = itertools.count(10_000 + __import__("os").getpid() % 1000 * 1000)


@pytest.fixture
def key_id() -> int:
    """A key id nobody else uses in this run (the Redis counters outlive a test)."""
    return next(_ids)


@pytest.fixture
def clock(monkeypatch):
    """Wall-clock time under the test's control, starting 10 s into a minute."""

    class Clock:
        now = 1_800_000_000.0 - (1_800_000_000.0 % 60) + 10

        def advance(self, seconds: float) -> None:
            self.now += seconds

    clock = Clock()
    monkeypatch.setattr(ratelimit.time, "time", lambda: clock.now)
    return clock


@pytest.fixture
def local_only(settings):
    settings.REDIS_URL = ""
    settings.RATE_LIMIT_REDIS_URL = ""


async def test_a_key_without_limits_is_never_refused(local_only, key_id):
    for _ in range(1000):
        await rate_limit_hit(key_id=key_id, rpm=None, tpm=None, tokens=10_000)


async def test_requests_over_the_rpm_limit_get_429_with_retry_after(local_only, key_id, clock):
    for _ in range(3):
        await rate_limit_hit(key_id=key_id, rpm=3, tpm=None, tokens=0)
    with pytest.raises(RateLimited) as refused:
        await rate_limit_hit(key_id=key_id, rpm=3, tpm=None, tokens=0)
    assert refused.value.status == 429
    assert refused.value.code == "rate_limited"
    assert "3 requests per minute" in refused.value.message
    retry_after = int(refused.value.headers["Retry-After"])
    assert 1 <= retry_after <= 120


async def test_refused_requests_are_not_counted(local_only, key_id, clock):
    for _ in range(3):
        await rate_limit_hit(key_id=key_id, rpm=3, tpm=None, tokens=0)
    for _ in range(20):
        with pytest.raises(RateLimited):
            await rate_limit_hit(key_id=key_id, rpm=3, tpm=None, tokens=0)
    # Half-way through the next minute the old window weighs 1/2: 3 accepted requests count as
    # 1.5, so one more fits; had the 20 refusals counted (23 → 11.5), it would not.
    clock.advance(50 + 30)
    await rate_limit_hit(key_id=key_id, rpm=3, tpm=None, tokens=0)


async def test_the_window_slides_instead_of_resetting_at_the_minute(local_only, key_id, clock):
    for _ in range(10):
        await rate_limit_hit(key_id=key_id, rpm=10, tpm=None, tokens=0)
    clock.advance(50)  # now 0 s into the next minute: the previous window still weighs ~100 %
    with pytest.raises(RateLimited) as refused:
        await rate_limit_hit(key_id=key_id, rpm=10, tpm=None, tokens=0)
    # Half-way through the new minute, half of the old window's 10 requests still count.
    wait = int(refused.value.headers["Retry-After"])
    assert 1 <= wait <= 60
    clock.advance(30)
    for _ in range(5):
        await rate_limit_hit(key_id=key_id, rpm=10, tpm=None, tokens=0)
    with pytest.raises(RateLimited):
        await rate_limit_hit(key_id=key_id, rpm=10, tpm=None, tokens=0)


async def test_tokens_per_minute_count_each_requests_tokens(local_only, key_id, clock):
    await rate_limit_hit(key_id=key_id, rpm=None, tpm=1000, tokens=600)
    with pytest.raises(RateLimited) as refused:
        await rate_limit_hit(key_id=key_id, rpm=None, tpm=1000, tokens=600)
    assert "1000 tokens per minute" in refused.value.message
    assert refused.value.details["limit"] == "tpm"
    await rate_limit_hit(key_id=key_id, rpm=None, tpm=1000, tokens=300)


async def test_tokens_recorded_after_the_call_count_against_the_next_request(
    local_only, key_id, clock
):
    await rate_limit_hit(key_id=key_id, rpm=None, tpm=1000, tokens=100)
    await rate_limit_record_tokens(key_id=key_id, tpm=1000, tokens=800)
    with pytest.raises(RateLimited):
        await rate_limit_hit(key_id=key_id, rpm=None, tpm=1000, tokens=200)


async def test_a_request_larger_than_the_token_limit_says_so(local_only, key_id, clock):
    with pytest.raises(RateLimited) as refused:
        await rate_limit_hit(key_id=key_id, rpm=None, tpm=1000, tokens=5000)
    assert "needs about 5000 tokens" in refused.value.message


async def test_keys_are_limited_independently(local_only, key_id, clock):
    await rate_limit_hit(key_id=key_id, rpm=1, tpm=None, tokens=0)
    await rate_limit_hit(key_id=key_id + 1, rpm=1, tpm=None, tokens=0)
    with pytest.raises(RateLimited):
        await rate_limit_hit(key_id=key_id, rpm=1, tpm=None, tokens=0)


@pytest.mark.parametrize(
    ("counts", "cost", "limit", "elapsed", "expected"),
    [
        # Nothing left in this window's budget, no previous window: wait for the roll-over.
        (Counts(current=10, previous=0), 1, 10, 20.0, 40 + 6),
        # The previous window's weight decays enough within this window.
        (Counts(current=0, previous=10), 1, 10, 0.0, 6),
        # A request bigger than the limit can never pass: one window.
        (Counts(current=0, previous=0), 50, 10, 0.0, 60),
    ],
)
def test_retry_after_is_the_time_until_the_request_fits(counts, cost, limit, elapsed, expected):
    assert retry_after_seconds(counts=counts, cost=cost, limit=limit, elapsed=elapsed) == expected


# --- Redis -----------------------------------------------------------------------------------


async def test_redis_counters_are_shared_across_processes(redis_url, key_id, clock):
    for _ in range(2):
        await rate_limit_hit(key_id=key_id, rpm=3, tpm=None, tokens=0)
    ratelimit._local.clear()  # what another web process would see: nothing local
    await rate_limit_hit(key_id=key_id, rpm=3, tpm=None, tokens=0)
    with pytest.raises(RateLimited):
        await rate_limit_hit(key_id=key_id, rpm=3, tpm=None, tokens=0)


async def test_redis_token_limit_does_not_count_refused_requests(redis_url, key_id, clock):
    await rate_limit_hit(key_id=key_id, rpm=100, tpm=1000, tokens=900)
    for _ in range(5):
        with pytest.raises(RateLimited):
            await rate_limit_hit(key_id=key_id, rpm=100, tpm=1000, tokens=200)
    await rate_limit_hit(key_id=key_id, rpm=100, tpm=1000, tokens=100)


@pytest.mark.parametrize("store", ["local", "redis"])
async def test_concurrent_requests_never_exceed_the_limit(store, settings, request, key_id, clock):
    if store == "redis":
        request.getfixturevalue("redis_url")
    else:
        settings.REDIS_URL = ""
        settings.RATE_LIMIT_REDIS_URL = ""

    async def one() -> bool:
        try:
            await rate_limit_hit(key_id=key_id, rpm=10, tpm=None, tokens=0)
        except RateLimited:
            return False
        return True

    results = await asyncio.gather(*(one() for _ in range(50)))
    assert results.count(True) == 10


async def test_redis_outage_fails_open_to_local_counting_and_warns_once(
    settings, key_id, clock, caplog
):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    settings.RATE_LIMIT_FAIL_OPEN = True
    with caplog.at_level(logging.WARNING, logger="core.ratelimit"):
        for _ in range(3):
            await rate_limit_hit(key_id=key_id, rpm=3, tpm=None, tokens=0)
        with pytest.raises(RateLimited):
            await rate_limit_hit(key_id=key_id, rpm=3, tpm=None, tokens=0)
    warnings = [r for r in caplog.records if "cannot reach Redis" in r.getMessage()]
    assert len(warnings) == 1


async def test_redis_outage_refuses_with_503_when_configured_to_fail_closed(
    settings, key_id, clock
):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    settings.RATE_LIMIT_FAIL_OPEN = False
    with pytest.raises(ServiceUnavailable) as refused:
        await rate_limit_hit(key_id=key_id, rpm=3, tpm=None, tokens=0)
    assert refused.value.status == 503
    assert refused.value.headers["Retry-After"]


async def test_keys_without_limits_do_not_touch_redis_even_when_it_is_down(settings, key_id):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    settings.RATE_LIMIT_FAIL_OPEN = False
    await rate_limit_hit(key_id=key_id, rpm=None, tpm=None, tokens=100)
