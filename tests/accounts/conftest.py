from __future__ import annotations

import pytest


@pytest.fixture
def dana(team):
    """Team A's admin: the admin group creates keys and changes team settings."""
    from django.contrib.auth.models import Group

    from accounts.models import Membership, Role, User

    user = User.objects.create_user("dana", "dana@example.com", "pw")
    user.groups.set(Group.objects.filter(name__in=[Role.ADMIN, Role.TEAM_MEMBER]))
    Membership.objects.create(user=user, team=team)
    return user
