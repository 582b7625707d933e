"""Per-key rate limits: requests and tokens per minute, with 429 and Retry-After.

A sliding-window counter: the count of the current minute plus the previous minute's count
weighted by how much of it still lies within the last 60 s. That smooths the burst a plain
fixed window allows at each minute boundary, for the same storage (two counters per limit).

With `REDIS_URL` set, the counters live in Redis, shared by every web process, and a check is
one round trip: a Lua script reads both windows' counters and, only if every limit holds,
adds the request (INCRBY + EXPIRE), atomically, so refused requests are never counted and two
racing requests cannot both take the last slot. Without Redis (the embedded default) the
counters live in this process's memory, under a lock.

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
from typing import TYPE_CHECKING, Any

from django.conf import settings

from core.errors import RateLimited, ServiceUnavailable
from core.metrics import RATE_LIMITER_ERRORS, record_rate_limited

if TYPE_CHECKING:
    from redis.asyncio import Redis

logger = logging.getLogger(__name__)

WINDOW_SECONDS = 60
_TTL = 2 * WINDOW_SECONDS + 5  # a window's counter is read during the next one
_UNLIMITED = 2**62


@dataclass(frozen=True)
class Counts:
    """A limit's counter in the current window (including this request) and the previous one."""

    current: int
    previous: int


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


Amounts = dict[str, tuple[int, int]]  # kind ("r", "t") → (amount to add, limit)


def _fits(before: Counts, amount: int, limit: int, weight: float) -> bool:
    return before.previous * weight + before.current + amount <= limit


