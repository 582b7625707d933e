"""Usage and budget REST API (/api/v1/usage, /api/v1/budget): thin views over selectors.

A team key sees its own team only; a signed-in user sees their teams (finance and admins see
every team). A team outside that scope is a 404, exactly like one that does not exist.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

from django.db.models import QuerySet
from django.utils import timezone
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import exceptions as drf_exceptions
from rest_framework import serializers
from rest_framework.generics import ListAPIView
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import ApiKey, Team, User
from core.errors import BadRequest, NotFound
from spend.models import Budget, Purpose, UsageRecord
from spend.rollups import day_bounds, local_day, local_tz
from spend.selectors import (
    BudgetStatus,
    Figures,
    UsageFilters,
    budget_status,
    savings_summary_build,
    visible_teams,
)

ERROR = inline_serializer(
    "SpendError",
    {
        "error": inline_serializer(
            "SpendErrorBody",
            {
                "code": serializers.CharField(),
                "message": serializers.CharField(),
                "details": serializers.JSONField(allow_null=True),
            },
        )
    },
)
ERRORS = {
    400: OpenApiResponse(ERROR, "Malformed filters"),
    401: OpenApiResponse(ERROR, "No or invalid credentials"),
    404: OpenApiResponse(ERROR, "No such team (or not yours)"),
}
TEAM_PARAM = OpenApiParameter(
    "team", str, description="Team slug (session users who see several teams)."
)


def _key(request: Request) -> ApiKey | None:
    return request.auth if isinstance(request.auth, ApiKey) else None


def _scope(request: Request, team_slug: str | None) -> list[Team]:
    """The teams a request may read, narrowed to `team_slug` when given (404 outside)."""
    key = _key(request)
    # Without a key the caller is a signed-in user (the views' permission classes say so).
    teams = [key.team] if key else list(visible_teams(user=cast(User, request.user)))
    if team_slug:
        teams = [t for t in teams if t.slug == team_slug]
        if not teams:
            raise NotFound(f"No team {team_slug!r}.")
    return teams


# --------------------------------------------------------------------------- usage


class UsageQuery(serializers.Serializer):
    since = serializers.CharField(
        required=False, help_text="ISO date or datetime; a date means its local midnight."
    )
    until = serializers.CharField(required=False, help_text="Exclusive; like `since`.")
    team = serializers.SlugField(required=False)
    prompt = serializers.SlugField(required=False, help_text="Prompt slug.")
    model = serializers.CharField(required=False, max_length=100)
    tier = serializers.CharField(required=False, max_length=32)
    purpose = serializers.ChoiceField(choices=Purpose.choices, required=False)
    status = serializers.ChoiceField(choices=UsageRecord.Status.choices, required=False)
    request_id = serializers.CharField(required=False, max_length=64)

    def _moment(self, value: str) -> dt.datetime:
        try:
            if len(value) == 10:
                return day_bounds(dt.date.fromisoformat(value))[0]
            moment = dt.datetime.fromisoformat(value)
            if moment.tzinfo is None:
                moment = timezone.make_aware(moment)
        except ValueError:
            raise serializers.ValidationError(
                "Use an ISO 8601 date (2026-11-01) or datetime (2026-11-01T09:30:00Z)."
            ) from None
        except OverflowError:  # 9999-12-31: its day's end, or its time zone, is past year 9999
            raise serializers.ValidationError("The date is out of range.") from None
        return moment

    def validate_since(self, value: str) -> dt.datetime:
        return self._moment(value)

    def validate_until(self, value: str) -> dt.datetime:
        return self._moment(value)

    def validate(self, data: dict) -> dict:
        if data.get("since") and data.get("until") and data["until"] <= data["since"]:
            raise serializers.ValidationError({"until": "Must be after `since`."})
        return data


class UsageRecordSerializer(serializers.ModelSerializer):
    team: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="slug", read_only=True
    )
    # null for a call made without a key (the playground) or without a stored prompt
    api_key = serializers.CharField(
        source="api_key.prefix", default=None, allow_null=True, read_only=True
    )
    prompt = serializers.CharField(
        source="prompt_version.prompt.slug", default=None, allow_null=True, read_only=True
    )
    prompt_version = serializers.IntegerField(
        source="prompt_version.number", default=None, allow_null=True, read_only=True
    )
    model = serializers.CharField(source="model_name")
    tier = serializers.CharField(source="tier_name")

    class Meta:
        model = UsageRecord
        fields = [
            "id",
            "created_at",
            "request_id",
            "team",
            "api_key",
            "prompt",
            "prompt_version",
            "purpose",
            "rule",
            "route_reason",
            "model",
            "tier",
            "service_tier",
            "attempt",
            "stream",
            "input_tokens",
            "cached_input_tokens",
            "cache_write_tokens",
            "output_tokens",
            "reasoning_tokens",
            "cost_usd",
            "latency_ms",
            "ttft_ms",
            "status",
            "error_code",
            "error_message",
        ]
        read_only_fields = fields


class UsagePagination(CursorPagination):
    """Cursor pages, newest first: stable under inserts and fast at any depth."""

    ordering = ("-created_at", "-id")
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500

    def get_page_size(self, request: Request) -> int:
        # DRF falls back to the default for a malformed value; say so instead.
        raw = request.query_params.get(self.page_size_query_param)
        if raw is not None and not (raw.isascii() and raw.isdigit() and int(raw) >= 1):
            raise BadRequest(
                f"page_size must be an integer from 1 to {self.max_page_size}.",
                param="page_size",
            )
        return super().get_page_size(request) or self.page_size

    def decode_cursor(self, request: Request) -> Any:
        # DRF answers a malformed cursor with a 404, as if the list did not exist.
        try:
            return super().decode_cursor(request)
        except drf_exceptions.NotFound:
            raise BadRequest(
                "The cursor is invalid; use the `next` or `previous` link of a page.",
                param="cursor",
            ) from None


class UsageListView(ListAPIView):
    serializer_class = UsageRecordSerializer
    pagination_class = UsagePagination

    @extend_schema(
        summary="List usage records (newest first)",
        parameters=[UsageQuery],
        responses={200: UsageRecordSerializer(many=True), **ERRORS},
        tags=["usage"],
    )
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[UsageRecord]:
        # A plain dict: DRF reads a QueryDict like a form, where `?until=` means "absent".
        query = UsageQuery(data=self.request.query_params.dict())
        if not query.is_valid():
            raise BadRequest("The filters are invalid.", details=query.errors)
        data = query.validated_data
        teams = _scope(self.request, data.get("team"))
        records = UsageRecord.objects.filter(team__in=teams).select_related(
            "team", "api_key", "prompt_version__prompt"
        )
        if data.get("since"):
            records = records.filter(created_at__gte=data["since"])
        if data.get("until"):
            records = records.filter(created_at__lt=data["until"])
        if data.get("prompt"):
            records = records.filter(prompt_version__prompt__slug=data["prompt"])
        if data.get("model"):
            records = records.filter(model_name=data["model"])
        if data.get("tier"):
            records = records.filter(tier_name=data["tier"])
        if data.get("purpose"):
            records = records.filter(purpose=data["purpose"])
        if data.get("status"):
            records = records.filter(status=data["status"])
        if data.get("request_id"):
            records = records.filter(request_id=data["request_id"])
        return records


# --------------------------------------------------------------------------- summary


def _money(**kwargs: Any) -> serializers.DecimalField:
    return serializers.DecimalField(max_digits=20, decimal_places=10, **kwargs)


SUMMARY_MAX_DAYS = 366


class UsageSummaryQuery(serializers.Serializer):
    since = serializers.DateField(
        required=False, help_text="First local day (inclusive); default: 29 days before `until`."
    )
    until = serializers.DateField(required=False, help_text="Last local day (inclusive); today.")
    team = serializers.SlugField(required=False)
    model = serializers.CharField(required=False, max_length=100)
    tier = serializers.CharField(required=False, max_length=32)
    purpose = serializers.ChoiceField(choices=Purpose.choices, required=False)

    def validate(self, data: dict) -> dict:
        until = data.get("until") or local_day(timezone.now())
        since = data.get("since") or until - dt.timedelta(days=29)
        if until < since:
            raise serializers.ValidationError({"until": "Must not be before `since`."})
        if (until - since).days >= SUMMARY_MAX_DAYS:
            raise serializers.ValidationError({"since": f"At most {SUMMARY_MAX_DAYS} days."})
        return {**data, "since": since, "until": until}


class SavedSerializer(serializers.Serializer):
    routing_usd = _money(help_text="Against the same tokens on the flagship tier's primary model.")
    batch_flex_usd = _money(help_text="Batch and flex against the same model's standard tier.")
    cache_usd = _money(help_text="Cached input against the same input uncached (same model, tier).")
    total_usd = _money(help_text="The three added up.")


class SummaryFiguresSerializer(serializers.Serializer):
    requests = serializers.IntegerField()
    cost_usd = _money()
    flagship_cost_usd = _money()
    input_tokens = serializers.IntegerField()
    cached_input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()
    cached_input_share_pct = serializers.DecimalField(
        max_digits=5, decimal_places=1, allow_null=True, help_text="Null without input."
    )
    saved = SavedSerializer()


class SummaryRowSerializer(SummaryFiguresSerializer):
    prompt = serializers.CharField(allow_null=True, help_text="Prompt slug; null without one.")
    prompt_team = serializers.CharField(allow_null=True, help_text="The prompt's team slug.")
    model = serializers.CharField()


class UsageSummarySerializer(serializers.Serializer):
    since = serializers.DateField()
    until = serializers.DateField()
    time_zone = serializers.CharField()
    teams = serializers.ListField(child=serializers.CharField())
    flagship_model = serializers.CharField()
    total = SummaryFiguresSerializer()
    by_prompt_model = SummaryRowSerializer(many=True)


def _figures_data(figures: Figures) -> dict:
    return {
        "requests": figures.requests,
        "cost_usd": figures.spend,
        "flagship_cost_usd": figures.flagship_cost,
        "input_tokens": figures.input_tokens,
        "cached_input_tokens": figures.cached_input_tokens,
        "output_tokens": figures.output_tokens,
        "cached_input_share_pct": figures.cached_share_pct,
        "saved": {
            "routing_usd": figures.routing_saved,
            "batch_flex_usd": figures.batch_saved,
            "cache_usd": figures.cache_saved,
            "total_usd": figures.saved_total,
        },
    }


class UsageSummaryView(APIView):
    @extend_schema(
        summary="Spend and savings by lever (routing, batch/flex, cache), per prompt x model",
        parameters=[UsageSummaryQuery],
        responses={200: UsageSummarySerializer, **ERRORS},
        tags=["usage"],
    )
    def get(self, request: Request) -> Response:
        query = UsageSummaryQuery(data=request.query_params.dict())
        if not query.is_valid():
            raise BadRequest("The filters are invalid.", details=query.errors)
        data = query.validated_data
        teams = _scope(request, data.get("team"))
        filters = UsageFilters(
            start_day=data["since"],
            end_day=data["until"],
            team_ids=tuple(team.id for team in teams),
            model_name=data.get("model", ""),
            tier_name=data.get("tier", ""),
            purpose=data.get("purpose", ""),
        )
        summary = savings_summary_build(filters=filters)
        body = {
            "since": data["since"],
            "until": data["until"],
            "time_zone": str(local_tz()),
            "teams": sorted(team.slug for team in teams),
            "flagship_model": summary.flagship_model,
            "total": _figures_data(summary.total),
            "by_prompt_model": [
                {
                    **_figures_data(row),
                    "prompt": row.label or None,
                    "prompt_team": row.slug or None,
                    "model": cast(tuple, row.key)[1],
                }
                for row in summary.rows
            ],
        }
        return Response(UsageSummarySerializer(body).data)


# --------------------------------------------------------------------------- budget


class BudgetSerializer(serializers.Serializer):
    scope = serializers.CharField()
    api_key = serializers.CharField(allow_null=True)
    period = serializers.CharField()
    period_start = serializers.DateTimeField()
    period_end = serializers.DateTimeField(allow_null=True, help_text="When it resets.")
    limit_usd = serializers.DecimalField(max_digits=20, decimal_places=10)
    spent_usd = serializers.DecimalField(max_digits=20, decimal_places=10)
    reserved_usd = serializers.DecimalField(max_digits=20, decimal_places=10)
    remaining_usd = serializers.DecimalField(max_digits=20, decimal_places=10)
    used_pct = serializers.DecimalField(max_digits=8, decimal_places=1)
    soft_threshold = serializers.DecimalField(max_digits=4, decimal_places=3)
    state = serializers.ChoiceField(choices=["ok", "warning", "limit"])
    action = serializers.CharField()
    downgrade_tier = serializers.CharField(allow_null=True)
    projected_usd = serializers.DecimalField(
        max_digits=20, decimal_places=2, allow_null=True, help_text="Linear, to period end."
    )


class BudgetResponseSerializer(serializers.Serializer):
    team = serializers.CharField()
    budget = BudgetSerializer(allow_null=True, help_text="The team's budget.")
    key_budget = BudgetSerializer(allow_null=True, help_text="The calling key's own budget.")
    limiting = BudgetSerializer(
        allow_null=True, help_text="The budget with the least left: what limits this caller."
    )


def _budget_data(status: BudgetStatus | None) -> dict | None:
    if status is None:
        return None
    budget = status.budget
    return {
        "scope": status.scope,
        "api_key": budget.api_key.prefix if budget.api_key else None,
        "period": budget.period,
        "period_start": status.period_start,
        "period_end": status.period_end,
        "limit_usd": budget.limit_usd,
        "spent_usd": status.spent,
        "reserved_usd": status.reserved,
        "remaining_usd": status.remaining,
        "used_pct": status.used_pct,
        "soft_threshold": budget.soft_threshold,
        "state": status.state,
        "action": budget.action,
        "downgrade_tier": budget.downgrade_tier.name if budget.downgrade_tier else None,
        "projected_usd": status.projected,
    }


class BudgetView(APIView):
    @extend_schema(
        summary="The team's budget (and the calling key's own), for the current period",
        parameters=[TEAM_PARAM],
        responses={200: BudgetResponseSerializer, **ERRORS},
        tags=["usage"],
    )
    def get(self, request: Request) -> Response:
        teams = _scope(request, request.query_params.get("team"))
        if len(teams) != 1:
            raise BadRequest(
                "Name the team with ?team=<slug>: you can see several teams.",
                details={"teams": sorted(t.slug for t in teams)},
                param="team",
            )
        team = teams[0]
        key = _key(request)
        budgets = Budget.objects.filter(team=team).select_related(
            "team", "api_key", "downgrade_tier"
        )
        now = timezone.now()
        team_status = key_status = None
        for budget in budgets:
            if budget.api_key_id is None:
                team_status = budget_status(budget, now=now)
            elif key and budget.api_key_id == key.id:
                key_status = budget_status(budget, now=now)
        applying = [s for s in (team_status, key_status) if s is not None]
        limiting = min(applying, key=lambda s: s.remaining) if applying else None
        data = {
            "team": team.slug,
            "budget": _budget_data(team_status),
            "key_budget": _budget_data(key_status),
            "limiting": _budget_data(limiting),
        }
        return Response(BudgetResponseSerializer(data).data)
