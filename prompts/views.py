"""Prompt pages: list, prompt (history, labels, audit), editor with live preview, compare,
publish / rollback / approve. Thin: access checks here, rules in services."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Max
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST
from django_htmx.http import trigger_client_event

from accounts.models import Role
from accounts.selectors import user_has_role, user_teams
from core.errors import AppError, NotFound
from core.models import AuditEvent
from prompts.diff import version_diff
from prompts.editor import (
    EditorDraft,
    VariableRow,
    build_preview,
    draft_from_post,
    preview_allowed,
)
from prompts.models import ApprovalRequest, Label, Prompt, PromptVersion, TaskTag
from prompts.rendering import VARIABLE_TYPES, detect_variables
from prompts.selectors import (
    prompt_get_for_user,
    prompt_label_version,
    prompt_list,
    prompt_versions,
    user_can_approve,
    user_can_edit,
)
from prompts.services import (
    REASONING_EFFORTS,
    approval_decide,
    label_rollback,
    prompt_create,
    prompt_update,
    prompt_version_create,
    version_publish,
)

TIERS = ("nano", "mini", "flagship", "reasoning")
AUDIT_LIMIT = 50


# --- access -----------------------------------------------------------------------------------


def _get_prompt(request: HttpRequest, team: str, slug: str) -> Prompt:
    try:
        return prompt_get_for_user(user=request.user, team_slug=team, slug=slug)
    except NotFound:
        raise Http404("No such prompt.") from None


def _require_editor(request: HttpRequest, prompt: Prompt) -> None:
    if not user_can_edit(user=request.user, team=prompt.team):
        raise PermissionDenied("Only a prompt editor of this team can change its prompts.")


def _get_version(prompt: Prompt, number: Any) -> PromptVersion:
    try:
        return prompt.versions.select_related("author").get(number=int(number))
    except (PromptVersion.DoesNotExist, TypeError, ValueError):
        raise Http404("No such version.") from None


def _detail_url(prompt: Prompt, **query: Any) -> str:
    url = reverse("prompts:detail", args=[prompt.team.slug, prompt.slug])
    return f"{url}?{urlencode(query)}" if query else url


def playground_url(prompt: Prompt, version: PromptVersion | None) -> str:
    query = {"prompt": prompt.slug}
    if version is not None:
        query["version"] = version.number
    query["team"] = prompt.team.slug
    return f"{reverse('playground:index')}?{urlencode(query)}"


# --- list and create --------------------------------------------------------------------------


@login_required
def list(request: HttpRequest) -> HttpResponse:
    params = request.GET
    prompts = prompt_list(
        user=request.user,
        search=params.get("q", "").strip(),
        team_slug=params.get("team", ""),
        tag=params.get("tag", ""),
        label=params.get("label", "").strip(),
    )
    teams = user_teams(user=request.user)
    context = {
        "prompts": prompts,
        "teams": teams,
        "tags": TaskTag.choices,
        "q": params.get("q", ""),
        "team": params.get("team", ""),
        "tag": params.get("tag", ""),
        "label": params.get("label", ""),
        "label_names": sorted(
            {Label.PRODUCTION, Label.STAGING}
            | set(
                Label.objects.filter(prompt__team__in=teams)
                .values_list("name", flat=True)
                .distinct()
            )
        ),
        "can_create": user_has_role(user=request.user, role=Role.PROMPT_EDITOR),
        "pending_approvals": ApprovalRequest.objects.filter(
            status=ApprovalRequest.Status.PENDING, version__prompt__team__in=teams
        ).count(),
    }
    template = "prompts/list.html#results" if request.htmx else "prompts/list.html"
    return render(request, template, context)


@login_required
def create(request: HttpRequest) -> HttpResponse:
    teams = [t for t in user_teams(user=request.user) if user_can_edit(user=request.user, team=t)]
    if not teams:
        raise PermissionDenied("Only prompt editors can create prompts.")
    errors: dict[str, Any] = {}
    values = {"task_tag": TaskTag.GENERATION}
    if request.method == "POST":
        values = request.POST.dict()
        team = next((t for t in teams if t.slug == values.get("team")), None)
        if team is None:
            errors["team"] = "Choose one of your teams."
        else:
            try:
                prompt = prompt_create(
                    team=team,
                    slug=values.get("slug", "").strip(),
                    name=values.get("name", "").strip(),
                    description=values.get("description", ""),
                    task_tag=values.get("task_tag", TaskTag.GENERATION),
                    requires_approval=values.get("requires_approval") == "on",
                    actor=request.user,
                )
            except AppError as exc:
                errors = exc.details if isinstance(exc.details, dict) else {"form": exc.message}
                if exc.param:
                    errors[exc.param] = exc.message
            else:
                messages.success(request, f"Created {prompt.slug}. Write its first version.")
                return redirect("prompts:edit", prompt.team.slug, prompt.slug)
    return render(
        request,
        "prompts/create.html",
        {"teams": teams, "tags": TaskTag.choices, "values": values, "errors": errors},
        status=422 if errors else 200,
    )


# --- prompt page ------------------------------------------------------------------------------


@login_required
def detail(request: HttpRequest, team: str, slug: str) -> HttpResponse:
    prompt = _get_prompt(request, team, slug)
    versions = [*prompt_versions(prompt=prompt)]
    labels = {label.name: label for label in prompt.labels.select_related("version")}
    production = labels.get(Label.PRODUCTION)
    shown = versions[0] if versions else None
    if request.GET.get("version"):
        shown = next((v for v in versions if str(v.number) == request.GET["version"]), None)
        if shown is None:
            raise Http404("No such version.")
    audit = AuditEvent.objects.filter(
        object_type=Prompt._meta.label_lower, object_id=str(prompt.pk)
    ).select_related("actor")[:AUDIT_LIMIT]
    pending = (
        ApprovalRequest.objects.filter(
            version__prompt=prompt, status=ApprovalRequest.Status.PENDING
        )
        .select_related("version", "requested_by")
        .order_by("-created_at")
    )
    shown_variables = []
    if shown is not None:
        declared = {spec["name"]: spec for spec in shown.variables or []}
        used, _ = detect_variables(
            shown.system_template,
            shown.user_template,
            *[e.get("content", "") for e in shown.few_shot or [] if isinstance(e, dict)],
        )
        # the same list, in the same order, as the editor shows for this version
        shown_variables = [declared.get(name, {"name": name, "type": "string"}) for name in used]
        shown_variables += [spec for name, spec in declared.items() if name not in used]
    return render(
        request,
        "prompts/detail.html",
        {
            "prompt": prompt,
            "versions": versions,
            "labels": labels,
            "production": production,
            "shown": shown,
            "shown_variables": shown_variables,
            "audit": audit,
            "pending": pending,
            "can_edit": user_can_edit(user=request.user, team=prompt.team),
            "can_approve": user_can_approve(user=request.user, team=prompt.team),
            "playground_url": playground_url(prompt, shown),
            "open_publish": request.GET.get("publish") == "1",
            "tags": TaskTag.choices,
        },
    )


@login_required
@require_POST
def prompt_settings(request: HttpRequest, team: str, slug: str) -> HttpResponse:
    prompt = _get_prompt(request, team, slug)
    _require_editor(request, prompt)
    try:
        prompt_update(
            prompt=prompt,
            actor=request.user,
            name=request.POST.get("name", prompt.name).strip(),
            description=request.POST.get("description", prompt.description),
            task_tag=request.POST.get("task_tag", prompt.task_tag),
            requires_approval=request.POST.get("requires_approval") == "on",
            cache_key=request.POST.get("cache_key", prompt.cache_key).strip(),
        )
    except AppError as exc:
        messages.error(request, f"{exc.message} {exc.details or ''}")
    else:
        messages.success(request, "Settings saved.")
    return redirect(_detail_url(prompt))


# --- editor -----------------------------------------------------------------------------------


def _editor_context(
    request: HttpRequest,
    prompt: Prompt,
    base: PromptVersion | None,
    draft: EditorDraft,
    errors: dict[str, str] | None = None,
    error_message: str = "",
) -> dict[str, Any]:
    preview = build_preview(draft)
    latest = prompt.versions.aggregate(latest=Max("number"))["latest"] or 0
    return {
        "prompt": prompt,
        "next_number": latest + 1,
        "placeholder_row": VariableRow(name="__NAME__"),
        "base": base,
        "draft": draft,
        "preview": preview,
        "errors": errors or {},
        "error_message": error_message,
        "variable_types": VARIABLE_TYPES,
        "tiers": TIERS,
        "reasoning_efforts": [e for e in REASONING_EFFORTS if e],
        "playground_url": playground_url(prompt, base),
        "draft_key": f"switchboard:draft:{prompt.team.slug}/{prompt.slug}",
    }


@login_required
def edit(request: HttpRequest, team: str, slug: str) -> HttpResponse:
    prompt = _get_prompt(request, team, slug)
    _require_editor(request, prompt)
    latest = prompt.versions.order_by("-number").first()
    base = _get_version(prompt, request.GET["from"]) if request.GET.get("from") else latest
    if request.method == "POST":
        draft = draft_from_post(request.POST)
        used, _ = detect_variables(*draft.template_sources())
        fields = draft.version_fields(used)
        if draft.errors:
            return render(
                request,
                "prompts/edit.html",
                _editor_context(
                    request, prompt, base, draft, draft.errors, "Fix the fields marked below."
                ),
                status=422,
            )
        try:
            version = prompt_version_create(prompt=prompt, author=request.user, **fields)
        except AppError as exc:
            details = exc.details if isinstance(exc.details, dict) else {}
            return render(
                request,
                "prompts/edit.html",
                _editor_context(request, prompt, base, draft, details, exc.message),
                status=exc.status,
            )
        messages.success(request, f"Saved version {version.number}.")
        query: dict[str, Any] = {"version": version.number, "saved": 1}
        if request.POST.get("then") == "publish":
            query["publish"] = 1
        return redirect(_detail_url(prompt, **query))
    return render(
        request,
        "prompts/edit.html",
        _editor_context(request, prompt, base, EditorDraft.from_version(base)),
    )


@login_required
@require_POST
def preview(request: HttpRequest, team: str, slug: str) -> HttpResponse:
    prompt = _get_prompt(request, team, slug)
    _require_editor(request, prompt)
    if not preview_allowed(user_id=request.user.pk):
        return HttpResponse(
            "Too many previews in the last minute; wait a moment.",
            status=429,
            headers={"Retry-After": "60"},
            content_type="text/plain",
        )
    draft = draft_from_post(request.POST)
    preview = build_preview(draft)
    response = render(
        request,
        "prompts/edit.html#preview",
        {"prompt": prompt, "preview": preview, "draft": draft, "oob": True},
    )
    if preview.detected is not None:
        # The variables form follows the templates; the page's script adds/removes rows.
        trigger_client_event(response, "variables-detected", {"names": preview.detected})
    return response


# --- compare, publish, rollback ---------------------------------------------------------------


@login_required
def compare(request: HttpRequest, team: str, slug: str) -> HttpResponse:
    prompt = _get_prompt(request, team, slug)
    versions = [*prompt.versions.order_by("-number")]
    if not versions:
        raise Http404("This prompt has no versions yet.")
    b = _get_version(prompt, request.GET.get("b") or versions[0].number)
    a_number = request.GET.get("a") or (b.number - 1 if b.number > 1 else b.number)
    a = _get_version(prompt, a_number)
    context = {"prompt": prompt, "versions": versions, "a": a, "b": b, "diff": version_diff(a, b)}
    template = "prompts/compare.html#diff" if request.htmx else "prompts/compare.html"
    return render(request, template, context)


@login_required
def publish(request: HttpRequest, team: str, slug: str) -> HttpResponse:
    prompt = _get_prompt(request, team, slug)
    _require_editor(request, prompt)
    data = request.POST if request.method == "POST" else request.GET
    version = _get_version(prompt, data.get("version"))
    label = (data.get("label") or Label.PRODUCTION).strip()
    if request.method == "POST":
        try:
            result = version_publish(
                prompt=prompt, version=version, label=label, actor=request.user
            )
        except AppError as exc:
            messages.error(request, exc.message)
        else:
            if result.moved:
                messages.success(request, f"Published version {version.number} to {label}.")
            else:
                messages.warning(
                    request,
                    f"Awaiting approval: version {version.number} → {label} needs an approver's "
                    "OK. The label stays where it is until then.",
                )
        return redirect(_detail_url(prompt, version=version.number))
    current = prompt_label_version(prompt=prompt, label=label)
    protected = prompt.requires_approval and label == Label.PRODUCTION
    context = {
        "prompt": prompt,
        "version": version,
        "label": label,
        "current": current,
        "diff": version_diff(current, version),
        "protected": protected,
        "will_request": protected
        and not (
            user_can_approve(user=request.user, team=prompt.team)
            and version.author_id != request.user.pk
        ),
    }
    template = "prompts/publish.html#dialog" if request.htmx else "prompts/publish.html"
    return render(request, template, context)


@login_required
@require_POST
def rollback(request: HttpRequest, team: str, slug: str) -> HttpResponse:
    prompt = _get_prompt(request, team, slug)
    _require_editor(request, prompt)
    label = request.POST.get("label") or Label.PRODUCTION
    version = _get_version(prompt, request.POST["version"]) if request.POST.get("version") else None
    try:
        moved = label_rollback(prompt=prompt, label=label, actor=request.user, version=version)
    except AppError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Rolled {label} back to version {moved.version.number}.")
    return redirect(_detail_url(prompt))


# --- approvals --------------------------------------------------------------------------------


@login_required
def approvals(request: HttpRequest) -> HttpResponse:
    teams = user_teams(user=request.user)
    requests = (
        ApprovalRequest.objects.filter(version__prompt__team__in=teams)
        .select_related("version__prompt__team", "version__author", "requested_by", "decided_by")
        .order_by("status", "-created_at")[:200]
    )
    return render(request, "prompts/approvals.html", {"requests": requests})


@login_required
def approval(request: HttpRequest, pk: int) -> HttpResponse:
    found = (
        ApprovalRequest.objects.filter(
            pk=pk, version__prompt__team__in=user_teams(user=request.user)
        )
        .select_related("version__prompt__team", "version__author", "requested_by", "decided_by")
        .first()
    )
    if found is None:
        raise Http404("No such approval request.")
    prompt = found.version.prompt
    if request.method == "POST":
        try:
            approval_decide(
                request=found,
                approver=request.user,
                approve=request.POST.get("decision") == "approve",
                comment=request.POST.get("comment", ""),
            )
        except AppError as exc:
            messages.error(request, exc.message)
            return redirect("prompts:approval", pk)
        verb = "Approved" if request.POST.get("decision") == "approve" else "Rejected"
        messages.success(request, f"{verb} version {found.version.number} → {found.label_name}.")
        return redirect(_detail_url(prompt))
    current = prompt_label_version(prompt=prompt, label=found.label_name)
    can_decide = (
        found.status == ApprovalRequest.Status.PENDING
        and user_can_approve(user=request.user, team=prompt.team)
        and found.version.author_id != request.user.pk
    )
    return render(
        request,
        "prompts/approval.html",
        {
            "req": found,
            "prompt": prompt,
            "current": current,
            "diff": version_diff(current, found.version),
            "can_decide": can_decide,
            "own_version": found.version.author_id == request.user.pk,
        },
    )
