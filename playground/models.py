"""Comparisons (2-4 columns streamed side by side), votes, datasets, batch jobs and shadow pairs.

Batch compare and the jobs API share one model pair, `Job` / `JobItem`, and one runner
(`playground.runner`). DESIGN.md lists the jobs API under gateway/; it lives here because the
batch runner does and the gateway's migrations belong to the gateway app.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from core.models import TimeStampedModel
from core.money import ZERO, MoneyCounterField, cost_field

MAX_COLUMNS = 4


class Verdict(models.TextChoices):
    """A vote on a comparison, a batch row or a shadow pair."""

    WINNER = "winner", "This column is better"
    TIE = "tie", "Tie"
    ALL_BAD = "all_bad", "All bad"


class RunStatus(models.TextChoices):
    IDLE = "idle"
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    ERROR = "error"
    STOPPED = "stopped"


class Comparison(TimeStampedModel):
    """One input (a prompt version with variables, or free text) run on 2-4 columns.

    Every comparison has a URL that the team can open; `saved` ones are listed with a title."""

    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="+")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    title = models.CharField(max_length=200, blank=True)
    saved = models.BooleanField(default=False)
    prompt_version = models.ForeignKey(
        "prompts.PromptVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    variables = models.JSONField(default=dict, blank=True)
    # Free text mode (no prompt version): instructions + one user message.
    instructions = models.TextField(blank=True)
    input_text = models.TextField(blank=True)
    # Set when the retention purge cleared the input and the outputs; figures and votes stay.
    content_purged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # the saved comparisons list of a team, newest first
            models.Index(fields=["team", "saved", "-created_at"]),
            # the retention purge: a team's comparisons still holding content, by age
            models.Index(
                fields=["team", "created_at"],
                condition=models.Q(content_purged_at__isnull=True),
                name="comparison_content_by_age",
            ),
        ]

    def __str__(self) -> str:
        return self.title or f"Comparison {self.pk}"


class ComparisonColumn(models.Model):
    """One tier or model of a comparison, with the settings it ran with and its last result."""

    comparison = models.ForeignKey(Comparison, on_delete=models.CASCADE, related_name="columns")
    position = models.PositiveSmallIntegerField()
    tier = models.CharField(max_length=32, blank=True)
    model_name = models.CharField(max_length=100, blank=True)
    temperature = models.DecimalField(max_digits=3, decimal_places=2, null=True, blank=True)
    reasoning_effort = models.CharField(max_length=16, blank=True)
    # the last run
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.IDLE)
    run_token = models.CharField(max_length=32, blank=True)
    output = models.TextField(blank=True)
    error = models.CharField(max_length=500, blank=True)
    model_used = models.CharField(max_length=100, blank=True)
    tier_used = models.CharField(max_length=32, blank=True)
    input_tokens = models.PositiveIntegerField(default=0)
    cached_input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    reasoning_tokens = models.PositiveIntegerField(default=0)
    cost_usd = cost_field()
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    ttft_ms = models.PositiveIntegerField(null=True, blank=True)
    json_valid = models.BooleanField(null=True, blank=True)
    schema_valid = models.BooleanField(null=True, blank=True)
    schema_error = models.CharField(max_length=500, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    usage_record = models.ForeignKey(
        "spend.UsageRecord", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["comparison", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["comparison", "position"], name="unique_comparison_column"
            ),
            models.CheckConstraint(
                condition=models.Q(position__lt=MAX_COLUMNS), name="at_most_four_columns"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.comparison_id}:{self.letter} {self.target_label}"

    @property
    def letter(self) -> str:
        return "ABCD"[self.position]

    @property
    def target_label(self) -> str:
        return self.model_name or self.tier or "auto"


class Vote(TimeStampedModel):
    """One person's verdict on one comparison (voting again replaces it)."""

    comparison = models.ForeignKey(Comparison, on_delete=models.CASCADE, related_name="votes")
    voter = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    verdict = models.CharField(max_length=16, choices=Verdict.choices)
    winner = models.ForeignKey(
        ComparisonColumn, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    comment = models.CharField(max_length=1000, blank=True)

    class Meta:
        ordering = ["-updated_at"]
        constraints = [
            models.UniqueConstraint(fields=["comparison", "voter"], name="one_vote_per_comparison"),
            models.CheckConstraint(
                condition=models.Q(verdict="winner", winner__isnull=False)
                | (~models.Q(verdict="winner") & models.Q(winner__isnull=True)),
                name="vote_winner_iff_verdict_winner",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.voter_id} on {self.comparison_id}: {self.verdict}"


class Dataset(TimeStampedModel):
    """An uploaded CSV or JSONL file, validated and stored row by row."""

    class Format(models.TextChoices):
        CSV = "csv"
        JSONL = "jsonl"

    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="+")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    name = models.CharField(max_length=200)
    format = models.CharField(max_length=8, choices=Format.choices)
    columns = models.JSONField(default=list, help_text="Column names in file order.")
    row_count = models.PositiveIntegerField(default=0)
    size_bytes = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.name


class DatasetRow(models.Model):
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="rows")
    index = models.PositiveIntegerField()
    line_number = models.PositiveIntegerField(help_text="Line in the uploaded file.")
    values = models.JSONField(default=dict)

    class Meta:
        ordering = ["dataset", "index"]
        constraints = [
            models.UniqueConstraint(fields=["dataset", "index"], name="unique_dataset_row"),
        ]

    def __str__(self) -> str:
        return f"{self.dataset_id}#{self.index}"


