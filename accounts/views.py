"""Team pages: the teams a user belongs to, members and their team roles, API keys and
their rate limits, content retention.

Members see their own teams (admins see all), read-only; a team admin (or a global admin)
adds, re-roles and removes members, creates, limits and revokes keys and changes retention;
anyone else gets a 404 for a team that is not theirs. Budgets and alert targets are on the
spend app's team pages (spend/team_views.py)."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Prefetch, Q
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from accounts.forms import (
    ApiKeyCreateForm,
    ContentSettingsForm,
    KeyLimitsForm,
    MemberAddForm,
    MemberRoleForm,
)
from accounts.http import AuthenticatedRequest
from accounts.models import ApiKey, Membership, Role, Team
from accounts.selectors import user_has_role, user_manages_team, user_teams
from accounts.services import (
    MembershipError,
    api_key_create,
    api_key_limits_update,
    api_key_revoke,
    membership_add,
    membership_remove,
    membership_role_change,
    team_content_settings_update,
)


def _team_for_user(request: AuthenticatedRequest, slug: str) -> Team:
    """The team, if the user may see it; 404 otherwise (never reveal other teams exist)."""
    return get_object_or_404(user_teams(user=request.user), slug=slug)


def _managed_team(request: AuthenticatedRequest, slug: str) -> Team:
    """The team, if the user may manage it: 404 for others' teams, 403 for a member."""
    team = _team_for_user(request, slug)
    if not user_manages_team(user=request.user, team=team):
        raise PermissionDenied("Only the team's admins manage it.")
    return team


@login_required
def teams(request: AuthenticatedRequest) -> HttpResponse:
    rows = (
        user_teams(user=request.user)
        .annotate(
            member_count=Count("membership", distinct=True),
            key_count=Count("api_keys", filter=Q(api_keys__revoked_at=None), distinct=True),
        )
        .order_by("name")
    )
    mine = set(Membership.objects.filter(user=request.user).values_list("team_id", flat=True))
    return render(
        request,
        "accounts/teams.html",
        {
            "teams": rows,
            "mine": mine,
            "can_manage": request.user.is_superuser
            or user_has_role(user=request.user, role=Role.ADMIN),
        },
    )


def _team_context(request: AuthenticatedRequest, team: Team, **extra: Any) -> dict[str, Any]:
    members = (
        Membership.objects.filter(team=team)
        .select_related("user")
        .prefetch_related(Prefetch("user__groups"))
        .order_by("user__username")
    )
    keys = (
        ApiKey.objects.filter(team=team)
        .select_related("created_by")
        .order_by("revoked_at", "-created_at")
    )
    return {
        "team": team,
        "members": members,
        "keys": keys,
        "can_manage": user_manages_team(user=request.user, team=team),
        "team_roles": Membership.TeamRole.choices,
        "key_form": ApiKeyCreateForm(),
        "member_form": MemberAddForm(),
        "settings_form": ContentSettingsForm(
            initial={
                "store_content": team.store_content,
                "no_content": team.no_content,
                "retention_days": team.retention_days,
            }
        ),
        **extra,
    }


def _render_part(
    request: AuthenticatedRequest, team: Team, part: str, *, status: int = 200, **extra: Any
) -> HttpResponse:
    """One section of the team page for htmx (which swaps 2xx answers only), else the page."""
    context = _team_context(request, team, **extra)
    if request.htmx:
        return render(request, f"accounts/team.html#{part}", context, status=min(status, 299))
    return render(request, "accounts/team.html", context, status=status)


@login_required
def team_detail(request: AuthenticatedRequest, slug: str) -> HttpResponse:
    team = _team_for_user(request, slug)
    return render(request, "accounts/team.html", _team_context(request, team))


# --- members ---------------------------------------------------------------------------------


@login_required
@require_POST
def member_add(request: AuthenticatedRequest, slug: str) -> HttpResponse:
    team = _managed_team(request, slug)
    form = MemberAddForm(request.POST)
    if form.is_valid():
        try:
            membership_add(
                team=team,
                identifier=form.cleaned_data["identifier"],
                role=form.cleaned_data["role"],
                actor=request.user,
            )
        except MembershipError as exc:
            form.add_error("identifier", str(exc))
    if form.errors:
        return _render_part(request, team, "members", status=400, member_form=form)
    return _render_part(request, team, "members", status=201)


