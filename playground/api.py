"""Jobs API (/api/v1/jobs): submit a batch of inputs, poll its progress and results, cancel.

A team key submits for its team; a signed-in user names the team (`team`) when they are in
several. Jobs run in the background on the playground's batch runner, each item through the
gateway's code path (routing, budgets, usage records with purpose `batch`).
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    PolymorphicProxySerializer,
    extend_schema,
    extend_schema_field,
)
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import ApiKey, Team
from accounts.selectors import user_teams
from core.errors import BadRequest, NotFound
from core.jsonlimits import LimitedJSONParser
from core.limits import LABEL_MAX, MODEL_MAX, NAME_MAX, TIER_MAX
from core.serializers import StrictCharField, StrictSlugField
from playground import selectors, services
from playground.columns import AUTO, column_spec_parse
from playground.models import Job, JobItem
from prompts.api import ERROR
from prompts.selectors import prompt_version_resolve_sync

MAX_ITEMS_PAGE = 1000


RAW_INPUT_SCHEMA = {
    "oneOf": [
        {"type": "string", "pattern": "\\S", "description": "A raw input."},
        {
            "type": "array",
            "minItems": 1,
            "description": "Raw input messages.",
            "items": {
                "type": "object",
                "required": ["role", "content"],
                "properties": {"role": {"type": "string"}, "content": {}},
            },
        },
    ]
}


@extend_schema_field(RAW_INPUT_SCHEMA)
class RawInputField(serializers.JSONField):
    pass


@extend_schema_field({"type": "object", "description": "A variable set for the prompt."})
class VariablesField(serializers.JSONField):
    pass


@extend_schema_field({"type": "string", "enum": ["24h"], "nullable": True})
class DeadlineField(serializers.JSONField):
    """Checked by the service (`playground.waiting.deadline_parse`): any other value is a 400."""


class _Column(serializers.Serializer):
    """What every job submission has besides its inputs: the column and the job's name."""

    tier = StrictCharField(required=False, allow_blank=True, max_length=TIER_MAX)
    model = StrictCharField(required=False, allow_blank=True, max_length=MODEL_MAX)
    temperature = serializers.DecimalField(
        required=False,
        max_digits=3,
        decimal_places=2,
        min_value=0,
        max_value=2,
        coerce_to_string=False,
    )
    reasoning_effort = StrictCharField(required=False, allow_blank=True, max_length=16)
    name = StrictCharField(required=False, allow_blank=True, max_length=NAME_MAX)
    team = StrictSlugField(required=False, help_text="For signed-in users in several teams.")
    deadline = DeadlineField(
        required=False,
        allow_null=True,
        help_text='"24h": work that can wait, run through the provider\'s Batch API (or as '
        "flex calls) at the batch price. Left out or null: now. Any other value is a 400.",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs.get("tier") and attrs.get("model"):
            raise serializers.ValidationError("Give a tier or a model, not both.")
        return attrs


class JobSubmitSerializer(_Column):
    """Validates a submission of either shape (the schema documents them as JOB_SUBMIT_DOC)."""

    prompt = StrictSlugField(
        required=False, help_text="Prompt slug; `inputs` are then variable sets."
    )
    version = serializers.IntegerField(
        required=False, min_value=1, help_text="With `prompt`: a version number."
    )
    label = StrictSlugField(
        required=False,
        max_length=LABEL_MAX,
        help_text="With `prompt`: a label (default production).",
    )
    inputs = serializers.ListField(
        child=serializers.JSONField(),
        allow_empty=False,
        min_length=1,
        help_text="Variable sets (with `prompt`), or raw inputs: strings or message lists.",
    )


class PromptJobSerializer(_Column):
    """A job over a stored prompt: each input is a variable set."""

    prompt = StrictSlugField()
    version = serializers.IntegerField(required=False, min_value=1)
    label = StrictSlugField(required=False, max_length=LABEL_MAX)
    inputs = serializers.ListField(child=VariablesField(), min_length=1)


class RawJobSerializer(_Column):
    """A job over raw inputs: text or message lists."""

    inputs = serializers.ListField(child=RawInputField(), min_length=1)


JOB_SUBMIT_DOC = PolymorphicProxySerializer(
    component_name="JobSubmit",
    serializers=[PromptJobSerializer, RawJobSerializer],
    resource_type_field_name=None,
)


class JobItemSerializer(serializers.ModelSerializer):
    index = serializers.IntegerField(source="row_index")
    usage_record = serializers.IntegerField(source="usage_record_id", allow_null=True)
    error = serializers.SerializerMethodField()

    class Meta:
        model = JobItem
        fields = [
            "index",
            "status",
            "output",
            "model_name",
            "tier_name",
            "input_tokens",
            "cached_input_tokens",
            "output_tokens",
            "reasoning_tokens",
            "cost_usd",
            "latency_ms",
            "ttft_ms",
            "usage_record",
            "request_id",
            "error",
        ]

    def get_error(self, item: JobItem) -> dict | None:
        if item.status != JobItem.Status.ERROR:
            return None
        return {"code": item.error_code, "message": item.error_message}


def _job_body(job: Job, request: Request, *, offset: int = 0, limit: int = 100) -> dict:
    items = job.items.order_by("row_index", "column_index")[offset : offset + limit]
    next_offset = offset + limit if offset + limit < job.total_items else None
    return {
        "id": job.pk,
        "object": "job",
        "status": job.status,
        "name": job.name,
        "prompt": job.prompt_version.prompt.slug if job.prompt_version else None,
        "version": job.prompt_version.number if job.prompt_version else None,
        "columns": job.columns,
        "deadline": job.deadline or None,
        "batch": job.batch.public_id if job.batch_id and job.batch else None,
        "progress": {
            "total": job.total_items,
            "done": job.done_items,
            "failed": job.failed_items,
            "cancelled": job.cancelled_items,
            "percent": job.progress_percent,
        },
        "cost_usd": f"{job.cost_usd:f}",
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        # inputs and outputs are removed after the team's retention period; figures stay
        "content_purged_at": job.content_purged_at,
        "items": JobItemSerializer(items, many=True).data,
        "items_offset": offset,
        "items_next_offset": next_offset,
        "url": request.build_absolute_uri(f"/api/v1/jobs/{job.pk}"),
    }


def _key(request: Request) -> ApiKey | None:
    return request.auth if isinstance(request.auth, ApiKey) else None


def _team(request: Request, slug: str | None) -> Team:
    key = _key(request)
    if key is not None:
        return key.team
    teams = user_teams(user=request.user)
    if slug:
        team = teams.filter(slug=slug).first()
        if team is None:
            raise NotFound(f"No team {slug!r}.")
        return team
    found = list(teams[:2])
    if len(found) != 1:
        raise BadRequest("Name the team (`team`).", param="team")
    return found[0]


def _visible_teams(request: Request):
    key = _key(request)
    if key is not None:
        return [key.team_id]
    return user_teams(user=request.user)


JOB_RESPONSE = OpenApiResponse(
    description='The job with its progress and a page of items; `deadline` ("24h" or null) '
    "and `batch` (the id of the gateway batch running its items, or null)."
)
ERRORS = {
    400: OpenApiResponse(ERROR, "Malformed request"),
    401: OpenApiResponse(ERROR, "No or invalid credentials"),
    403: OpenApiResponse(ERROR, "Not allowed"),
    404: OpenApiResponse(ERROR, "Not found (or another team's)"),
}
# drf-spectacular names a `pk` path part `id` (SCHEMA_COERCE_PATH_PK); describe it as a number.
ID_PARAM = OpenApiParameter("id", int, OpenApiParameter.PATH)


def _pk(value: str) -> int:
    """Path ids are matched as text so that a malformed one gets our JSON 404."""
    if not (value.isascii() and value.isdigit()) or len(value) > 18:
        raise NotFound("No such job.")
    return int(value)


class JobListView(APIView):
    parser_classes = [LimitedJSONParser]

    @extend_schema(
        request=JOB_SUBMIT_DOC,
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                str,
                OpenApiParameter.HEADER,
                description="Same key and body: the same job. Same key, other body: 409.",
            )
        ],
        responses={
            202: JOB_RESPONSE,
            **ERRORS,
            409: OpenApiResponse(ERROR, "Idempotency-Key reused with another body"),
            413: OpenApiResponse(ERROR, "Too many inputs"),
            422: OpenApiResponse(ERROR, "Inputs that do not fit the prompt's variables"),
        },
        summary="Submit a job",
        operation_id="jobs_create",
    )
    def post(self, request: Request) -> Response:
        serializer = JobSubmitSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        team = _team(request, data.get("team"))
        key = request.headers.get("Idempotency-Key", "").strip()
        if len(key) > 200:
            raise BadRequest("Idempotency-Key is at most 200 characters.")
        version = None
        if "prompt" in data:
            version = prompt_version_resolve_sync(
                team_id=team.pk,
                slug=data["prompt"],
                label=data.get("label"),
                version=data.get("version"),
            )
        if data.get("model"):
            target = f"model:{data['model']}"
        elif data.get("tier"):
            target = f"tier:{data['tier']}"
        else:
            target = AUTO
        column = column_spec_parse(
            target=target,
            temperature=data.get("temperature"),
            reasoning_effort=data.get("reasoning_effort", ""),
        )
        job, created = services.job_submit(
            team=team,
            inputs=data["inputs"],
            column=column,
            prompt_version=version,
            api_key=_key(request),
            user=request.user if _key(request) is None else None,
            idempotency_key=key,
            body_hash=services.request_hash(request.data),
            name=data.get("name", ""),
            deadline=data.get("deadline"),
        )
        headers = {"Location": f"/api/v1/jobs/{job.pk}"}
        if not created:
            headers["Idempotent-Replayed"] = "true"
        return Response(
            _job_body(job, request, limit=0), status=status.HTTP_202_ACCEPTED, headers=headers
        )

    @extend_schema(
        summary="List recent jobs",
        operation_id="jobs_list",
        responses={200: JOB_RESPONSE, 401: ERRORS[401], 403: ERRORS[403]},
    )
    def get(self, request: Request) -> Response:
        jobs = Job.objects.filter(team__in=_visible_teams(request)).select_related(
            "prompt_version__prompt"
        )[:50]
        return Response({"data": [_job_body(job, request, limit=0) for job in jobs]})


