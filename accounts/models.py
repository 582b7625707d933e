from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models

from core.models import TimeStampedModel


class User(AbstractUser):
    pass


class Role(models.TextChoices):
    """Django groups, created by a migration. Groups grant rights; memberships grant teams."""

    ADMIN = "admin"
    PROMPT_EDITOR = "prompt_editor"
    PROMPT_APPROVER = "prompt_approver"
    TEAM_MEMBER = "team_member"
    FINANCE = "finance"


class Team(TimeStampedModel):
    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    members: models.ManyToManyField[User, Membership] = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="Membership", related_name="teams"
    )
    # Request/response bodies are stored only when a team opts in, and kept this long.
    store_content = models.BooleanField(default=False)
    retention_days = models.PositiveIntegerField(default=30)
    # A deactivated team's keys are refused everywhere (within HOT_CHECK_SECONDS); its data stays.
    is_active = models.BooleanField(default=True)
    # "Store no content": no prompt or answer text is kept anywhere, whatever a prompt opts
    # into: not in the usage ledger, playground comparisons, batch and job results or shadow
    # pairs; the playground holds a run's input only while it runs (docs/playground.md).
    no_content = models.BooleanField(default=False)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Membership(TimeStampedModel):
    """A person in a team. A team admin manages the team's members, keys, budgets, alert
    targets and retention on the team pages (global admins manage every team)."""

    class TeamRole(models.TextChoices):
        MEMBER = "member", "Member"
        ADMIN = "admin", "Team admin"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    team = models.ForeignKey(Team, on_delete=models.CASCADE)
    role = models.CharField(max_length=16, choices=TeamRole.choices, default=TeamRole.MEMBER)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "team"], name="unique_membership"),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.team}"


class ApiKey(TimeStampedModel):
    """A team key. Only its SHA-256 is stored; the key itself is shown once at creation."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16)
    hashed_key = models.CharField(max_length=64, unique=True)  # serves the lookup per request
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    rate_limit_rpm = models.PositiveIntegerField(null=True, blank=True)
    rate_limit_tpm = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None
