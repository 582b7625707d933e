"""The evaluation app in the request explorer: the "Evaluate these requests" panel above a list
filtered to one prompt, its confirm/progress/summary pages, and a request's evaluations in its
drawer. The hooks are registered with `spend.explorer_hooks` by the app's ready()."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from accounts.selectors import user_teams
from core.errors import AppError
from evals import selectors, services
from evals.logged import MAX_REQUESTS, Logged, logged_request, versions_for_requests
from playground.selectors import user_can_edit
from prompts.models import Prompt
from spend.explorer import RequestDetail, RequestFilters, explorer_teams, request_page
from spend.explorer_forms import RequestFilterForm
from spend.models import Purpose

TEMPLATE = "evals/requests.html"


def _one_prompt(request: HttpRequest, filters: RequestFilters) -> Prompt | None:
    """The prompt the list is filtered to, when it is one of the viewer's teams' (finance sees
    every team's costs, not its evaluations) and the list can hold gateway requests."""
    if len(filters.prompt_ids) != 1 or filters.purpose not in ("", Purpose.GATEWAY):
        return None
    return (
        Prompt.objects.select_related("team")
        .filter(pk=filters.prompt_ids[0], team__in=user_teams(user=request.user))
        .first()
    )


def _query(request: HttpRequest) -> str:
    """The list's filters, without its page: what the confirm step selects from."""
    params = request.GET.copy()
    params.pop("cursor", None)
    return params.urlencode()


def _run_context(run: Any) -> dict[str, Any]:
    if run is None:
        return {"run": None}
    return {"run": run, "results": selectors.request_run_results(run=run) if run.finished else []}


def _panel_context(request: HttpRequest, prompt: Prompt, query: str) -> dict[str, Any]:
    return {
        "prompt": prompt,
        "can_edit": user_can_edit(user=request.user, team=prompt.team),
        "query": query,
        "max_requests": MAX_REQUESTS,
        **_run_context(selectors.request_run_latest(prompt_id=prompt.pk)),
    }


def list_panel(request: HttpRequest, filters: RequestFilters) -> str:
    prompt = _one_prompt(request, filters)
    if prompt is None:
        return ""
    context = _panel_context(request, prompt, _query(request))
    return render_to_string(f"{TEMPLATE}#panel", context, request=request)


def drawer_section(request: HttpRequest, detail: RequestDetail) -> str:
    team_id = detail.record.team_id
    if not user_teams(user=request.user).filter(pk=team_id).exists():
        return ""
    evaluations = selectors.request_evaluations(
        record_ids=[r.id for r in detail.row.attempts], team_id=team_id
    )
    if not evaluations:
        return ""
    return render_to_string(f"{TEMPLATE}#drawer", {"evaluations": evaluations}, request=request)


def _filters(request: HttpRequest) -> RequestFilters | None:
    form = RequestFilterForm(request.GET, teams=explorer_teams(user=request.user))
    return form.request_filters() if form.is_valid() else None


@login_required
@require_GET
def requests_confirm(request: HttpRequest) -> HttpResponse:
    """What "Evaluate these requests" would do with the list as filtered: how many requests,
    how many lack content, which evaluators run and which are left out (editors only)."""
    filters = _filters(request)
    prompt = _one_prompt(request, filters) if filters else None
    if filters is None or prompt is None:
        return HttpResponseBadRequest("Filter the list to one of your team's prompts first.")
    if not user_can_edit(user=request.user, team=prompt.team):
        raise PermissionDenied("Only the team's prompt editors evaluate requests.")
    page = request_page(
        filters=replace(filters, purpose=Purpose.GATEWAY, sort="time"), size=MAX_REQUESTS
    )
    found = [logged_request(row.attempts) for row in page.rows]
    versions, skipped = versions_for_requests(prompt.pk)
    context = {
        "prompt": prompt,
        "request_ids": [row.request_id for row in page.rows],
        "count": len(page.rows),
        "more": page.next_cursor is not None,
        "gradable": sum(isinstance(f, Logged) for f in found),
        "no_content": sum(f == "no_content" for f in found),
        "no_answer": sum(f == "no_answer" for f in found),
        "versions": versions,
        "skipped": skipped,
        "max_requests": MAX_REQUESTS,
    }
    return render(request, f"{TEMPLATE}#confirm" if request.htmx else TEMPLATE, context)


@login_required
@require_POST
def requests_run(request: HttpRequest) -> HttpResponse:
    """Start the evaluation of the confirmed requests; the panel comes back polling it."""
    try:
        prompt_id = int(request.POST.get("prompt", ""))
    except ValueError:
        return HttpResponseBadRequest("Which prompt?")
    prompt = selectors.prompt_for_user(user=request.user, pk=prompt_id)
    query = request.POST.get("query", "")
    try:
        services.request_run_start(
            prompt=prompt, request_ids=request.POST.getlist("request"), actor=request.user
        )
    except AppError as exc:
        if exc.status == 403:
            raise PermissionDenied(exc.message) from None
        context = {**_panel_context(request, prompt, query), "error": exc.message}
        return render(request, f"{TEMPLATE}#panel", context, status=exc.status)
    if not request.htmx:
        return redirect(f"{reverse('requests:list')}?{query}")
    return render(request, f"{TEMPLATE}#panel", _panel_context(request, prompt, query))


@login_required
@require_GET
def request_run(request: HttpRequest, pk: int) -> HttpResponse:
    """A run's progress (polled while it runs), then its summary."""
    run = selectors.request_run_for_user(user=request.user, pk=pk)
    return render(request, f"{TEMPLATE}#run", _run_context(run))
