"""Writes on the usage ledger other than the usage writer's: retention."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from accounts.selectors import team_content_cutoffs
from spend.models import UsageLedger, UsageRecord


def usage_content_purge(*, now: dt.datetime | None = None) -> int:
    """Null the stored request/response bodies older than each team's retention period.

    Token counts, costs and the rest of the record stay: only the content goes. Returns the
    number of records purged."""
    purged = 0
    for team_id, cutoff in team_content_cutoffs(now=now or timezone.now()).items():
        purged += (
            UsageRecord.objects.filter(team_id=team_id, created_at__lt=cutoff)
            .filter(Q(request_body__isnull=False) | Q(response_body__isnull=False))
            .update(request_body=None, response_body=None)
        )
    return purged


def usage_ledger_keys_purge(*, now: dt.datetime | None = None) -> int:
    """Forget the keys of ledgers written more than USAGE_LEDGER_KEEP_DAYS ago: no spool or
    retry can bring those back."""
    cutoff = (now or timezone.now()) - dt.timedelta(days=settings.USAGE_LEDGER_KEEP_DAYS)
    return UsageLedger.objects.filter(written_at__lt=cutoff).delete()[0]
