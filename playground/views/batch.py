"""Batch compare pages: set up, run, follow, read and export a job's results, vote on rows."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from accounts.selectors import user_teams
from core.csvexport import csv_chunks
from core.errors import AppError, ValidationFailed
from playground import datasets, hooks, selectors, services
from playground.columns import DEFAULT_COLUMNS, LETTERS, REASONING_EFFORTS, ColumnSpec
from playground.forms import columns_from_post
from playground.hooks import JobVerdicts
from playground.models import Dataset, Job, Verdict
from playground.selectors import ResultRow
from playground.views.common import flash_error, save_version_response

PAGE_SIZES = (25, 50, 100)


@login_required
def batch_list(request: HttpRequest) -> HttpResponse:
    team = selectors.team_for_user(user=request.user, slug=request.GET.get("team"))
    return render(
        request,
        "playground/batch_list.html",
        {
            "team": team,
            "teams": user_teams(user=request.user),
            "jobs": selectors.jobs_for_team(team=team, kind=Job.Kind.COMPARE),
            "api_jobs": selectors.jobs_for_team(team=team, kind=Job.Kind.API, limit=10),
        },
    )


def _batch_setup_context(request, *, team, dataset=None, version=None, mapping=None, **extra):
    variables = version.variables if version else []
    columns = dataset.columns if dataset else []
    if mapping is None:
        mapping = datasets.default_mapping(columns, variables)
    names = {v["name"] for v in variables}
    preview = list(dataset.rows.all()[:10]) if dataset else []
    return {
        "team": team,
        "teams": user_teams(user=request.user),
        "dataset": dataset,
        "version": version,
        "versions": selectors.version_choices(team=team),
        "variables": variables,
        "mapping": mapping,
        "mapped_columns": set(mapping.values()),
        "preview": preview,
        "preview_rows": [
            (
                row,
                [
                    {"value": row.values.get(c, ""), "mapped": c in mapping.values()}
                    for c in columns
                ],
            )
            for row in preview
        ],
        "mapping_rows": [
            {
                "name": v["name"],
                "required": v.get("required") and v.get("default") is None,
                "selected": mapping.get(v["name"], ""),
            }
            for v in variables
        ],
        "max_rows": settings.PLAYGROUND_DATASET_MAX_ROWS,
        "unmapped": datasets.unmapped_variables(variables, mapping),
        "expected_column": extra.pop(
            "expected_column", datasets.guess_expected_column(columns, names)
        ),
        "targets": selectors.target_choices(),
        "efforts": [e for e in REASONING_EFFORTS if e],
        "columns": [ColumnSpec(**{kind: name}) for kind, name in DEFAULT_COLUMNS],
        "max_columns": len(LETTERS),
        "datasets": Dataset.objects.filter(team=team)[:20],
        **extra,
    }


@login_required
def batch_new(request: HttpRequest) -> HttpResponse:
    """Pick a prompt version, upload a dataset (or reuse one), map columns, choose columns
    and checks, run."""
    team = selectors.team_for_user(
        user=request.user, slug=request.GET.get("team") or request.POST.get("team")
    )
    version = None
    if (version_id := request.GET.get("version") or request.POST.get("version")) and str(
        version_id
    ).isdigit():
        version = selectors.prompt_version_get(team=team, pk=int(version_id))
    dataset = None
    if (dataset_id := request.GET.get("dataset") or request.POST.get("dataset")) and str(
        dataset_id
    ).isdigit():
        dataset = selectors.dataset_get(user=request.user, pk=int(dataset_id))
    context: dict[str, Any] = {}
    status = 200
    if request.method == "POST" and request.FILES.get("file"):
        upload = request.FILES["file"]
        try:
            dataset = services.dataset_create(
                team=team,
                user=request.user,
                filename=upload.name,
                data=upload.read(settings.PLAYGROUND_DATASET_MAX_BYTES + 1),
            )
        except AppError as exc:
            groups = datasets.group_errors(
                [(e.get("line"), e.get("message", "")) for e in exc.details or []]
                if isinstance(exc.details, list)
                else []
            )
            if len(groups) == 1 and not groups[0].lines:
                # one problem with the whole file (too many rows, say) is the headline itself
                context["upload_error"], groups = groups[0].message, []
            else:
                context["upload_error"] = exc.message
            context["upload_errors"] = groups
            status = exc.status
    mapping = None
    form = request.POST if request.method == "POST" else request.GET
    if "map-submitted" in form and version is not None:
        mapping = {v["name"]: form.get(f"map-{v['name']}", "") for v in version.variables}
    elif dataset is not None and version is not None and "file" not in request.FILES:
        # a dataset used before comes back with the mapping its last run used
        kept, expected = selectors.dataset_last_setup(dataset=dataset, version=version)
        if kept:
            mapping = {**datasets.default_mapping(dataset.columns, version.variables), **kept}
        if expected:
            context["expected_column"] = expected
    ctx = _batch_setup_context(
        request, team=team, dataset=dataset, version=version, mapping=mapping, **context
    )
    if dataset is not None and version is not None:
        ctx["row_errors"] = services.dataset_row_errors(
            dataset=dataset,
            version=version,
            mapping={k: v for k, v in ctx["mapping"].items() if v},
            limit=20,
        )
        ctx["row_error_groups"] = datasets.group_errors(
            [(e.line, e.message) for e in ctx["row_errors"]]
        )
        ctx["default_name"] = selectors.job_default_name(dataset=dataset)
    template = "playground/batch_new.html"
    if request.htmx:
        part = "mapping" if request.GET.get("part") == "mapping" else "setup"
        template = f"playground/batch_new.html#{part}"
    return render(request, template, ctx, status=status)


@login_required
@require_POST
def batch_run(request: HttpRequest) -> HttpResponse:
    team = selectors.team_for_user(user=request.user, slug=request.POST.get("team"))
    try:
        version_id = request.POST.get("version", "")
        dataset_id = request.POST.get("dataset", "")
        if not (version_id.isdigit() and dataset_id.isdigit()):
            raise ValidationFailed("Pick a prompt version and a dataset.")
        version = selectors.prompt_version_get(team=team, pk=int(version_id))
        dataset = selectors.dataset_get(user=request.user, pk=int(dataset_id))
        job = services.batch_compare_create(
            team=team,
            user=request.user,
            dataset=dataset,
            version=version,
            columns=columns_from_post(request.POST),
            mapping={
                v["name"]: request.POST.get(f"map-{v['name']}", "") for v in version.variables
            },
            expected_column=request.POST.get("expected_column", ""),
            contains=request.POST.get("contains", "").strip(),
            regex=request.POST.get("regex", "").strip(),
            name=request.POST.get("name", "").strip(),
            deadline=request.POST.get("deadline") or None,
        )
    except AppError as exc:
        # Said once: the page this goes back to lists the rows (and the mapping) itself.
        lines = isinstance(exc.details, list) and any(
            isinstance(d, dict) and d.get("line") for d in exc.details
        )
        messages.error(
            request, "The run did not start: see the rows below." if lines else exc.message
        )
        query = urlencode(
            {
                "team": team.slug,
                "version": request.POST.get("version", ""),
                "dataset": request.POST.get("dataset", ""),
                **{
                    key: value
                    for key, value in request.POST.items()
                    if key.startswith("map-") or key == "map-submitted"
                },
            }
        )
        return redirect(f"{reverse('playground:batch-new')}?{query}")
    return redirect("playground:batch-detail", pk=job.pk)


def _job_for_user(request: HttpRequest, pk: int) -> Job:
    return selectors.job_get(team_ids=user_teams(user=request.user), pk=pk)


def _results_query(request: HttpRequest) -> dict[str, Any]:
    filter_ = request.GET.get("filter", "all")
    if filter_ not in selectors.RESULT_FILTERS:
        filter_ = "all"
    try:
        size = int(request.GET.get("size", 50))
    except ValueError:
        size = 50
    size = size if size in PAGE_SIZES else 50
    try:
        page = max(1, int(request.GET.get("page", 1)))
    except ValueError:
        page = 1
    baseline = request.GET.get("baseline", "")
    return {
        "filter": filter_,
        "q": request.GET.get("q", "").strip(),
        "page": page,
        "size": size,
        "baseline": baseline if baseline == "none" or baseline.isdigit() else "",
    }


def _baseline(job: Job, wanted: str, choices: list[Job]) -> Job | None:
    """The run picked as the baseline: `none`, one of `choices` by id, or by default the
    latest earlier run on the same dataset."""
    if wanted == "none":
        return None
    if wanted:
        return next((c for c in choices if str(c.pk) == wanted), None)
    return selectors.job_baseline(job=job, choices=choices)


def _deltas(totals, baseline_totals, matches: list[int | None]) -> list[dict | None]:
    """Each column against the baseline's column that ran on the same tier or model; none
    for a column the baseline did not run."""
    if not baseline_totals:
        return [None] * len(totals)
    out: list[dict | None] = []
    for t, match in zip(totals, matches, strict=True):
        b = baseline_totals[match] if match is not None and match < len(baseline_totals) else None
        if b is None:
            out.append(None)
            continue
        out.append(
            {
                "letter": b.letter,
                "label": b.label,
                "cost": t.cost_usd - b.cost_usd,
                "latency": (t.avg_latency_ms - b.avg_latency_ms)
                if t.avg_latency_ms is not None and b.avg_latency_ms is not None
                else None,
                "pass": (t.pass_rate - b.pass_rate) * 100
                if t.pass_rate is not None and b.pass_rate is not None
                else None,
            }
        )
    return out


def _row_cells(row: ResultRow, verdicts: JobVerdicts) -> list[tuple[Any, dict | None]]:
    """Each column's item with the judge's verdict on it (None for the reference column and
    for rows no evaluator judged)."""
    judged = verdicts.rows.get(row.row_index, {})
    return [(item, judged.get(index)) for index, item in enumerate(row.items)]


@login_required
def batch_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """The results matrix: rows x columns, column totals in the headers, filter and search in
    the URL, one page of rows in the DOM."""
    job = _job_for_user(request, pk)
    query = _results_query(request)
    rows, total = selectors.job_result_rows(
        job=job,
        filter=query["filter"],
        search=query["q"],
        offset=(query["page"] - 1) * query["size"],
        limit=query["size"],
    )
    totals = selectors.job_column_totals(job=job)
    baseline_choices = selectors.job_baseline_choices(job=job)
    baseline = _baseline(job, query["baseline"], baseline_choices)
    baseline_totals = selectors.job_column_totals(job=baseline) if baseline else None
    matches = selectors.job_baseline_columns(job=job, baseline=baseline) if baseline else []
    pages = max(1, -(-total // query["size"]))
    evaluation = hooks.evaluation()
    verdicts = evaluation.job_verdicts(job=job, row_indexes=[r.row_index for r in rows])
    agreement = (
        evaluation.agreement(prompt=job.prompt_version.prompt) if job.prompt_version else None
    )

    def page_url(page: int) -> str:
        return "?" + urlencode({**{k: v for k, v in query.items() if v}, "page": page})

    context = {
        "job": job,
        "rows": rows,
        "row_total": total,
        "totals": totals,
        "column_headers": list(
            zip(
                totals,
                _deltas(totals, baseline_totals, matches),
                [verdicts.columns.get(t.index) for t in totals],
                strict=True,
            )
        ),
        "judged_rows": [(r, _row_cells(r, verdicts)) for r in rows],
        "verdicts": verdicts,
        "reference_letter": LETTERS[verdicts.reference_column]
        if verdicts.reference_column is not None
        else "",
        "agreement": agreement,
        "baseline": baseline,
        "baseline_choices": baseline_choices,
        "query": query,
        "pages": pages,
        "prev_url": page_url(query["page"] - 1) if query["page"] > 1 else "",
        "next_url": page_url(query["page"] + 1) if query["page"] < pages else "",
        "filters": selectors.RESULT_FILTERS,
        "page_sizes": PAGE_SIZES,
        "variable_names": [
            v["name"] for v in (job.prompt_version.variables if job.prompt_version else [])
        ],
        "can_edit": selectors.user_can_edit(user=request.user, team=job.team),
    }
    return render(request, "playground/batch_detail.html", context)


@login_required
def batch_progress(request: HttpRequest, pk: int) -> HttpResponse:
    """The progress bar, polled by htmx every second. Once the job is over, the poll reloads
    the page so that the results table and its totals are complete."""
    job = _job_for_user(request, pk)
    response = render(request, "playground/batch_detail.html#progress", {"job": job})
    if job.finished and request.GET.get("poll"):
        response["HX-Refresh"] = "true"
    return response


@login_required
@require_POST
def batch_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    job = _job_for_user(request, pk)
    job = services.job_cancel(job=job, actor=request.user)
    if request.htmx:
        return render(request, "playground/batch_detail.html#progress", {"job": job})
    return redirect("playground:batch-detail", pk=job.pk)


def _pairwise_orders(details: dict, cheap: str, reference: str) -> list[dict[str, str]]:
    """Both position orders of a pairwise judgment, with the judge's "A"/"B" turned back into
    the matrix's column letters."""
    orders = []
    for key in ("first", "second"):
        order = details.get(key) or {}
        cheap_first = order.get("order") != "reference first"
        a, b = (cheap, reference) if cheap_first else (reference, cheap)
        verdict = order.get("verdict", "tie")
        orders.append(
            {
                "shown": f"{a}'s answer as A, {b}'s as B",
                "verdict": {"A": f"{a} better", "B": f"{b} better"}.get(verdict, "tie"),
                "reason": str(order.get("reason", "")),
            }
        )
    return orders


