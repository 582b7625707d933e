"""Evaluator pages: a prompt's evaluators (a card on the prompt page), one evaluator's editor
with its versions and audit trail, and the live preview of what its judge is asked."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from core.errors import AppError
from core.models import AuditEvent
from evals import judge, selectors, services
from evals.configs import CHECKS, DEFAULT_JUDGE, DEFAULT_RUBRIC, JUDGE_KINDS
from evals.fields import NORMALIZERS
from evals.models import Evaluator
from playground.selectors import target_choices, user_can_edit
from prompts.models import Prompt

AUDIT_LIMIT = 30


def _judges() -> list[tuple[str, str]]:
    return [(value, label) for value, label in target_choices() if value != "auto"]


def _fields_parse(text: str) -> dict[str, list[str]]:
    """`name: case, whitespace` per line → {name: [normalizer, ...]} (bad names are left for
    the service to refuse, with the field named)."""
    fields: dict[str, list[str]] = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        if name.strip():
            fields[name.strip()] = [n.strip() for n in rest.split(",") if n.strip()]
    return fields


def _fields_text(fields: dict[str, list[str]]) -> str:
    return "\n".join(f"{name}: {', '.join(normalizers)}" for name, normalizers in fields.items())


def _config_from_post(kind: str, post: Any) -> dict[str, Any]:
    if kind in JUDGE_KINDS:
        return {
            "rubric": post.get("rubric", ""),
            "judge": post.get("judge", DEFAULT_JUDGE),
            "pass_score": post.get("pass_score", 4),
        }
    if kind == Evaluator.Kind.JSON_FIELDS:
        return {
            "fields": _fields_parse(post.get("fields", "")),
            "default": post.getlist("default"),
            "against": post.get("against", "reference"),
        }
    return {"check": post.get("check", ""), "value": post.get("value", "")}


def _form(kind: str, config: dict[str, Any]) -> dict[str, Any]:
    """The editor's field values for a config (a saved one, or what was just posted)."""
    return {
        "kind": kind,
        "rubric": config.get("rubric", DEFAULT_RUBRIC),
        "judge": config.get("judge", DEFAULT_JUDGE),
        "pass_score": config.get("pass_score", 4),
        "fields": _fields_text(config.get("fields") or {})
        if isinstance(config.get("fields"), dict)
        else "",
        "default": config.get("default") or [],
        "against": config.get("against", "reference"),
        "check": config.get("check", "json"),
        "value": config.get("value", ""),
    }


def _editor_context(request: HttpRequest, prompt: Prompt, **extra: Any) -> dict[str, Any]:
    return {
        "prompt": prompt,
        "can_edit": user_can_edit(user=request.user, team=prompt.team),
        "kinds": Evaluator.Kind.choices,
        "judge_kinds": JUDGE_KINDS,
        "judges": _judges(),
        "checks": CHECKS,
        "normalizers": list(NORMALIZERS),
        **extra,
    }


def _refused(exc: AppError) -> None:
    if exc.status == 403:
        raise PermissionDenied(exc.message) from None


@login_required
@require_GET
def prompt_evaluators(request: HttpRequest, prompt_id: int) -> HttpResponse:
    """The prompt's evaluators and a form for a new one. From the prompt page's htmx, only the
    card."""
    prompt = selectors.prompt_for_user(user=request.user, pk=prompt_id)
    context = _editor_context(
        request,
        prompt,
        evaluators=selectors.evaluators_with_latest(prompt=prompt),
        form=(form := _form(Evaluator.Kind.PAIRWISE_JUDGE, {})),
        preview=_preview(prompt, form),
        name="",
    )
    template = "evals/evaluators.html#card" if request.htmx else "evals/evaluators.html"
    return render(request, template, context)


@login_required
@require_POST
def evaluator_create(request: HttpRequest, prompt_id: int) -> HttpResponse:
    prompt = selectors.prompt_for_user(user=request.user, pk=prompt_id)
    kind = request.POST.get("kind", "")
    config = _config_from_post(kind, request.POST)
    try:
        evaluator = services.evaluator_create(
            prompt=prompt,
            name=request.POST.get("name", ""),
            kind=kind,
            config=config,
            actor=request.user,
            shadow_sample_rate=request.POST.get("shadow_sample_rate") or 0,
        )
    except AppError as exc:
        _refused(exc)
        context = _editor_context(
            request,
            prompt,
            evaluators=selectors.evaluators_with_latest(prompt=prompt),
            form=(form := _form(kind, config)),
            preview=_preview(prompt, form),
            name=request.POST.get("name", ""),
            error=exc.message,
        )
        return render(request, "evals/evaluators.html", context, status=exc.status)
    messages.success(request, f"Evaluator “{evaluator.name}” created (v1).")
    return redirect("evals:evaluator", pk=evaluator.pk)