class Job(TimeStampedModel):
    """A batch of model calls run in the background: a batch compare over a dataset (rows x
    columns) or a job submitted through `POST /api/v1/jobs` (one column)."""

    class Kind(models.TextChoices):
        COMPARE = "compare", "Batch compare"
        API = "api", "Jobs API"

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        CANCELLING = "cancelling"
        DONE = "done"
        CANCELLED = "cancelled"
        FAILED = "failed"

    FINISHED = (Status.DONE, Status.CANCELLED, Status.FAILED)

    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    name = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    api_key = models.ForeignKey(
        "accounts.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    idempotency_key = models.CharField(max_length=200, blank=True)
    request_hash = models.CharField(max_length=64, blank=True)
    prompt_version = models.ForeignKey(
        "prompts.PromptVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    dataset = models.ForeignKey(
        Dataset, null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs"
    )
    columns = models.JSONField(default=list, help_text='[{"tier", "model", "temperature", ...}]')
    mapping = models.JSONField(default=dict, blank=True, help_text="variable -> dataset column")
    expected_column = models.CharField(max_length=200, blank=True)
    checks = models.JSONField(default=dict, blank=True, help_text='{"contains", "regex"}')
    # "24h": work that can wait, sent through the provider's Batch API (or as flex calls);
    # blank: now. `batch` is the gateway batch holding the items once it is submitted.
    deadline = models.CharField(max_length=8, blank=True)
    batch = models.OneToOneField(
        "gateway.Batch", null=True, blank=True, on_delete=models.SET_NULL, related_name="job"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    total_items = models.PositiveIntegerField(default=0)
    done_items = models.PositiveIntegerField(default=0)
    failed_items = models.PositiveIntegerField(default=0)
    cancelled_items = models.PositiveIntegerField(default=0)
    # Items' costs are added to it in SQL: integer units on SQLite, exact (core.money).
    cost_usd = MoneyCounterField(default=ZERO)
    # The runner holding the job renews its lease; a stale lease means its worker died.
    runner_token = models.CharField(max_length=32, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)
    # Set when the retention purge cleared the items' inputs and outputs; figures stay.
    content_purged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["team", "idempotency_key"],
                condition=~models.Q(idempotency_key=""),
                name="unique_job_idempotency_key",
            ),
        ]
        indexes = [
            # the resume sweep: unfinished jobs by lease age
            models.Index(fields=["status", "heartbeat_at"]),
            # a dataset's runs, newest first (the baseline of a new run)
            models.Index(fields=["dataset", "-created_at"]),
        ]

    def __str__(self) -> str:
        return self.name or f"Job {self.pk}"

    @property
    def finished(self) -> bool:
        return self.status in self.FINISHED

    @property
    def settled_items(self) -> int:
        return self.done_items + self.failed_items + self.cancelled_items

    @property
    def progress_percent(self) -> int:
        if not self.total_items:
            return 100 if self.finished else 0
        return int(100 * self.settled_items / self.total_items)

    @property
    def row_count(self) -> int:
        return self.total_items // max(len(self.columns), 1)


