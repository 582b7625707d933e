from __future__ import annotations

from pathlib import Path

import pytest

from routing.seed import seed_catalog

DATA = Path(__file__).parent / "data"


@pytest.fixture
def seeded(db) -> None:
    """The seeded catalog, tiers and default policy (no upstream needed), and an empty audit
    trail (the seed publishes the classifier prompt, which is audited)."""
    from core.models import AuditEvent

    seed_catalog(simulator_url="http://127.0.0.1:9/v1")
    AuditEvent.objects.all().delete()


@pytest.fixture
def dana(team):
    """Team A's admin: the admin group edits routing and manages keys."""
    from django.contrib.auth.models import Group

    from accounts.models import Membership, Role, User

    user = User.objects.create_user("dana", "dana@example.com", "pw")
    user.groups.set(Group.objects.filter(name__in=[Role.ADMIN, Role.TEAM_MEMBER]))
    Membership.objects.create(user=user, team=team)
    return user
