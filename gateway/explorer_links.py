"""The request explorer's link to a client batch (`/v1/batches`): a batch line's request id
is `<batch id>-<line number>`; registered with `spend.explorer` by the app's ready()."""

from __future__ import annotations

from gateway.models import Batch
from spend.explorer import RelatedLink
from spend.models import UsageRecord


def batch_links(records: list[UsageRecord], team_id: int) -> list[RelatedLink]:
    record = records[-1]
    public_id, _, line = record.request_id.rpartition("-")
    if not public_id.startswith("batch_") or not line.isdigit():
        return []
    batch = Batch.objects.filter(public_id=public_id, team_id=team_id).first()
    if batch is None:
        return []
    return [
        RelatedLink(
            kind="batch",
            # no page: GET /v1/batches/{id} with the team's key
            label=f"Batch {batch.public_id}, line {line} ({batch.status})",
        )
    ]
