"""Size bounds for the identifiers and labels callers send, checked at the edge.

A name a request carries (a prompt slug, a label, a model or tier name, a metadata key or
value) is looked up, cached under a key built from it, copied into usage records and matched
by routing rules: unbounded, a 2 MB label would sit in every cache it passes through. Each
bound here matches the column that stores such a name (a name longer than the column names
nothing), and OpenAI's own bounds for `metadata`. docs/production.md lists them ("Limits").
"""

from __future__ import annotations

from typing import Any

from core.errors import BadRequest

SLUG_MAX = 100  # prompts.Prompt.slug
LABEL_MAX = 64  # prompts.Label.name
NAME_MAX = 200  # display names: prompts, jobs, comparisons
MODEL_MAX = 100  # routing.Model.name
TIER_MAX = 32  # routing.Tier.name ("tier:" prefix allowed on top)
METADATA_MAX_KEYS = 16
METADATA_KEY_MAX = 64
METADATA_VALUE_MAX = 512


def _too_long(param: str, limit: int) -> BadRequest:
    return BadRequest(
        f"`{param}` is longer than {limit} characters.",
        param=param,
        details={param: f"At most {limit} characters."},
    )


def bounded(value: Any, *, param: str, limit: int) -> Any:
    """`value` as it is, or a 400 naming `param` when it is a string longer than `limit`."""
    if isinstance(value, str) and len(value) > limit:
        raise _too_long(param, limit)
    return value


def metadata_bounded(value: dict[str, Any], *, param: str = "metadata") -> dict[str, Any]:
    """Request metadata as it is, or a 400 naming the key that breaks a bound: at most
    METADATA_MAX_KEYS keys, each a string of METADATA_KEY_MAX characters at most, each
    value's text METADATA_VALUE_MAX characters at most."""
    if len(value) > METADATA_MAX_KEYS:
        raise BadRequest(
            f"`{param}` has more than {METADATA_MAX_KEYS} keys.",
            param=param,
            details={param: f"At most {METADATA_MAX_KEYS} keys."},
        )
    for key, item in value.items():
        if len(key) > METADATA_KEY_MAX:
            raise _too_long(f"{param} key", METADATA_KEY_MAX)
        if isinstance(item, str):
            bounded(item, param=f"{param}.{key}", limit=METADATA_VALUE_MAX)
        elif len(str(item)) > METADATA_VALUE_MAX:
            raise _too_long(f"{param}.{key}", METADATA_VALUE_MAX)
    return value
