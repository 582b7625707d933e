"""What the pipeline carries through a request: the routed and reserved request, an upstream
answer, the outcome, and the usage row each attempt adds to the request's ledger."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from core.money import ZERO
from gateway.calls import GatewayCall, Usage
from gateway.payloads import Output
from routing.router import Decision
from routing.snapshot import ModelInfo, Snapshot
from spend.models import UsageRecord
from spend.usage import Ledger, UsageRow

_REASON_MAX = UsageRecord._meta.get_field("route_reason").max_length or 300
ERROR_MAX = UsageRecord._meta.get_field("error_message").max_length or 500


@dataclass(slots=True)
class Prepared:
    call: GatewayCall
    snapshot: Snapshot
    decision: Decision
    ledger: Ledger
    notes: list[str] = field(default_factory=list)
    worst: dict[int, Decimal] = field(default_factory=dict)  # model id → worst-case cost

    @property
    def reason(self) -> str:
        return "; ".join([self.decision.reason, *self.notes])

    def record(
        self,
        model: ModelInfo,
        tier: str,
        *,
        started_at: dt.datetime,
        latency: float,
        usage: Usage | None = None,
        cost: Decimal = ZERO,
        status: str = UsageRecord.Status.SUCCESS,
        error_code: str = "",
        error_message: str = "",
        ttft: float | None = None,
        response_body: Any = None,
        service_tier: str | None = None,
    ) -> UsageRow:
        """Add one attempt's usage row to the request's ledger."""
        call = self.call
        usage = usage or Usage()
        version = call.prompt_version
        row = UsageRow(
            created_at=started_at,
            request_id=call.request_id,
            team_id=call.team_id,
            api_key_id=call.api_key_id,
            prompt_version_id=version.id if version is not None else None,
            purpose=call.purpose,
            rule=self.decision.rule[:100],
            route_reason=self.reason[:_REASON_MAX],
            model_id=model.id,
            model_name=model.name,
            tier_name=tier,
            service_tier=service_tier or call.service_tier,
            stream=call.stream,
            input_tokens=usage.input_tokens,
            cached_input_tokens=usage.cached_input_tokens,
            cache_write_tokens=usage.cache_write_tokens,
            output_tokens=usage.output_tokens,
            reasoning_tokens=usage.reasoning_tokens,
            cost_usd=cost,
            latency_ms=max(int(latency * 1000), 0),
            ttft_ms=int(ttft * 1000) if ttft is not None else None,
            status=status,
            error_code=error_code[:64],
            error_message=error_message[:ERROR_MAX],
            metadata=dict(call.features.metadata) or None,
            route_skipped=[s.as_dict() for s in self.decision.skipped] or None,
        )
        if call.store_content:
            row.request_body = call.body
            row.response_body = response_body
        self.ledger.add(row)
        return row


@dataclass(slots=True)
class Answer:
    """A successful upstream answer (non-streamed)."""

    model: ModelInfo
    tier: str
    body: bytes
    data: dict[str, Any]
    output: Output
    usage: Usage
    cost: Decimal
    record: UsageRow


@dataclass(slots=True)
class Outcome:
    prepared: Prepared
    answer: Answer
    latency_ms: int

    @property
    def cost_usd(self) -> Decimal:
        """Everything the request cost: every attempt, the classifier included."""
        return self.prepared.ledger.committed

    @property
    def budget_left(self) -> Decimal | None:
        hold = self.prepared.ledger.hold
        return hold.remaining_usd(self.cost_usd) if hold else None

    def route(self) -> dict[str, str]:
        return {"rule": self.prepared.decision.rule, "reason": self.prepared.reason}
