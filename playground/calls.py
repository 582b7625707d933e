"""The playground's one door to the models: the gateway's code path (routing, budgets, usage
records). This module only maps a column and an input onto the gateway's public functions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from playground.columns import ColumnSpec


@dataclass(slots=True)
class CallInput:
    """What to send: a prompt version with variables, or free text (instructions + input)."""

    team: Any
    purpose: str
    column: ColumnSpec
    prompt_version: Any = None
    variables: dict[str, Any] = field(default_factory=dict)
    instructions: str = ""
    input: Any = None  # free text: a string or a list of {"role", "content"} messages
    api_key: Any = None
    request_id: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class CallResult:
    output: str
    model_name: str
    tier_name: str
    input_tokens: int
    cached_input_tokens: int
    output_tokens: int
    reasoning_tokens: int
    cost_usd: Decimal
    latency_ms: int
    ttft_ms: int | None
    usage_record_id: int | None
    request_id: str = ""


async def call(spec: CallInput) -> CallResult:
    raise NotImplementedError("wired to the gateway's pipeline once the gateway branch lands")


async def stream(spec: CallInput) -> AsyncIterator[str | CallResult]:
    """Text deltas as they arrive, then one CallResult."""
    raise NotImplementedError("wired to the gateway's pipeline once the gateway branch lands")
    yield ""
