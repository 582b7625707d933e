"""Money is printed one way: `core.money.usd` to read, `usd_exact` to the last digit."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.template import Context, Template

from core.money import decimal_text, usd, usd_exact


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("1234.567", "$1,234.57"),
        ("1", "$1.00"),
        ("0", "$0.00"),
        ("0E-10", "$0.00"),
        ("0.58", "$0.58"),
        ("0.5", "$0.50"),
        ("0.0123", "$0.0123"),
        ("0.123456", "$0.1235"),
        ("0.000045", "$0.000045"),
        ("1E-11", "$0.00000000001"),
        ("0.9999999", "$1.00"),
        ("-0.0123", "-$0.0123"),
        ("-12.5", "-$12.50"),
    ],
)
def test_usd_reads_well_at_every_size(value, text):
    assert usd(Decimal(value)) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("0.0000123000", "$0.0000123"),
        ("4.5", "$4.50"),
        ("1E+2", "$100.00"),
        ("100.0000000000", "$100.00"),
        ("1E-11", "$0.00000000001"),
    ],
)
def test_usd_exact_keeps_every_digit_and_no_exponent(value, text):
    assert usd_exact(Decimal(value)) == text


def test_none_is_a_dash():
    assert usd(None) == usd_exact(None) == "—"


def test_decimal_text_pads_to_the_places_asked():
    assert decimal_text(Decimal("0.075"), 2) == "0.075"
    assert decimal_text(Decimal("4"), 2) == "4.00"
    assert decimal_text(Decimal("1E+3")) == "1000"


def test_every_template_has_the_money_filters_without_loading_them():
    rendered = Template("{{ a|usd }} {{ b|usd_exact }} {{ c|multiplier }} {% money d %}").render(
        Context(
            {
                "a": Decimal("0E-10"),
                "b": Decimal("1E-11"),
                "c": Decimal("0.075000"),
                "d": Decimal("0.00001230"),
            }
        )
    )
    assert rendered == (
        "$0.00 $0.00000000001 0.075 "
        '<span class="money" data-usd="0.0000123" title="$0.0000123">$0.0000123</span>'
    )
