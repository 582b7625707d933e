"""Budget periods: where the current period starts and ends, in the configured time zone.

A daily budget resets at local midnight, a weekly one on Monday at local midnight, a monthly
one on the first of the month at local midnight; a total budget never resets. Bounds are
computed in the local zone (so a month starts on day 1 there, across DST changes) and
returned as aware datetimes in UTC.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo

from django.conf import settings

# A total budget's period started before any request could have run.
TOTAL_START = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)

DAILY, WEEKLY, MONTHLY, TOTAL = "daily", "weekly", "monthly", "total"


def default_tz() -> dt.tzinfo:
    return zoneinfo.ZoneInfo(settings.TIME_ZONE)


# The last answer per (period, zone): the hot path asks many times within one period.
_recent: dict[tuple[str, object], tuple[dt.datetime, dt.datetime]] = {}


def period_bounds(
    period: str, now: dt.datetime, tz: dt.tzinfo | None = None
) -> tuple[dt.datetime, dt.datetime | None]:
    """The [start, end) of the period holding `now`, in UTC; `end` is None for `total`."""
    if now.tzinfo is None:
        raise ValueError("period_bounds needs an aware datetime")
    if period == TOTAL:
        return TOTAL_START, None
    key = (period, tz if tz is not None else settings.TIME_ZONE)
    found = _recent.get(key)
    if found is not None and found[0] <= now < found[1]:
        return found
    found = _recent[key] = _bounds(period, now, tz or default_tz())
    return found


def _bounds(period: str, now: dt.datetime, tz: dt.tzinfo) -> tuple[dt.datetime, dt.datetime]:
    local = now.astimezone(tz)
    midnight = dt.datetime.combine(local.date(), dt.time.min)
    if period == DAILY:
        start, end = midnight, midnight + dt.timedelta(days=1)
    elif period == WEEKLY:
        start = midnight - dt.timedelta(days=local.weekday())
        end = start + dt.timedelta(days=7)
    elif period == MONTHLY:
        start = midnight.replace(day=1)
        end = (start + dt.timedelta(days=32)).replace(day=1)
    else:
        raise ValueError(f"unknown budget period {period!r}")
    zone = local.tzinfo
    return _utc(start, zone), _utc(end, zone)


def _utc(naive_local: dt.datetime, zone: dt.tzinfo | None) -> dt.datetime:
    # Local midnight exists in every zone Django supports except on a few historic DST
    # switches at midnight; fold=0 picks the first occurrence, which is what a reset means.
    return naive_local.replace(tzinfo=zone).astimezone(dt.UTC)


def period_start(period: str, now: dt.datetime, tz: dt.tzinfo | None = None) -> dt.datetime:
    return period_bounds(period, now, tz)[0]
