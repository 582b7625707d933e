"""Refused requests as usage records of their own, so that a team sees what was refused and
why: a budget 402 or a rate-limit 429 becomes its request's last record, with status
`refused`, the error's code and message, no upstream call, no tokens and no cost (rollups,
exports and replays leave these records out)."""

from __future__ import annotations

from django.utils import timezone

from core.errors import AppError
from gateway.calls import GatewayCall
from spend.models import UsageRecord
from spend.usage import Ledger, UsageRow

_ERROR_MAX = UsageRecord._meta.get_field("error_message").max_length or 500


def refusal_row(
    call: GatewayCall,
    error: AppError,
    *,
    model_id: int | None = None,
    model_name: str = "",
    tier: str = "",
    rule: str = "",
    reason: str = "",
) -> UsageRow:
    """The record of a refusal; the model and tier are those the route chose, if it got there."""
    version = call.prompt_version
    return UsageRow(
        created_at=timezone.now(),
        request_id=call.request_id,
        team_id=call.team_id,
        api_key_id=call.api_key_id,
        prompt_version_id=version.id if version is not None else None,
        purpose=call.purpose,
        rule=rule[:100],
        route_reason=reason[:300],
        model_id=model_id,
        model_name=(model_name or call.features.requested or "")[:100],
        tier_name=tier,
        service_tier=call.service_tier,
        stream=call.stream,
        status=UsageRecord.Status.REFUSED,
        error_code=error.code[:64],
        error_message=error.message[:_ERROR_MAX],
        metadata=dict(call.features.metadata) or None,
    )


def refusal_log(call: GatewayCall, error: AppError) -> None:
    """Log a refusal that happened before the request had a ledger (a rate limit)."""
    ledger = Ledger(api_key_id=call.api_key_id)
    ledger.add(refusal_row(call, error))
    ledger.close()
