"""A Redis cache that treats an unreachable Redis as an empty cache instead of an error.

Everything Switchboard caches (key → team, prompt → version, catalog, generations) can be
rebuilt from the database, so while Redis is down reads miss and writes are dropped: pages
and the gateway keep serving, slower, from PostgreSQL. After a failure the cache stays
"down" for `retry_seconds` (no connection attempt, so no timeout per call), then tries again.
One warning is logged per outage; `/readyz` reports the cache as failing meanwhile.

`incr`/`decr` raise ValueError during an outage, as Django's cache API does for a missing key.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.redis import RedisCache
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)

T = TypeVar("T")
_OUTAGE = (RedisConnectionError, RedisTimeoutError, ConnectionError, TimeoutError)


class ResilientRedisCache(RedisCache):
    retry_seconds = 5.0

    def __init__(self, server: Any, params: dict[str, Any]) -> None:
        options = dict(params.get("OPTIONS", {}))
        self.retry_seconds = float(options.pop("RETRY_SECONDS", self.retry_seconds))
        super().__init__(server, {**params, "OPTIONS": options})
        self._down_until = 0.0

    @property
    def is_down(self) -> bool:
        return time.monotonic() < self._down_until

    def _guard(self, fallback: T, call: Callable[[], T]) -> T:
        if self.is_down:
            return fallback
        try:
            return call()
        except _OUTAGE as exc:
            was_up = not self.is_down
            self._down_until = time.monotonic() + self.retry_seconds
            if was_up:
                logger.warning(
                    "Cache unavailable (%s: %s): serving without it for %s s.",
                    type(exc).__name__,
                    exc,
                    self.retry_seconds,
                )
            return fallback

    def add(
        self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: Any = None
    ) -> bool:
        return self._guard(
            False, lambda: super(ResilientRedisCache, self).add(key, value, timeout, version)
        )

    def get(self, key: Any, default: Any = None, version: Any = None) -> Any:
        return self._guard(
            default, lambda: super(ResilientRedisCache, self).get(key, default, version)
        )

    def set(
        self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: Any = None
    ) -> None:
        self._guard(
            None, lambda: super(ResilientRedisCache, self).set(key, value, timeout, version)
        )

    def touch(self, key: Any, timeout: Any = DEFAULT_TIMEOUT, version: Any = None) -> bool:
        return self._guard(
            False, lambda: super(ResilientRedisCache, self).touch(key, timeout, version)
        )

    def delete(self, key: Any, version: Any = None) -> bool:
        return self._guard(False, lambda: super(ResilientRedisCache, self).delete(key, version))

    def get_many(self, keys: Any, version: Any = None) -> dict[Any, Any]:
        return self._guard({}, lambda: super(ResilientRedisCache, self).get_many(keys, version))

    def has_key(self, key: Any, version: Any = None) -> bool:
        return self._guard(False, lambda: super(ResilientRedisCache, self).has_key(key, version))

    def incr(self, key: Any, delta: int = 1, version: Any = None) -> int:
        missing = object()
        found = self._guard(
            missing, lambda: super(ResilientRedisCache, self).incr(key, delta, version)
        )
        if found is missing:
            raise ValueError(f"Key {key!r} not found (cache unavailable).")
        return found  # type: ignore[return-value]

    def set_many(self, data: Any, timeout: Any = DEFAULT_TIMEOUT, version: Any = None) -> list[Any]:
        return self._guard(
            list(data), lambda: super(ResilientRedisCache, self).set_many(data, timeout, version)
        )

    def delete_many(self, keys: Any, version: Any = None) -> None:
        self._guard(None, lambda: super(ResilientRedisCache, self).delete_many(keys, version))

    def clear(self) -> None:
        self._guard(None, lambda: super(ResilientRedisCache, self).clear())