def _drawer_verdicts(verdicts: JobVerdicts, row: int) -> list[dict[str, Any]]:
    """What the drawer says about each judged column of a row: the outcome against the
    reference column and why (both position orders for a pairwise judge)."""
    reference = LETTERS[verdicts.reference_column or 0]
    out = []
    for column, verdict in sorted(verdicts.rows.get(row, {}).items()):
        letter = LETTERS[column]
        details = verdict.get("details") or {}
        out.append(
            {
                **verdict,
                "letter": letter,
                "reference": reference,
                "orders": _pairwise_orders(details, letter, reference)
                if verdict["kind"] == "pairwise_judge"
                else [],
                "scores": [
                    (letter, details.get("cheap") or {}),
                    (reference, details.get("reference") or {}),
                ]
                if verdict["kind"] == "score_judge"
                else [],
                "fields": sorted((details.get("fields") or {}).items())
                if verdict["kind"] == "json_fields"
                else [],
            }
        )
    return out


@login_required
def batch_row(request: HttpRequest, pk: int, row: int) -> HttpResponse:
    """The drawer: one row's input and every column's full output side by side."""
    job = _job_for_user(request, pk)
    rows, _ = selectors.job_result_rows(job=job, offset=0, limit=1, row_index=row)
    if not rows:
        raise Http404("No such row.")
    verdicts = hooks.evaluation().job_verdicts(job=job, row_indexes=[row])
    return render(
        request,
        "playground/batch_detail.html#drawer",
        {
            "job": job,
            "row": rows[0],
            "verdicts": verdicts,
            "row_verdicts": _drawer_verdicts(verdicts, row),
            "totals": selectors.job_column_totals(job=job),
            "my_vote": next((v for v in rows[0].votes if v.voter_id == request.user.pk), None),
        },
    )


