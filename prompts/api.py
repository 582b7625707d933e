"""Prompts REST API (/api/v1/prompts...): thin views over selectors and services.

A team key sees its own team's prompts; a signed-in user sees their teams' prompts and, when
a slug exists in several of them, names the team with `?team=<slug>`. Writes need a person
with the prompt_editor role (keys are read-and-render only).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.parsers import BaseParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from accounts.models import ApiKey, Team
from accounts.selectors import user_teams
from core.errors import BadRequest, Forbidden, NotFound
from core.jsonlimits import (
    JsonTooDeep,
    LimitedJSONParser,
    body_read_limited,
    structure_check,
    utf8_decode,
)
from core.limits import LABEL_MAX, MODEL_MAX, TIER_MAX
from core.serializers import StrictCharField, StrictSlugField
from prompts.models import ApprovalRequest, Label, Prompt, PromptVersion
from prompts.portable import dump_document, load_document
from prompts.rendering import render_version
from prompts.selectors import (
    prompt_list,
    prompt_version_get,
    prompt_version_resolve_sync,
    prompt_versions,
)
from prompts.services import (
    approval_decide,
    label_rollback,
    prompt_create,
    prompt_version_create,
    prompts_export,
    prompts_import,
    version_content,
    version_publish,
)

TEAM_PARAM = OpenApiParameter(
    "team", str, description="Team slug, when the slug exists in several of your teams."
)
ERROR = inline_serializer(
    "Error",
    {
        "error": inline_serializer(
            "ErrorBody",
            {
                "code": serializers.CharField(),
                "message": serializers.CharField(),
                "details": serializers.JSONField(allow_null=True),
            },
        )
    },
)
ERRORS = {
    400: OpenApiResponse(ERROR, "Malformed request"),
    401: OpenApiResponse(ERROR, "No or invalid credentials"),
    403: OpenApiResponse(ERROR, "Not allowed"),
    404: OpenApiResponse(ERROR, "Not found (or another team's)"),
}


# --- access -----------------------------------------------------------------------------------


def _key(request: Request) -> ApiKey | None:
    return request.auth if isinstance(request.auth, ApiKey) else None


def person(request: Request) -> Any:
    """The signed-in person making a change; team keys may read and render, not write."""
    if _key(request) is not None:
        raise Forbidden(
            "Team keys can read and render prompts; changes need a signed-in prompt editor."
        )
    return request.user


def visible_prompts(request: Request) -> QuerySet[Prompt]:
    key = _key(request)
    if key is not None:
        return Prompt.objects.filter(team_id=key.team_id)
    return Prompt.objects.filter(team__in=user_teams(user=request.user))


def prompt_for(request: Request, slug: str) -> Prompt:
    """The prompt the URL names, among those the caller may see; else 404."""
    prompts = visible_prompts(request).filter(slug=slug).select_related("team")
    team = request.query_params.get("team")
    if team:
        prompts = prompts.filter(team__slug=team)
    found = list(prompts[:2])
    if not found:
        raise NotFound(f"Prompt {slug!r} not found.")
    if len(found) > 1:
        raise BadRequest(
            f"Prompt {slug!r} exists in several of your teams; add ?team=<slug>.", param="team"
        )
    return found[0]


def target_team(request: Request) -> Team | None:
    """The team a write or export is about: the key's, or `?team=` among the user's."""
    key = _key(request)
    if key is not None:
        return key.team
    slug = request.query_params.get("team") or (
        request.data.get("team") if isinstance(request.data, dict) else None
    )
    if not slug:
        return None
    team = user_teams(user=request.user).filter(slug=slug).first()
    if team is None:
        raise NotFound(f"Team {slug!r} not found.")
    return team


def _number(value: str, what: str = "version") -> int:
    if not (value.isascii() and value.isdigit()) or len(value) > 9:
        raise NotFound(f"No such {what}.", param=what)
    return int(value)


NUMBER_PARAM = OpenApiParameter("number", int, OpenApiParameter.PATH)
ID_PARAM = OpenApiParameter("pk", int, OpenApiParameter.PATH)


def page_of(name: str, serializer: serializers.Serializer) -> serializers.Serializer:
    """The documented shape of a LimitOffsetPagination page."""
    return inline_serializer(
        name,
        {
            "count": serializers.IntegerField(),
            "next": serializers.URLField(allow_null=True),
            "previous": serializers.URLField(allow_null=True),
            "results": serializer,
        },
    )


def paginated(request: Request, view: APIView, items: Any, serializer: type) -> Response:
    paginator = api_settings.DEFAULT_PAGINATION_CLASS()
    page = paginator.paginate_queryset(items, request, view=view)
    return paginator.get_paginated_response(serializer(page, many=True).data)


# --- serializers ------------------------------------------------------------------------------


class LabelSerializer(serializers.Serializer):
    name = serializers.CharField()
    version = serializers.IntegerField(source="version.number")
    updated_at = serializers.DateTimeField()


class PromptSerializer(serializers.ModelSerializer):
    team = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    labels = serializers.SerializerMethodField()

    class Meta:
        model = Prompt
        fields = [
            "slug",
            "team",
            "name",
            "description",
            "task_tag",
            "requires_approval",
            "store_content",
            "shadow_sample_rate",
            "cache_key",
            "labels",
            "created_at",
            "updated_at",
        ]

    def get_labels(self, prompt: Prompt) -> dict[str, int]:
        return {label.name: label.version.number for label in prompt.labels.all()}


class PromptCreateSerializer(serializers.Serializer):
    team = StrictSlugField(help_text="Team slug (ignored for a key: the key's team).")
    slug = StrictSlugField(max_length=100)
    name = StrictCharField(max_length=200)
    description = StrictCharField(required=False, allow_blank=True)
    task_tag = StrictCharField(required=False)
    requires_approval = serializers.BooleanField(required=False)


class VersionSerializer(serializers.ModelSerializer):
    author = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    labels = serializers.SerializerMethodField()

    class Meta:
        model = PromptVersion
        fields = [
            "number",
            "system_template",
            "user_template",
            "few_shot",
            "variables",
            "tier",
            "model_name",
            "temperature",
            "max_output_tokens",
            "reasoning_effort",
            "tools",
            "response_schema",
            "author",
            "change_note",
            "labels",
            "created_at",
        ]

    def get_labels(self, version: PromptVersion) -> list[str]:
        return sorted(label.name for label in version.labels.all())


class VersionCreateSerializer(serializers.Serializer):
    system_template = StrictCharField(required=False, allow_blank=True, default="")
    user_template = StrictCharField(required=False, allow_blank=True, default="")
    few_shot = serializers.ListField(child=serializers.DictField(), required=False, default=list)
    variables = serializers.ListField(child=serializers.DictField(), required=False, default=list)
    tier = StrictCharField(required=False, allow_blank=True, default="", max_length=TIER_MAX)
    model_name = StrictCharField(required=False, allow_blank=True, default="", max_length=MODEL_MAX)
    temperature = serializers.DecimalField(
        max_digits=3, decimal_places=2, required=False, allow_null=True, default=None
    )
    max_output_tokens = serializers.IntegerField(
        min_value=1, required=False, allow_null=True, default=None
    )
    reasoning_effort = StrictCharField(required=False, allow_blank=True, default="", max_length=16)
    tools = serializers.ListField(child=serializers.DictField(), required=False, default=list)
    response_schema = serializers.JSONField(required=False, allow_null=True, default=None)
    change_note = StrictCharField(required=False, allow_blank=True, max_length=500, default="")


class RenderRequestSerializer(serializers.Serializer):
    variables = serializers.DictField(required=False, default=dict)
    label = StrictSlugField(required=False, max_length=LABEL_MAX, help_text="Default: production.")
    version = serializers.IntegerField(
        min_value=1, required=False, help_text="A version number; wins over label."
    )


class MessageSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=["system", "user", "assistant"])
    content = serializers.CharField()


class RenderResponseSerializer(serializers.Serializer):
    prompt = serializers.CharField()
    team = serializers.CharField()
    version = serializers.IntegerField()
    label = serializers.CharField(allow_null=True)
    messages = MessageSerializer(many=True)
    instructions = serializers.CharField()
    input = MessageSerializer(many=True)
    variables = serializers.DictField()
    settings = serializers.DictField()


class LabelMoveSerializer(serializers.Serializer):
    version = serializers.IntegerField(min_value=1)


class RollbackSerializer(serializers.Serializer):
    version = serializers.IntegerField(
        min_value=1, required=False, help_text="Default: where the label pointed before."
    )


class ApprovalSerializer(serializers.ModelSerializer):
    prompt = serializers.CharField(source="version.prompt.slug")
    version = serializers.IntegerField(source="version.number")
    label = serializers.CharField(source="label_name")
    requested_by = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )
    decided_by = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )

    class Meta:
        model = ApprovalRequest
        fields = [
            "id",
            "prompt",
            "version",
            "label",
            "status",
            "requested_by",
            "decided_by",
            "decided_at",
            "comment",
            "created_at",
        ]


class PublishResponseSerializer(serializers.Serializer):
    moved = serializers.BooleanField()
    label = serializers.CharField()
    version = serializers.IntegerField(help_text="Where the label points now.")
    approval = ApprovalSerializer(allow_null=True)


class DecideSerializer(serializers.Serializer):
    approve = serializers.BooleanField()
    comment = StrictCharField(required=False, allow_blank=True, default="")


class YAMLParser(BaseParser):
    media_type = "application/yaml"

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None):
        text = utf8_decode(body_read_limited(stream))
        try:
            document = load_document(text, "yaml")
        except RecursionError:
            raise JsonTooDeep(
                f"The YAML nesting is deeper than the limit of {settings.JSON_MAX_DEPTH}."
            ) from None
        # Aliases can make a small file a huge structure; the walk stops at the item limit.
        structure_check(document)
        return document


class TextYAMLParser(YAMLParser):
    media_type = "text/yaml"


# --- views ------------------------------------------------------------------------------------


class PromptListView(APIView):
    @extend_schema(
        operation_id="prompts_list",
        parameters=[
            OpenApiParameter("q", str, description="Search slug, name, description"),
            OpenApiParameter("team", str),
            OpenApiParameter("tag", str),
            OpenApiParameter("label", str, description="Only prompts that have this label"),
        ],
        responses={200: page_of("PaginatedPromptList", PromptSerializer(many=True)), **ERRORS},
    )
    def get(self, request: Request) -> Response:
        params = request.query_params
        prompts = prompt_list(
            user=None if _key(request) else request.user,
            team=_key(request).team if _key(request) else None,
            search=params.get("q", ""),
            team_slug=params.get("team", ""),
            tag=params.get("tag", ""),
            label=params.get("label", ""),
        )
        return paginated(request, self, prompts, PromptSerializer)

    @extend_schema(
        operation_id="prompts_create",
        request=PromptCreateSerializer,
        responses={201: PromptSerializer, 409: OpenApiResponse(ERROR), 422: ERROR, **ERRORS},
    )
    def post(self, request: Request) -> Response:
        data = PromptCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        team = _key(request).team if _key(request) else None
        team_slug = fields.pop("team")
        if team is None:
            team = user_teams(user=request.user).filter(slug=team_slug).first()
            if team is None:
                raise NotFound(f"Team {team_slug!r} not found.", param="team")
        prompt = prompt_create(
            team=team,
            slug=fields.pop("slug"),
            name=fields.pop("name"),
            actor=person(request),
            **fields,
        )
        return Response(PromptSerializer(prompt).data, status=status.HTTP_201_CREATED)


class PromptDetailView(APIView):
    @extend_schema(
        operation_id="prompts_retrieve",
        parameters=[TEAM_PARAM],
        responses={200: PromptSerializer, **ERRORS},
    )
    def get(self, request: Request, slug: str) -> Response:
        return Response(PromptSerializer(prompt_for(request, slug)).data)


class VersionListView(APIView):
    @extend_schema(
        operation_id="prompts_versions_list",
        parameters=[TEAM_PARAM],
        responses={
            200: page_of("PaginatedVersionList", VersionSerializer(many=True)),
            **ERRORS,
        },
    )
    def get(self, request: Request, slug: str) -> Response:
        versions = prompt_versions(prompt=prompt_for(request, slug))
        return paginated(request, self, versions, VersionSerializer)

    @extend_schema(
        operation_id="prompts_versions_create",
        parameters=[TEAM_PARAM],
        request=VersionCreateSerializer,
        responses={
            201: VersionSerializer,
            422: OpenApiResponse(ERROR, "Template syntax (with line), undeclared variables…"),
            **ERRORS,
        },
        description="Save version N+1. Versions are immutable: there is no update.",
    )
    def post(self, request: Request, slug: str) -> Response:
        prompt = prompt_for(request, slug)
        data = VersionCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        version = prompt_version_create(
            prompt=prompt, author=person(request), **data.validated_data
        )
        return Response(VersionSerializer(version).data, status=status.HTTP_201_CREATED)


class VersionDetailView(APIView):
    @extend_schema(
        operation_id="prompts_versions_retrieve",
        parameters=[TEAM_PARAM, NUMBER_PARAM],
        responses={200: VersionSerializer, **ERRORS},
    )
    def get(self, request: Request, slug: str, number: str) -> Response:
        version = prompt_version_get(prompt=prompt_for(request, slug), number=_number(number))
        return Response(VersionSerializer(version).data)


class RenderView(APIView):
    @extend_schema(
        operation_id="prompts_render",
        parameters=[TEAM_PARAM],
        request=RenderRequestSerializer,
        responses={
            200: RenderResponseSerializer,
            422: OpenApiResponse(ERROR, "Invalid variables: one entry per bad field"),
            **ERRORS,
        },
        description="Render a version (by number, else by label, default production) with "
        "variables validated against its schema. No model is called.",
    )
    def post(self, request: Request, slug: str) -> Response:
        data = RenderRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        label = data.validated_data.get("label")
        number = data.validated_data.get("version")
        key = _key(request)
        team_id = key.team_id if key else prompt_for(request, slug).team_id
        version = prompt_version_resolve_sync(
            team_id=team_id, slug=slug, label=label, version=number
        )
        rendered = render_version(version, data.validated_data["variables"])
        settings = version_content(version)
        for template in ("system_template", "user_template", "few_shot", "variables"):
            settings.pop(template)
        return Response(
            {
                "prompt": version.prompt.slug,
                "team": key.team.slug if key else version.prompt.team.slug,
                "version": version.number,
                "label": None if number else (label or Label.PRODUCTION),
                "messages": rendered.messages,
                "instructions": rendered.instructions,
                "input": rendered.input_messages,
                "variables": rendered.variables,
                "settings": settings,
            }
        )


class LabelListView(APIView):
    @extend_schema(
        operation_id="prompts_labels_list",
        parameters=[TEAM_PARAM],
        responses={200: LabelSerializer(many=True), **ERRORS},
    )
    def get(self, request: Request, slug: str) -> Response:
        labels = Label.objects.filter(prompt=prompt_for(request, slug)).select_related("version")
        return Response(LabelSerializer(labels, many=True).data)


def _publish_response(prompt: Prompt, label: str, result: Any) -> Response:
    current = Label.objects.filter(prompt=prompt, name=label).select_related("version").first()
    body = {
        "moved": result.moved,
        "label": label,
        "version": current.version.number if current else None,
        "approval": ApprovalSerializer(result.approval).data if result.approval else None,
    }
    return Response(body, status=status.HTTP_200_OK if result.moved else status.HTTP_202_ACCEPTED)


class LabelMoveView(APIView):
    @extend_schema(
        operation_id="prompts_labels_move",
        parameters=[TEAM_PARAM],
        request=LabelMoveSerializer,
        responses={
            200: OpenApiResponse(PublishResponseSerializer, "The label moved"),
            202: OpenApiResponse(
                PublishResponseSerializer,
                "Protected label: an approval request waits; the label stayed",
            ),
            422: ERROR,
            **ERRORS,
        },
        description="Publish: point the label at a version. On a prompt that requires "
        "approval, production moves only for an approved version (or an approver who is "
        "not the author); otherwise an approval request is created.",
    )
    def put(self, request: Request, slug: str, name: str) -> Response:
        prompt = prompt_for(request, slug)
        data = LabelMoveSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        version = prompt_version_get(prompt=prompt, number=data.validated_data["version"])
        result = version_publish(prompt=prompt, version=version, label=name, actor=person(request))
        return _publish_response(prompt, name, result)


class LabelRollbackView(APIView):
    @extend_schema(
        operation_id="prompts_labels_rollback",
        parameters=[TEAM_PARAM],
        request=RollbackSerializer,
        responses={200: PublishResponseSerializer, 409: ERROR, 422: ERROR, **ERRORS},
    )
    def post(self, request: Request, slug: str, name: str) -> Response:
        prompt = prompt_for(request, slug)
        data = RollbackSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        number = data.validated_data.get("version")
        version = prompt_version_get(prompt=prompt, number=number) if number else None
        label = label_rollback(prompt=prompt, label=name, actor=person(request), version=version)
        return Response(
            {"moved": True, "label": name, "version": label.version.number, "approval": None}
        )


class ApprovalListView(APIView):
    @extend_schema(
        operation_id="prompts_approvals_list",
        parameters=[TEAM_PARAM],
        responses={200: ApprovalSerializer(many=True), **ERRORS},
    )
    def get(self, request: Request, slug: str) -> Response:
        approvals = ApprovalRequest.objects.filter(
            version__prompt=prompt_for(request, slug)
        ).select_related("version__prompt", "requested_by", "decided_by")
        return Response(ApprovalSerializer(approvals, many=True).data)


class ApprovalDecideView(APIView):
    @extend_schema(
        operation_id="prompts_approvals_decide",
        parameters=[ID_PARAM],
        request=DecideSerializer,
        responses={200: ApprovalSerializer, 409: ERROR, **ERRORS},
    )
    def post(self, request: Request, pk: str) -> Response:
        approval = ApprovalRequest.objects.filter(
            pk=_number(pk, "approval request"), version__prompt__in=visible_prompts(request)
        ).first()
        if approval is None:
            raise NotFound("Approval request not found.")
        data = DecideSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        decided = approval_decide(
            request=approval,
            approver=person(request),
            approve=data.validated_data["approve"],
            comment=data.validated_data["comment"],
        )
        return Response(ApprovalSerializer(decided).data)


class ExportView(APIView):
    @extend_schema(
        operation_id="prompts_export",
        parameters=[
            OpenApiParameter("format", str, enum=["yaml", "json"], description="Default yaml"),
            TEAM_PARAM,
        ],
        responses={
            (200, "application/yaml"): OpenApiTypes.OBJECT,
            (200, "application/json"): OpenApiTypes.OBJECT,
            **ERRORS,
        },
        description="Every visible prompt with all versions and labels, as a file that "
        "`import_prompts` (or POST /api/v1/prompts/import) reads back.",
    )
    def get(self, request: Request) -> HttpResponse:
        fmt = request.query_params.get("format", "yaml")
        if fmt not in ("yaml", "json"):
            raise BadRequest("format must be yaml or json.", param="format")
        prompts = visible_prompts(request)
        team = target_team(request)
        if team is not None:
            prompts = prompts.filter(team=team)
        text = dump_document(prompts_export(prompts=prompts), fmt)
        response = HttpResponse(
            text, content_type="application/json" if fmt == "json" else "application/yaml"
        )
        response["Content-Disposition"] = f'attachment; filename="prompts.{fmt}"'
        return response


class ImportView(APIView):
    parser_classes = [LimitedJSONParser, YAMLParser, TextYAMLParser]

    @extend_schema(
        operation_id="prompts_import",
        parameters=[TEAM_PARAM],
        request={"application/json": OpenApiTypes.OBJECT, "application/yaml": OpenApiTypes.STR},
        responses={
            200: inline_serializer(
                "ImportResult",
                {
                    "created_prompts": serializers.ListField(child=serializers.CharField()),
                    "created_versions": serializers.ListField(child=serializers.CharField()),
                    "moved_labels": serializers.ListField(child=serializers.CharField()),
                    "unchanged": serializers.ListField(child=serializers.CharField()),
                },
            ),
            422: OpenApiResponse(ERROR, "Nothing imported; details has one entry per item"),
            **ERRORS,
        },
        description="Import an exported document (JSON or YAML), all or nothing.",
    )
    def post(self, request: Request) -> Response:
        team = target_team(request) if request.query_params.get("team") or _key(request) else None
        result = prompts_import(document=request.data, actor=person(request), team=team)
        return Response(
            {
                "created_prompts": result.created_prompts,
                "created_versions": result.created_versions,
                "moved_labels": result.moved_labels,
                "unchanged": result.unchanged,
            }
        )
