"""Per-key rate limits: requests and tokens per minute, with 429 and Retry-After.

A sliding-window counter: the count of the current minute plus the previous minute's count
weighted by how much of it still lies within the last 60 s. That smooths the burst a plain
fixed window allows at each minute boundary, for the same storage (two counters per limit).

With `REDIS_URL` set, the counters live in Redis, shared by every web process, and a check is
one pipelined round trip (INCR/INCRBY + EXPIRE + GET of the previous window). Without it (the
embedded default), they live in this process's memory.

If Redis cannot be reached, `RATE_LIMIT_FAIL_OPEN` (default True) decides: serve, counting in
this process's memory for the next `RATE_LIMIT_REDIS_RETRY_SECONDS` (a per-process limit is
looser than the shared one, but still a limit), logging one warning per outage; or, when False,
refuse with 503. Keys without limits cost nothing: no Redis call is made.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.conf import settings

from core.errors import RateLimited, ServiceUnavailable
from core.metrics import RATE_LIMITER_ERRORS, record_rate_limited

if TYPE_CHECKING:
    from redis.asyncio import Redis

logger = logging.getLogger(__name__)

WINDOW_SECONDS = 60
_TTL = 2 * WINDOW_SECONDS + 5  # a window's counter is read during the next one


@dataclass(frozen=True)
class Counts:
    """A limit's counter in the current window (including this request) and the previous one."""

    current: int
    previous: int


def _estimate(counts: Counts, elapsed: float) -> float:
    return counts.previous * (1 - elapsed / WINDOW_SECONDS) + counts.current


def retry_after_seconds(*, counts: Counts, cost: int, limit: int, elapsed: float) -> int:
    """Whole seconds until a request of `cost` would fit, given the counts without it."""
    if cost > limit:
        return WINDOW_SECONDS
    current, previous = counts.current, counts.previous
    remaining = WINDOW_SECONDS - elapsed
    if current + cost <= limit and previous > 0:
        # Within this window, as the previous window's weight decays.
        wait = WINDOW_SECONDS * (1 - (limit - current - cost) / previous) - elapsed
        if wait <= remaining:
            return max(1, math.ceil(wait))
    # After the window rolls over: this window's count becomes the decaying one.
    wait_after = WINDOW_SECONDS * (1 - (limit - cost) / current) if current else 0.0
    return max(1, math.ceil(remaining + max(0.0, wait_after)))


# --- in-process counters ------------------------------------------------------------------


