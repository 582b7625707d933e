"""Who may see and do what. Roles (Django groups) grant rights, memberships grant teams, and a
team key is its team and nothing more.

Use these in views instead of ad-hoc checks, so that every page and endpoint states its
permission in one recognisable way:

HTML (function views, sync or async):
    @require_role(Role.FINANCE, Role.ADMIN)      # login required, then one of the roles (403)
    @require_login                                # any signed-in person
    team = team_for_request(request, slug=slug)   # a team the caller may see, else 404
    prompts = scope_to_teams(Prompt.objects.all(), request)              # their teams' rows only
    prompt = team_object_or_404(Prompt.objects.all(), request, slug=slug)   # 404 for others'

DRF:
    permission_classes = [IsTeamMember]              # a signed-in person or a team key
    permission_classes = [role_required(Role.PROMPT_EDITOR)]   # a person with the role; keys 403
    permission_classes = [role_required(Role.FINANCE, allow_keys_to_read=True)]
    class BudgetList(TeamScopedQuerysetMixin, ListAPIView): team_field = "team"

Async views: `await avisible_team_ids(request)`, `await ateam_for_request(request)`.

Another team's object is always "not found" (404), never "forbidden": a 403 would confirm
that it exists.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import wraps
from typing import Any, TypeVar

from asgiref.sync import iscoroutinefunction, sync_to_async
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.db.models import Model, QuerySet
from django.http import Http404, HttpRequest
from rest_framework.permissions import SAFE_METHODS, BasePermission

from accounts.models import ApiKey, Role, Team, User
from accounts.selectors import user_teams
from core.errors import BadRequest, NotFound

M = TypeVar("M", bound=Model)

# Roles whose holders see every team (superusers too).
ALL_TEAMS_ROLES = frozenset({Role.ADMIN})


# --- principals ----------------------------------------------------------------------------------


def request_api_key(request: Any) -> ApiKey | None:
    """The team key a request authenticated with (DRF's request.auth, or `request.api_key`
    set by the gateway), else None."""
    auth = getattr(request, "auth", None)
    if isinstance(auth, ApiKey):
        return auth
    key = getattr(request, "api_key", None)
    return key if isinstance(key, ApiKey) else None


def user_roles(user: Any) -> frozenset[str]:
    """The user's role names, cached on the user object for the request."""
    if not getattr(user, "is_authenticated", False) or not isinstance(user, User):
        return frozenset()
    cached = getattr(user, "_switchboard_roles", None)
    if cached is None:
        cached = frozenset(user.groups.values_list("name", flat=True))
        user._switchboard_roles = cached  # type: ignore[attr-defined]  # a per-request memo
    return cached


def has_role(user: Any, *roles: str) -> bool:
    """True if the user holds any of `roles` (superusers and admins hold every role)."""
    if not getattr(user, "is_authenticated", False) or not isinstance(user, User):
        return False
    if user.is_superuser:
        return True
    held = user_roles(user)
    return Role.ADMIN in held or any(role in held for role in roles)


# --- teams -----------------------------------------------------------------------------------------


def visible_team_ids(request: Any) -> frozenset[int]:
    """Ids of the teams whose data the caller may see: the key's team, or the user's teams
    (all teams for superusers and admins). Cached on the request."""
    cached = getattr(request, "_switchboard_team_ids", None)
    if cached is not None:
        return cached
    key = request_api_key(request)
    if key is not None:
        ids = frozenset({key.team_id})
    else:
        user = getattr(request, "user", None)
        if not getattr(user, "is_authenticated", False) or not isinstance(user, User):
            ids = frozenset()
        else:
            ids = frozenset(user_teams(user=user).values_list("pk", flat=True))
    request._switchboard_team_ids = ids
    return ids


async def avisible_team_ids(request: HttpRequest) -> frozenset[int]:
    """`visible_team_ids` for async views: resolves the lazy session user first."""
    if request_api_key(request) is None and hasattr(request, "auser"):
        request.user = await request.auser()
    return await sync_to_async(visible_team_ids)(request)


def team_for_request(request: Any, *, slug: str | None = None) -> Team:
    """The team a request is about: the key's team; or, for a person, the team named by
    `slug` (or `?team=`), or their only team. 404 for a team they may not see; 400 when they
    have several and named none."""
    key = request_api_key(request)
    if slug is None:
        params = getattr(request, "query_params", None) or getattr(request, "GET", {})
        slug = params.get("team") or None
    if key is not None:
        if slug and slug != key.team.slug:
            raise NotFound(f"Team {slug!r} not found.", param="team")
        return key.team
    teams = Team.objects.filter(pk__in=visible_team_ids(request))
    if slug:
        team = teams.filter(slug=slug).first()
        if team is None:
            raise NotFound(f"Team {slug!r} not found.", param="team")
        return team
    found = list(teams[:2])
    if not found:
        raise NotFound("You are not a member of any team.", param="team")
    if len(found) > 1:
        raise BadRequest("You belong to several teams; name one with ?team=<slug>.", param="team")
    return found[0]


