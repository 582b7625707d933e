"""Key → team resolution, on every gateway request: cached, so the hot path skips the DB."""

from __future__ import annotations

from django.core.cache import cache

from accounts.models import ApiKey
from accounts.services import KEY_PREFIX, api_key_cache_key, hash_key

KEY_CACHE_SECONDS = 300
_MISSING = "missing"  # cached negative answer, so a flood of bad keys does not hit the DB


def _looks_like_key(raw_key: str) -> bool:
    return raw_key.startswith(KEY_PREFIX) and 20 <= len(raw_key) <= 100


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
    if not _looks_like_key(raw_key):
        return None
    hashed = hash_key(raw_key)
    cached = await cache.aget(api_key_cache_key(hashed))
    if cached is None:
        cached = (
            await ApiKey.objects.select_related("team")
            .filter(hashed_key=hashed, revoked_at=None)
            .afirst()
            or _MISSING
        )
        await cache.aset(api_key_cache_key(hashed), cached, KEY_CACHE_SECONDS)
    return None if cached == _MISSING else cached