class LocalCounters:
    """Sliding-window counters in this process; a lock makes them safe from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # (key_id, kind) → [window, current, previous]
        self._counts: dict[tuple[int, str], list[int]] = {}

    def add(self, key_id: int, kind: str, window: int, amount: int) -> Counts:
        with self._lock:
            entry = self._counts.get((key_id, kind))
            if entry is None or entry[0] < window - 1:
                entry = self._counts[(key_id, kind)] = [window, 0, 0]
            elif entry[0] == window - 1:
                entry[:] = [window, 0, entry[1]]
            entry[1] += amount
            return Counts(current=entry[1], previous=entry[2])

    def clear(self) -> None:
        with self._lock:
            self._counts.clear()


_local = LocalCounters()

# --- Redis ------------------------------------------------------------------------------------

# One client per event loop: an asyncio Redis connection belongs to the loop that opened it.
_clients: dict[int, tuple[asyncio.AbstractEventLoop, str, Redis]] = {}
_redis_down_until = 0.0


def _redis_url() -> str:
    return getattr(settings, "RATE_LIMIT_REDIS_URL", "") or settings.REDIS_URL


def _redis_client(url: str) -> Redis:
    from redis.asyncio import Redis

    loop = asyncio.get_running_loop()
    found = _clients.get(id(loop))
    if found is not None and found[0] is loop and found[1] == url:
        return found[2]
    timeout = settings.RATE_LIMIT_REDIS_TIMEOUT
    client = Redis.from_url(
        url,
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
        retry_on_timeout=False,
    )
    for loop_id, (other, _, _) in list(_clients.items()):
        if other.is_closed():
            del _clients[loop_id]
    _clients[id(loop)] = (loop, url, client)
    return client


def _prefix() -> str:
    return settings.CACHES["default"].get("KEY_PREFIX") or "sb"


async def _redis_add(
    client: Redis, key_id: int, window: int, amounts: dict[str, int]
) -> dict[str, Counts]:
    """One round trip: for each limited kind, add to this window and read the previous one."""
    base = f"{_prefix()}:rl:{key_id}:"
    pipe = client.pipeline(transaction=False)
    for kind, amount in amounts.items():
        current = f"{base}{kind}:{window}"
        pipe.incrby(current, amount)
        pipe.expire(current, _TTL)
        pipe.get(f"{base}{kind}:{window - 1}")
    results = await pipe.execute()
    counts = {}
    for index, kind in enumerate(amounts):
        current, _, previous = results[3 * index : 3 * index + 3]
        counts[kind] = Counts(current=int(current), previous=int(previous or 0))
    return counts


async def _redis_undo(client: Redis, key_id: int, window: int, amounts: dict[str, int]) -> None:
    base = f"{_prefix()}:rl:{key_id}:"
    pipe = client.pipeline(transaction=False)
    for kind, amount in amounts.items():
        pipe.decrby(f"{base}{kind}:{window}", amount)
    await pipe.execute()


def _redis_failed(exc: Exception) -> None:
    global _redis_down_until
    RATE_LIMITER_ERRORS.inc()
    was_up = time.monotonic() >= _redis_down_until
    _redis_down_until = time.monotonic() + settings.RATE_LIMIT_REDIS_RETRY_SECONDS
    if was_up:
        logger.warning(
            "Rate limiter cannot reach Redis (%s: %s); %s for the next %s s.",
            type(exc).__name__,
            exc,
            "counting per process" if settings.RATE_LIMIT_FAIL_OPEN else "refusing requests",
            settings.RATE_LIMIT_REDIS_RETRY_SECONDS,
        )


def _unavailable() -> ServiceUnavailable:
    return ServiceUnavailable(
        "Rate limiting is unavailable; try again shortly.", headers={"Retry-After": "5"}
    )


async def _add(key_id: int, window: int, amounts: dict[str, int]) -> tuple[dict[str, Counts], bool]:
    """Counts after adding `amounts`, and whether they came from Redis."""
    url = _redis_url()
    if url and time.monotonic() >= _redis_down_until:
        from redis.exceptions import RedisError

        try:
            return await _redis_add(_redis_client(url), key_id, window, amounts), True
        except (RedisError, OSError) as exc:
            _redis_failed(exc)
    if url and not settings.RATE_LIMIT_FAIL_OPEN:
        raise _unavailable()
    return {kind: _local.add(key_id, kind, window, n) for kind, n in amounts.items()}, False


async def _undo(key_id: int, window: int, amounts: dict[str, int], *, shared: bool) -> None:
    if shared:
        from redis.exceptions import RedisError

        try:
            await _redis_undo(_redis_client(_redis_url()), key_id, window, amounts)
        except (RedisError, OSError) as exc:
            _redis_failed(exc)
        return
    for kind, amount in amounts.items():
        _local.add(key_id, kind, window, -amount)


# --- the interface ------------------------------------------------------------------------------


async def rate_limit_hit(*, key_id: int, rpm: int | None, tpm: int | None, tokens: int) -> None:
    """Count one request of `tokens` (estimated input + max output) against the key's limits.

    Raises RateLimited (429, with Retry-After) when either limit would be exceeded; the refused
    request is not counted. No-op when the key has no limits.
    """
    amounts: dict[str, int] = {}
    if rpm:
        amounts["r"] = 1
    if tpm:
        amounts["t"] = max(0, int(tokens))
    if not amounts:
        return
    now = time.time()
    window, elapsed = divmod(now, WINDOW_SECONDS)
    counts, shared = await _add(key_id, int(window), amounts)
    refused: list[tuple[str, str, int, int]] = []  # (kind, label, limit, cost)
    if rpm and _estimate(counts["r"], elapsed) > rpm:
        refused.append(("rpm", "requests", rpm, 1))
    if tpm and _estimate(counts["t"], elapsed) > tpm:
        refused.append(("tpm", "tokens", tpm, amounts["t"]))
    if not refused:
        return
    await _undo(key_id, int(window), amounts, shared=shared)
    retry_after = 0
    for kind, _label, limit, cost in refused:
        record_rate_limited(kind=kind)
        key = "r" if kind == "rpm" else "t"
        before = Counts(current=counts[key].current - cost, previous=counts[key].previous)
        retry_after = max(
            retry_after, retry_after_seconds(counts=before, cost=cost, limit=limit, elapsed=elapsed)
        )
    kind, label, limit, cost = refused[0]
    if kind == "tpm" and cost > limit:
        message = (
            f"This request needs about {cost} tokens, more than this key's limit of "
            f"{limit} tokens per minute."
        )
    else:
        message = f"Rate limit of {limit} {label} per minute reached for this key."
    raise RateLimited(
        message,
        details={"limit": kind, "value": limit, "retry_after_seconds": retry_after},
        headers={"Retry-After": str(retry_after)},
    )


async def rate_limit_record_tokens(*, key_id: int, tpm: int | None, tokens: int) -> None:
    """After a call, count the tokens it used beyond what rate_limit_hit counted (e.g. actual
    output), so that the next requests see them. Never refuses."""
    if not tpm or tokens <= 0:
        return
    window = int(time.time() // WINDOW_SECONDS)
    try:
        await _add(key_id, window, {"t": int(tokens)})
    except ServiceUnavailable:
        return


def rate_limit_reset() -> None:
    """Forget local counters and any Redis outage (tests)."""
    global _redis_down_until
    _local.clear()
    _redis_down_until = 0.0
