"""In-process caches for the hot path's reads: key → team and prompt → version.

Both already have a shared Django cache in front of the database (accounts.keys,
prompts.selectors). Django's cache API is synchronous underneath (its async methods hop to
a worker thread), so the gateway keeps its own copy in process memory, valid until the
shared `VERSION_KEY` moves (bumped on every write to keys, prompts, versions and labels;
checked at most every `CHECK_SECONDS` per process, for all entries at once) and for at
most `TTL_SECONDS` in any case (a process that shares no cache with the writer, e.g.
LocMem in another process, still converges).
"""

from __future__ import annotations

import asyncio
import contextvars
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from django.core.cache import cache
from django.db import transaction
from django.db.models.signals import post_delete, post_save

VERSION_KEY = "gateway:hot-version"
CHECK_SECONDS = 1.0
TTL_SECONDS = 30.0
MAX_ENTRIES = 50_000

T = TypeVar("T")


class _State:
    version: Any = None
    checked_at: float = float("-inf")
    entries: dict[Any, tuple[float, Any]] = {}


_state = _State()


async def _current_version(now: float) -> None:
    if now - _state.checked_at < CHECK_SECONDS:
        return
    _state.checked_at = now
    version = await cache.aget(VERSION_KEY)
    if version != _state.version:
        _state.version = version
        _state.entries = {}


async def hot_get(key: Any, load: Callable[[], Awaitable[T]]) -> T:
    """The cached value for `key`, or `await load()` (exceptions are not cached).

    Concurrent misses for one key share one load: a cold process hit by hundreds of
    requests at once makes one query per key, not one per request."""
    now = time.monotonic()
    await _current_version(now)
    found = _state.entries.get(key)
    if found is not None and found[0] > now:
        return found[1]
    loop = asyncio.get_running_loop()
    pending = _inflight.get((loop, key))
    if pending is None:
        pending = _inflight[(loop, key)] = loop.create_task(
            _load(key, load, now), context=contextvars.Context()
        )
        pending.add_done_callback(lambda _task: _inflight.pop((loop, key), None))
    return await asyncio.shield(pending)


async def _load(key: Any, load: Callable[[], Awaitable[T]], now: float) -> T:
    value = await load()
    if len(_state.entries) >= MAX_ENTRIES:
        _state.entries = {}
    _state.entries[key] = (now + TTL_SECONDS, value)
    return value


_inflight: dict[tuple[asyncio.AbstractEventLoop, Any], asyncio.Task] = {}


def hot_clear() -> None:
    _state.entries = {}
    _state.version = None
    _state.checked_at = float("-inf")


def hot_bump() -> None:
    """Invalidate every process's hot entries (after commit, so readers see the new rows)."""
    _state.entries = {}
    transaction.on_commit(lambda: cache.set(VERSION_KEY, uuid.uuid4().hex, None))


def _on_write(**kwargs: Any) -> None:
    hot_bump()


def connect_invalidation() -> None:
    from accounts.models import ApiKey, Team
    from prompts.models import Label, Prompt, PromptVersion

    for model in (ApiKey, Team, Prompt, PromptVersion, Label):
        name = model.__name__
        post_save.connect(_on_write, sender=model, dispatch_uid=f"gateway-hot-save-{name}")
        post_delete.connect(_on_write, sender=model, dispatch_uid=f"gateway-hot-delete-{name}")
