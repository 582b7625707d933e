"""Key → team resolution, on every gateway and REST request, from the process's hot cache
(`core.hot`): a revoked or deleted key, or a key of a deleted or deactivated team, is refused
by every server process within `HOT_CHECK_SECONDS` of the write."""

from __future__ import annotations

from asgiref.sync import sync_to_async

from accounts.models import ApiKey
from accounts.services import KEY_PREFIX, hash_key
from core.db import reconnecting
from core.hot import hot_get, hot_get_sync


def _looks_like_key(raw_key: str) -> bool:
    return raw_key.startswith(KEY_PREFIX) and 20 <= len(raw_key) <= 100


@reconnecting
def _active_key(hashed: str) -> ApiKey | None:
    # A miss is cached too (as None), so a flood of bad keys does not reach the database.
    return (
        ApiKey.objects.select_related("team")
        .filter(hashed_key=hashed, revoked_at=None, team__is_active=True)
        .first()
    )


def api_key_resolve_sync(raw_key: str) -> ApiKey | None:
    if not _looks_like_key(raw_key):
        return None
    hashed = hash_key(raw_key)
    return hot_get_sync(("key", hashed), lambda: _active_key(hashed))


async def api_key_resolve(raw_key: str) -> ApiKey | None:
    if not _looks_like_key(raw_key):
        return None
    hashed = hash_key(raw_key)
    return await hot_get(("key", hashed), lambda: sync_to_async(_active_key)(hashed))