@login_required
@require_POST
def batch_row_vote(request: HttpRequest, pk: int, row: int) -> HttpResponse:
    job = _job_for_user(request, pk)
    choice = request.POST.get("choice", "")
    verdict, winner = (Verdict.WINNER, int(choice)) if choice.isdigit() else (choice, None)
    try:
        services.row_vote_cast(
            job=job,
            row_index=row,
            voter=request.user,
            verdict=verdict,
            winner_column=winner,
            comment=request.POST.get("comment", ""),
        )
    except AppError as exc:
        return HttpResponse(exc.message, status=exc.status)
    return batch_row(request, pk, row)


@login_required
@require_POST
def batch_evaluate(request: HttpRequest, pk: int) -> HttpResponse:
    """Run the prompt's evaluators on a finished run's rows (the ones not judged yet)."""
    job = _job_for_user(request, pk)
    try:
        queued = services.job_evaluate_request(job=job, actor=request.user)
    except AppError as exc:
        flash_error(request, exc)
    else:
        if queued:
            messages.success(
                request, "The judge is running on the rows not judged yet; reload to see them."
            )
        else:
            messages.error(request, "This prompt has no evaluator switched on.")
    return redirect("playground:batch-detail", pk=job.pk)


@login_required
@require_POST
def batch_save_version(request: HttpRequest, pk: int, column: int) -> HttpResponse:
    job = _job_for_user(request, pk)
    if job.prompt_version is None or not 0 <= column < len(job.columns):
        raise Http404("No such column of a prompt batch.")
    return save_version_response(
        request,
        version=job.prompt_version,
        spec=ColumnSpec.from_dict(job.columns[column]),
        note=f"From playground batch {job.pk}, column {LETTERS[column]}",
        back=reverse("playground:batch-detail", args=[job.pk]),
    )


