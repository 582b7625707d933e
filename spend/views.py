"""Usage dashboard and CSV exports (HTML; the JSON API is spend.api)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from spend.exports import rollup_csv_rows, usage_csv_rows
from spend.forms import Range, UsageFilterForm
from spend.selectors import dashboard_build, visible_teams


def _form(request: HttpRequest) -> UsageFilterForm:
    return UsageFilterForm(request.GET, teams=list(visible_teams(user=request.user)))


@login_required
@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    form = _form(request)
    template = "spend/dashboard.html#dashboard" if request.htmx else "spend/dashboard.html"
    if not form.is_valid():
        return render(request, template, {"form": form, "ranges": Range.CHOICES}, status=400)
    filters = form.usage_filters()
    board = dashboard_build(filters=filters, teams=form.teams)
    context = {"form": form, "board": board, "ranges": Range.CHOICES}
    return render(request, template, context)


def _csv_response(request: HttpRequest, name: str, rows_fn) -> HttpResponse:
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
def export_usage(request: HttpRequest) -> HttpResponse:
    """Every usage record of the range and filters, one CSV line each, streamed."""
    return _csv_response(request, "usage", usage_csv_rows)


@login_required
@require_GET
def export_rollups(request: HttpRequest) -> HttpResponse:
    """Daily totals per team x prompt x model x tier x purpose (rollups + today's records)."""
    return _csv_response(request, "usage-daily", rollup_csv_rows)
