from __future__ import annotations

import datetime as dt

from django.db.models import QuerySet

from accounts.models import Membership, Role, Team, User


def user_teams(*, user: User) -> QuerySet[Team]:
    """Teams whose data the user may see: their memberships (superusers and admins see all)."""
    if user.is_superuser or user_has_role(user=user, role=Role.ADMIN):
        return Team.objects.all()
    return Team.objects.filter(membership__user=user)


def user_has_role(*, user: User, role: str) -> bool:
    if not user.is_authenticated:
        return False
    if user.is_superuser:
        return True
    return user.groups.filter(name=role).exists()


# A team that stores no content holds a run's input only while it runs; what a run left
# behind (a comparison whose columns never started) goes after this long.
NO_CONTENT_HOLD = dt.timedelta(hours=1)


def user_manages_team(*, user: User, team: Team) -> bool:
    """Team admins manage their team (members, keys, budgets, alerts, retention); global
    admins and superusers manage every team."""
    if not user.is_authenticated:
        return False
    if user.is_superuser or user_has_role(user=user, role=Role.ADMIN):
        return True
    return Membership.objects.filter(user=user, team=team, role=Membership.TeamRole.ADMIN).exists()


def team_content_cutoffs(*, now: dt.datetime) -> dict[int, dt.datetime]:
    """Each team's retention cut-off: stored content older than it is to be purged."""
    return {
        team_id: now - (NO_CONTENT_HOLD if no_content else dt.timedelta(days=days))
        for team_id, days, no_content in Team.objects.values_list(
            "id", "retention_days", "no_content"
        )
    }
