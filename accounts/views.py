"""Team pages: the teams a user belongs to, members, API keys, content retention.

Members see their own teams (admins see all); admins create and revoke keys and change the
retention setting; anyone else gets a 404 for a team that is not theirs."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Prefetch, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from accounts.forms import ApiKeyCreateForm, ContentSettingsForm
from accounts.models import ApiKey, Membership, Role, Team, User
from accounts.selectors import user_has_role, user_teams
from accounts.services import api_key_create, api_key_revoke, team_content_settings_update


def _can_manage(user: User) -> bool:
    return user.is_superuser or user_has_role(user=user, role=Role.ADMIN)


def _team_for_user(request: HttpRequest, slug: str) -> Team:
    """The team, if the user may see it; 404 otherwise (never reveal other teams exist)."""
    return get_object_or_404(user_teams(user=request.user), slug=slug)


def _require_manager(request: HttpRequest) -> None:
    if not _can_manage(request.user):
        raise PermissionDenied("Only admins manage keys and team settings.")


@login_required
def teams(request: HttpRequest) -> HttpResponse:
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
        {"teams": rows, "mine": mine, "can_manage": _can_manage(request.user)},
    )


def _team_context(request: HttpRequest, team: Team, **extra: Any) -> dict[str, Any]:
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
    can_manage = _can_manage(request.user)
    return {
        "team": team,
        "members": members,
        "keys": keys,
        "can_manage": can_manage,
        "key_form": ApiKeyCreateForm(),
        "settings_form": ContentSettingsForm(
            initial={
                "store_content": team.store_content,
                "no_content": team.no_content,
                "retention_days": team.retention_days,
            }
        ),
        **extra,
    }


@login_required
def team_detail(request: HttpRequest, slug: str) -> HttpResponse:
    team = _team_for_user(request, slug)
    return render(request, "accounts/team.html", _team_context(request, team))


@never_cache
@login_required
@require_POST
def key_create(request: HttpRequest, slug: str) -> HttpResponse:
    """Create a key and show it once, in this response only (never stored, never shown again)."""
    team = _team_for_user(request, slug)
    _require_manager(request)
    form = ApiKeyCreateForm(request.POST)
    if not form.is_valid():
        context = _team_context(request, team, key_form=form)
        if request.htmx:  # htmx swaps 2xx answers only: show the form's errors in place
            return render(request, "accounts/team.html#keys", context)
        return render(request, "accounts/team.html", context, status=400)
    api_key, raw_key = api_key_create(
        team=team,
        name=form.cleaned_data["name"],
        created_by=request.user,
        rate_limit_rpm=form.cleaned_data["rate_limit_rpm"],
        rate_limit_tpm=form.cleaned_data["rate_limit_tpm"],
    )
    context = _team_context(request, team, new_key=raw_key, new_key_obj=api_key)
    template = "accounts/team.html#keys" if request.htmx else "accounts/team.html"
    return render(request, template, context, status=201)


@login_required
@require_POST
def key_revoke(request: HttpRequest, slug: str, key_id: int) -> HttpResponse:
    team = _team_for_user(request, slug)
    _require_manager(request)
    api_key = get_object_or_404(ApiKey, pk=key_id, team=team)
    api_key_revoke(api_key=api_key, actor=request.user)
    if request.htmx:
        return render(request, "accounts/team.html#keys", _team_context(request, team))
    messages.success(request, f"Key {api_key.name} revoked.")
    return redirect("accounts:team", slug=team.slug)


@login_required
@require_POST
def team_settings(request: HttpRequest, slug: str) -> HttpResponse:
    team = _team_for_user(request, slug)
    _require_manager(request)
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