_OUTCOME_WORDS = {"cheap": "better", "tie": "as good", "reference": "worse"}


def _export_verdicts(verdicts: JobVerdicts, row: int) -> list[dict[str, Any]]:
    return [
        {**v, "column": column, "reference": verdicts.reference_column or 0}
        for column, v in sorted(verdicts.rows.get(row, {}).items())
    ]


def _verdict_reasons(verdict: dict[str, Any]) -> list[str]:
    """The judge's reasons, in order: both position orders of a pairwise judge, each answer's
    score of a score judge."""
    details = verdict.get("details") or {}
    if verdict["kind"] == "pairwise_judge":
        return [
            f"{(details.get(k) or {}).get('order', k)}: {(details.get(k) or {}).get('verdict', '')}"
            f" — {(details.get(k) or {}).get('reason', '')}"
            for k in ("first", "second")
        ]
    if verdict["kind"] == "score_judge":
        return [
            f"{k}: {(details.get(k) or {}).get('score')}/5 — {(details.get(k) or {}).get('reason', '')}"
            for k in ("cheap", "reference")
        ]
    return []


def _export_rows(job: Job):
    rows, _ = selectors.job_result_rows(job=job, offset=0, limit=10**9)
    return rows


@login_required
def batch_export(request: HttpRequest, pk: int, fmt: str) -> HttpResponse:
    """Every row with each column's output, figures and checks, the votes, and the judge's
    verdicts (each cheap column against the reference column, with both reasons)."""
    job = _job_for_user(request, pk)
    if fmt not in ("csv", "json"):
        raise Http404("Export as csv or json.")
    labels = [t.label for t in selectors.job_column_totals(job=job)]
    rows = _export_rows(job)
    verdicts = hooks.evaluation().job_verdicts(job=job)
    judged_columns = sorted(verdicts.columns)
    if fmt == "json":
        data = {
            "job": job.pk,
            "name": job.name,
            "columns": labels,
            "rows": [
                {
                    "row": r.row_index,
                    "line": r.line_number,
                    "input": r.input.get("variables", r.input),
                    "expected": r.expected,
                    "columns": [
                        None
                        if i is None
                        else {
                            "status": i.status,
                            "output": i.output,
                            "model": i.model_name,
                            "tier": i.tier_name,
                            "input_tokens": i.input_tokens,
                            "output_tokens": i.output_tokens,
                            "cost_usd": str(i.cost_usd),
                            "latency_ms": i.latency_ms,
                            "checks": i.checks,
                            "passed": i.passed,
                            "error": i.error_message,
                        }
                        for i in r.items
                    ],
                    "votes": [
                        {
                            "voter": v.voter.username,
                            "verdict": v.verdict,
                            "winner": labels[v.winner_column]
                            if v.winner_column is not None
                            else None,
                            "comment": v.comment,
                        }
                        for v in r.votes
                    ],
                    "judge": [
                        {
                            "column": labels[v["column"]],
                            "against": labels[v["reference"]],
                            "outcome": v["outcome"],
                            "evaluator": v["evaluator"],
                            "version": v["version"],
                            "reasons": _verdict_reasons(v),
                        }
                        for v in _export_verdicts(verdicts, r.row_index)
                    ],
                }
                for r in rows
            ],
        }
        response = HttpResponse(json.dumps(data, indent=2), content_type="application/json")
        response["Content-Disposition"] = f'attachment; filename="batch-{job.pk}.json"'
        return response
    header = ["row", "line", "input", "expected"]
    for letter, label in zip(LETTERS, labels, strict=False):
        header += [
            f"{letter} output ({label})",
            f"{letter} cost_usd",
            f"{letter} latency_ms",
            f"{letter} passed",
            f"{letter} error",
        ]
    header += ["votes"]
    reference = verdicts.reference_column or 0
    header += [f"{LETTERS[c]} judge vs {LETTERS[reference]}" for c in judged_columns]
    lines = []
    for r in rows:
        line = [
            r.row_index,
            r.line_number or "",
            json.dumps(r.input.get("variables", r.input), ensure_ascii=False),
            r.expected or "",
        ]
        for item in r.items:
            if item is None:
                line += ["", "", "", "", ""]
            else:
                line += [
                    item.output,
                    str(item.cost_usd),
                    item.latency_ms or "",
                    "" if item.passed is None else item.passed,
                    item.error_message,
                ]
        line.append(
            "; ".join(
                f"{v.voter.username}: {LETTERS[v.winner_column] + ' better' if v.winner_column is not None else v.verdict}"
                + (f" ({v.comment})" if v.comment else "")
                for v in r.votes
            )
        )
        judged = verdicts.rows.get(r.row_index, {})
        line += [
            _OUTCOME_WORDS.get(judged[c]["outcome"], "") if c in judged else ""
            for c in judged_columns
        ]
        lines.append(line)
    response = HttpResponse("".join(csv_chunks(header, lines)), content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="batch-{job.pk}.csv"'
    return response
