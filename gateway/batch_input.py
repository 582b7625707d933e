"""A batch input file read line by line: each line validated as its live endpoint would
validate it, routed, and priced at its worst case at the batch rate, before anything goes
upstream. Errors carry the line number (1-based), as OpenAI's batch errors do."""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.utils import timezone

from accounts.models import ApiKey
from core.errors import AppError
from gateway.calls import GatewayCall
from gateway.costs import worst_case
from gateway.openai_views import chat_call, responses_call
from gateway.upstream import CHAT
from routing.router import route
from routing.snapshot import ModelInfo, Snapshot

ENDPOINTS = {"/v1/chat/completions": CHAT, "/v1/responses": "responses"}
BATCH_TIER = "batch"
MAX_ERRORS = 100


@dataclass(frozen=True, slots=True)
class LineError:
    line: int
    code: str
    message: str
    param: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "param": self.param, "line": self.line}


@dataclass(slots=True)
class RoutedLine:
    line_number: int
    custom_id: str
    call: GatewayCall
    model: ModelInfo
    tier: str
    rule: str
    reason: str
    worst_usd: Decimal
    body: dict[str, Any]  # as sent upstream: the routed model's name, its tier's effort


async def _line_call(api: str, body: dict[str, Any], api_key: ApiKey, line: int) -> GatewayCall:
    request_id = f"line{line}"
    if api == CHAT:
        call = chat_call(body, api_key, request_id)
    else:
        call = await responses_call(body, api_key, request_id)
    return batch_priced(call)


def batch_priced(call: GatewayCall) -> GatewayCall:
    """The call as a batch line: billed (and budgeted) at the batch price."""
    call.service_tier = BATCH_TIER
    call.body.pop("service_tier", None)
    return call


async def _route_line(
    number: int, raw: str, endpoint: str, api_key: ApiKey, snapshot: Snapshot, seen: set[str]
) -> RoutedLine | LineError:
    try:
        line = json.loads(raw)
    except ValueError:
        return LineError(number, "invalid_json_line", "This line is not valid JSON.")
    if not isinstance(line, dict):
        return LineError(number, "invalid_json_line", "A line must be a JSON object.")
    custom_id = line.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id or len(custom_id) > 512:
        return LineError(
            number, "invalid_custom_id", "custom_id must be a string of 1-512 characters."
        )
    if custom_id in seen:
        return LineError(number, "duplicate_custom_id", f"custom_id {custom_id!r} is repeated.")
    seen.add(custom_id)
    if line.get("method") != "POST":
        return LineError(number, "invalid_method", "method must be POST.", "method")
    if line.get("url") != endpoint:
        return LineError(
            number, "mismatched_url", f"url must be the batch's endpoint, {endpoint}.", "url"
        )
    body = line.get("body")
    if not isinstance(body, dict):
        return LineError(number, "invalid_body", "body must be a JSON object.", "body")
    if body.get("stream"):
        return LineError(number, "invalid_body", "A batch line cannot stream.", "body.stream")
    try:
        call = await _line_call(ENDPOINTS[endpoint], body, api_key, number)
    except AppError as exc:
        param = f"body.{exc.param}" if exc.param else "body"
        return LineError(number, exc.code, exc.message, param)
    return batch_line_route(number, custom_id, call, snapshot)


def batch_line_route(
    number: int, custom_id: str, call: GatewayCall, snapshot: Snapshot
) -> RoutedLine | LineError:
    """A batch-priced call routed and bounded: its line, or why it cannot be one."""
    try:
        decision = route(call.features, snapshot)
        if decision.needs_classifier:
            # A classifier call per line would be a live call for work that can wait.
            decision = route(
                call.features,
                snapshot,
                classified_tier=snapshot.default_tier,
                classifier_reason="batch lines take the policy's default tier",
            )
        model = decision.model
        if model is None:
            return LineError(number, "no_model", "No model can serve this line.", "body.model")
        worst = worst_case(call, model, timezone.now())
    except AppError as exc:
        param = f"body.{exc.param}" if exc.param else "body"
        return LineError(number, exc.code, exc.message, param)
    return RoutedLine(
        line_number=number,
        custom_id=custom_id,
        call=call,
        model=model,
        tier=decision.tier,
        rule=decision.rule,
        reason=decision.reason,
        worst_usd=worst,
        body=call.upstream_body(model, snapshot.tier(decision.tier)),
    )


async def batch_input_route(
    *, content: bytes, endpoint: str, api_key: ApiKey, snapshot: Snapshot, max_lines: int
) -> tuple[list[RoutedLine], list[LineError]]:
    """Every line of the file, routed; or the errors (up to MAX_ERRORS) by line number."""
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        return [], [LineError(0, "invalid_file", "The input file is not UTF-8 text.")]
    lines = [(n, raw) for n, raw in enumerate(text.splitlines(), start=1) if raw.strip()]
    if not lines:
        return [], [LineError(0, "empty_file", "The input file has no request lines.")]
    if len(lines) > max_lines:
        return [], [
            LineError(0, "too_many_requests", f"{len(lines):,} lines; the limit is {max_lines:,}.")
        ]
    routed: list[RoutedLine] = []
    errors: list[LineError] = []
    seen: set[str] = set()
    for number, raw in lines:
        result = await _route_line(number, raw, endpoint, api_key, snapshot, seen)
        if isinstance(result, LineError):
            errors.append(result)
            if len(errors) >= MAX_ERRORS:
                break
        else:
            routed.append(result)
    return routed, errors