async def ateam_for_request(request: HttpRequest, *, slug: str | None = None) -> Team:
    if request_api_key(request) is None and hasattr(request, "auser"):
        request.user = await request.auser()
    return await sync_to_async(team_for_request)(request, slug=slug)


def scope_to_teams(queryset: QuerySet[M], request: Any, *, field: str = "team") -> QuerySet[M]:
    """Only the rows of teams the caller may see. `field` is the path to the team
    (`"team"`, `"prompt__team"`)."""
    return queryset.filter(**{f"{field}__in": visible_team_ids(request)})


def team_object_or_404(
    queryset: QuerySet[M], request: Any, *, field: str = "team", **lookup: Any
) -> M:
    """One object of a team the caller may see; another team's object is a 404."""
    found = scope_to_teams(queryset, request, field=field).filter(**lookup).first()
    if found is None:
        raise Http404("Not found.")
    return found


class TeamScopedQuerysetMixin:
    """For DRF generic views and Django class-based views: `get_queryset()` keeps only the
    rows of the caller's teams. Set `team_field` when the team is not `team`."""

    team_field = "team"
    request: Any

    def get_queryset(self) -> QuerySet[Any]:
        queryset = super().get_queryset()  # type: ignore[misc]
        return scope_to_teams(queryset, self.request, field=self.team_field)


# --- decorators for HTML views -------------------------------------------------------------------

View = TypeVar("View", bound=Callable[..., Any])


def _check_roles(request: HttpRequest, roles: Iterable[str]) -> Any:
    """None if allowed; a redirect to the login page for anonymous users; 403 otherwise."""
    user = request.user
    if not user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    roles = tuple(roles)
    if roles and not has_role(user, *roles):
        raise PermissionDenied("Your role does not allow this.")
    return None


def require_role(*roles: str) -> Callable[[View], View]:
    """A signed-in person holding one of `roles` (none given: any signed-in person).
    Anonymous users go to the login page; others get 403. Works on sync and async views."""

    def decorator(view: View) -> View:
        if iscoroutinefunction(view):

            @wraps(view)
            async def async_wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
                request.user = await request.auser()
                refused = await sync_to_async(_check_roles)(request, roles)
                return refused or await view(request, *args, **kwargs)

            async_wrapper.required_roles = roles  # type: ignore[attr-defined]
            return async_wrapper  # type: ignore[return-value]

        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            return _check_roles(request, roles) or view(request, *args, **kwargs)

        wrapper.required_roles = roles  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorator


require_login = require_role()


# --- DRF permission classes ------------------------------------------------------------------------


class IsTeamMember(BasePermission):
    """A team key, or a signed-in person (what they see is then scoped to their teams)."""

    message = "Authentication required: a team key or a signed-in user."

    def has_permission(self, request: Any, view: Any) -> bool:
        if request_api_key(request) is not None:
            return True
        return bool(getattr(request.user, "is_authenticated", False))


class PeopleOnly(BasePermission):
    """A signed-in person; team keys are refused (403)."""

    message = "This needs a signed-in user; team keys cannot do it."

    def has_permission(self, request: Any, view: Any) -> bool:
        if request_api_key(request) is not None:
            return False
        return bool(getattr(request.user, "is_authenticated", False))


class KeysReadOnly(BasePermission):
    """Keys and people may read; only people may write (POST/PUT/PATCH/DELETE)."""

    message = "Team keys can only read here; changes need a signed-in user."

    def has_permission(self, request: Any, view: Any) -> bool:
        if request_api_key(request) is not None:
            return request.method in SAFE_METHODS
        return bool(getattr(request.user, "is_authenticated", False))


def role_required(*roles: str, allow_keys_to_read: bool = False) -> type[BasePermission]:
    """A DRF permission class: a person holding one of `roles`. Keys are refused, except for
    safe methods (GET/HEAD/OPTIONS) when `allow_keys_to_read`."""

    class RoleRequired(BasePermission):
        message = f"This needs one of the roles: {', '.join(roles)}."
        required_roles = roles

        def has_permission(self, request: Any, view: Any) -> bool:
            if request_api_key(request) is not None:
                return allow_keys_to_read and request.method in SAFE_METHODS
            return has_role(request.user, *roles)

    RoleRequired.__name__ = RoleRequired.__qualname__ = "RoleRequired_" + "_".join(roles)
    return RoleRequired