def _evaluator_page(
    request: HttpRequest, evaluator: Evaluator, *, form: dict | None = None, **extra: Any
) -> dict[str, Any]:
    versions = list(selectors.evaluator_versions(evaluator=evaluator).select_related("created_by"))
    latest = versions[0] if versions else None
    form = form or _form(evaluator.kind, latest.config if latest else {})
    return _editor_context(
        request,
        evaluator.prompt,
        evaluator=evaluator,
        versions=versions,
        latest=latest,
        form=form,
        preview=_preview(evaluator.prompt, form),
        audit=AuditEvent.objects.filter(
            object_type=Evaluator._meta.label_lower, object_id=str(evaluator.pk)
        ).select_related("actor")[:AUDIT_LIMIT],
        shadow_percent=f"{evaluator.shadow_sample_rate * 100:.2f}".rstrip("0").rstrip("."),
        **extra,
    )


@login_required
@require_GET
def evaluator_detail(request: HttpRequest, pk: int) -> HttpResponse:
    evaluator = selectors.evaluator_for_user(user=request.user, pk=pk)
    return render(request, "evals/evaluator.html", _evaluator_page(request, evaluator))


@login_required
@require_POST
def evaluator_version(request: HttpRequest, pk: int) -> HttpResponse:
    """Save the editor's settings as a new immutable version."""
    evaluator = selectors.evaluator_for_user(user=request.user, pk=pk)
    config = _config_from_post(evaluator.kind, request.POST)
    try:
        version = services.evaluator_version_create(
            evaluator=evaluator,
            config=config,
            actor=request.user,
            note=request.POST.get("note", ""),
        )
    except AppError as exc:
        _refused(exc)
        context = _evaluator_page(
            request, evaluator, form=_form(evaluator.kind, config), error=exc.message
        )
        return render(request, "evals/evaluator.html", context, status=exc.status)
    messages.success(request, f"Saved {evaluator.name} v{version.number}.")
    return redirect("evals:evaluator", pk=evaluator.pk)


@login_required
@require_POST
def evaluator_settings(request: HttpRequest, pk: int) -> HttpResponse:
    """Switch an evaluator on or off and set its share of shadow pairs (in percent)."""
    evaluator = selectors.evaluator_for_user(user=request.user, pk=pk)
    try:
        rate: Any = Decimal(request.POST.get("shadow_percent") or "0") / 100
    except InvalidOperation:
        rate = "x"  # refused by the service, which names the field
    try:
        services.evaluator_settings_set(
            evaluator=evaluator,
            actor=request.user,
            enabled=request.POST.get("enabled") == "on",
            shadow_sample_rate=rate,
        )
    except AppError as exc:
        _refused(exc)
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Settings of {evaluator.name} saved.")
    return redirect("evals:evaluator", pk=evaluator.pk)


def _preview(prompt: Prompt, form: dict[str, Any]) -> dict[str, Any]:
    """What the judge would be asked about a sample row with these settings: both position
    orders for a pairwise judge, one answer for a score judge; no model call."""
    sample = selectors.preview_sample(prompt=prompt)
    kind, rubric = form["kind"], str(form.get("rubric") or "").strip()
    out: dict[str, Any] = {"kind": kind, "source": sample.source, "judge": form.get("judge")}
    if kind not in JUDGE_KINDS:
        out["note"] = (
            "This evaluator calls no model: it compares the answers' JSON fields."
            if kind == Evaluator.Kind.JSON_FIELDS
            else "This evaluator calls no model: it runs a check on each answer."
        )
        return out
    if not rubric:
        out["note"] = "Write a rubric to see the judge's prompt."
        return out
    if kind == Evaluator.Kind.PAIRWISE_JUDGE:
        bodies = [
            (
                "Order 1: cheap answer as A",
                judge.pairwise_body(
                    rubric=rubric,
                    task=sample.task,
                    answer_a=sample.cheap,
                    answer_b=sample.reference,
                ),
            ),
            (
                "Order 2: positions swapped",
                judge.pairwise_body(
                    rubric=rubric,
                    task=sample.task,
                    answer_a=sample.reference,
                    answer_b=sample.cheap,
                ),
            ),
        ]
    else:
        bodies = [
            (
                "Each answer on its own (the cheap one shown)",
                judge.score_body(rubric=rubric, task=sample.task, answer=sample.cheap),
            )
        ]
    out["calls"] = [
        {
            "title": title,
            "instructions": body["instructions"],
            "input": body["input"],
            "schema": body["text"]["format"]["name"],
        }
        for title, body in bodies
    ]
    return out


@login_required
@require_GET
def judge_preview(request: HttpRequest, prompt_id: int) -> HttpResponse:
    """The live preview (htmx): the editor's unsaved settings rendered on a sample row."""
    prompt = selectors.prompt_for_user(user=request.user, pk=prompt_id)
    kind = request.GET.get("kind", Evaluator.Kind.PAIRWISE_JUDGE)
    form = _form(kind, _config_from_post(kind, request.GET))
    return render(request, "evals/_preview.html#preview", {"preview": _preview(prompt, form)})
