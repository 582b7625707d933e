"""Prompt caching: the `prompt_cache_key` each prompt version sends upstream."""

from __future__ import annotations

import hashlib
import re
from typing import Any

CACHE_KEY_RE = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def version_cache_key(version: Any) -> str:
    """The prompt's own `cache_key` when set, else one derived from team, prompt and version
    number: stable across calls and processes, different for each version, and a hash, so
    the provider sees neither the slug nor any of the template."""
    prompt = version.prompt
    if prompt.cache_key:
        return str(prompt.cache_key)
    seed = f"switchboard:{prompt.team_id}:{prompt.slug}:{version.number}"
    return "sb-" + hashlib.sha256(seed.encode()).hexdigest()[:32]
