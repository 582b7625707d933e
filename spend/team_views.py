"""A team's budgets and alert targets, on the team pages (/accounts/teams/<slug>/budgets/).

Members see them read-only; a team admin (or a global admin) sets the team's and each key's
budget, with a preview of what the change would have done to the last 7 days' requests, and
adds, tests and removes alert targets. Another team's page is a 404."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from accounts.http import AuthenticatedRequest
from accounts.models import ApiKey, Team
from accounts.selectors import user_manages_team, user_teams
from core.errors import AppError
from routing.models import Tier
from spend.models import AlertTarget, Budget
from spend.previews import budget_preview
from spend.selectors import budget_status
from spend.team_admin import (
    alert_target_create,
    alert_target_delete,
    alert_target_test,
    budget_change,
)
from spend.team_forms import AlertTargetForm, BudgetForm


def _team(request: AuthenticatedRequest, slug: str, *, manage: bool = False) -> Team:
    team = get_object_or_404(user_teams(user=request.user), slug=slug)
    if manage and not user_manages_team(user=request.user, team=team):
        raise PermissionDenied("Only the team's admins change budgets and alert targets.")
    return team


def _tiers() -> list[str]:
    return list(Tier.objects.order_by("rank").values_list("name", flat=True))


def _key(team: Team, key_id: str | int | None) -> ApiKey | None:
    """The team's active key named by `key_id`; None (the team budget) when empty."""
    if not key_id:
        return None
    return get_object_or_404(ApiKey, pk=key_id, team=team, revoked_at=None)


def _context(request: AuthenticatedRequest, team: Team, **extra: Any) -> dict[str, Any]:
    tiers = _tiers()
    budgets = {
        b.api_key_id: b
        for b in Budget.objects.filter(team=team).select_related("downgrade_tier", "api_key")
    }
    team_budget = budgets.get(None)
    keys = []
    for key in ApiKey.objects.filter(team=team, revoked_at=None).order_by("name"):
        budget = budgets.get(key.pk)
        keys.append(
            {
                "key": key,
                "budget": budget,
                "status": budget_status(budget) if budget else None,
                "form": extra.pop(f"form_{key.pk}", None)
                or BudgetForm.for_budget(budget, tiers=tiers),
            }
        )
    return {
        "team": team,
        "can_manage": user_manages_team(user=request.user, team=team),
        "team_budget": team_budget,
        "team_status": budget_status(team_budget) if team_budget else None,
        "team_form": extra.pop("form_team", None)
        or BudgetForm.for_budget(team_budget, tiers=tiers),
        "keys": keys,
        "targets": AlertTarget.objects.filter(team=team).order_by("name"),
        "target_form": extra.pop("target_form", None) or AlertTargetForm(),
        **extra,
    }


@login_required
def index(request: AuthenticatedRequest, slug: str) -> HttpResponse:
    team = _team(request, slug)
    return render(request, "spend/team_budgets.html", _context(request, team))


@login_required
@require_POST
def budget_preview_view(request: AuthenticatedRequest, slug: str) -> HttpResponse:
    """The preview of the posted budget form (htmx, as the admin types)."""
    team = _team(request, slug, manage=True)
    api_key = _key(team, request.POST.get("api_key"))
    form = BudgetForm(request.POST, tiers=_tiers())
    preview = None
    if form.is_valid():
        preview = budget_preview(
            team_id=team.pk,
            api_key_id=api_key.pk if api_key else None,
            limit_usd=form.cleaned_data["limit_usd"],
            period=form.cleaned_data["period"],
            action=form.cleaned_data["action"],
        )
    return render(
        request,
        "spend/team_budgets.html#preview",
        {"preview": preview, "form": form, "downgrade_tier": form.data.get("downgrade_tier")},
    )


@login_required
@require_POST
def budget_save(request: AuthenticatedRequest, slug: str) -> HttpResponse:
    team = _team(request, slug, manage=True)
    api_key = _key(team, request.POST.get("api_key"))
    form = BudgetForm(request.POST, tiers=_tiers())
    if form.is_valid():
        try:
            budget_change(
                team=team,
                api_key=api_key,
                limit_usd=form.cleaned_data["limit_usd"],
                period=form.cleaned_data["period"],
                action=form.cleaned_data["action"],
                downgrade_tier=form.cleaned_data["downgrade_tier"] or None,
                soft_threshold=form.soft_threshold,
                actor=request.user,
            )
        except AppError as exc:
            form.add_error(None, exc.message)
    if form.errors:
        slot = f"form_{api_key.pk}" if api_key else "form_team"
        context = _context(request, team, **{slot: form})
        return render(request, "spend/team_budgets.html", context, status=400)
    scope = f"key {api_key.name}" if api_key else "the team"
    messages.success(request, f"Budget of {scope} saved.")
    return redirect("team-budgets:index", slug=team.slug)


@login_required
@require_POST
def target_add(request: AuthenticatedRequest, slug: str) -> HttpResponse:
    team = _team(request, slug, manage=True)
    form = AlertTargetForm(request.POST)
    if not form.is_valid():
        context = _context(request, team, target_form=form)
        return render(request, "spend/team_budgets.html", context, status=400)
    alert_target_create(team=team, actor=request.user, **form.cleaned_data)
    messages.success(request, f"Alert target {form.cleaned_data['name']} added.")
    return redirect("team-budgets:index", slug=team.slug)


@login_required
@require_POST
def target_test(request: AuthenticatedRequest, slug: str, target_id: int) -> HttpResponse:
    team = _team(request, slug, manage=True)
    target = get_object_or_404(AlertTarget, pk=target_id, team=team)
    result = alert_target_test(target=target, actor=request.user)
    parts = [
        f"{channel}: {outcome}"
        for channel, outcome in (("email", result.email), ("webhook", result.webhook))
        if outcome is not None
    ]
    report = messages.success if result.ok else messages.error
    report(request, f"Test alert to {target.name}: " + "; ".join(parts) + ".")
    return redirect("team-budgets:index", slug=team.slug)


@login_required
@require_POST
def target_delete(request: AuthenticatedRequest, slug: str, target_id: int) -> HttpResponse:
    team = _team(request, slug, manage=True)
    target = get_object_or_404(AlertTarget, pk=target_id, team=team)
    alert_target_delete(target=target, actor=request.user)
    messages.success(request, f"Alert target {target.name} removed.")
    return redirect("team-budgets:index", slug=team.slug)
