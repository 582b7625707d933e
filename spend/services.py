"""Writes on the usage ledger other than the gateway's: content retention."""

from __future__ import annotations

import datetime as dt

from django.db.models import Q
from django.utils import timezone

from accounts.models import Team
from spend.models import UsageRecord


def usage_content_purge(*, now: dt.datetime | None = None) -> int:
    """Null the stored request/response bodies older than each team's retention period.

    Token counts, costs and the rest of the record stay: only the content goes. Returns the
    number of records purged."""
    now = now or timezone.now()
    purged = 0
    for team_id, days in Team.objects.values_list("id", "retention_days"):
        purged += (
            UsageRecord.objects.filter(
                team_id=team_id, created_at__lt=now - dt.timedelta(days=days)
            )
            .filter(Q(request_body__isnull=False) | Q(response_body__isnull=False))
            .update(request_body=None, response_body=None)
        )
    return purged
