"""OpenAI-compatible `/v1`: chat completions, responses (with stored prompts) and models.

`model` is `auto` (the policy decides), `tier:<name>`, or a catalog model name. Errors come
in OpenAI's shape, so the official SDK raises its usual exception classes. Every answer
carries `x-switchboard-model`, `-tier`, `-cost-usd` (not on streams: the cost is known at
the end), `-route` and `x-request-id`.
"""

from __future__ import annotations

import time
from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse

from accounts.models import ApiKey
from core.errors import AppError, BadRequest, MethodNotAllowed, NotFound
from core.limits import LABEL_MAX, MODEL_MAX, SLUG_MAX, bounded
from gateway.calls import GatewayCall, metadata_check, new_request_id, prompt_body
from gateway.http import (
    authenticate,
    event_stream,
    json_body,
    openai_error,
    rate_limit,
    raw_json,
    resolve_version,
    switchboard_headers,
)
from gateway.payloads import schema_of_chat, schema_of_responses
from gateway.pipeline import OpenStream, Outcome, complete, open_stream, prepare
from gateway.streaming import openai_emitter, relay
from routing.router import AUTO, TIER_PREFIX
from routing.snapshot import snapshot_get
from spend.pricing import SERVICE_TIER_MULTIPLIERS

REASONING_EFFORTS = {"none", "minimal", "low", "medium", "high", "xhigh"}
MAX_INT = 2**31 - 1  # token counts and `n`: past this a number is a mistake or a probe
NUMBER_RANGES = {
    "temperature": (0, 2),
    "top_p": (0, 1),
    "presence_penalty": (-2, 2),
    "frequency_penalty": (-2, 2),
    "n": (1, 128),
    "top_logprobs": (0, 20),
}


# ------------------------------------------------------------------------------ validation


def _model(body: dict[str, Any]) -> str:
    model = body.get("model", AUTO)
    if model is None:
        return AUTO
    if not isinstance(model, str) or not model.strip():
        raise BadRequest(
            "`model` must be 'auto', 'tier:<name>' or a catalog model name.", param="model"
        )
    return bounded(model.strip(), param="model", limit=MODEL_MAX)


