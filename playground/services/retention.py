"""Content retention: drop the playground's stored content past each team's retention period."""

from __future__ import annotations

import datetime as dt

from django.db import transaction
from django.utils import timezone

from accounts.selectors import team_content_cutoffs
from playground.models import Comparison, ComparisonColumn, Dataset, Job, JobItem, ShadowPair
from playground.services.shadow import SHADOW_CONTENT

# A shadow pair whose team and prompt store no content holds the production request only until
# its flagship run; if the run has not come after this long, the request is dropped anyway.
SHADOW_UNRETAINED_MAX = dt.timedelta(hours=1)


def playground_content_purge(*, now: dt.datetime | None = None) -> dict[str, int]:
    """Drop the playground's content past each team's retention period (docs/playground.md,
    "Content retention"): comparisons and finished jobs lose their inputs and outputs and keep
    their figures, checks and votes; datasets are deleted; shadow pairs that keep content
    lose it. Also drops the request of a not-retained shadow pair whose run never came.
    Returns how many of each were purged."""
    now = now or timezone.now()
    purged = dict.fromkeys(("comparisons", "jobs", "datasets", "shadow_pairs"), 0)
    for team_id, cutoff in team_content_cutoffs(now=now).items():
        with transaction.atomic():
            stale = Comparison.objects.filter(
                team_id=team_id, created_at__lt=cutoff, content_purged_at__isnull=True
            )
            ComparisonColumn.objects.filter(comparison__in=stale).update(output="", schema_error="")
            purged["comparisons"] += stale.update(
                variables={}, instructions="", input_text="", content_purged_at=now
            )
            stale = Job.objects.filter(
                team_id=team_id,
                created_at__lt=cutoff,
                content_purged_at__isnull=True,
                status__in=Job.FINISHED,
            )
            JobItem.objects.filter(job__in=stale).update(input={}, expected=None, output="")
            purged["jobs"] += stale.update(content_purged_at=now)
            _, deleted = Dataset.objects.filter(team_id=team_id, created_at__lt=cutoff).delete()
            purged["datasets"] += deleted.get(Dataset._meta.label, 0)
            purged["shadow_pairs"] += ShadowPair.objects.filter(
                team_id=team_id, content_retained=True, created_at__lt=cutoff
            ).update(**SHADOW_CONTENT, content_retained=False)
    purged["shadow_pairs"] += ShadowPair.objects.filter(
        status=ShadowPair.Status.PENDING,
        content_retained=False,
        created_at__lt=now - SHADOW_UNRETAINED_MAX,
    ).update(
        **SHADOW_CONTENT,
        status=ShadowPair.Status.SKIPPED,
        skip_reason="not run in time; the request is not kept (content is not stored)",
        finished_at=now,
    )
    return purged
