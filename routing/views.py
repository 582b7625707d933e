"""Routing pages: tiers and policy rules (index), the catalog with prices, model lifecycle.

Everyone signed in reads; admins (and superusers) edit. Edits go through routing.services,
which validate and audit them."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_POST

from accounts.selectors import user_teams
from core.errors import AppError, BadRequest
from routing import selectors, services
from routing.forms import (
    MetadataFormSet,
    PriceSheetUploadForm,
    RouteTestForm,
    RuleForm,
    metadata_initial,
)
from routing.models import Model, Policy, Rule, Tier
from routing.pricesheet import PriceSheetError


def _app_errors(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """An AppError from a service becomes its status with the message (htmx swaps show it),
    or a flash message and a redirect back to the routing page."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except AppError as error:
            if request.htmx:
                return HttpResponse(error.message, status=error.status, content_type="text/plain")
            messages.error(request, error.message)
            return redirect(_index_url())

    return wrapper


def _require_editor(request: HttpRequest) -> None:
    if not selectors.user_can_edit_routing(user=request.user):
        raise PermissionDenied("Only admins edit routing.")


def _order_ids(request: HttpRequest) -> list[int]:
    raw = request.POST.get("order", "")
    try:
        return [int(part) for part in raw.split(",") if part.strip()]
    except ValueError:
        raise BadRequest("order must be a comma-separated list of ids") from None


def _moves(ids: list[int]) -> dict[int, dict[str, str]]:
    """For each id, the whole order after moving it one up or one down (for ↑/↓ buttons)."""
    moves: dict[int, dict[str, str]] = {}
    for index, pk in enumerate(ids):
        up = down = ""
        if index > 0:
            order = ids.copy()
            order[index - 1], order[index] = order[index], order[index - 1]
            up = ",".join(map(str, order))
        if index < len(ids) - 1:
            order = ids.copy()
            order[index + 1], order[index] = order[index], order[index + 1]
            down = ",".join(map(str, order))
        moves[pk] = {"up": up, "down": down}
    return moves


def _tiers_context() -> dict[str, Any]:
    tiers = list(selectors.tiers_with_models())
    models = _all_models()
    for tier in tiers:
        ids = [member.model_id for member in tier.ordered_members]
        moves = _moves(ids)
        for member in tier.ordered_members:
            member.move_up = moves[member.model_id]["up"]
            member.move_down = moves[member.model_id]["down"]
        tier.order = ",".join(map(str, ids))
        tier.addable = [m for m in models if m.pk not in ids]
    return {"tiers": tiers}


def _all_models() -> list[Model]:
    return list(Model.objects.order_by("name"))


def _rules_context(request: HttpRequest, policy: Policy | None) -> dict[str, Any]:
    if policy is None:
        return {"policy": None, "rules": []}
    rules = list(selectors.policy_rules(policy=policy))
    visible_teams = set(user_teams(user=request.user).values_list("pk", flat=True))
    moves = _moves([rule.pk for rule in rules])
    for rule in rules:
        rule.move_up = moves[rule.pk]["up"]
        rule.move_down = moves[rule.pk]["down"]
        # a rule scoped to a team the user cannot see names neither the team nor its prompt
        rule.hidden_scope = bool(
            (rule.team_id and rule.team_id not in visible_teams)
            or (rule.prompt_id and rule.prompt.team_id not in visible_teams)
        )
    return {"policy": policy, "rules": rules, "order": ",".join(str(rule.pk) for rule in rules)}


def _page_context(request: HttpRequest, policy: Policy | None) -> dict[str, Any]:
    return {
        "can_edit": selectors.user_can_edit_routing(user=request.user),
        "policies": Policy.objects.order_by("-is_active", "name"),
        "test_form": _test_form(request),
        **_tiers_context(),
        **_rules_context(request, policy),
    }


@login_required
def index(request: HttpRequest) -> HttpResponse:
    policy = selectors.policy_for_page(policy_id=request.GET.get("policy"))
    return render(request, "routing/index.html", _page_context(request, policy))


def _render_rules(request: HttpRequest, policy: Policy) -> HttpResponse:
    if request.htmx:
        return render(request, "routing/index.html#rules", _page_context(request, policy))
    return redirect(f"{_index_url()}?policy={policy.pk}#rules")


def _render_tiers(request: HttpRequest) -> HttpResponse:
    if request.htmx:
        context = {
            "can_edit": selectors.user_can_edit_routing(user=request.user),
            **_tiers_context(),
        }
        return render(request, "routing/index.html#tiers", context)
    return redirect(f"{_index_url()}#tiers")


def _index_url() -> str:
    from django.urls import reverse

    return reverse("routing:index")


# --- rules -----------------------------------------------------------------------------------


def _rule_data(form: RuleForm, formset: Any) -> dict[str, Any]:
    data = dict(form.cleaned_data)
    data["metadata_conditions"] = [
        row.cleaned_data["condition"]
        for row in formset.forms
        if row.cleaned_data.get("condition") and not row.cleaned_data.get("DELETE")
    ]
    return data