def _bool(body: dict[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise BadRequest(f"`{name}` must be a boolean.", param=name)
    return value


def _positive_int(body: dict[str, Any], *names: str) -> int | None:
    for name in names:
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_INT:
            raise BadRequest(
                f"`{name}` must be a positive integer (at most {MAX_INT}).", param=name
            )
        return value
    return None


def _numbers(body: dict[str, Any]) -> None:
    """OpenAI's numeric sampling fields: numbers within OpenAI's own ranges, refused here
    rather than forwarded (a NaN or 1e308 would fail upstream, after routing and budgets)."""
    for name, (low, high) in NUMBER_RANGES.items():
        value = body.get(name)
        if value is None:
            continue
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not low <= value <= high
        ):
            raise BadRequest(f"`{name}` must be a number from {low} to {high}.", param=name)


def _list(body: dict[str, Any], name: str) -> list[Any]:
    value = body.get(name)
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadRequest(f"`{name}` must be a list.", param=name)
    return value


def _metadata(body: dict[str, Any]) -> dict[str, Any]:
    return metadata_check(body.get("metadata"))


def _service_tier(body: dict[str, Any]) -> str:
    value = body.get("service_tier") or "default"
    if not isinstance(value, str) or value not in SERVICE_TIER_MULTIPLIERS:
        raise BadRequest(
            f"Unknown service_tier {value!r}; use one of {', '.join(SERVICE_TIER_MULTIPLIERS)}.",
            param="service_tier",
        )
    return value


def _effort(value: Any, param: str) -> bool:
    if value is None or value == "":
        return False
    if not isinstance(value, str) or value not in REASONING_EFFORTS:
        raise BadRequest(f"Unknown reasoning effort {value!r}.", param=param)
    return value not in ("none", "minimal")


# ------------------------------------------------------------------------------ calls


def chat_call(body: dict[str, Any], api_key: ApiKey, request_id: str) -> GatewayCall:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("`messages` must be a non-empty list.", param="messages")
    stream_options = body.get("stream_options") or {}
    _numbers(body)
    return GatewayCall.for_chat(
        body={k: v for k, v in body.items() if k not in ("model", "stream", "stream_options")},
        messages=messages,
        team_id=api_key.team_id,
        api_key_id=api_key.id,
        store_content=api_key.team.store_content and not api_key.team.no_content,
        team_no_content=api_key.team.no_content,
        requested=_model(body),
        stream=_bool(body, "stream"),
        tools=_list(body, "tools"),
        metadata=_metadata(body),
        reasoning=_effort(body.get("reasoning_effort"), "reasoning_effort"),
        response_schema=schema_of_chat(body),
        max_output_tokens=_positive_int(body, "max_completion_tokens", "max_tokens"),
        service_tier=_service_tier(body),
        client_wants_usage=bool(
            isinstance(stream_options, dict) and stream_options.get("include_usage")
        ),
        request_id=request_id,
    )


async def responses_call(body: dict[str, Any], api_key: ApiKey, request_id: str) -> GatewayCall:
    requested = _model(body)
    stream = _bool(body, "stream")
    metadata = _metadata(body)
    if not isinstance(body.get("input", ""), str | list):
        raise BadRequest("`input` must be a string or a list of input items.", param="input")
    if not isinstance(body.get("instructions") or "", str):
        raise BadRequest("`instructions` must be a string.", param="instructions")
    prompt_ref = body.get("prompt")
    if prompt_ref is None and body.get("prompt_id"):
        prompt_ref = {
            "id": body.get("prompt_id"),
            "version": body.get("prompt_version"),
            "variables": body.get("prompt_variables"),
        }
    upstream = {
        k: v
        for k, v in body.items()
        if k not in ("model", "stream", "prompt", "prompt_id", "prompt_version", "prompt_variables")
    }
    version = None
    if prompt_ref is not None:
        version, upstream = await _with_prompt(prompt_ref, upstream, api_key)
    elif "input" not in upstream:
        raise BadRequest("`input` is required (or a stored `prompt`).", param="input")
    _list(upstream, "tools")
    reasoning = upstream.get("reasoning") or {}
    if not isinstance(reasoning, dict):
        raise BadRequest("`reasoning` must be an object.", param="reasoning")
    _effort(reasoning.get("effort"), "reasoning.effort")
    _numbers(upstream)
    return GatewayCall.for_responses(
        body=upstream,
        team_id=api_key.team_id,
        api_key_id=api_key.id,
        team_store_content=api_key.team.store_content,
        team_no_content=api_key.team.no_content,
        version=version,
        requested=requested,
        stream=stream,
        metadata=metadata,
        max_output_tokens=_positive_int(upstream, "max_output_tokens"),
        response_schema=schema_of_responses(upstream),
        service_tier=_service_tier(upstream),
        request_id=request_id,
    )


async def _with_prompt(
    ref: Any, upstream: dict[str, Any], api_key: ApiKey
) -> tuple[Any, dict[str, Any]]:
    """Resolve `prompt={id, version, variables}` against the team's prompts and merge it in."""
    from prompts.rendering import arender_version

    if not isinstance(ref, dict) or not isinstance(ref.get("id"), str) or not ref["id"]:
        raise BadRequest(
            "`prompt` must be an object with an `id` (the prompt's slug).", param="prompt"
        )
    bounded(ref["id"], param="prompt.id", limit=SLUG_MAX)
    which = ref.get("version")
    bounded(which, param="prompt.version", limit=LABEL_MAX)
    number, label = None, None
    if isinstance(which, int) and not isinstance(which, bool):
        number = which
    elif isinstance(which, str) and which.isdigit():
        number = int(which)
    elif isinstance(which, str) and which:
        label = which
    elif which is not None:
        raise BadRequest("`prompt.version` must be a number or a label.", param="prompt.version")
    version = await resolve_version(
        team_id=api_key.team_id, slug=ref["id"], label=label, version=number
    )
    variables = ref.get("variables") or {}
    rendered = await arender_version(version, variables)
    stored = prompt_body(version, rendered)
    merged = {**stored, **{k: v for k, v in upstream.items() if k not in ("input", "instructions")}}
    extra_input = upstream.get("input")
    if isinstance(extra_input, str):
        extra_input = [{"role": "user", "content": extra_input}]
    merged["input"] = [*stored["input"], *(extra_input or [])]
    instructions = [
        text for text in (stored.get("instructions"), upstream.get("instructions")) if text
    ]
    if instructions:
        merged["instructions"] = "\n\n".join(instructions)
    return version, merged


# ------------------------------------------------------------------------------ views


def _headers(outcome_or_stream: Outcome | OpenStream, cost: Any) -> dict[str, str]:
    if isinstance(outcome_or_stream, Outcome):
        prepared, model, tier = (
            outcome_or_stream.prepared,
            outcome_or_stream.answer.model.name,
            outcome_or_stream.answer.tier,
        )
    else:
        prepared, model, tier = (
            outcome_or_stream.prepared,
            outcome_or_stream.model.name,
            outcome_or_stream.tier,
        )
    return switchboard_headers(
        request_id=prepared.call.request_id,
        model=model,
        tier=tier,
        rule=prepared.decision.rule,
        reason=prepared.reason,
        cost=cost,
    )


async def _serve(call: GatewayCall) -> HttpResponseBase:
    prepared = await prepare(call)
    if call.stream:
        stream = await open_stream(prepared)
        emit, error_event = openai_emitter(call.api, client_wants_usage=call.client_wants_usage)
        return event_stream(relay(stream, emit, error_event), _headers(stream, None))
    outcome = await complete(prepared)
    return raw_json(outcome.answer.body, _headers(outcome, outcome.cost_usd))


async def chat_completions(request: HttpRequest) -> HttpResponseBase:
    request_id = new_request_id()
    if request.method != "POST":
        return openai_error(MethodNotAllowed(request.method or "", ("POST",)), request_id)
    try:
        api_key = await authenticate(request)
        call = chat_call(json_body(request), api_key, request_id)
        await rate_limit(api_key, call)
        return await _serve(call)
    except AppError as exc:
        return openai_error(exc, request_id)


async def responses(request: HttpRequest) -> HttpResponseBase:
    request_id = new_request_id()
    if request.method != "POST":
        return openai_error(MethodNotAllowed(request.method or "", ("POST",)), request_id)
    try:
        api_key = await authenticate(request)
        call = await responses_call(json_body(request), api_key, request_id)
        await rate_limit(api_key, call)
        return await _serve(call)
    except AppError as exc:
        return openai_error(exc, request_id)


def _model_entries(snapshot: Any) -> list[dict[str, Any]]:
    created = int(time.time())
    entries = [{"id": AUTO, "object": "model", "created": created, "owned_by": "switchboard"}]
    entries += [
        {
            "id": f"{TIER_PREFIX}{tier.name}",
            "object": "model",
            "created": created,
            "owned_by": "switchboard",
        }
        for tier in snapshot.tiers
    ]
    entries += [
        {"id": model.name, "object": "model", "created": created, "owned_by": model.provider.name}
        for model in snapshot.models.values()
    ]
    return entries


async def models(request: HttpRequest) -> HttpResponse:
    request_id = new_request_id()
    if request.method != "GET":
        return openai_error(MethodNotAllowed(request.method or "", ("GET",)), request_id)
    try:
        await authenticate(request)
        entries = _model_entries(await snapshot_get())
    except AppError as exc:
        return openai_error(exc, request_id)
    return JsonResponse({"object": "list", "data": entries}, headers={"x-request-id": request_id})


async def model_detail(request: HttpRequest, model: str) -> HttpResponse:
    request_id = new_request_id()
    if request.method != "GET":
        return openai_error(MethodNotAllowed(request.method or "", ("GET",)), request_id)
    try:
        await authenticate(request)
        entries = {entry["id"]: entry for entry in _model_entries(await snapshot_get())}
        if model not in entries:
            raise NotFound(f"The model '{model}' does not exist.", param="model")
    except AppError as exc:
        return openai_error(exc, request_id)
    return JsonResponse(entries[model], headers={"x-request-id": request_id})