class JobItem(models.Model):
    """One call of a job: a row on a column. Done items keep their usage record and are never
    re-run, so a job resumed after a worker died charges each item once."""

    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        DONE = "done"
        ERROR = "error"
        CANCELLED = "cancelled"

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="items")
    row_index = models.PositiveIntegerField()
    column_index = models.PositiveSmallIntegerField(default=0)
    input = models.JSONField(default=dict, help_text='{"variables": {...}} or {"input": ...}')
    expected = models.TextField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    request_id = models.CharField(max_length=64, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    output = models.TextField(blank=True)
    model_name = models.CharField(max_length=100, blank=True)
    tier_name = models.CharField(max_length=32, blank=True)
    input_tokens = models.PositiveIntegerField(default=0)
    cached_input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    reasoning_tokens = models.PositiveIntegerField(default=0)
    cost_usd = cost_field()
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    ttft_ms = models.PositiveIntegerField(null=True, blank=True)
    usage_record = models.ForeignKey(
        "spend.UsageRecord", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    error_code = models.CharField(max_length=64, blank=True)
    error_message = models.CharField(max_length=500, blank=True)
    checks = models.JSONField(default=dict, blank=True, help_text="check name -> passed")
    passed = models.BooleanField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["job", "row_index", "column_index"]
        constraints = [
            models.UniqueConstraint(
                fields=["job", "row_index", "column_index"], name="unique_job_item"
            ),
        ]
        indexes = [
            # the runner claims a job's pending items in order
            models.Index(fields=["job", "status", "row_index"]),
            # the request explorer: the job item a request ran for
            models.Index(fields=["request_id"], name="job_item_request"),
        ]

    def __str__(self) -> str:
        return f"{self.job_id}[{self.row_index}:{self.column_index}] {self.status}"


class RowVote(TimeStampedModel):
    """A verdict on one row of a batch compare (the results drawer)."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="row_votes")
    row_index = models.PositiveIntegerField()
    voter = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    verdict = models.CharField(max_length=16, choices=Verdict.choices)
    winner_column = models.PositiveSmallIntegerField(null=True, blank=True)
    comment = models.CharField(max_length=1000, blank=True)

    class Meta:
        ordering = ["job", "row_index"]
        constraints = [
            models.UniqueConstraint(fields=["job", "row_index", "voter"], name="one_vote_per_row"),
            models.CheckConstraint(
                condition=models.Q(verdict="winner", winner_column__isnull=False)
                | (~models.Q(verdict="winner") & models.Q(winner_column__isnull=True)),
                name="row_vote_winner_iff_verdict_winner",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.job_id}#{self.row_index}: {self.verdict}"

    @property
    def winner_letter(self) -> str:
        return "ABCD"[self.winner_column] if self.winner_column is not None else ""


class ShadowPair(models.Model):
    """A production answer from a cheap tier and the flagship's answer to the same input,
    produced in the background for review. Content is kept only where the team or the prompt
    opts in to storing content, and is purged after the team's retention period."""

    class Status(models.TextChoices):
        PENDING = "pending"
        DONE = "done"
        ERROR = "error"
        SKIPPED = "skipped"

    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="+")
    prompt = models.ForeignKey("prompts.Prompt", on_delete=models.CASCADE, related_name="+")
    prompt_version = models.ForeignKey(
        "prompts.PromptVersion", on_delete=models.CASCADE, related_name="+"
    )
    production_usage_record = models.ForeignKey(
        "spend.UsageRecord", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    shadow_usage_record = models.ForeignKey(
        "spend.UsageRecord", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    skip_reason = models.CharField(max_length=200, blank=True)
    production_model = models.CharField(max_length=100, blank=True)
    production_tier = models.CharField(max_length=32, blank=True)
    shadow_model = models.CharField(max_length=100, blank=True)
    shadow_tier = models.CharField(max_length=32, blank=True)
    production_request_id = models.CharField(max_length=64, blank=True)
    # Content: the production request's body (rendered input, instructions, output format),
    # needed to re-run it; cleared after the run unless the team or the prompt keeps content.
    request_body = models.JSONField(null=True, blank=True)
    production_output = models.TextField(blank=True)
    shadow_output = models.TextField(blank=True)
    content_retained = models.BooleanField(default=False)
    agree = models.BooleanField(null=True, blank=True)
    production_cost_usd = cost_field()
    shadow_cost_usd = cost_field()
    verdict = models.CharField(max_length=16, choices=Verdict.choices, blank=True)
    verdict_winner = models.CharField(
        max_length=16, blank=True, help_text="'production' or 'shadow' when the verdict is winner"
    )
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # the review queue and the recommendation: one prompt's pairs, newest first
            models.Index(fields=["prompt", "-created_at"]),
            # the retention purge: content older than the cut-off
            models.Index(fields=["content_retained", "created_at"]),
            # the request explorer: the pair of a production request
            models.Index(fields=["production_request_id"], name="shadow_production_request"),
        ]

    def __str__(self) -> str:
        return f"shadow {self.pk} {self.production_model} vs {self.shadow_model}"
