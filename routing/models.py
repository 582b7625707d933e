from __future__ import annotations

from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import models

from core.models import TimeStampedModel
from core.money import price_field
from core.patterns import pattern_problem


class Provider(TimeStampedModel):
    """An OpenAI-compatible upstream. The key lives in the environment variable named here."""

    name = models.CharField(max_length=64, unique=True)
    base_url = models.URLField(max_length=300)
    api_key_env = models.CharField(
        max_length=100, blank=True, help_text="Name of the environment variable holding the key."
    )
    timeout_seconds = models.DecimalField(max_digits=6, decimal_places=2, default=Decimal("60"))
    batch_api = models.BooleanField(
        default=True,
        help_text="It serves OpenAI's Files and Batches APIs (work that can wait goes there at "
        "the batch price); without them, such work is sent with service_tier flex.",
    )

    def __str__(self) -> str:
        return self.name


class Tier(models.Model):
    class Name(models.TextChoices):
        NANO = "nano"
        MINI = "mini"
        FLAGSHIP = "flagship"
        REASONING = "reasoning"

    name = models.CharField(max_length=32, unique=True)
    rank = models.PositiveSmallIntegerField(help_text="Cheapest first; escalation goes up by rank.")
    description = models.CharField(max_length=200, blank=True)
    reasoning_effort = models.CharField(max_length=16, blank=True)

    class Meta:
        ordering = ["rank"]

    def __str__(self) -> str:
        return self.name


class Capability(models.TextChoices):
    """What a request may require of a model; each maps to `Model.supports_<value>`."""

    TOOLS = "tools"
    TOOL_SEARCH = "tool_search"
    COMPUTER_USE = "computer_use"
    JSON_SCHEMA = "json_schema"
    VISION = "vision"
    REASONING = "reasoning"


class Model(TimeStampedModel):
    """A catalog entry. Prices live in `Price` rows with effective dates."""

    provider = models.ForeignKey(Provider, on_delete=models.PROTECT, related_name="models")
    name = models.CharField(max_length=100, unique=True)
    tier = models.ForeignKey(
        Tier, null=True, blank=True, on_delete=models.SET_NULL, related_name="catalog_models"
    )
    context_window = models.PositiveIntegerField(default=400_000)
    max_output_tokens = models.PositiveIntegerField(default=128_000)
    supports_tools = models.BooleanField(default=True)
    supports_tool_search = models.BooleanField(default=False)
    supports_computer_use = models.BooleanField(default=False)
    supports_json_schema = models.BooleanField(default=True)
    supports_vision = models.BooleanField(default=True)
    supports_reasoning = models.BooleanField(default=True)
    timeout_seconds = models.DecimalField(max_digits=6, decimal_places=2, null=True, blank=True)
    shutdown_date = models.DateField(null=True, blank=True)
    replacement = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="replaces"
    )
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["tier__rank", "name"]

    def __str__(self) -> str:
        return self.name

    def supports(self, capability: str) -> bool:
        return bool(getattr(self, f"supports_{capability}", False))


