"""Money formatting and filter links for the usage dashboard."""

from __future__ import annotations

import json
from decimal import ROUND_HALF_UP, Decimal
from urllib.parse import urlencode

from django import template
from django.http import QueryDict
from django.utils.html import format_html

register = template.Library()

CENT = Decimal("0.01")
TENTH_CENT = Decimal("0.0001")


def usd_text(value: Decimal | None) -> str:
    """$1,234.57 for a dollar or more, $0.0123 below (LLM calls cost fractions of a cent)."""
    if value is None:
        return "—"
    value = Decimal(value)
    sign = "-" if value < 0 else ""
    amount = abs(value)
    if amount >= 1 or amount == 0:
        return f"{sign}${amount.quantize(CENT, rounding=ROUND_HALF_UP):,}"
    return f"{sign}${amount.quantize(TENTH_CENT, rounding=ROUND_HALF_UP)}"


@register.simple_tag
def money(value: Decimal | None) -> str:
    """A rounded amount whose exact value stays in `data-usd` (and the tooltip)."""
    if value is None:
        return "—"
    exact = format(Decimal(value).normalize(), "f")
    return format_html(
        '<span class="money" data-usd="{}" title="${}">{}</span>', exact, exact, usd_text(value)
    )


@register.filter
def usd(value: Decimal | None) -> str:
    return usd_text(value)


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
