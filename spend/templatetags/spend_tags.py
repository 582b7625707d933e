"""Filter links, durations and shares for the usage dashboard (money: core.templatetags.money)."""

from __future__ import annotations

import json
from decimal import Decimal
from urllib.parse import urlencode

from django import template
from django.http import QueryDict

register = template.Library()


@register.simple_tag
def filter_url(params: QueryDict, **changes: object) -> str:
    """The current query string with some filters set (a value) or removed (None or "").

    Built from pairs rather than a QueryDict copy (a deep copy): the dashboard renders a
    few hundred of these links."""
    pairs: list[tuple[str, str]] = []
    for key, values in params.lists():
        if key in changes:
            value = changes[key]
            if value is not None and value != "":
                pairs.append((key, str(value)))
        else:
            pairs.extend((key, value) for value in values)
    pairs += [
        (key, str(value))
        for key, value in changes.items()
        if key not in params and value is not None and value != ""
    ]
    encoded = urlencode(pairs)
    return f"?{encoded}" if encoded else "?"


@register.filter
def ms(value: int | None) -> str:
    if value is None:
        return "—"
    if value >= 10_000:
        return f"{value / 1000:.1f} s"
    return f"{value:,} ms"


@register.filter
def pct(value: Decimal | None) -> str:
    return "—" if value is None else f"{value}%"


@register.simple_tag
def share(part: Decimal, whole: Decimal) -> str:
    """`part` as a percentage of `whole`, for a bar's CSS width."""
    if not whole or whole <= 0 or part is None or part <= 0:
        return "0"
    return str(min(Decimal(100), part * 100 / whole).quantize(Decimal("0.1")))


@register.filter
def pretty_json(value: object) -> str:
    """Stored request/response bodies, indented (the template escapes the text)."""
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)