def _add_errors(form: RuleForm, error: ValidationError) -> None:
    for field, problems in error.message_dict.items():
        form.add_error(field if field in form.fields else None, problems)


def _rule_form_page(request: HttpRequest, *, policy: Policy, rule: Rule | None) -> HttpResponse:
    _require_editor(request)
    if request.method == "POST":
        form = RuleForm(request.POST)
        formset = MetadataFormSet(request.POST, prefix="meta")
        if form.is_valid() and formset.is_valid():
            data = _rule_data(form, formset)
            try:
                if rule is None:
                    rule = services.rule_create(policy=policy, data=data, actor=request.user)
                    messages.success(request, f"Rule '{rule.name}' added.")
                else:
                    services.rule_update(rule=rule, data=data, actor=request.user)
                    messages.success(request, f"Rule '{rule.name}' saved.")
            except ValidationError as error:
                _add_errors(form, error)
            else:
                return redirect(f"{_index_url()}?policy={policy.pk}#rule-{rule.pk}")
    else:
        initial = (
            RuleForm.initial_for(rule)
            if rule
            else {"action": Rule.Action.TIER, "enabled": True, "allow_tier_fallback": True}
        )
        form = RuleForm(initial=initial)
        formset = MetadataFormSet(initial=metadata_initial(rule), prefix="meta")
    return render(
        request,
        "routing/rule_form.html",
        {"form": form, "formset": formset, "policy": policy, "rule": rule},
        status=400 if request.method == "POST" else 200,
    )


@login_required
def rule_add(request: HttpRequest, policy_id: int) -> HttpResponse:
    policy = get_object_or_404(Policy, pk=policy_id)
    return _rule_form_page(request, policy=policy, rule=None)


@login_required
def rule_edit(request: HttpRequest, rule_id: int) -> HttpResponse:
    rule = get_object_or_404(Rule.objects.select_related("policy"), pk=rule_id)
    return _rule_form_page(request, policy=rule.policy, rule=rule)


@login_required
@require_POST
@_app_errors
def rule_delete(request: HttpRequest, rule_id: int) -> HttpResponse:
    _require_editor(request)
    rule = get_object_or_404(Rule.objects.select_related("policy"), pk=rule_id)
    policy = rule.policy
    services.rule_delete(rule=rule, actor=request.user)
    if not request.htmx:
        messages.success(request, f"Rule '{rule.name}' deleted.")
    return _render_rules(request, policy)


@login_required
@require_POST
@_app_errors
def rule_toggle(request: HttpRequest, rule_id: int) -> HttpResponse:
    _require_editor(request)
    rule = get_object_or_404(Rule.objects.select_related("policy"), pk=rule_id)
    services.rule_set_enabled(rule=rule, enabled=not rule.enabled, actor=request.user)
    return _render_rules(request, rule.policy)


@login_required
@require_POST
@_app_errors
def rules_reorder(request: HttpRequest, policy_id: int) -> HttpResponse:
    _require_editor(request)
    policy = get_object_or_404(Policy, pk=policy_id)
    services.rules_reorder(policy=policy, rule_ids=_order_ids(request), actor=request.user)
    return _render_rules(request, policy)


# --- tiers -----------------------------------------------------------------------------------


@login_required
@require_POST
@_app_errors
def tier_reorder(request: HttpRequest, tier_name: str) -> HttpResponse:
    _require_editor(request)
    tier = get_object_or_404(Tier, name=tier_name)
    services.tier_models_reorder(tier=tier, model_ids=_order_ids(request), actor=request.user)
    return _render_tiers(request)


@login_required
@require_POST
@_app_errors
def tier_model_add(request: HttpRequest, tier_name: str) -> HttpResponse:
    _require_editor(request)
    tier = get_object_or_404(Tier, name=tier_name)
    model = get_object_or_404(Model, pk=request.POST.get("model") or 0)
    services.tier_model_add(tier=tier, model=model, actor=request.user)
    return _render_tiers(request)


@login_required
@require_POST
@_app_errors
def tier_model_remove(request: HttpRequest, tier_name: str, model_id: int) -> HttpResponse:
    _require_editor(request)
    tier = get_object_or_404(Tier, name=tier_name)
    model = get_object_or_404(Model, pk=model_id)
    services.tier_model_remove(tier=tier, model=model, actor=request.user)
    return _render_tiers(request)


# --- catalog and lifecycle -------------------------------------------------------------------


@login_required
def catalog(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "routing/catalog.html",
        {
            "rows": selectors.catalog_with_prices(),
            "now": timezone.now(),
            "can_edit": selectors.user_can_edit_routing(user=request.user),
            "open": request.GET.get("model", ""),
        },
    )


