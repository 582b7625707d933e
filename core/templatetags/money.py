"""Money in templates, one way everywhere (a template builtin: no `{% load %}` needed).

`{{ x|usd }}` rounded to read, `{{ x|usd_exact }}` to the last digit, `{% money x %}` rounded
with the exact amount in its tooltip and `data-usd`; `{{ ratio|multiplier }}` a plain factor.
"""

from __future__ import annotations

from decimal import Decimal

from django import template
from django.utils.html import format_html

from core import money as formats

register = template.Library()

register.filter("usd", formats.usd)
register.filter("usd_exact", formats.usd_exact)


@register.simple_tag
def money(value: Decimal | None) -> str:
    if value is None:
        return "—"
    exact = formats.decimal_text(Decimal(value))
    return format_html(
        '<span class="money" data-usd="{}" title="${}">{}</span>', exact, exact, formats.usd(value)
    )


@register.filter
def multiplier(value: Decimal | None) -> str:
    return "" if value is None else formats.decimal_text(value)
