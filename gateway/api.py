"""`/api/v1/prompts/{slug}/run` and `/api/v1/route`: plain async views on the hot path.

DRF is synchronous, so these are plain Django `async def` views; `gateway.schema` documents
them in the OpenAPI schema. Errors use the /api shape `{"error": {"code", "message",
"details"}}`.
"""

from __future__ import annotations

import json
import time
from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.utils import timezone

from accounts.models import ApiKey
from core.errors import AppError, BadRequest, MethodNotAllowed
from core.limits import LABEL_MAX, SLUG_MAX, TIER_MAX, bounded
from gateway.calls import GatewayCall, metadata_check, new_request_id
from gateway.costs import worst_case
from gateway.http import (
    api_error,
    authenticate,
    event_stream,
    json_body,
    money,
    rate_limit,
    resolve_version,
    switchboard_headers,
)
from gateway.openai_views import chat_call, responses_call
from gateway.pipeline import Outcome, complete, open_stream, prepare
from gateway.streaming import StreamState, error_payload, relay
from routing import classifier
from routing.router import AUTO, TIER_PREFIX, route
from routing.snapshot import snapshot_get
from spend.budgets import budgets_for


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


def _run_options(body: dict[str, Any]) -> tuple[str | None, int | None, str, dict, bool]:
    label = body.get("label")
    version = body.get("version")
    if label is not None and version is not None:
        raise BadRequest("Give `label` or `version`, not both.", param="version")
    if label is not None and (not isinstance(label, str) or not label):
        raise BadRequest("`label` must be a label name.", param="label")
    bounded(label, param="label", limit=LABEL_MAX)
    if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
        raise BadRequest("`version` must be a version number.", param="version")
    tier = body.get("tier", AUTO) or AUTO
    if not isinstance(tier, str):
        raise BadRequest("`tier` must be 'auto' or a tier name.", param="tier")
    bounded(tier, param="tier", limit=len(TIER_PREFIX) + TIER_MAX)
    metadata = metadata_check(body.get("metadata"))
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise BadRequest("`stream` must be a boolean.", param="stream")
    return label, version, tier, metadata, stream


async def run_call(
    slug: str, body: dict[str, Any], api_key: ApiKey, request_id: str
) -> GatewayCall:
    bounded(slug, param="slug", limit=SLUG_MAX)
    label, number, tier, metadata, stream = _run_options(body)
    version = await resolve_version(team_id=api_key.team_id, slug=slug, label=label, version=number)
    if tier != AUTO and not tier.startswith(TIER_PREFIX):
        tier = f"{TIER_PREFIX}{tier}"
    return await GatewayCall.for_prompt_version(
        version=version,
        variables=body.get("variables") or {},
        team_id=api_key.team_id,
        api_key_id=api_key.id,
        team_store_content=api_key.team.store_content,
        team_no_content=api_key.team.no_content,
        requested=tier,
        stream=stream,
        metadata=metadata,
        request_id=request_id,
    )


def _output(text: str, schema: dict | None) -> Any:
    if schema:
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


def _prompt_ref(call: GatewayCall) -> dict[str, Any]:
    version = call.prompt_version
    return {"slug": version.prompt.slug, "version": version.number}


def run_payload(outcome: Outcome) -> dict[str, Any]:
    answer = outcome.answer
    call = outcome.prepared.call
    left = outcome.budget_left
    return {
        "request_id": call.request_id,
        "output": _output(answer.output.text, call.response_schema),
        "output_text": answer.output.text,
        "model": answer.model.name,
        "tier": answer.tier,
        "route": outcome.route(),
        "usage": answer.usage.as_dict(),
        "cost_usd": money(outcome.cost_usd),
        "attempts": len(outcome.prepared.ledger.records),
        "latency_ms": outcome.latency_ms,
        "budget": {"remaining_usd": money(left)} if left is not None else None,
        "prompt": _prompt_ref(call),
    }


async def prompt_run(request: HttpRequest, slug: str) -> HttpResponseBase:
    request_id = new_request_id()
    if request.method != "POST":
        return api_error(MethodNotAllowed(request.method or "", ("POST",)), request_id)
    try:
        api_key = await authenticate(request)
        call = await run_call(slug, json_body(request), api_key, request_id)
        await rate_limit(api_key, call)
        prepared = await prepare(call)
        if call.stream:
            return await _run_stream(prepared)
        outcome = await complete(prepared)
    except AppError as exc:
        return api_error(exc, request_id)
    headers = switchboard_headers(
        request_id=request_id,
        model=outcome.answer.model.name,
        tier=outcome.answer.tier,
        rule=outcome.prepared.decision.rule,
        reason=outcome.prepared.reason,
        cost=outcome.cost_usd,
    )
    return JsonResponse(run_payload(outcome), headers=headers)


