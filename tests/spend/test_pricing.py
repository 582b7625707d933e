"""Cost arithmetic against hand-computed Decimal figures (the sums are in the comments)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from routing.models import Price
from spend.pricing import cost_usd, worst_case_cost_usd

D = Decimal


def gpt54() -> Price:
    """gpt-5.4: 2.50 in / 0.25 cached / (cache write = input) / 15.00 out; 2x/1.5x above 272K."""
    return Price(
        input_per_mtok=D("2.50"),
        cached_input_per_mtok=D("0.25"),
        cache_write_per_mtok=None,
        output_per_mtok=D("15.00"),
        long_context_threshold=272_000,
        long_context_input_multiplier=D("2"),
        long_context_output_multiplier=D("1.5"),
    )


def terra() -> Price:
    """gpt-6.1-terra: 1.00 in / 0.05 cached / 1.25 cache write / 5.00 out; 2x/1.5x above 272K."""
    return Price(
        input_per_mtok=D("1.00"),
        cached_input_per_mtok=D("0.05"),
        cache_write_per_mtok=D("1.25"),
        output_per_mtok=D("5.00"),
        long_context_threshold=272_000,
        long_context_input_multiplier=D("2"),
        long_context_output_multiplier=D("1.5"),
    )


def test_plain_input_and_output_cost():
    # 1000 * 2.50 + 500 * 15.00 = 10 000 per 1M → 0.01
    assert cost_usd(price=gpt54(), input_tokens=1000, output_tokens=500) == D("0.0100000000")


def test_cost_is_quantized_to_ten_places():
    cost = cost_usd(price=gpt54(), input_tokens=1000, output_tokens=500)
    assert cost.as_tuple().exponent == -10


def test_cached_input_is_part_of_input_and_bills_at_the_cached_price():
    # 600 uncached * 2.50 + 400 cached * 0.25 = 1500 + 100 = 1600 → 0.0016
    assert cost_usd(price=gpt54(), input_tokens=1000, cached_input_tokens=400) == D("0.0016")


def test_cache_write_bills_at_the_input_price_when_the_model_has_no_cache_write_price():
    # 700 * 2.50 + 300 * 2.50 = 2500 → 0.0025, the same as no cache write
    assert cost_usd(price=gpt54(), input_tokens=1000, cache_write_tokens=300) == D("0.0025")
    assert cost_usd(price=gpt54(), input_tokens=1000) == D("0.0025")


def test_cache_write_bills_at_its_own_price():
    # uncached 5000 * 1.00 + cached 2000 * 0.05 + write 3000 * 1.25 + out 1000 * 5.00
    # = 5000 + 100 + 3750 + 5000 = 13 850 → 0.01385
    cost = cost_usd(
        price=terra(),
        input_tokens=10_000,
        cached_input_tokens=2000,
        cache_write_tokens=3000,
        output_tokens=1000,
    )
    assert cost == D("0.01385")


def test_reasoning_tokens_are_inside_output_and_are_not_billed_twice():
    # 2000 output (1500 of them reasoning) * 15.00 = 30 000 → 0.03
    with_reasoning = cost_usd(
        price=gpt54(), input_tokens=0, output_tokens=2000, reasoning_tokens=1500
    )
    assert with_reasoning == D("0.03")
    assert with_reasoning == cost_usd(price=gpt54(), input_tokens=0, output_tokens=2000)


def test_more_reasoning_than_output_tokens_is_rejected():
    with pytest.raises(ValueError, match="must include reasoning_tokens"):
        cost_usd(price=gpt54(), input_tokens=0, output_tokens=10, reasoning_tokens=11)


def test_more_cached_than_input_tokens_is_rejected():
    with pytest.raises(ValueError, match="must include cached_input_tokens"):
        cost_usd(price=gpt54(), input_tokens=100, cached_input_tokens=80, cache_write_tokens=30)


def test_negative_token_counts_are_rejected():
    with pytest.raises(ValueError, match="output_tokens must not be negative"):
        cost_usd(price=gpt54(), input_tokens=10, output_tokens=-1)


def test_long_context_does_not_apply_at_exactly_the_threshold():
    # 272 000 * 2.50 + 1000 * 15.00 = 680 000 + 15 000 = 695 000 → 0.695
    cost = cost_usd(price=gpt54(), input_tokens=272_000, output_tokens=1000)
    assert cost == D("0.695")


def test_long_context_applies_one_token_over_the_threshold():
    # 272 001 * 2.50 * 2 + 1000 * 15.00 * 1.5 = 1 360 005 + 22 500 = 1 382 505 → 1.382505
    cost = cost_usd(price=gpt54(), input_tokens=272_001, output_tokens=1000)
    assert cost == D("1.382505")


def test_long_context_multiplies_cached_input_too():
    # (200 000 * 2.50 + 100 000 * 0.25) * 2 = (500 000 + 25 000) * 2 = 1 050 000 → 1.05
    cost = cost_usd(price=gpt54(), input_tokens=300_000, cached_input_tokens=100_000)
    assert cost == D("1.05")


def test_long_context_multiplies_cache_writes_too():
    # (272 000 uncached * 1.00 + 10 000 write * 1.25) * 2 = (272 000 + 12 500) * 2 = 569 000
    cost = cost_usd(price=terra(), input_tokens=282_000, cache_write_tokens=10_000)
    assert cost == D("0.569")


def test_a_price_without_a_threshold_never_applies_long_context():
    price = gpt54()
    price.long_context_threshold = None
    # 1 000 000 * 2.50 = 2.5
    assert cost_usd(price=price, input_tokens=1_000_000) == D("2.5")


@pytest.mark.parametrize(
    ("service_tier", "expected"),
    [
        ("default", "0.01"),
        ("auto", "0.01"),
        ("standard", "0.01"),
        (None, "0.01"),
        ("batch", "0.005"),
        ("flex", "0.005"),
        ("priority", "0.02"),
        ("fast", "0.02"),
    ],
)
def test_each_service_tier_multiplies_the_cost(service_tier, expected):
    # base: 1000 * 2.50 + 500 * 15.00 = 10 000 → 0.01
    cost = cost_usd(price=gpt54(), input_tokens=1000, output_tokens=500, service_tier=service_tier)
    assert cost == D(expected)


def test_an_unknown_service_tier_is_a_clear_error():
    with pytest.raises(ValueError, match="Unknown service tier 'turbo'"):
        cost_usd(price=gpt54(), input_tokens=1, service_tier="turbo")


def test_every_component_combined_in_long_context_on_batch():
    # uncached 150 000 * 1.00 + cached 100 000 * 0.05 + write 50 000 * 1.25
    #   = 150 000 + 5 000 + 62 500 = 217 500; * 2 (long context) = 435 000
    # output 20 000 (5 000 reasoning inside) * 5.00 * 1.5 = 150 000
    # (435 000 + 150 000) * 0.5 (batch) = 292 500 → 0.2925
    cost = cost_usd(
        price=terra(),
        input_tokens=300_000,
        cached_input_tokens=100_000,
        cache_write_tokens=50_000,
        output_tokens=20_000,
        reasoning_tokens=5000,
        service_tier="batch",
    )
    assert cost == D("0.2925")


def test_every_component_combined_on_priority_under_the_threshold():
    # uncached 6000 * 1.00 + cached 3000 * 0.05 + write 1000 * 1.25 = 6000 + 150 + 1250 = 7400
    # output 777 * 5.00 = 3885; (7400 + 3885) * 2 = 22 570 → 0.02257
    cost = cost_usd(
        price=terra(),
        input_tokens=10_000,
        cached_input_tokens=3000,
        cache_write_tokens=1000,
        output_tokens=777,
        reasoning_tokens=700,
        service_tier="priority",
    )
    assert cost == D("0.02257")


def test_final_rounding_is_half_up_at_the_tenth_place():
    price = gpt54()
    price.input_per_mtok = D("0.000050")
    # 1 * 0.00005 / 1M = 0.00000000005 → half up to 0.0000000001 (half-even would give 0)
    assert cost_usd(price=price, input_tokens=1) == D("0.0000000001")
    # 3 tokens: 0.00000000015 → 0.0000000002
    assert cost_usd(price=price, input_tokens=3) == D("0.0000000002")


def test_nothing_is_rounded_before_the_end():
    price = gpt54()
    price.cached_input_per_mtok = D("0.000033")
    # each cached token costs 0.000000000033; 10 of them: 0.00000000033 → 0.0000000003
    # (rounding each token first would give 0)
    assert cost_usd(price=price, input_tokens=10, cached_input_tokens=10) == D("0.0000000003")


def test_worst_case_counts_all_input_as_uncached_and_the_full_output_budget():
    # 1000 * 2.50 + 128 000 * 15.00 = 2 500 + 1 920 000 = 1 922 500 → 1.9225
    assert worst_case_cost_usd(price=gpt54(), input_tokens=1000, max_output_tokens=128_000) == D(
        "1.9225"
    )


def test_worst_case_applies_long_context_and_service_tier():
    # (300 000 * 2.50 * 2 + 1000 * 15.00 * 1.5) * 2 = (1 500 000 + 22 500) * 2 = 3 045 000
    cost = worst_case_cost_usd(
        price=gpt54(), input_tokens=300_000, max_output_tokens=1000, service_tier="priority"
    )
    assert cost == D("3.045")


def test_worst_case_is_never_below_the_actual_cost():
    price = terra()
    actual = cost_usd(price=price, input_tokens=5000, cached_input_tokens=4000, output_tokens=900)
    assert worst_case_cost_usd(price=price, input_tokens=5000, max_output_tokens=900) >= actual


def test_worst_case_bills_input_at_the_cache_write_price_when_that_is_higher():
    # terra writes the cache at 1.25 > 1.00 input: 1000 * 1.25 + 100 * 5.00 = 1750 → 0.00175
    assert worst_case_cost_usd(price=terra(), input_tokens=1000, max_output_tokens=100) == D(
        "0.00175"
    )
    actual = cost_usd(price=terra(), input_tokens=1000, cache_write_tokens=1000, output_tokens=100)
    assert actual == D("0.00175")