class JobDetailView(APIView):
    @extend_schema(
        summary="A job's status, progress, cost and results",
        operation_id="jobs_retrieve",
        parameters=[
            ID_PARAM,
            OpenApiParameter("offset", int, description="First item (default 0)."),
            OpenApiParameter(
                "limit", int, description=f"Items (default 100, at most {MAX_ITEMS_PAGE})."
            ),
        ],
        responses={200: JOB_RESPONSE, **ERRORS},
    )
    def get(self, request: Request, pk: str) -> Response:
        job = selectors.job_get(team_ids=_visible_teams(request), pk=_pk(pk))
        try:
            offset = min(max(0, int(request.query_params.get("offset", 0))), 10**9)
            limit = min(MAX_ITEMS_PAGE, max(0, int(request.query_params.get("limit", 100))))
        except (TypeError, ValueError):
            raise BadRequest("offset and limit are integers.") from None
        return Response(_job_body(job, request, offset=offset, limit=limit))


class JobCancelView(APIView):
    @extend_schema(
        summary="Cancel a job",
        operation_id="jobs_cancel",
        request=None,
        parameters=[ID_PARAM],
        responses={200: JOB_RESPONSE, **ERRORS},
    )
    def post(self, request: Request, pk: str) -> Response:
        job = selectors.job_get(team_ids=_visible_teams(request), pk=_pk(pk))
        job = services.job_cancel(job=job, actor=request.user)
        return Response(_job_body(job, request, limit=0))
