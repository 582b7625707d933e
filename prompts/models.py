from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from core.models import TimeStampedModel


class TaskTag(models.TextChoices):
    CLASSIFICATION = "classification"
    EXTRACTION = "extraction"
    SUMMARIZATION = "summarization"
    ROUTING = "routing"
    GENERATION = "generation"
    REASONING = "reasoning"


class Prompt(TimeStampedModel):
    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="prompts")
    slug = models.SlugField(max_length=100)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    task_tag = models.CharField(max_length=32, choices=TaskTag.choices, default=TaskTag.GENERATION)
    requires_approval = models.BooleanField(
        default=False, help_text="A version needs an approver's OK before it takes production."
    )
    store_content = models.BooleanField(default=False)
    shadow_sample_rate = models.DecimalField(
        max_digits=4,
        decimal_places=3,
        default=Decimal("0"),
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("1"))],
    )
    # Sent upstream as `prompt_cache_key` by every version instead of the derived one
    # (prompts.caching): lets versions, or prompts, that share a static prefix share a cache.
    cache_key = models.CharField(
        max_length=64,
        blank=True,
        help_text="prompt_cache_key for every version; blank: one per version, derived.",
    )

    class Meta:
        ordering = ["team", "slug"]
        constraints = [
            models.UniqueConstraint(fields=["team", "slug"], name="unique_prompt_slug_per_team"),
        ]

    def __str__(self) -> str:
        return self.slug


class PromptVersion(models.Model):
    """Immutable once saved: a change is a new version."""

    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    system_template = models.TextField(blank=True)
    user_template = models.TextField(blank=True)
    few_shot = models.JSONField(default=list, blank=True, help_text='[{"role", "content"}]')
    variables = models.JSONField(
        default=list,
        blank=True,
        help_text='[{"name", "type", "required", "default", "enum", "max_length", "description"}]',
    )
    tier = models.CharField(max_length=32, blank=True, help_text="Tier name, or blank for auto.")
    model_name = models.CharField(max_length=100, blank=True)
    temperature = models.DecimalField(max_digits=3, decimal_places=2, null=True, blank=True)
    max_output_tokens = models.PositiveIntegerField(null=True, blank=True)
    reasoning_effort = models.CharField(max_length=16, blank=True)
    tools = models.JSONField(default=list, blank=True)
    response_schema = models.JSONField(null=True, blank=True)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    change_note = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["prompt", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["prompt", "number"], name="unique_version_number"),
        ]

    def __str__(self) -> str:
        return f"{self.prompt.slug} v{self.number}"

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None and not kwargs.get("force_insert"):
            raise ValueError("A prompt version is immutable; create a new version instead.")
        super().save(*args, **kwargs)


class Label(models.Model):
    """A movable name (production, staging, custom) pointing at one version of a prompt."""

    PRODUCTION = "production"
    STAGING = "staging"

    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="labels")
    name = models.SlugField(max_length=64)
    version = models.ForeignKey(PromptVersion, on_delete=models.PROTECT, related_name="labels")
    # where the label pointed before its last move: what "rollback" moves it back to
    previous_version = models.ForeignKey(
        PromptVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["prompt", "name"]
        constraints = [
            models.UniqueConstraint(fields=["prompt", "name"], name="unique_label_per_prompt"),
        ]

    def __str__(self) -> str:
        return f"{self.prompt.slug}@{self.name} → v{self.version.number}"


class ApprovalRequest(TimeStampedModel):
    class Status(models.TextChoices):
        PENDING = "pending"
        APPROVED = "approved"
        REJECTED = "rejected"

    version = models.ForeignKey(PromptVersion, on_delete=models.CASCADE, related_name="approvals")
    label_name = models.SlugField(max_length=64, default=Label.PRODUCTION)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    comment = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # publishing twice while a request waits returns the waiting request
            models.UniqueConstraint(
                fields=["version", "label_name"],
                condition=models.Q(status="pending"),
                name="one_pending_approval_per_version_label",
            ),
        ]
        indexes = [
            # the approvals queue: pending requests, newest first
            models.Index(fields=["status", "-created_at"], name="approval_status_created"),
        ]

    def __str__(self) -> str:
        return f"{self.version} → {self.label_name}: {self.status}"
