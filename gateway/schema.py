"""OpenAPI documentation for the gateway's plain async views.

drf-spectacular documents DRF views only. Each hot-path view stays a plain `async def`; it
gets a `cls` attribute pointing at a documentation-only APIView below, which is what the
schema generator inspects (`documented`). The APIViews are never routed to.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.views import APIView


def documented(view: Callable[..., Any], doc_view: type[APIView]) -> Callable[..., Any]:
    view.cls = doc_view  # type: ignore[attr-defined]
    view.initkwargs = {}  # type: ignore[attr-defined]
    return view


_error = inline_serializer(
    "GatewayError",
    {
        "error": inline_serializer(
            "GatewayErrorBody",
            {
                "code": serializers.CharField(),
                "message": serializers.CharField(),
                "details": serializers.JSONField(allow_null=True),
            },
        )
    },
)


class RunRequestSerializer(serializers.Serializer):
    variables = serializers.DictField(required=False, help_text="The prompt's variables.")
    # The API's field is named `label`, which the stubs know as Field.label (its caption).
    label = serializers.CharField(required=False, help_text="Label to run (default production).")  # type: ignore[assignment]
    version = serializers.IntegerField(required=False, help_text="Version number to run.")
    tier = serializers.CharField(
        required=False, default="auto", help_text="`auto` (the policy decides) or a tier name."
    )
    metadata = serializers.DictField(required=False, help_text="Matched by policy rules.")
    stream = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Server-sent events: `start`, `delta` (text) xN, then `done` or `error`.",
    )


_usage = inline_serializer(
    "RunUsage",
    {
        "input_tokens": serializers.IntegerField(),
        "cached_input_tokens": serializers.IntegerField(),
        "output_tokens": serializers.IntegerField(),
        "reasoning_tokens": serializers.IntegerField(),
    },
)
_route = inline_serializer(
    "RouteInfo", {"rule": serializers.CharField(), "reason": serializers.CharField()}
)


class RunResponseSerializer(serializers.Serializer):
    request_id = serializers.CharField()
    output = serializers.JSONField(help_text="Parsed JSON when the prompt has a schema, else text.")
    output_text = serializers.CharField()
    model = serializers.CharField()
    tier = serializers.CharField()
    route = _route
    usage = _usage
    cost_usd = serializers.DecimalField(
        max_digits=20, decimal_places=10, help_text="Every upstream call of the request."
    )
    attempts = serializers.IntegerField()
    latency_ms = serializers.IntegerField()
    budget = inline_serializer(
        "BudgetLeft",
        {"remaining_usd": serializers.DecimalField(max_digits=20, decimal_places=10)},
        allow_null=True,
        help_text="Null when the team has no budget.",
    )
    prompt = inline_serializer(
        "PromptRef", {"slug": serializers.CharField(), "version": serializers.IntegerField()}
    )


_errors = {
    400: OpenApiResponse(_error, description="Bad request (unknown tier, bad field)."),
    401: OpenApiResponse(_error, description="Missing, invalid or revoked key."),
    402: OpenApiResponse(_error, description="Budget exceeded (`budget_exceeded`)."),
    404: OpenApiResponse(_error, description="Unknown prompt, label or version."),
    422: OpenApiResponse(_error, description="Invalid variables, one detail per field."),
    429: OpenApiResponse(_error, description="Rate limited."),
    502: OpenApiResponse(_error, description="Every upstream attempt failed."),
    504: OpenApiResponse(_error, description="The upstream timed out."),
}


class PromptRunDoc(APIView):
    @extend_schema(
        operation_id="prompts_run",
        summary="Run a prompt version through the router",
        description=(
            "Renders the prompt (label or version) with the variables, routes it (policy, "
            "classifier, capabilities, budget), calls the upstream with retries and "
            "fallbacks, and logs usage and cost. Headers: `x-request-id`, "
            "`x-switchboard-model`, `-tier`, `-cost-usd`, `-route`."
        ),
        request=RunRequestSerializer,
        responses={200: RunResponseSerializer, **_errors},
        examples=[
            OpenApiExample(
                "support triage",
                request_only=True,
                value={"variables": {"message": "I was charged twice"}, "tier": "auto"},
            )
        ],
        tags=["gateway"],
    )
    def post(self, request: Any, slug: str) -> None:  # pragma: no cover - documentation only
        raise NotImplementedError


class RouteRequestSerializer(serializers.Serializer):
    prompt = serializers.CharField(required=False, help_text="A prompt slug (then `variables`).")
    variables = serializers.DictField(required=False)
    label = serializers.CharField(required=False)  # type: ignore[assignment]  # as above
    version = serializers.IntegerField(required=False)
    tier = serializers.CharField(required=False)
    model = serializers.CharField(
        required=False, help_text="OpenAI style: auto, tier:<name>, a model."
    )
    messages = serializers.ListField(child=serializers.DictField(), required=False)
    input = serializers.JSONField(required=False)
    tools = serializers.ListField(child=serializers.DictField(), required=False)
    metadata = serializers.DictField(required=False)
    max_output_tokens = serializers.IntegerField(required=False)


class RouteResponseSerializer(serializers.Serializer):
    request_id = serializers.CharField()
    tier = serializers.CharField(allow_null=True)
    model = serializers.CharField(allow_null=True)
    route = _route
    candidates = serializers.ListField(child=serializers.CharField())
    escalation_tiers = serializers.ListField(child=serializers.CharField())
    escalate_on_failed_check = serializers.BooleanField()
    allow_tier_fallback = serializers.BooleanField()
    classifier = serializers.JSONField(allow_null=True)
    features = serializers.JSONField()
    worst_case_cost_usd = serializers.DecimalField(
        max_digits=20, decimal_places=10, allow_null=True
    )
    budgets = serializers.ListField(child=serializers.DictField())


class RouteExplainDoc(APIView):
    @extend_schema(
        operation_id="route_explain",
        summary="Explain a routing decision without calling any model",
        description=(
            "Describe the request as a prompt run (`prompt` slug + `variables`) or OpenAI-style "
            "(`model`, `messages` or `input`, `tools`, `metadata`). A `classify` rule shows the "
            "cached classifier answer if there is one; explain never calls the classifier."
        ),
        request=RouteRequestSerializer,
        responses={200: RouteResponseSerializer, **_errors},
        tags=["gateway"],
    )
    def post(self, request: Any) -> None:  # pragma: no cover - documentation only
        raise NotImplementedError
