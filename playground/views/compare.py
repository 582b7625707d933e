"""The compare page: columns streamed side by side, votes, saving a column as a version."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from asgiref.sync import sync_to_async
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from accounts.selectors import user_teams
from core.errors import AppError
from playground import selectors, services
from playground.columns import (
    DEFAULT_COLUMNS,
    LETTERS,
    REASONING_EFFORTS,
    ColumnSpec,
    replay_columns,
)
from playground.forms import (
    column_from_post,
    columns_from_post,
    form_value,
    variable_field_kind,
    variables_from_post,
)
from playground.models import Comparison, ComparisonColumn, RunStatus, Verdict
from playground.views.common import save_version_response
from spend.explorer import ReplaySource, request_replay_source


def _error_json(exc: AppError) -> JsonResponse:
    return JsonResponse(exc.as_dict(), status=exc.status)


def _variable_fields(version: Any, values: dict[str, Any] | None = None) -> list[dict]:
    values = values or {}
    fields = []
    for spec in version.variables if version else []:
        value = values.get(spec["name"], spec.get("default"))
        fields.append(
            {
                "name": spec["name"],
                "type": spec.get("type", "string"),
                "kind": variable_field_kind(spec),
                "required": spec.get("required", False) and spec.get("default") is None,
                "enum": spec.get("enum") or [],
                "description": spec.get("description", ""),
                "max_length": spec.get("max_length"),
                "value": form_value(value),
            }
        )
    return fields


def _replay_source(request: HttpRequest, team) -> ReplaySource | None:
    """The logged request named by `?request=` (the request explorer's "Open in playground"),
    if it is the team's and the user may see it."""
    request_id = request.GET.get("request", "")
    if not request_id or len(request_id) > 64:
        return None
    team_ids = {t.id for t in user_teams(user=request.user)} & {team.id}
    return request_replay_source(
        request_id=request_id, team_ids=team_ids, content_team_ids=team_ids
    )


def _replay_column_context(replay: ReplaySource) -> list[dict]:
    specs = replay_columns(
        model=replay.model_name, tier=replay.tier_name, tiers=selectors.tier_names()
    )
    return [
        {
            "position": position,
            "letter": LETTERS[position],
            "spec": spec,
            "column": None,
            "output": "",
            "ratio": None,
        }
        for position, spec in enumerate(specs)
    ]


def _compare_context(request: HttpRequest, *, team, comparison: Comparison | None) -> dict:
    columns: list[dict] = []
    replay = None
    if comparison is not None:
        db_columns = list(comparison.columns.select_related("usage_record"))
        cheapest = min(
            (c.cost_usd for c in db_columns if c.status == RunStatus.DONE and c.cost_usd > 0),
            default=None,
        )
        for column in db_columns:
            columns.append(
                {
                    "position": column.position,
                    "letter": column.letter,
                    "spec": services.column_spec_of(column),
                    "column": column,
                    "output": services.column_metrics(column)["output"],
                    "ratio": (column.cost_usd / cheapest)
                    if cheapest and column.status == RunStatus.DONE
                    else None,
                }
            )
        version = comparison.prompt_version
        values = comparison.variables
    else:
        for position, (kind, name) in enumerate(DEFAULT_COLUMNS):
            columns.append(
                {
                    "position": position,
                    "letter": LETTERS[position],
                    "spec": ColumnSpec(**{kind: name}),
                    "column": None,
                    "output": "",
                    "ratio": None,
                }
            )
        version = None
        values = {}
        version_id = request.GET.get("version")
        replay = _replay_source(request, team)
        if replay is not None:
            columns = _replay_column_context(replay)
            if not replay.content_stored and replay.prompt_version_id:
                version_id = str(replay.prompt_version_id)
        if version_id and version_id.isdigit():
            version = selectors.prompt_version_get(team=team, pk=int(version_id))
    summary = selectors.vote_summary(comparison=comparison) if comparison else None
    return {
        "replay": replay,
        "team": team,
        "teams": user_teams(user=request.user),
        "comparison": comparison,
        "version": version,
        "versions": selectors.version_choices(team=team),
        "variable_fields": _variable_fields(version, values),
        "columns": columns,
        "targets": selectors.target_choices(),
        "efforts": [e for e in REASONING_EFFORTS if e],
        "max_columns": len(LETTERS),
        "saved": selectors.comparisons_saved(team=team, limit=20),
        "summary": summary,
        "summary_columns": [
            {
                "letter": LETTERS[position],
                "wins": summary.wins.get(position, 0),
                "losses": summary.losses.get(position, 0),
            }
            for position in sorted(summary.wins)
        ]
        if summary
        else [],
        "votes": list(comparison.votes.select_related("voter", "winner")) if comparison else [],
        "my_vote": comparison.votes.filter(voter=request.user).first() if comparison else None,
        "verdicts": Verdict,
        "can_edit": selectors.user_can_edit(user=request.user, team=team),
    }


@login_required
def index(request: HttpRequest) -> HttpResponse:
    """A new comparison (default mini vs flagship) and the team's saved comparisons."""
    team = selectors.team_for_user(user=request.user, slug=request.GET.get("team"))
    return render(
        request, "playground/compare.html", _compare_context(request, team=team, comparison=None)
    )


@login_required
def comparison_detail(request: HttpRequest, pk: int) -> HttpResponse:
    comparison = selectors.comparison_get(user=request.user, pk=pk)
    context = _compare_context(request, team=comparison.team, comparison=comparison)
    return render(request, "playground/compare.html", context)


@login_required
@require_GET
def comparison_extras(request: HttpRequest, pk: int) -> HttpResponse:
    """Votes and sharing of a comparison the page has just created (an htmx partial)."""
    comparison = selectors.comparison_get(user=request.user, pk=pk)
    context = _compare_context(request, team=comparison.team, comparison=comparison)
    return render(request, "playground/compare.html#extras", context)


@login_required
@require_GET
def variables_form(request: HttpRequest) -> HttpResponse:
    """The variables form of a prompt version (or the free text fields): an htmx partial."""
    team = selectors.team_for_user(user=request.user, slug=request.GET.get("team"))
    version = None
    if (version_id := request.GET.get("version")) and version_id.isdigit():
        version = selectors.prompt_version_get(team=team, pk=int(version_id))
    return render(
        request,
        "playground/compare.html#variables",
        {"version": version, "variable_fields": _variable_fields(version), "comparison": None},
    )


def _stream_url(column: ComparisonColumn) -> str:
    url = reverse("playground:column-stream", args=[column.comparison_id, column.position])
    return f"{url}?{urlencode({'token': column.run_token})}"


@login_required
@require_POST
def comparison_create(request: HttpRequest) -> JsonResponse:
    """Run all (or, with `only`, one column of) a new comparison: JSON with each column's
    stream URL; the page opens the streams at once."""
    try:
        team = selectors.team_for_user(user=request.user, slug=request.POST.get("team"))
        version = None
        if (version_id := request.POST.get("version")) and version_id.isdigit():
            version = selectors.prompt_version_get(team=team, pk=int(version_id))
        specs = columns_from_post(request.POST)
        only = request.POST.get("only")
        comparison = services.comparison_create(
            team=team,
            user=request.user,
            columns=specs,
            prompt_version=version,
            variables=variables_from_post(request.POST, version.variables) if version else {},
            instructions=request.POST.get("instructions", ""),
            input_text=request.POST.get("input_text", ""),
            run=only is None,
        )
        if only is not None and only.isdigit():
            services.comparison_column_prepare(comparison=comparison, position=int(only))
    except AppError as exc:
        return _error_json(exc)
    return JsonResponse(
        {
            "id": comparison.pk,
            "url": reverse("playground:comparison", args=[comparison.pk]),
            "columns": [
                {"position": c.position, "stream_url": _stream_url(c)}
                for c in comparison.columns.all()
                if c.status == RunStatus.PENDING
            ],
        },
        status=201,
    )


@login_required
@require_POST
def column_run(request: HttpRequest, pk: int, position: int) -> JsonResponse:
    """Run one column again (with the settings posted), or a new column."""
    comparison = selectors.comparison_get(user=request.user, pk=pk)
    try:
        spec = (
            column_from_post(request.POST, position)
            if request.POST.get(f"col-{position}-target")
            else None
        )
        column = services.comparison_column_prepare(
            comparison=comparison, position=position, spec=spec
        )
    except AppError as exc:
        return _error_json(exc)
    return JsonResponse({"position": column.position, "stream_url": _stream_url(column)})


@login_required
@require_POST
def column_stop(request: HttpRequest, pk: int, position: int) -> JsonResponse:
    comparison = selectors.comparison_get(user=request.user, pk=pk)
    column = comparison.columns.filter(position=position).first()
    if column is None:
        raise Http404("No such column.")
    column = services.comparison_column_stop(column=column)
    return JsonResponse({"position": position, "status": column.status})


def _sse(event: dict) -> bytes:
    name = event.pop("event")
    return f"event: {name}\ndata: {json.dumps(event, default=str)}\n\n".encode()


async def column_stream(request: HttpRequest, pk: int, position: int) -> HttpResponse:
    """Server-sent events of one column's run: `delta` text as it arrives, then `done`
    (figures and the rendered metrics), `stopped` (the same, so far) or `error`. Each
    column has its own stream, so the columns run at the same time."""
    user = await request.auser()
    if not user.is_authenticated:
        return HttpResponse(status=401)
    team_ids = await sync_to_async(_team_ids)(user)
    column = await (
        ComparisonColumn.objects.select_related("comparison")
        .filter(comparison_id=pk, position=position, comparison__team_id__in=team_ids)
        .afirst()
    )
    if column is None:
        raise Http404("No such column.")
    token = request.GET.get("token", "")

    async def events():
        yield b": stream open\n\n"  # headers and a first byte go out before the model answers
        async for event in services.comparison_column_stream(column_id=column.pk, run_token=token):
            if event["event"] in ("done", "error", "stopped"):
                event["metrics_html"] = await sync_to_async(_metrics_html)(column.pk)
            yield _sse(event)

    response = StreamingHttpResponse(events(), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response


def _team_ids(user: Any) -> list[int]:
    return list(user_teams(user=user).values_list("pk", flat=True))


def _metrics_html(column_id: int) -> str:
    from django.template.loader import render_to_string

    column = ComparisonColumn.objects.get(pk=column_id)
    return render_to_string("playground/compare.html#metrics", {"c": {"column": column}})


@login_required
@require_POST
def comparison_save(request: HttpRequest, pk: int) -> HttpResponse:
    comparison = selectors.comparison_get(user=request.user, pk=pk)
    services.comparison_save(
        comparison=comparison, title=request.POST.get("title", ""), user=request.user
    )
    if request.htmx:
        return render(request, "playground/compare.html#save", {"comparison": comparison})
    messages.success(request, "Comparison saved.")
    return redirect("playground:comparison", pk=comparison.pk)


@login_required
@require_POST
def comparison_vote(request: HttpRequest, pk: int) -> HttpResponse:
    comparison = selectors.comparison_get(user=request.user, pk=pk)
    choice = request.POST.get("choice", "")
    verdict, winner = (Verdict.WINNER, int(choice)) if choice.isdigit() else (choice, None)
    error = ""
    try:
        services.vote_cast(
            comparison=comparison,
            voter=request.user,
            verdict=verdict,
            winner_position=winner,
            comment=request.POST.get("comment", ""),
        )
    except AppError as exc:
        error = exc.message
    context = _compare_context(request, team=comparison.team, comparison=comparison)
    context["vote_error"] = error
    if request.htmx:
        return render(
            request, "playground/compare.html#votes", context, status=400 if error else 200
        )
    return redirect("playground:comparison", pk=comparison.pk)


@login_required
@require_POST
def column_save_version(request: HttpRequest, pk: int, position: int) -> HttpResponse:
    """Turn a column's settings into the prompt's next version."""
    comparison = selectors.comparison_get(user=request.user, pk=pk)
    column = comparison.columns.filter(position=position).first()
    if column is None or comparison.prompt_version is None:
        raise Http404("No such column of a prompt comparison.")
    return save_version_response(
        request,
        version=comparison.prompt_version,
        spec=services.column_spec_of(column),
        note=f"From playground comparison {comparison.pk}, column {column.letter}",
        back=reverse("playground:comparison", args=[comparison.pk]),
    )