@login_required
@require_POST
@_app_errors
def model_remap(request: HttpRequest, model_id: int) -> HttpResponse:
    _require_editor(request)
    model = get_object_or_404(Model, pk=model_id)
    result = services.model_remap_to_replacement(model=model, actor=request.user)
    if result.changed:
        where = ", ".join(
            part
            for part in (
                result.tiers and f"tiers {', '.join(result.tiers)}",
                result.rules and f"{len(result.rules)} rule(s)",
            )
            if part
        )
        messages.success(request, f"Remapped {model.name} → {result.replacement.name} in {where}.")
    else:
        messages.info(request, f"No tier or rule uses {model.name}; nothing to remap.")
    return redirect(request.POST.get("next") or _index_url())


# --- price sheets ----------------------------------------------------------------------------

MAX_SHEET_BYTES = 5 * 1024 * 1024


@login_required
def price_import(request: HttpRequest) -> HttpResponse:
    """Upload a price sheet → a dry run shows every change → Apply imports it (audited)."""
    _require_editor(request)
    context: dict[str, Any] = {"can_edit": True, "form": PriceSheetUploadForm()}
    if request.method != "POST":
        return render(request, "routing/price_import.html", context)
    if "apply" in request.POST:
        text, filename = request.POST.get("sheet", ""), request.POST.get("filename", "sheet.yaml")
        start = parse_datetime(request.POST.get("effective_from", ""))
        create_models = request.POST.get("create_models") == "1"
    else:
        form = PriceSheetUploadForm(request.POST, request.FILES)
        context["form"] = form
        if not form.is_valid():
            return render(request, "routing/price_import.html", context, status=400)
        upload = form.cleaned_data["file"]
        if upload.size > MAX_SHEET_BYTES:
            form.add_error("file", f"The file is larger than {MAX_SHEET_BYTES // 1024 // 1024} MB.")
            return render(request, "routing/price_import.html", context, status=400)
        try:
            text = upload.read().decode("utf-8")
        except UnicodeDecodeError:
            form.add_error("file", "The file is not UTF-8 text.")
            return render(request, "routing/price_import.html", context, status=400)
        filename = upload.name
        start = form.cleaned_data["effective_from"]
        create_models = form.cleaned_data["create_models"] or None
    apply = "apply" in request.POST
    try:
        result = services.price_sheet_import(
            text=text,
            filename=filename,
            actor=request.user,
            dry_run=not apply,
            effective_from=start,
            create_models=create_models,
        )
    except PriceSheetError as error:
        context.update(problems=error.problems, filename=filename)
        return render(request, "routing/price_import.html", context, status=400)
    if apply:
        messages.success(
            request,
            f"Imported {filename}: {len(result.changes)} change(s)."
            if result.applied
            else f"{filename}: nothing to change.",
        )
        return redirect("routing:catalog")
    context.update(
        result=result,
        sheet=text,
        filename=filename,
        create_models="1" if create_models else "",
    )
    return render(request, "routing/price_import.html", context)


def _test_form(request: HttpRequest, data: Any = None) -> RouteTestForm:
    """The sample-request form, offering only the teams (and their prompts) the user sees."""
    form = RouteTestForm(data)
    teams = user_teams(user=request.user)
    form.fields["team"].queryset = teams
    form.fields["prompt"].queryset = form.fields["prompt"].queryset.filter(team__in=teams)
    return form


def _tool_capabilities(tool_types: frozenset[str]) -> frozenset[str]:
    """What a request's tools require of a model (as the gateway derives it)."""
    needed = {"tools"} if tool_types else set()
    needed |= tool_types & {"computer_use", "tool_search"}
    return frozenset(needed)


@login_required
@require_POST
def route_test(request: HttpRequest) -> HttpResponse:
    """The 'test the policy' box: the active policy's decision for a sample request, from the
    router itself (as POST /api/v1/route explains it). No model is called."""
    from routing.router import RequestFeatures, estimate_tokens, route
    from routing.snapshot import snapshot_load

    form = _test_form(request, request.POST)
    context: dict[str, Any] = {"test_form": form}
    if form.is_valid():
        data = form.cleaned_data
        prompt = data["prompt"]
        team = data["team"] or (prompt.team if prompt else None)
        tool_types = frozenset(
            "computer_use" if kind.startswith("computer") else kind for kind in data["tools"]
        )
        features = RequestFeatures(
            team_id=team.pk if team else None,
            prompt_id=prompt.pk if prompt else None,
            task_tag=data["task_tag"] or (prompt.task_tag if prompt else None),
            estimated_input_tokens=estimate_tokens(data["input"]),
            tool_types=tool_types,
            required_capabilities=_tool_capabilities(tool_types),
            metadata=data["metadata"],
        )
        snapshot = snapshot_load()  # fresh: reflects an edit made a moment ago
        try:
            decision = route(features, snapshot)
        except AppError as error:
            context["route_error"] = error.message
        else:
            context.update(
                decision=decision,
                features=features,
                needs=sorted(features.required_capabilities),
                policy_name=snapshot.policy_name,
            )
    return render(request, "routing/index.html#route-result", context)
