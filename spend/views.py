"""Usage dashboard and CSV exports (HTML; the JSON API is spend.api)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET

from accounts.http import AuthenticatedRequest
from accounts.models import Team
from spend.exports import rollup_csv_rows, usage_csv_rows
from spend.forms import Range, ReplayForm, UsageFilterForm
from spend.models import ReplayRun
from spend.overview import overview_build
from spend.replay import replay_run_create, replay_runs_visible
from spend.selectors import dashboard_build, visible_teams


@login_required
@require_GET
def home(request: AuthenticatedRequest) -> HttpResponse:
    """The overview: each team's month and today, the latest failures, what needs attention."""
    return render(request, "spend/home.html", {"overview": overview_build(user=request.user)})


def _form(request: AuthenticatedRequest) -> UsageFilterForm:
    return UsageFilterForm(request.GET, teams=list(visible_teams(user=request.user)))


@login_required
@require_GET
def dashboard(request: AuthenticatedRequest) -> HttpResponse:
    form = _form(request)
    template = "spend/dashboard.html#dashboard" if request.htmx else "spend/dashboard.html"
    if not form.is_valid():
        return render(request, template, {"form": form, "ranges": Range.CHOICES}, status=400)
    filters = form.usage_filters()
    board = dashboard_build(filters=filters, teams=form.teams)
    context = {"form": form, "board": board, "ranges": Range.CHOICES}
    return render(request, template, context)


def _csv_response(request: AuthenticatedRequest, name: str, rows_fn) -> HttpResponseBase:
    form = _form(request)
    if not form.is_valid():
        return HttpResponse(
            "Invalid filters: " + form.errors.as_text(), status=400, content_type="text/plain"
        )
    filters = form.usage_filters()
    filename = f"{name}-{filters.start_day}-{filters.end_day}.csv"
    response = StreamingHttpResponse(rows_fn(filters), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@login_required
@require_GET
def export_usage(request: AuthenticatedRequest) -> HttpResponseBase:
    """Every usage record of the range and filters, one CSV line each, streamed."""
    return _csv_response(request, "usage", usage_csv_rows)


@login_required
@require_GET
def export_rollups(request: AuthenticatedRequest) -> HttpResponseBase:
    """Daily totals per team x prompt x model x tier x purpose (rollups + today's records)."""
    return _csv_response(request, "usage-daily", rollup_csv_rows)


def _replay_context(request: AuthenticatedRequest, form: ReplayForm, teams: list) -> dict:
    return {
        "form": form,
        "teams": teams,
        "runs": replay_runs_visible(team_ids={t.id for t in teams}),
    }


@login_required
def whatif(request: AuthenticatedRequest) -> HttpResponse:
    """Pick a proposed policy and a window; the replay runs as a background job."""
    teams = list(visible_teams(user=request.user))
    if request.method == "POST":
        form = ReplayForm(request.POST, teams=teams)
        if form.is_valid():
            run = replay_run_create(
                policy=form.cleaned_data["policy"],
                days=form.cleaned_data["days"],
                teams=form.cleaned_data["team"],
                user=request.user,
            )
            return redirect("spend:whatif-run", run_id=run.id)
        return render(
            request, "spend/whatif.html", _replay_context(request, form, teams), status=400
        )
    form = ReplayForm(teams=teams, initial={"days": 7})
    return render(request, "spend/whatif.html", _replay_context(request, form, teams))


@login_required
@require_GET
def whatif_run(request: AuthenticatedRequest, run_id: int) -> HttpResponse:
    teams = {t.id for t in visible_teams(user=request.user)}
    run = get_object_or_404(ReplayRun.objects.select_related("policy"), id=run_id)
    if not set(run.team_ids) <= teams:
        raise Http404("No such replay.")
    names = dict(Team.objects.filter(id__in=run.team_ids).values_list("id", "name"))
    template = "spend/whatif_run.html#run" if request.htmx else "spend/whatif_run.html"
    return render(request, template, {"run": run, "team_names": sorted(names.values())})
