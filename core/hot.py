"""The one in-process cache of the hot path's reads (API keys, prompt versions, the routing
snapshot, budget settings), and its one invalidation story.

An entry stays until the shared *generation* moves; there is no TTL to wait out. A write to
a watched model moves it once the write commits: each app names its models with `hot_watch`
in `AppConfig.ready`, so pages, REST, the Django admin, `manage.py` commands and services,
which all save through the ORM, are covered; code that writes in bulk without signals calls
`hot_bump()` itself. The generation lives in the shared cache (Redis) when there is one, and
in the database (`core.HotGeneration`) when the cache is per process (LocMem).

Each process reads the generation at most every `HOT_CHECK_SECONDS` and drops all its entries
when it moved: a write is seen by every process within that interval plus one load. Between
checks a read costs a monotonic-clock comparison and a dict lookup. The writing process drops
its own entries at once.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.cache import cache, caches
from django.core.cache.backends.dummy import DummyCache
from django.core.cache.backends.locmem import LocMemCache
from django.db import models, transaction
from django.db.models import F
from django.db.models.signals import m2m_changed, post_delete, post_save

from core.db import reconnecting
from core.models import HotGeneration

GENERATION_KEY = "core:hot-generation"
MAX_ENTRIES = 50_000

T = TypeVar("T")


class _State:
    generation: Any = None
    next_check: float = float("-inf")
    epoch: int = 0  # moves whenever the entries are dropped: a load begun before is not kept
    entries: dict[Any, Any] = {}


_state = _State()
_inflight: dict[tuple[asyncio.AbstractEventLoop, Any], asyncio.Task] = {}
_checks: dict[asyncio.AbstractEventLoop, asyncio.Task] = {}
_MISSING = object()


def _shared_cache() -> bool:
    """Whether the default cache is one that every process sees (not LocMem or Dummy)."""
    return not isinstance(caches["default"], LocMemCache | DummyCache)


@reconnecting
def _read_generation() -> Any:
    """The current generation: a value that changes whenever a watched write commits. An
    unreachable shared cache answers a fresh object, so entries are dropped at every check
    (reads go to the database) until it is back."""
    if not _shared_cache():
        return HotGeneration.objects.filter(pk=1).values_list("value", flat=True).first() or 0
    generation = cache.get(GENERATION_KEY)
    if generation is None:
        cache.add(GENERATION_KEY, uuid.uuid4().hex, None)
        generation = cache.get(GENERATION_KEY)
    return object() if generation is None else generation


@reconnecting
def _write_generation() -> None:
    if _shared_cache():
        cache.set(GENERATION_KEY, uuid.uuid4().hex, None)
    elif not HotGeneration.objects.filter(pk=1).update(value=F("value") + 1):
        HotGeneration.objects.get_or_create(pk=1, defaults={"value": 1})


def _drop() -> None:
    _state.entries = {}
    _state.epoch += 1


def _seen(generation: Any) -> None:
    if generation != _state.generation:
        _state.generation = generation
        _drop()


def _due(now: float) -> bool:
    """Whether this caller should read the generation (and claim the read for this interval)."""
    if now < _state.next_check:
        return False
    _state.next_check = now + settings.HOT_CHECK_SECONDS
    return True


def _keep(key: Any, value: Any, epoch: int) -> None:
    if epoch != _state.epoch:
        return
    if len(_state.entries) >= MAX_ENTRIES:
        _drop()
    _state.entries[key] = value


async def hot_get(key: Any, load: Callable[[], Awaitable[T]]) -> T:
    """The cached value for `key`, or `await load()` (exceptions are not cached).

    Concurrent misses for one key share one load: a cold process hit by hundreds of requests
    at once makes one query per key, not one per request."""
    loop = asyncio.get_running_loop()
    checking = _checks.get(loop)
    if _due(time.monotonic()):
        checking = _checks[loop] = loop.create_task(_check(), context=contextvars.Context())
        checking.add_done_callback(lambda _task: _checks.pop(loop, None))
    if checking is not None:
        # Requests that arrive while the generation is being read wait for it too: none is
        # served from entries that the read is about to drop.
        await asyncio.shield(checking)
    found = _state.entries.get(key, _MISSING)
    if found is not _MISSING:
        return found
    pending = _inflight.get((loop, key))
    if pending is None:
        pending = _inflight[(loop, key)] = loop.create_task(
            _load(key, load, _state.epoch), context=contextvars.Context()
        )
        pending.add_done_callback(lambda _task: _inflight.pop((loop, key), None))
    return await asyncio.shield(pending)


async def _check() -> None:
    # A Redis read may run on any thread; a database read goes to the shared sync thread,
    # whose connection Django manages.
    sensitive = not _shared_cache()
    _seen(await sync_to_async(_read_generation, thread_sensitive=sensitive)())


async def _load(key: Any, load: Callable[[], Awaitable[T]], epoch: int) -> T:
    value = await load()
    _keep(key, value, epoch)
    return value


def hot_get_sync(key: Any, load: Callable[[], T]) -> T:
    """`hot_get` for synchronous callers (DRF views, job submission)."""
    if _due(time.monotonic()):
        _seen(_read_generation())
    found = _state.entries.get(key, _MISSING)
    if found is not _MISSING:
        return found
    epoch = _state.epoch
    value = load()
    _keep(key, value, epoch)
    return value


def hot_bump() -> None:
    """Make every process drop its entries: this one now and once the write commits, the
    others when they next read the generation (after the commit, so they load the new rows)."""
    _drop()

    def committed() -> None:
        _drop()
        _write_generation()

    transaction.on_commit(committed)


def hot_clear() -> None:
    """Forget everything in this process, the last generation seen included (tests)."""
    _drop()
    _state.generation = None
    _state.next_check = float("-inf")


def _on_write(**kwargs: Any) -> None:
    hot_bump()


def hot_watch(*watched: type[models.Model]) -> None:
    """Bump the generation on every save and delete of these models (and changes of their
    many-to-many fields). Called from each app's `AppConfig.ready`."""
    for model in watched:
        uid = f"core-hot-{model._meta.label}"
        post_save.connect(_on_write, sender=model, dispatch_uid=f"{uid}-save")
        post_delete.connect(_on_write, sender=model, dispatch_uid=f"{uid}-delete")
        for field in model._meta.local_many_to_many:
            m2m_changed.connect(
                _on_write, sender=field.remote_field.through, dispatch_uid=f"{uid}-{field.name}"
            )