class LocalCounters:
    """Sliding-window counters in this process; a lock makes them safe from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # (key_id, kind) → [window, current, previous]
        self._counts: dict[tuple[int, str], list[int]] = {}

    def _entry(self, key_id: int, kind: str, window: int) -> list[int]:
        entry = self._counts.get((key_id, kind))
        if entry is None or entry[0] < window - 1:
            entry = self._counts[(key_id, kind)] = [window, 0, 0]
        elif entry[0] == window - 1:
            entry[:] = [window, 0, entry[1]]
        return entry

    def check_and_add(
        self, key_id: int, window: int, weight: float, amounts: Amounts
    ) -> tuple[bool, dict[str, Counts]]:
        """Add every amount if all of them fit; return whether they did and the counts before."""
        with self._lock:
            entries = {kind: self._entry(key_id, kind, window) for kind in amounts}
            before = {kind: Counts(current=e[1], previous=e[2]) for kind, e in entries.items()}
            allowed = all(
                _fits(before[kind], amount, limit, weight)
                for kind, (amount, limit) in amounts.items()
            )
            if allowed:
                for kind, (amount, _) in amounts.items():
                    entries[kind][1] += amount
            return allowed, before

    def clear(self) -> None:
        with self._lock:
            self._counts.clear()


_local = LocalCounters()

# --- Redis ------------------------------------------------------------------------------------

# Check and add in one atomic step, in one round trip: for each limit, read this window's and
# the previous window's counters; if every limit holds with this request added, add it.
# KEYS: (current, previous) per limit; ARGV: weight, ttl, then (amount, limit) per limit.
# Returns {allowed (1/0), current1, previous1, current2, previous2}, the counts before.
_CHECK_AND_ADD = """
local weight = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
local out = {1}
for i = 1, #KEYS, 2 do
  local current = tonumber(redis.call('GET', KEYS[i]) or '0')
  local previous = tonumber(redis.call('GET', KEYS[i + 1]) or '0')
  out[#out + 1] = current
  out[#out + 1] = previous
  if previous * weight + current + tonumber(ARGV[2 + i]) > tonumber(ARGV[3 + i]) then
    out[1] = 0
  end
end
if out[1] == 1 then
  for i = 1, #KEYS, 2 do
    redis.call('INCRBY', KEYS[i], ARGV[2 + i])
    redis.call('EXPIRE', KEYS[i], ttl)
  end
end
return out
"""

# One client (and its registered script) per event loop: an asyncio Redis connection belongs
# to the loop that opened it.
_clients: dict[int, tuple[asyncio.AbstractEventLoop, str, Redis, Any]] = {}
_redis_down_until = 0.0


def _redis_url() -> str:
    return getattr(settings, "RATE_LIMIT_REDIS_URL", "") or settings.REDIS_URL


def _redis_script(url: str) -> Any:
    from redis.asyncio import Redis

    loop = asyncio.get_running_loop()
    found = _clients.get(id(loop))
    if found is not None and found[0] is loop and found[1] == url:
        return found[3]
    timeout = settings.RATE_LIMIT_REDIS_TIMEOUT
    client = Redis.from_url(
        url, socket_connect_timeout=timeout, socket_timeout=timeout, retry_on_timeout=False
    )
    script = client.register_script(_CHECK_AND_ADD)
    for loop_id, (other, *_rest) in list(_clients.items()):
        if other.is_closed():
            del _clients[loop_id]
    _clients[id(loop)] = (loop, url, client, script)
    return script


def _prefix() -> str:
    return settings.CACHES["default"].get("KEY_PREFIX") or "sb"


async def _redis_check_and_add(
    url: str, key_id: int, window: int, weight: float, amounts: Amounts
) -> tuple[bool, dict[str, Counts]]:
    # The {key_id} hash tag keeps a key's counters in one slot on a Redis Cluster.
    base = f"{_prefix()}:rl:{{{key_id}}}:"
    keys: list[str] = []
    args: list[Any] = [repr(weight), _TTL]
    for kind, (amount, limit) in amounts.items():
        keys += [f"{base}{kind}:{window}", f"{base}{kind}:{window - 1}"]
        args += [amount, limit]
    result = await _redis_script(url)(keys=keys, args=args)
    before = {
        kind: Counts(current=int(result[1 + 2 * i]), previous=int(result[2 + 2 * i]))
        for i, kind in enumerate(amounts)
    }
    return bool(result[0]), before


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


async def _check_and_add(
    key_id: int, window: int, weight: float, amounts: Amounts
) -> tuple[bool, dict[str, Counts]]:
    url = _redis_url()
    if url and time.monotonic() >= _redis_down_until:
        from redis.exceptions import RedisError

        try:
            return await _redis_check_and_add(url, key_id, window, weight, amounts)
        except (RedisError, OSError) as exc:
            _redis_failed(exc)
    if url and not settings.RATE_LIMIT_FAIL_OPEN:
        raise _unavailable()
    return _local.check_and_add(key_id, window, weight, amounts)


# --- the interface ------------------------------------------------------------------------------


async def rate_limit_hit(*, key_id: int, rpm: int | None, tpm: int | None, tokens: int) -> None:
    """Count one request of `tokens` (estimated input + max output) against the key's limits.

    Raises RateLimited (429, with Retry-After) when either limit would be exceeded; a refused
    request is not counted. No-op (no I/O) when the key has no limits.
    """
    amounts: Amounts = {}
    if rpm:
        amounts["r"] = (1, rpm)
    if tpm:
        amounts["t"] = (max(0, int(tokens)), tpm)
    if not amounts:
        return
    window, elapsed = divmod(time.time(), WINDOW_SECONDS)
    weight = 1 - elapsed / WINDOW_SECONDS
    allowed, before = await _check_and_add(key_id, int(window), weight, amounts)
    if allowed:
        return
    refused = [
        kind
        for kind, (amount, limit) in amounts.items()
        if not _fits(before[kind], amount, limit, weight)
    ]
    retry_after = 1
    for kind in refused:
        amount, limit = amounts[kind]
        record_rate_limited(kind="rpm" if kind == "r" else "tpm")
        retry_after = max(
            retry_after,
            retry_after_seconds(counts=before[kind], cost=amount, limit=limit, elapsed=elapsed),
        )
    kind = refused[0] if refused else "r"
    amount, limit = amounts[kind]
    if kind == "t" and amount > limit:
        message = (
            f"This request needs about {amount} tokens, more than this key's limit of "
            f"{limit} tokens per minute."
        )
    else:
        label = "requests" if kind == "r" else "tokens"
        message = f"Rate limit of {limit} {label} per minute reached for this key."
    raise RateLimited(
        message,
        details={
            "limit": "rpm" if kind == "r" else "tpm",
            "value": limit,
            "requested": amount,  # above `value`: never fits, however long one waits
            "retry_after_seconds": retry_after,
        },
        headers={"Retry-After": str(retry_after)},
    )


async def rate_limit_record_tokens(*, key_id: int, tpm: int | None, tokens: int) -> None:
    """After a call, count the tokens it used beyond what rate_limit_hit counted (e.g. actual
    output), so that the next requests see them. Never refuses."""
    if not tpm or tokens <= 0:
        return
    window = int(time.time() // WINDOW_SECONDS)
    try:
        await _check_and_add(key_id, window, 0.0, {"t": (int(tokens), _UNLIMITED)})
    except ServiceUnavailable:
        return


def rate_limit_reset() -> None:
    """Forget local counters and any Redis outage (tests)."""
    global _redis_down_until
    _local.clear()
    _redis_down_until = 0.0
