"""Evaluators attached to prompts (versioned like prompts), their cached judgments, and where
each judgment was applied (a batch row, a shadow pair, a logged request)."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from core.models import TimeStampedModel
from core.money import cost_field


class Evaluator(TimeStampedModel):
    """A named way of grading a prompt's answers. Its settings live in immutable versions; the
    newest version is the one that runs."""

    class Kind(models.TextChoices):
        PAIRWISE_JUDGE = "pairwise_judge", "Pairwise judge"
        SCORE_JUDGE = "score_judge", "Score judge (1-5)"
        JSON_FIELDS = "json_fields", "JSON fields"
        CHECK = "check", "Check"

    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="+")
    prompt = models.ForeignKey("prompts.Prompt", on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    enabled = models.BooleanField(default=True)
    # Share of the prompt's shadow pairs judged as they arrive (0: none).
    shadow_sample_rate = models.DecimalField(max_digits=5, decimal_places=4, default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["prompt", "name"]
        constraints = [
            models.UniqueConstraint(fields=["prompt", "name"], name="unique_evaluator_name"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"


class EvaluatorVersion(models.Model):
    """One immutable state of an evaluator's settings (`config`, see evals.configs)."""

    evaluator = models.ForeignKey(Evaluator, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    config = models.JSONField(default=dict)
    note = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["evaluator", "-number"]
        constraints = [
            models.UniqueConstraint(
                fields=["evaluator", "number"], name="unique_evaluator_version"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.evaluator.name} v{self.number}"


class Outcome(models.TextChoices):
    """A judgment from the cheap answer's side (pairwise), or pass/fail for one answer."""

    CHEAP = "cheap", "Cheap answer better"
    REFERENCE = "reference", "Reference better"
    TIE = "tie", "As good"
    PASS = "pass", "Pass"
    FAIL = "fail", "Fail"


class Judgment(models.Model):
    """The cached result of one evaluator version on one input and its answer(s): running the
    same version on the same input and answers again reads this row and costs nothing."""

    evaluator_version = models.ForeignKey(
        EvaluatorVersion, on_delete=models.CASCADE, related_name="judgments"
    )
    key = models.CharField(max_length=64, help_text="SHA-256 of the inputs and the answers")
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    score = models.PositiveSmallIntegerField(null=True, blank=True)
    # pairwise: {"first": {"order", "verdict", "reason"}, "second": {...}};
    # score: {"reason"}; json_fields: {"fields": {name: {"match", "cheap", "reference"}}}
    details = models.JSONField(default=dict, blank=True)
    cost_usd = cost_field()
    usage_record_ids = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["evaluator_version", "key"], name="unique_judgment_per_input"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.evaluator_version} {self.outcome}"


class Evaluation(models.Model):
    """A judgment applied somewhere: a batch row (a cheap column against the reference
    column), a shadow pair, or a logged request."""

    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="+")
    evaluator_version = models.ForeignKey(
        EvaluatorVersion, on_delete=models.CASCADE, related_name="evaluations"
    )
    judgment = models.ForeignKey(Judgment, on_delete=models.CASCADE, related_name="evaluations")
    job = models.ForeignKey(
        "playground.Job", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    row_index = models.PositiveIntegerField(null=True, blank=True)
    cheap_column = models.PositiveSmallIntegerField(null=True, blank=True)
    reference_column = models.PositiveSmallIntegerField(null=True, blank=True)
    shadow_pair = models.ForeignKey(
        "playground.ShadowPair", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    usage_record = models.ForeignKey(
        "spend.UsageRecord", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["job", "row_index", "cheap_column"]
        constraints = [
            models.UniqueConstraint(
                fields=["evaluator_version", "job", "row_index", "cheap_column"],
                condition=models.Q(job__isnull=False),
                name="one_evaluation_per_row_column",
            ),
            models.UniqueConstraint(
                fields=["evaluator_version", "shadow_pair"],
                condition=models.Q(shadow_pair__isnull=False),
                name="one_evaluation_per_shadow_pair",
            ),
            models.UniqueConstraint(
                fields=["evaluator_version", "usage_record"],
                condition=models.Q(usage_record__isnull=False),
                name="one_evaluation_per_request",
            ),
        ]
        indexes = [
            # a batch run's verdicts (the matrix, its drawer, the column win rates)
            models.Index(fields=["job", "row_index"]),
        ]

    def __str__(self) -> str:
        return f"evaluation {self.pk}: {self.judgment.outcome}"


class RequestRun(models.Model):
    """One evaluation of a selection of a prompt's logged requests (the request explorer's
    "Evaluate these requests"): the selection, the progress a page polls, and the counts of
    what was left out and why."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="+")
    prompt = models.ForeignKey("prompts.Prompt", on_delete=models.CASCADE, related_name="+")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    # the selected requests' ids, newest first, as the explorer listed them
    request_ids = models.JSONField(default=list)
    version_ids = models.JSONField(default=list)
    # evaluators left out: [{"name", "kind", "why"}] ("needs a reference", ...)
    skipped_evaluators = models.JSONField(default=list, blank=True)
    total = models.PositiveIntegerField(default=0)  # requests times evaluator versions
    done = models.PositiveIntegerField(default=0)
    judged = models.PositiveIntegerField(default=0)
    cached = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    skipped_no_content = models.PositiveIntegerField(default=0)
    skipped_no_answer = models.PositiveIntegerField(default=0)
    cost_usd = cost_field()
    error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # the explorer's latest run for a prompt
            models.Index(fields=["prompt", "-created_at"]),
        ]

    def __str__(self) -> str:
        return f"request run {self.pk} ({self.status})"

    @property
    def finished(self) -> bool:
        return self.status in (self.Status.DONE, self.Status.FAILED)

    @property
    def percent(self) -> int:
        return 100 if not self.total else min(100, round(100 * self.done / self.total))
