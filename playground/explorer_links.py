"""The request explorer's links into the playground: a request's shadow pair (from either
side) and the job it ran in, registered with `spend.explorer` by the app's ready()."""

from __future__ import annotations

from django.db.models import Q
from django.urls import reverse

from accounts.models import Team
from playground.models import JobItem, ShadowPair
from spend.explorer import RelatedLink
from spend.models import Purpose, UsageRecord

# Purposes whose requests a job runs (batch compares, the Jobs API)
_JOB_PURPOSES = frozenset({Purpose.BATCH, Purpose.PLAYGROUND, Purpose.EVAL})


def shadow_links(records: list[UsageRecord], team_id: int) -> list[RelatedLink]:
    """The pair whose production answer this request was, or whose shadow run it was."""
    record = records[-1]
    if record.purpose == Purpose.SHADOW:
        where = Q(shadow_usage_record_id__in=[r.id for r in records])
    elif record.purpose == Purpose.GATEWAY and record.prompt_version_id is not None:
        where = Q(production_request_id=record.request_id)
    else:
        return []
    pairs = ShadowPair.objects.filter(where, team_id=team_id).order_by("id")
    if not pairs:
        return []
    slug = Team.objects.values_list("slug", flat=True).get(pk=team_id)
    url = f"{reverse('playground:shadow')}?team={slug}"
    return [
        RelatedLink(
            kind="shadow",
            label=f"Shadow pair #{pair.pk}: {pair.production_model or '?'} vs "
            f"{pair.shadow_model or '?'} ({pair.status})",
            url=url,
        )
        for pair in pairs
    ]


def job_links(records: list[UsageRecord], team_id: int) -> list[RelatedLink]:
    """The job (batch compare or Jobs API job) one of whose items this request was."""
    record = records[-1]
    if record.purpose not in _JOB_PURPOSES:
        return []
    items = (
        JobItem.objects.filter(request_id=record.request_id, job__team_id=team_id)
        .select_related("job")
        .order_by("id")
    )
    return [
        RelatedLink(
            kind="job",
            label=f"{item.job.get_kind_display()} {item.job} (row {item.row_index + 1}, "
            f"column {item.column_index + 1})",
            url=reverse("playground:batch-detail", args=[item.job_id]),
        )
        for item in items
    ]
