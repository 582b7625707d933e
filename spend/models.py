from __future__ import annotations

from decimal import Decimal

from django.db import models

from core.money import COST_DIGITS, cost_field


class Purpose(models.TextChoices):
    GATEWAY = "gateway"
    PLAYGROUND = "playground"
    BATCH = "batch"
    CLASSIFIER = "classifier"
    SHADOW = "shadow"


class UsageRecord(models.Model):
    """One upstream call (fallback attempts included). Written once, never updated."""

    class Status(models.TextChoices):
        SUCCESS = "success"
        ERROR = "error"
        CANCELLED = "cancelled"

    created_at = models.DateTimeField(db_index=True)
    request_id = models.CharField(max_length=64, db_index=True)
    team = models.ForeignKey("accounts.Team", on_delete=models.PROTECT, related_name="+")
    api_key = models.ForeignKey(
        "accounts.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    prompt_version = models.ForeignKey(
        "prompts.PromptVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    purpose = models.CharField(max_length=16, choices=Purpose.choices, default=Purpose.GATEWAY)
    rule = models.CharField(max_length=100, blank=True)
    route_reason = models.CharField(max_length=300, blank=True)
    model = models.ForeignKey(
        "routing.Model", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    model_name = models.CharField(max_length=100)
    tier_name = models.CharField(max_length=32, blank=True)
    service_tier = models.CharField(max_length=16, default="default")
    attempt = models.PositiveSmallIntegerField(default=1)
    stream = models.BooleanField(default=False)
    input_tokens = models.PositiveIntegerField(default=0)
    cached_input_tokens = models.PositiveIntegerField(default=0)
    cache_write_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    reasoning_tokens = models.PositiveIntegerField(default=0)
    cost_usd = cost_field()
    latency_ms = models.PositiveIntegerField(default=0)
    ttft_ms = models.PositiveIntegerField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.SUCCESS)
    error_code = models.CharField(max_length=64, blank=True)
    error_message = models.CharField(max_length=500, blank=True)
    # Stored only when the team or prompt opts in; purged after the retention period.
    request_body = models.JSONField(null=True, blank=True)
    response_body = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # the dashboard and /api/v1/usage: one team's records over a time range
            models.Index(fields=["team", "created_at"]),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(cost_usd__gte=0), name="usage_cost_non_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.request_id} {self.model_name} ${self.cost_usd}"


class Budget(models.Model):
    """A team's (or one key's) spend limit for a period; spent + reserved never passes the limit."""

    class Period(models.TextChoices):
        DAILY = "daily"
        WEEKLY = "weekly"
        MONTHLY = "monthly"
        TOTAL = "total"

    class Action(models.TextChoices):
        BLOCK = "block"
        DOWNGRADE = "downgrade"

    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="budgets")
    api_key = models.ForeignKey(
        "accounts.ApiKey", null=True, blank=True, on_delete=models.CASCADE, related_name="budgets"
    )
    period = models.CharField(max_length=16, choices=Period.choices, default=Period.MONTHLY)
    limit_usd = models.DecimalField(**COST_DIGITS)
    soft_threshold = models.DecimalField(
        max_digits=4, decimal_places=3, default=Decimal("0.8"), help_text="Fraction of the limit."
    )
    action = models.CharField(max_length=16, choices=Action.choices, default=Action.BLOCK)
    downgrade_tier = models.ForeignKey(
        "routing.Tier", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    period_start = models.DateTimeField()
    spent_usd = cost_field()
    reserved_usd = cost_field()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["team"], condition=models.Q(api_key=None), name="one_team_budget"
            ),
            models.UniqueConstraint(
                fields=["api_key"], condition=models.Q(api_key__isnull=False), name="one_key_budget"
            ),
            models.CheckConstraint(
                condition=models.Q(spent_usd__gte=0) & models.Q(reserved_usd__gte=0),
                name="budget_non_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.team} {self.period} ${self.limit_usd}"


class BudgetReservation(models.Model):
    """Worst-case cost held against a budget during an upstream call; settled or swept."""

    budget = models.ForeignKey(Budget, on_delete=models.CASCADE, related_name="reservations")
    request_id = models.CharField(max_length=64)
    amount_usd = models.DecimalField(**COST_DIGITS)
    created_at = models.DateTimeField(auto_now_add=True)
    settled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            # the sweeper: open reservations older than the timeout
            models.Index(fields=["settled_at", "created_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.request_id} ${self.amount_usd}"
