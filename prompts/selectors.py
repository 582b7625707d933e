"""Reads of prompts: the gateway's version resolution (hot-cached), and the pages' queries."""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.db.models import Prefetch, Q, QuerySet

from accounts.models import Role, Team, User
from accounts.selectors import user_has_role, user_teams
from core.db import reconnecting
from core.errors import NotFound
from core.hot import hot_get, hot_get_sync
from core.limits import LABEL_MAX, SLUG_MAX, bounded
from prompts.models import Label, Prompt, PromptVersion


def _not_found(slug: str, label: str | None, version: int | None) -> NotFound:
    if version is not None:
        return NotFound(f"Prompt {slug!r} has no version {version}.", param="version")
    return NotFound(
        f"Prompt {slug!r} not found or has no {label or Label.PRODUCTION!r} label.",
        param="prompt",
    )


def _resolve_queryset(
    *, team_id: int, slug: str, label: str | None, version: int | None
) -> QuerySet[PromptVersion]:
    versions = PromptVersion.objects.select_related("prompt").filter(
        prompt__team_id=team_id, prompt__slug=slug
    )
    if version is not None:
        return versions.filter(number=version)
    return versions.filter(labels__name=label or Label.PRODUCTION)


@reconnecting
def _resolved(
    *, team_id: int, slug: str, label: str | None, version: int | None
) -> PromptVersion | None:
    # A miss is cached too (as None) until the next write to prompts, versions or labels.
    return _resolve_queryset(team_id=team_id, slug=slug, label=label, version=version).first()


def _hot_key(team_id: int, slug: str, label: str | None, version: int | None) -> tuple:
    return ("prompt", team_id, slug, None if version is not None else label, version)


def prompt_version_resolve_sync(
    *, team_id: int, slug: str, label: str | None = None, version: int | None = None
) -> PromptVersion:
    """The version a request names: by number if given, else by label (default production).

    From the process's hot cache (`core.hot`) when it holds it. Raises NotFound, or
    BadRequest for a name longer than any stored one (never looked up, so never cached)."""
    bounded(slug, param="slug", limit=SLUG_MAX)
    bounded(label, param="label", limit=LABEL_MAX)
    found = hot_get_sync(
        _hot_key(team_id, slug, label, version),
        lambda: _resolved(team_id=team_id, slug=slug, label=label, version=version),
    )
    if found is None:
        raise _not_found(slug, label, version)
    return found


async def prompt_version_resolve(
    *, team_id: int, slug: str, label: str | None = None, version: int | None = None
) -> PromptVersion:
    """prompt_version_resolve_sync for the gateway's hot path (a miss makes one hop to the
    sync thread)."""
    bounded(slug, param="slug", limit=SLUG_MAX)
    bounded(label, param="label", limit=LABEL_MAX)
    found = await hot_get(
        _hot_key(team_id, slug, label, version),
        lambda: sync_to_async(_resolved)(team_id=team_id, slug=slug, label=label, version=version),
    )
    if found is None:
        raise _not_found(slug, label, version)
    return found


# ---------------------------------------------------------------------------------------------
# Pages and API


def prompt_list(
    *,
    user: User | None = None,
    team: Team | None = None,
    search: str = "",
    team_slug: str = "",
    tag: str = "",
    label: str = "",
) -> QuerySet[Prompt]:
    """Prompts visible to `user` (or in `team`, for a key), filtered; labels prefetched."""
    if team is not None:
        prompts = Prompt.objects.filter(team=team)
    elif user is not None and user.is_authenticated:
        prompts = Prompt.objects.filter(team__in=user_teams(user=user))
    else:
        return Prompt.objects.none()
    if search:
        prompts = prompts.filter(
            Q(slug__icontains=search) | Q(name__icontains=search) | Q(description__icontains=search)
        )
    if team_slug:
        prompts = prompts.filter(team__slug=team_slug)
    if tag:
        prompts = prompts.filter(task_tag=tag)
    if label:
        prompts = prompts.filter(labels__name=label)
    return (
        prompts.select_related("team")
        .prefetch_related(
            Prefetch("labels", queryset=Label.objects.select_related("version").order_by("name"))
        )
        .distinct()
        .order_by("team__name", "slug")
    )


def prompt_get_for_user(*, user: User, team_slug: str, slug: str) -> Prompt:
    """The prompt, if the user may see its team; else NotFound (never a hint that it exists)."""
    prompt = (
        Prompt.objects.select_related("team")
        .filter(team__in=user_teams(user=user), team__slug=team_slug, slug=slug)
        .first()
    )
    if prompt is None:
        raise NotFound(f"Prompt {slug!r} not found.")
    return prompt


def prompt_versions(*, prompt: Prompt) -> QuerySet[PromptVersion]:
    return (
        PromptVersion.objects.filter(prompt=prompt)
        .select_related("author")
        .prefetch_related("labels")
        .order_by("-number")
    )


def prompt_version_get(*, prompt: Prompt, number: int) -> PromptVersion:
    version = (
        PromptVersion.objects.select_related("prompt", "author")
        .filter(prompt=prompt, number=number)
        .first()
    )
    if version is None:
        raise NotFound(f"Prompt {prompt.slug!r} has no version {number}.", param="version")
    return version


def prompt_label_version(*, prompt: Prompt, label: str) -> PromptVersion | None:
    found = Label.objects.select_related("version").filter(prompt=prompt, name=label).first()
    return found.version if found else None


# ---------------------------------------------------------------------------------------------
# Access


def user_in_team(*, user: User, team: Team) -> bool:
    return bool(user.is_authenticated) and user_teams(user=user).filter(pk=team.pk).exists()


def user_can_edit(*, user: User, team: Team) -> bool:
    """Create prompts and versions, move labels: a prompt_editor in the team."""
    return user_has_role(user=user, role=Role.PROMPT_EDITOR) and user_in_team(user=user, team=team)


def user_can_approve(*, user: User, team: Team) -> bool:
    return user_has_role(user=user, role=Role.PROMPT_APPROVER) and user_in_team(
        user=user, team=team
    )
