from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest

from spend.periods import TOTAL_START, period_bounds

NEW_YORK = zoneinfo.ZoneInfo("America/New_York")
UTC = dt.UTC


def at(*args: int, tz: dt.tzinfo = UTC) -> dt.datetime:
    return dt.datetime(*args, tzinfo=tz)


def test_a_monthly_period_starts_on_day_one_at_local_midnight():
    start, end = period_bounds("monthly", at(2026, 11, 25, 15, 0), NEW_YORK)

    assert start == at(2026, 11, 1, tz=NEW_YORK)
    assert end == at(2026, 12, 1, tz=NEW_YORK)
    assert start.tzinfo is UTC  # returned in UTC
    assert start == at(2026, 11, 1, 4, 0)  # EDT until Nov 1 02:00, so midnight is 04:00 UTC


def test_a_utc_instant_just_after_midnight_utc_still_belongs_to_the_previous_local_month():
    start, _end = period_bounds("monthly", at(2026, 12, 1, 2, 0), NEW_YORK)  # Nov 30, 21:00 EST

    assert start == at(2026, 11, 1, tz=NEW_YORK)


def test_a_daily_period_follows_local_midnight_across_a_dst_change():
    start, end = period_bounds("daily", at(2026, 3, 8, 12, 0), NEW_YORK)  # the spring-forward day

    assert start == at(2026, 3, 8, tz=NEW_YORK)
    assert end == at(2026, 3, 9, tz=NEW_YORK)
    assert end - start == dt.timedelta(hours=23)


def test_a_weekly_period_starts_on_monday():
    start, end = period_bounds("weekly", at(2026, 11, 26, 9, 0), UTC)  # a Thursday

    assert start == at(2026, 11, 23)
    assert start.weekday() == 0
    assert end == at(2026, 11, 30)


def test_december_rolls_into_january():
    start, end = period_bounds("monthly", at(2026, 12, 31, 23, 59), UTC)

    assert (start, end) == (at(2026, 12, 1), at(2027, 1, 1))


def test_a_total_budget_never_rolls_over():
    assert period_bounds("total", at(2030, 1, 1), UTC) == (TOTAL_START, None)


def test_the_default_time_zone_is_the_settings_one(settings):
    settings.TIME_ZONE = "Asia/Tokyo"

    start, _end = period_bounds("daily", at(2026, 11, 25, 16, 0))  # 01:00 on the 26th in Tokyo

    assert start == at(2026, 11, 26, tz=zoneinfo.ZoneInfo("Asia/Tokyo"))


def test_naive_datetimes_and_unknown_periods_are_refused():
    with pytest.raises(ValueError):
        period_bounds("daily", dt.datetime(2026, 1, 1))
    with pytest.raises(ValueError):
        period_bounds("fortnightly", at(2026, 1, 1))