async def _run_stream(prepared: Any) -> HttpResponseBase:
    """Our own SSE for the run endpoint: `start`, `delta`xN, then `done` or `error`."""
    stream = await open_stream(prepared)
    call = prepared.call
    start = _sse(
        "start",
        {
            "request_id": call.request_id,
            "model": stream.model.name,
            "tier": stream.tier,
            "route": {"rule": prepared.decision.rule, "reason": prepared.reason},
            "prompt": _prompt_ref(call),
        },
    )

    def emit(event: Any, parsed: Any, state: StreamState) -> bytes | None:
        if parsed.kind == "delta":
            return _sse("delta", {"text": parsed.text})
        return None

    def error_event(state: StreamState) -> bytes:
        payload = error_payload(state.failed or "upstream_stream_cut", state.failed_message)
        return _sse(
            "error",
            {"error": {"code": payload["code"], "message": payload["message"], "details": None}},
        )

    def on_end(state: StreamState) -> bytes:
        usage = state.usage
        cost = prepared.ledger.committed + (stream.cost(usage) if usage else 0)
        hold = prepared.ledger.hold
        left = hold.remaining_usd(cost) if hold else None
        text = state.output_text
        return _sse(
            "done",
            {
                "request_id": call.request_id,
                "output": _output(text, call.response_schema),
                "output_text": text,
                "model": stream.model.name,
                "tier": stream.tier,
                "route": {"rule": prepared.decision.rule, "reason": prepared.reason},
                "usage": usage.as_dict() if usage else None,
                "cost_usd": money(cost),
                "latency_ms": int((time.perf_counter() - call.started) * 1000),
                "budget": {"remaining_usd": money(left)} if left is not None else None,
                "prompt": _prompt_ref(call),
            },
        )

    headers = switchboard_headers(
        request_id=call.request_id,
        model=stream.model.name,
        tier=stream.tier,
        rule=prepared.decision.rule,
        reason=prepared.reason,
        cost=None,
    )
    return event_stream(relay(stream, emit, error_event, on_end=on_end, prelude=start), headers)


# ------------------------------------------------------------------------------ explain


async def _explain_call(body: dict[str, Any], api_key: ApiKey, request_id: str) -> GatewayCall:
    if isinstance(body.get("prompt"), str):
        slug = body["prompt"]
        options = {
            k: body[k] for k in ("variables", "label", "version", "tier", "metadata") if k in body
        }
        return await run_call(slug, options, api_key, request_id)
    if "messages" in body:
        return chat_call({**body, "stream": False}, api_key, request_id)
    if "input" in body or isinstance(body.get("prompt"), dict):
        return await responses_call({**body, "stream": False}, api_key, request_id)
    raise BadRequest(
        "Describe the request: `prompt` (a slug, with `variables`), or OpenAI-style "
        "`messages` or `input`.",
        param="prompt",
    )


async def route_explain(request: HttpRequest) -> HttpResponse:
    """Explain the routing decision for a request without calling any model."""
    request_id = new_request_id()
    if request.method != "POST":
        return api_error(MethodNotAllowed(request.method or "", ("POST",)), request_id)
    try:
        api_key = await authenticate(request)
        call = await _explain_call(json_body(request), api_key, request_id)
        snapshot = await snapshot_get()
        decision = route(call.features, snapshot)
        classification = None
        if decision.needs_classifier:
            classification = await classifier.classification_cached(
                team_id=api_key.team_id, text=call.classifier_text
            )
            if classification is not None:
                decision = route(
                    call.features,
                    snapshot,
                    classified_tier=classification.tier,
                    classifier_reason=classification.describe(),
                )
        budgets = await budgets_for(team_id=api_key.team_id, api_key_id=api_key.id)
    except AppError as exc:
        return api_error(exc, request_id)
    model = decision.model
    worst = worst_case(call, model, timezone.now()) if model is not None else None
    features = call.features
    payload = {
        "request_id": request_id,
        "tier": decision.tier or None,
        "model": model.name if model else None,
        "route": decision.as_dict(),
        "candidates": [m.name for m in decision.plan[0].models] if decision.plan else [],
        "escalation_tiers": [plan.tier for plan in decision.plan[1:]],
        "escalate_on_failed_check": decision.escalate_on_failed_check,
        "allow_tier_fallback": decision.allow_tier_fallback,
        "classifier": (
            None
            if not decision.needs_classifier and classification is None
            else {
                "cached": classification is not None,
                "tier": classification.tier if classification else None,
                "reason": classification.reason if classification else "not run by explain",
            }
        ),
        "features": {
            "task_tag": features.task_tag,
            "estimated_input_tokens": features.estimated_input_tokens,
            "tool_types": sorted(features.tool_types),
            "required_capabilities": sorted(features.required_capabilities),
            "metadata": dict(features.metadata),
        },
        "worst_case_cost_usd": money(worst) if worst is not None else None,
        "budgets": [
            {
                "scope": b.scope,
                "period": b.period,
                "limit_usd": money(b.limit_usd),
                "action": b.action,
            }
            for b in budgets
        ],
    }
    return JsonResponse(payload, headers={"x-request-id": request_id})
