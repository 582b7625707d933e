"""Files and batches served on /v1/files and /v1/batches, and the upstream batches behind them."""

from __future__ import annotations

from django.db import models

from core.money import cost_field


class StoredFile(models.Model):
    """A file a team uploaded to /v1/files, or a batch's output or error file. Its bytes
    live in the row (files are size-limited: GATEWAY_FILE_MAX_BYTES)."""

    class Purpose(models.TextChoices):
        BATCH = "batch"
        BATCH_OUTPUT = "batch_output"
        USER_DATA = "user_data"

    public_id = models.CharField(max_length=40, unique=True)
    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="+")
    api_key = models.ForeignKey(
        "accounts.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    purpose = models.CharField(max_length=16, choices=Purpose.choices)
    filename = models.CharField(max_length=255)
    size_bytes = models.PositiveBigIntegerField(default=0)
    content = models.BinaryField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # GET /v1/files: one team's files, newest first
            models.Index(fields=["team", "-created_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.public_id} {self.filename}"


class Batch(models.Model):
    """A client's batch: its input file's lines, each routed, budgeted and run through the
    providers' Batch APIs (or flex calls), with OpenAI's statuses."""

    class Status(models.TextChoices):
        VALIDATING = "validating"
        FAILED = "failed"
        IN_PROGRESS = "in_progress"
        FINALIZING = "finalizing"
        COMPLETED = "completed"
        EXPIRED = "expired"
        CANCELLING = "cancelling"
        CANCELLED = "cancelled"

    FINAL = (Status.FAILED, Status.COMPLETED, Status.EXPIRED, Status.CANCELLED)

    public_id = models.CharField(max_length=40, unique=True)
    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="+")
    api_key = models.ForeignKey(
        "accounts.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    input_file = models.ForeignKey(
        StoredFile, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    output_file = models.ForeignKey(
        StoredFile, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    error_file = models.ForeignKey(
        StoredFile, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    endpoint = models.CharField(max_length=32)
    completion_window = models.CharField(max_length=8, default="24h")
    metadata = models.JSONField(default=dict, blank=True)
    purpose = models.CharField(max_length=16, default="gateway")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.VALIDATING)
    errors = models.JSONField(null=True, blank=True, help_text="Input errors, by line.")
    total = models.PositiveIntegerField(default=0)
    completed = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    # The worst case of every line at the batch price, held on the team's budgets from
    # submission: [{"budget", "period", "reservation"}]; each line settles its own part.
    reservations = models.JSONField(default=list, blank=True)
    reserved_usd = cost_field()
    cost_usd = cost_field()
    created_at = models.DateTimeField(auto_now_add=True)
    in_progress_at = models.DateTimeField(null=True, blank=True)
    finalizing_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    expired_at = models.DateTimeField(null=True, blank=True)
    cancelling_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    # Renewed by every poll; a batch not polled for a while is picked up by beat again.
    polled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # GET /v1/batches: one team's batches, newest first
            models.Index(fields=["team", "-created_at"]),
            # beat's poll: unfinished batches by last poll
            models.Index(fields=["status", "polled_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.public_id} {self.status}"

    @property
    def finished(self) -> bool:
        return self.status in self.FINAL

    @property
    def progress(self) -> tuple[int, int]:
        """Lines completed and failed so far: the final counts of a finished batch; before,
        the lines already collected plus what each provider reported at its last poll."""
        if self.finished:
            return self.completed, self.failed
        settled = self.lines.exclude(
            status__in=[BatchLine.Status.PENDING, BatchLine.Status.SUBMITTED]
        ).aggregate(
            completed=models.Count("id", filter=models.Q(status=BatchLine.Status.COMPLETED)),
            others=models.Count("id", filter=~models.Q(status=BatchLine.Status.COMPLETED)),
        )
        running = self.upstreams.filter(collected=False).aggregate(
            completed=models.Sum("completed"), failed=models.Sum("failed")
        )
        return (
            settled["completed"] + (running["completed"] or 0),
            settled["others"] + (running["failed"] or 0),
        )


class UpstreamBatch(models.Model):
    """One provider's batch holding some of a client batch's lines."""

    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="upstreams")
    provider = models.ForeignKey("routing.Provider", on_delete=models.PROTECT, related_name="+")
    upstream_id = models.CharField(max_length=100, blank=True)
    input_file_id = models.CharField(max_length=100, blank=True)
    status = models.CharField(max_length=16, default="validating")
    output_file_id = models.CharField(max_length=100, blank=True)
    error_file_id = models.CharField(max_length=100, blank=True)
    # The provider's request_counts at the last poll: progress before the lines are collected.
    completed = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    collected = models.BooleanField(default=False, help_text="Its lines are recorded.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.batch_id} {self.upstream_id or '(not sent)'} {self.status}"


class BatchLine(models.Model):
    """One request line of a client batch, as routed at submission, and what became of it."""

    class Status(models.TextChoices):
        PENDING = "pending"
        SUBMITTED = "submitted"
        COMPLETED = "completed"
        FAILED = "failed"
        EXPIRED = "expired"
        CANCELLED = "cancelled"

    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="lines")
    line_number = models.PositiveIntegerField()
    custom_id = models.CharField(max_length=512)
    body = models.JSONField(help_text="The upstream body, the routed model's name included.")
    model = models.ForeignKey(
        "routing.Model", null=True, on_delete=models.SET_NULL, related_name="+"
    )
    model_name = models.CharField(max_length=100)
    tier_name = models.CharField(max_length=32, blank=True)
    rule = models.CharField(max_length=100, blank=True)
    route_reason = models.CharField(max_length=300, blank=True)
    prompt_version = models.ForeignKey(
        "prompts.PromptVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    worst_usd = cost_field()
    upstream = models.ForeignKey(
        UpstreamBatch, null=True, blank=True, on_delete=models.SET_NULL, related_name="lines"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    result = models.JSONField(null=True, blank=True, help_text="The output or error line.")
    cost_usd = cost_field()

    class Meta:
        ordering = ["batch", "line_number"]
        constraints = [
            models.UniqueConstraint(fields=["batch", "line_number"], name="unique_batch_line"),
            models.UniqueConstraint(fields=["batch", "custom_id"], name="unique_batch_custom_id"),
        ]

    def __str__(self) -> str:
        return f"{self.batch_id}:{self.custom_id} {self.status}"
