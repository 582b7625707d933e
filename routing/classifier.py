"""The tier classifier: an ordinary, editable prompt that answers which tier a request needs.

The prompt is `tier-classifier` in the `platform` team (seeded by `routing.seed`), run on the
tier its version names (nano) with a JSON-schema answer `{"tier", "reason"}`. Answers are
cached by team and a hash of the classifier version and the input text, so the same request
is classified once per team (a cache shared by teams would tell one team, through `cached`,
the reason or the timing, what another team sent). Running it is the caller's job (`execute`), so that the call goes through
the gateway's upstream path and gets its own usage record (purpose `classifier`); this
module only knows the prompt, the cache and how to read the answer.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async
from django.core.cache import cache

from core.errors import AppError
from routing.snapshot import Snapshot

CLASSIFIER_SLUG = "tier-classifier"
PLATFORM_TEAM_SLUG = "platform"
TIER_NAMES = ["nano", "mini", "flagship", "reasoning"]
REASON_NOT_KEPT = "reason not kept (the team stores no content)"
CACHE_SECONDS = 24 * 3600
MAX_CHARS = 4000

ANSWER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "tier": {"type": "string", "enum": TIER_NAMES},
        "reason": {"type": "string"},
    },
    "required": ["tier", "reason"],
    "additionalProperties": False,
}

PROMPT_SPEC: dict[str, Any] = {
    "slug": CLASSIFIER_SLUG,
    "name": "Tier classifier",
    "task_tag": "routing",
    "description": "Picks the cheapest model tier that can handle a request (policy action 'classify').",
    "system_template": (
        "You route requests to the cheapest model tier that can do the job well.\n"
        "- nano: very short, mechanical tasks (label one short text, yes/no, pick from a list).\n"
        "- mini: routine work: extraction, summarization, classification, short factual answers.\n"
        "- flagship: open-ended writing, long or subtle instructions, code, nuanced judgement.\n"
        "- reasoning: multi-step analysis, math, planning, hard trade-offs.\n"
        "Answer with JSON only: the tier and a one-sentence reason."
    ),
    "user_template": "Request:\n{{ text }}",
    "variables": [{"name": "text", "type": "string", "required": True}],
    "tier": "nano",
    "max_output_tokens": 200,
    "response_schema": ANSWER_SCHEMA,
}


@dataclass(frozen=True, slots=True)
class Classification:
    tier: str
    reason: str
    cached: bool = False
    ok: bool = True  # False: the classifier was unavailable and the default tier was used

    def describe(self) -> str:
        return f"{self.reason} [cached]" if self.cached else self.reason


def classifier_text(text: str) -> str:
    return text[:MAX_CHARS]


def cache_key(team_id: int, version_id: int, text: str) -> str:
    digest = hashlib.sha256(classifier_text(text).encode()).hexdigest()
    return f"routing:classifier:{team_id}:{version_id}:{digest}"


def parse_answer(answer: str, snapshot: Snapshot) -> tuple[str, str] | None:
    try:
        value = json.loads(answer)
    except ValueError:
        return None
    if not isinstance(value, dict):
        return None
    tier = value.get("tier")
    if not isinstance(tier, str) or snapshot.tier(tier) is None:
        return None
    reason = value.get("reason")
    return tier, (reason if isinstance(reason, str) else "")[:200]


_platform: dict[str, tuple[float, int | None]] = {}


def _platform_team_id() -> int | None:
    from accounts.models import Team

    return Team.objects.filter(slug=PLATFORM_TEAM_SLUG).values_list("id", flat=True).first()


async def platform_team_id() -> int | None:
    found = _platform.get(PLATFORM_TEAM_SLUG)
    if found is None or found[0] < time.monotonic():
        team_id = await sync_to_async(_platform_team_id)()
        found = _platform[PLATFORM_TEAM_SLUG] = (time.monotonic() + 60, team_id)
    return found[1]


async def classifier_version() -> Any:
    """The classifier's production version, or None when it is not set up."""
    from prompts.selectors import prompt_version_resolve

    team_id = await platform_team_id()
    if team_id is None:
        return None
    try:
        return await prompt_version_resolve(team_id=team_id, slug=CLASSIFIER_SLUG)
    except AppError:
        return None


async def classification_cached(*, team_id: int, text: str) -> Classification | None:
    """The team's cached answer for this text, if any (the explain endpoint never calls a
    model)."""
    version = await classifier_version()
    if version is None:
        return None
    hit = await cache.aget(cache_key(team_id, version.id, text))
    return Classification(hit[0], hit[1], cached=True) if hit else None


Executor = Callable[[Any, str], Awaitable[str]]


async def classify(
    *,
    team_id: int,
    text: str,
    snapshot: Snapshot,
    execute: Executor,
    cache_seconds: float = CACHE_SECONDS,
    keep_reason: bool = True,
) -> Classification:
    """The tier for `text` sent by the team: from the team's cache, or by running the
    classifier prompt via `execute`.

    Without `keep_reason` (a team that keeps no content) the model's reason, a sentence about
    the text, is neither cached nor returned: only the tier is.

    `execute(version, text)` runs the prompt and returns the model's answer text; an AppError
    from it (upstream down, budget) falls back to the policy's default tier."""
    fallback = snapshot.default_tier
    version = await classifier_version()
    if version is None:
        return Classification(
            fallback, f"classifier prompt '{CLASSIFIER_SLUG}' is not set up", ok=False
        )
    key = cache_key(team_id, version.id, text)
    hit = await cache.aget(key)
    if hit:
        return Classification(hit[0], hit[1] if keep_reason else REASON_NOT_KEPT, cached=True)
    try:
        answer = await execute(version, classifier_text(text))
    except AppError as exc:
        return Classification(fallback, f"classifier failed ({exc.code})", ok=False)
    parsed = parse_answer(answer, snapshot)
    if parsed is None:
        return Classification(fallback, "classifier answer was not a known tier", ok=False)
    tier, reason = parsed if keep_reason else (parsed[0], REASON_NOT_KEPT)
    await cache.aset(key, (tier, reason), cache_seconds)
    return Classification(tier, reason)
