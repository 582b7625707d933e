from __future__ import annotations

from django.conf import settings
from django.db import models


class TimeStampedModel(models.Model):
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class AuditEvent(models.Model):
    """Who changed what, when, with the state before and after. Never updated or deleted."""

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    team = models.ForeignKey(
        "accounts.Team", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    action = models.CharField(max_length=64)
    object_type = models.CharField(max_length=64)
    object_id = models.CharField(max_length=64)
    object_repr = models.CharField(max_length=200, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # the audit trail of one object, newest first
            models.Index(fields=["object_type", "object_id", "-created_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.action} {self.object_type}:{self.object_id}"


class Heartbeat(models.Model):
    """Last time a worker or the beat scheduler proved it runs tasks."""

    name = models.CharField(max_length=64, unique=True)
    seen_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.name} at {self.seen_at:%Y-%m-%d %H:%M:%S}"


class HotGeneration(models.Model):
    """One row: moves on every write that the processes' hot caches must see (`core.hot`),
    when there is no shared cache to hold the generation."""

    value = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"hot generation {self.value}"


class IdempotencyRecord(models.Model):
    """The first result of a request sent with an `Idempotency-Key`, replayed to its retries.

    A row is reserved (`in_progress`, with a lease) before the work starts, so that two
    concurrent retries cannot both run it; the unique constraint decides the race. Rows are
    deleted after IDEMPOTENCY_TTL_SECONDS by `core.tasks.idempotency_purge`.
    """

    class State(models.TextChoices):
        IN_PROGRESS = "in_progress"
        DONE = "done"

    # Who sent it: "k:<sha256 of the team key>"; one key space per caller.
    scope = models.CharField(max_length=80)
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64)  # SHA-256 of method, path and canonical body
    state = models.CharField(max_length=16, choices=State.choices, default=State.IN_PROGRESS)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    content_type = models.CharField(max_length=100, blank=True)
    # The response's body and headers, encrypted under a key derived from the caller's bearer
    # key (core.idempotency): the site keeps no readable prompt output, even for a moment.
    sealed_response = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    locked_until = models.DateTimeField()
    expires_at = models.DateTimeField(db_index=True)  # serves the purge task's range delete

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["scope", "key"], name="unique_idempotency_key"),
        ]

    def __str__(self) -> str:
        return f"{self.scope} {self.key} ({self.state})"