class Price(models.Model):
    """Per-1M-token prices in force from `effective_from` until the next row for the model."""

    model = models.ForeignKey(Model, on_delete=models.CASCADE, related_name="prices")
    effective_from = models.DateTimeField()
    input_per_mtok = price_field()
    cached_input_per_mtok = price_field()
    cache_write_per_mtok = price_field(null=True, blank=True, help_text="Blank: bills as input.")
    output_per_mtok = price_field()
    long_context_threshold = models.PositiveIntegerField(null=True, blank=True)
    long_context_input_multiplier = models.DecimalField(
        max_digits=6, decimal_places=3, default=Decimal("1")
    )
    long_context_output_multiplier = models.DecimalField(
        max_digits=6, decimal_places=3, default=Decimal("1")
    )
    source = models.CharField(
        max_length=200, blank=True, help_text="Where the row came from: seed, admin, a price sheet."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["model", "-effective_from"]
        constraints = [
            models.UniqueConstraint(fields=["model", "effective_from"], name="unique_price_start"),
            models.CheckConstraint(
                condition=models.Q(input_per_mtok__gte=0)
                & models.Q(cached_input_per_mtok__gte=0)
                & models.Q(output_per_mtok__gte=0),
                name="price_non_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.model} from {self.effective_from:%Y-%m-%d}"


class TierModel(models.Model):
    """A tier's models in order: position 0 is the primary, the rest are fallbacks."""

    tier = models.ForeignKey(Tier, on_delete=models.CASCADE, related_name="members")
    model = models.ForeignKey(Model, on_delete=models.CASCADE, related_name="tier_memberships")
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["tier__rank", "position"]
        constraints = [
            models.UniqueConstraint(fields=["tier", "model"], name="unique_tier_model"),
        ]

    def __str__(self) -> str:
        return f"{self.tier}[{self.position}] {self.model}"


class Policy(TimeStampedModel):
    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    is_active = models.BooleanField(default=False, help_text="The gateway uses the active policy.")

    class Meta:
        verbose_name_plural = "policies"
        constraints = [
            models.UniqueConstraint(
                fields=["is_active"], condition=models.Q(is_active=True), name="one_active_policy"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Rule(models.Model):
    """One policy rule: every condition set must match (blank means 'any'); first match wins."""

    class Action(models.TextChoices):
        TIER = "tier"
        MODEL = "model"
        CLASSIFY = "classify"

    class MetadataOp(models.TextChoices):
        EQ = "eq"
        IN = "in"
        GT = "gt"
        LT = "lt"
        REGEX = "regex"

    policy = models.ForeignKey(Policy, on_delete=models.CASCADE, related_name="rules")
    position = models.PositiveSmallIntegerField(default=0)
    name = models.CharField(max_length=100)
    enabled = models.BooleanField(default=True)
    # conditions
    team = models.ForeignKey("accounts.Team", null=True, blank=True, on_delete=models.CASCADE)
    prompt = models.ForeignKey("prompts.Prompt", null=True, blank=True, on_delete=models.CASCADE)
    task_tags = models.JSONField(default=list, blank=True, help_text='e.g. ["classification"]')
    min_input_tokens = models.PositiveIntegerField(null=True, blank=True)
    max_input_tokens = models.PositiveIntegerField(null=True, blank=True)
    tools_present = models.BooleanField(null=True, blank=True)
    tool_types = models.JSONField(default=list, blank=True, help_text='e.g. ["computer_use"]')
    required_capability = models.CharField(max_length=32, blank=True)
    metadata_conditions = models.JSONField(
        default=list,
        blank=True,
        help_text='[{"key": "region", "op": "eq|in|gt|lt|regex", "value": …}]',
    )
    # action
    action = models.CharField(max_length=16, choices=Action.choices, default=Action.TIER)
    target_tier = models.ForeignKey(
        Tier, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    target_model = models.ForeignKey(
        Model, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    escalate_on_failed_check = models.BooleanField(
        default=False, help_text="Invalid JSON, empty output or refusal → next tier."
    )
    allow_tier_fallback = models.BooleanField(
        default=True, help_text="When every model of the tier fails, try the next tier."
    )

    class Meta:
        ordering = ["policy", "position", "id"]

    def __str__(self) -> str:
        return f"{self.policy} #{self.position} {self.name}"

    def clean(self) -> None:
        """The rule's shape: an action has its target, conditions are well-formed."""
        from prompts.models import TaskTag

        errors: dict[str, list[str]] = {}
        if self.action == self.Action.TIER and not self.target_tier_id:
            errors.setdefault("target_tier", []).append("A tier action needs a target tier.")
        if self.action == self.Action.MODEL and not self.target_model_id:
            errors.setdefault("target_model", []).append("A model action needs a target model.")
        if not isinstance(self.task_tags, list) or any(
            tag not in TaskTag.values for tag in self.task_tags
        ):
            errors.setdefault("task_tags", []).append(
                f"Task tags must be a list of: {', '.join(TaskTag.values)}."
            )
        if not isinstance(self.tool_types, list) or not all(
            isinstance(tool, str) and tool for tool in self.tool_types
        ):
            errors.setdefault("tool_types", []).append("Tool types must be a list of names.")
        if self.required_capability and self.required_capability not in Capability.values:
            errors.setdefault("required_capability", []).append(
                f"Unknown capability; expected one of {', '.join(Capability.values)}."
            )
        if (
            self.min_input_tokens is not None
            and self.max_input_tokens is not None
            and self.min_input_tokens > self.max_input_tokens
        ):
            errors.setdefault("max_input_tokens", []).append(
                "The maximum must not be below the minimum."
            )
        problems = metadata_condition_problems(self.metadata_conditions)
        if problems:
            errors["metadata_conditions"] = problems
        if self.team_id and self.prompt_id and self.prompt.team_id != self.team_id:
            errors.setdefault("prompt", []).append("The prompt belongs to another team.")
        if errors:
            raise ValidationError(errors)


def metadata_condition_problems(conditions: object) -> list[str]:
    """What is wrong with a rule's metadata conditions ([] when they are well-formed).

    Shape: [{"key": str, "op": "eq|in|gt|lt|regex", "value": ...}] where `in` takes a list,
    `gt`/`lt` a number, `regex` a valid regular expression, `eq` any JSON scalar."""
    if not isinstance(conditions, list):
        return ["Metadata conditions must be a list."]
    problems = []
    for index, condition in enumerate(conditions, start=1):
        where = f"Condition {index}"
        if not isinstance(condition, dict) or set(condition) != {"key", "op", "value"}:
            problems.append(f"{where}: needs exactly key, op and value.")
            continue
        key, op, value = condition["key"], condition["op"], condition["value"]
        if not isinstance(key, str) or not key:
            problems.append(f"{where}: the key must be a non-empty string.")
        if op not in Rule.MetadataOp.values:
            problems.append(f"{where}: op must be one of {', '.join(Rule.MetadataOp.values)}.")
        elif op == "in" and not isinstance(value, list):
            problems.append(f"{where}: 'in' needs a list of values.")
        elif op in ("gt", "lt") and (isinstance(value, bool) or not isinstance(value, int | float)):
            problems.append(f"{where}: '{op}' needs a number.")
        elif op == "regex" and (problem := pattern_problem(value)):
            problems.append(f"{where}: invalid regular expression ({problem}).")
    return problems


class ShutdownAlert(models.Model):
    """A lifecycle alert that was sent: one per model, shutdown date and lead time, ever."""

    model = models.ForeignKey(Model, on_delete=models.CASCADE, related_name="shutdown_alerts")
    shutdown_date = models.DateField()
    days_before = models.PositiveSmallIntegerField()
    sent_at = models.DateTimeField(auto_now_add=True)
    recipients = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-sent_at"]
        constraints = [
            # "each alert is sent once": the insert that claims the alert is the guard
            models.UniqueConstraint(
                fields=["model", "shutdown_date", "days_before"], name="unique_shutdown_alert"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.model} shuts down {self.shutdown_date}: {self.days_before}-day alert"
