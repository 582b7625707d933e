"""The request explorer's pages: the list (`/requests/`) and a request's drawer (its own URL)."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from accounts.http import AuthenticatedRequest
from spend.explorer import (
    Route,
    Status,
    content_team_ids,
    explorer_teams,
    request_detail,
    request_page,
)
from spend.explorer_forms import RANGE_CHOICES, RequestFilterForm
from spend.explorer_hooks import drawer_sections, list_panels
from spend.models import Purpose


@login_required
@require_GET
def request_list(request: AuthenticatedRequest) -> HttpResponse:
    teams = explorer_teams(user=request.user)
    form = RequestFilterForm(request.GET, teams=teams)
    template = "spend/requests.html#results" if request.htmx else "spend/requests.html"
    context = {
        "form": form,
        "ranges": RANGE_CHOICES,
        "statuses": Status.CHOICES,
        "routes": Route.CHOICES,
        "purposes": Purpose.choices,
        "time_zone": settings.TIME_ZONE,
    }
    if not form.is_valid():
        return render(request, template, context, status=400)
    filters = form.request_filters()
    try:
        page = request_page(
            filters=filters,
            cursor=form.cleaned_data.get("cursor") or None,
            size=form.cleaned_data["page_size"],
        )
    except ValueError:
        form.add_error("cursor", "This page link is no longer valid; start from the first page.")
        return render(request, template, context, status=400)
    context["page"] = page
    context["panels"] = list_panels(request, filters)
    return render(request, template, context)


@login_required
@require_GET
def request_drawer(request: AuthenticatedRequest, request_id: str) -> HttpResponse:
    teams = explorer_teams(user=request.user)
    detail = request_detail(
        request_id=request_id,
        team_ids={t.id for t in teams},
        content_team_ids=content_team_ids(user=request.user),
    )
    if detail is None:
        raise Http404("No such request.")
    template = "spend/request_detail.html#drawer" if request.htmx else "spend/request_detail.html"
    context = {
        "detail": detail,
        "time_zone": settings.TIME_ZONE,
        "sections": drawer_sections(request, detail),
    }
    return render(request, template, context)
