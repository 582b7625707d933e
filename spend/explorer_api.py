"""Request explorer REST API (GET /api/v1/requests, GET /api/v1/requests/{request_id}).

A team key sees its own team's requests (content included where stored); a signed-in user
their teams' (finance every team's, without content). Another team's request is a 404.
"""

from __future__ import annotations

from typing import Any, cast

from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import ApiKey, Team, User
from core.errors import BadRequest, NotFound
from spend.api import ERROR
from spend.explorer import (
    RequestDetail,
    RequestRow,
    content_team_ids,
    explorer_teams,
    request_detail,
    request_page,
)
from spend.explorer_forms import RequestFilterForm


def _key(request: Request) -> ApiKey | None:
    return request.auth if isinstance(request.auth, ApiKey) else None


def _user(request: Request) -> User:
    """The signed-in user of a request made without a key (IsAuthenticated lets no one else in)."""
    return cast(User, request.user)


def _teams(request: Request) -> list[Team]:
    key = _key(request)
    return [key.team] if key else explorer_teams(user=_user(request))


def row_data(row: RequestRow) -> dict[str, Any]:
    record = row.record
    version = record.prompt_version
    return {
        "request_id": record.request_id,
        "created_at": record.created_at.isoformat(),
        "team": record.team.slug,
        "api_key": record.api_key.prefix if record.api_key else None,
        "prompt": version.prompt.slug if version else None,
        "prompt_version": version.number if version else None,
        "purpose": record.purpose,
        "requested_tier": row.requested_tier,
        "tier": record.tier_name,
        "model": record.model_name,
        "status": row.status,
        "error_code": record.error_code,
        "error_message": record.error_message,
        "input_tokens": record.input_tokens,
        "cached_input_tokens": record.cached_input_tokens,
        "output_tokens": record.output_tokens,
        "reasoning_tokens": record.reasoning_tokens,
        "cost_usd": f"{row.cost_usd:f}",
        "latency_ms": record.latency_ms,
        "ttft_ms": record.ttft_ms,
        "rule": record.rule,
        "route_reason": record.route_reason,
        "attempts": len(row.attempts),
        "fell_back": row.fell_back,
        "escalated": row.escalated,
        "classified": row.classified,
    }


def detail_data(detail: RequestDetail) -> dict[str, Any]:
    timeline = []
    for cost in detail.costs:
        record = cost.record
        timeline.append(
            {
                "attempt": record.attempt,
                "kind": "refusal"
                if record.status == "refused"
                else ("classifier" if record.purpose == "classifier" else "upstream"),
                "created_at": record.created_at.isoformat(),
                "model": record.model_name,
                "tier": record.tier_name,
                "status": record.status,
                "error_code": record.error_code,
                "error_message": record.error_message,
                "latency_ms": record.latency_ms,
                "ttft_ms": record.ttft_ms,
                "input_tokens": record.input_tokens,
                "cached_input_tokens": record.cached_input_tokens,
                "cache_write_tokens": record.cache_write_tokens,
                "output_tokens": record.output_tokens,
                "reasoning_tokens": record.reasoning_tokens,
                "cost_usd": f"{record.cost_usd:f}",
                "service_tier": record.service_tier,
                "price": {
                    "effective_from": cost.price.effective_from.isoformat(),
                    "source": cost.price.source,
                }
                if cost.price
                else None,
                "long_context": cost.long_context,
                "cost_parts": [
                    {
                        "name": part.name,
                        "tokens": part.tokens,
                        "price_per_mtok": f"{part.price_per_mtok:f}",
                        "multiplier": f"{part.multiplier:f}",
                        "cost_usd": f"{part.cost_usd:f}",
                    }
                    for part in cost.parts
                ],
            }
        )
    content = detail.content
    return {
        **row_data(detail.row),
        "route": {
            "rule": detail.record.rule,
            "reason": detail.record.route_reason,
            "dropped": detail.dropped,
            "skipped": detail.skipped,
        },
        "related": [
            {"kind": link.kind, "label": link.label, "url": link.url or None}
            for link in detail.related
        ],
        "timeline": timeline,
        "content": {
            "stored": not content.reason,
            "reason": content.reason or None,
            "request": content.request,
            "response": content.response,
        },
        "metadata": detail.metadata,
        "headers": detail.headers,
    }


def _parameter(name: str) -> OpenApiParameter:
    field = RequestFilterForm.base_fields[name]
    return OpenApiParameter(name, str, description=str(field.help_text or ""))


class RequestListView(APIView):
    @extend_schema(
        summary="List gateway requests, one row each (newest first, keyset pages)",
        operation_id="requests_list",
        parameters=[_parameter(name) for name in RequestFilterForm.base_fields],
        responses={
            200: OpenApiResponse(description="`{results: [...], next_cursor}`"),
            400: OpenApiResponse(ERROR, "Malformed filters"),
            401: OpenApiResponse(ERROR, "No or invalid credentials"),
            404: OpenApiResponse(ERROR, "No such team, key or prompt (or not yours)"),
        },
        tags=["requests"],
    )
    def get(self, request: Request) -> Response:
        form = RequestFilterForm(request.query_params, teams=_teams(request))
        if not form.is_valid():
            raise BadRequest("The filters are invalid.", details=form.errors.get_json_data())
        try:
            filters = form.request_filters()
        except Http404 as exc:
            raise NotFound(str(exc)) from None
        try:
            page = request_page(
                filters=filters,
                cursor=form.cleaned_data.get("cursor") or None,
                size=form.cleaned_data["page_size"],
            )
        except ValueError as exc:
            raise BadRequest(str(exc), param="cursor") from None
        return Response(
            {"results": [row_data(row) for row in page.rows], "next_cursor": page.next_cursor}
        )


class RequestDetailView(APIView):
    @extend_schema(
        summary="One request: attempts, route, cost by component, content where stored",
        operation_id="requests_retrieve",
        responses={
            200: OpenApiResponse(description="The request's detail"),
            401: OpenApiResponse(ERROR, "No or invalid credentials"),
            404: OpenApiResponse(ERROR, "No such request (or not yours)"),
        },
        tags=["requests"],
    )
    def get(self, request: Request, request_id: str) -> Response:
        teams = _teams(request)
        key = _key(request)
        detail = request_detail(
            request_id=request_id,
            team_ids={t.id for t in teams},
            content_team_ids=content_team_ids(
                user=None if key else _user(request), key_team_id=key.team_id if key else None
            ),
        )
        if detail is None:
            raise NotFound(f"No request {request_id!r}.")
        return Response(detail_data(detail))