@login_required
@require_POST
def member_role(request: AuthenticatedRequest, slug: str, member_id: int) -> HttpResponse:
    team = _managed_team(request, slug)
    membership = get_object_or_404(
        Membership.objects.select_related("user"), pk=member_id, team=team
    )
    form = MemberRoleForm(request.POST)
    error = None
    if form.is_valid():
        try:
            membership_role_change(
                membership=membership, role=form.cleaned_data["role"], actor=request.user
            )
        except MembershipError as exc:
            error = str(exc)
    else:
        error = "Choose a team role."
    return _render_part(request, team, "members", status=400 if error else 200, member_error=error)


@login_required
@require_POST
def member_remove(request: AuthenticatedRequest, slug: str, member_id: int) -> HttpResponse:
    team = _managed_team(request, slug)
    membership = get_object_or_404(
        Membership.objects.select_related("user"), pk=member_id, team=team
    )
    try:
        membership_remove(membership=membership, actor=request.user)
    except MembershipError as exc:
        return _render_part(request, team, "members", status=400, member_error=str(exc))
    return _render_part(request, team, "members")


# --- keys --------------------------------------------------------------------------------------


@never_cache
@login_required
@require_POST
def key_create(request: AuthenticatedRequest, slug: str) -> HttpResponse:
    """Create a key and show it once, in this response only (never stored, never shown again)."""
    team = _managed_team(request, slug)
    form = ApiKeyCreateForm(request.POST)
    if not form.is_valid():
        return _render_part(request, team, "keys", status=400, key_form=form)
    api_key, raw_key = api_key_create(
        team=team,
        name=form.cleaned_data["name"],
        created_by=request.user,
        rate_limit_rpm=form.cleaned_data["rate_limit_rpm"],
        rate_limit_tpm=form.cleaned_data["rate_limit_tpm"],
    )
    return _render_part(request, team, "keys", status=201, new_key=raw_key, new_key_obj=api_key)


@login_required
@require_POST
def key_limits(request: AuthenticatedRequest, slug: str, key_id: int) -> HttpResponse:
    team = _managed_team(request, slug)
    api_key = get_object_or_404(ApiKey, pk=key_id, team=team, revoked_at=None)
    form = KeyLimitsForm(request.POST)
    if not form.is_valid():
        return _render_part(
            request, team, "keys", status=400, key_error=f"{api_key.name}: {form.errors.as_text()}"
        )
    api_key_limits_update(
        api_key=api_key,
        rate_limit_rpm=form.cleaned_data["rate_limit_rpm"],
        rate_limit_tpm=form.cleaned_data["rate_limit_tpm"],
        actor=request.user,
    )
    return _render_part(request, team, "keys")


@login_required
@require_POST
def key_revoke(request: AuthenticatedRequest, slug: str, key_id: int) -> HttpResponse:
    team = _managed_team(request, slug)
    api_key = get_object_or_404(ApiKey, pk=key_id, team=team)
    api_key_revoke(api_key=api_key, actor=request.user)
    if request.htmx:
        return render(request, "accounts/team.html#keys", _team_context(request, team))
    messages.success(request, f"Key {api_key.name} revoked.")
    return redirect("accounts:team", slug=team.slug)


# --- retention ---------------------------------------------------------------------------------


@login_required
@require_POST
def team_settings(request: AuthenticatedRequest, slug: str) -> HttpResponse:
    team = _managed_team(request, slug)
    form = ContentSettingsForm(request.POST)
    if not form.is_valid():
        context = _team_context(request, team, settings_form=form)
        return render(request, "accounts/team.html", context, status=400)
    team_content_settings_update(
        team=team,
        store_content=form.cleaned_data["store_content"],
        no_content=form.cleaned_data["no_content"],
        retention_days=form.cleaned_data["retention_days"],
        actor=request.user,
    )
    messages.success(request, "Content settings saved.")
    return redirect("accounts:team", slug=team.slug)
