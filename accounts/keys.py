"""Key → team resolution, on every gateway request: cached, so the hot path skips the DB."""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.core.cache import cache

from accounts.models import ApiKey
from accounts.services import KEY_PREFIX, api_key_cache_key, hash_key
from core.db import reconnecting

KEY_CACHE_SECONDS = 300
_MISSING = "missing"  # cached negative answer, so a flood of bad keys does not hit the DB


def _looks_like_key(raw_key: str) -> bool:
    return raw_key.startswith(KEY_PREFIX) and 20 <= len(raw_key) <= 100


@reconnecting
def api_key_resolve_sync(raw_key: str) -> ApiKey | None:
    if not _looks_like_key(raw_key):
        return None
    hashed = hash_key(raw_key)
    cached = cache.get(api_key_cache_key(hashed))
    if cached is None:
        cached = (
            ApiKey.objects.select_related("team").filter(hashed_key=hashed, revoked_at=None).first()
            or _MISSING
        )
        cache.set(api_key_cache_key(hashed), cached, KEY_CACHE_SECONDS)
    return None if cached == _MISSING else cached


async def api_key_resolve(raw_key: str) -> ApiKey | None:
    """api_key_resolve_sync in one hop to the sync thread (the gateway's hot cache calls it
    on a miss)."""
    return await sync_to_async(api_key_resolve_sync)(raw_key)
