from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models

from core.money import ZERO, MoneyCounterField, cost_field, usd_exact


class Purpose(models.TextChoices):
    GATEWAY = "gateway"
    PLAYGROUND = "playground"
    BATCH = "batch"
    CLASSIFIER = "classifier"
    SHADOW = "shadow"
    EVAL = "eval"


class UsageRecord(models.Model):
    """One upstream call (fallback attempts included), or a request refused before any (a
    budget 402 or a rate-limit 429: status `refused`, no tokens, no cost; rollups, exports and
    replays leave those out). Written once, never updated."""

    class Status(models.TextChoices):
        SUCCESS = "success"
        ERROR = "error"
        CANCELLED = "cancelled"
        REFUSED = "refused"

    # No database-level foreign keys (db_constraint=False): a record is money spent, written
    # with the ids its request had even if the key, team or prompt was deleted meanwhile; a
    # constraint would make the database refuse it (spend.usage_sql).
    created_at = models.DateTimeField(db_index=True)
    request_id = models.CharField(max_length=64, db_index=True)
    team = models.ForeignKey(
        "accounts.Team", on_delete=models.PROTECT, related_name="+", db_constraint=False
    )
    api_key = models.ForeignKey(
        "accounts.ApiKey",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_constraint=False,
    )
    prompt_version = models.ForeignKey(
        "prompts.PromptVersion",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_constraint=False,
    )
    purpose = models.CharField(max_length=16, choices=Purpose.choices, default=Purpose.GATEWAY)
    rule = models.CharField(max_length=100, blank=True)
    route_reason = models.CharField(max_length=300, blank=True)
    model = models.ForeignKey(
        "routing.Model",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_constraint=False,
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
    # The request's `metadata` (bounded scalars, like a key's tags: not content), searched by
    # the request explorer; null when the request had none.
    metadata = models.JSONField(null=True, blank=True)
    # Candidates the router dropped before any attempt: [{"tier", "model", "reason"}], e.g. a
    # model without a needed capability, a tier skipped by a budget downgrade; null if none.
    route_skipped = models.JSONField(null=True, blank=True)
    # Stored only when the team or prompt opts in; purged after the retention period.
    request_body = models.JSONField(null=True, blank=True)
    response_body = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # the dashboard and /api/v1/usage: one team's records over a time range
            models.Index(fields=["team", "created_at"]),
            # the request explorer's status filter (errors, cancellations, refusals), newest
            # first; partial, so the successful majority of inserts never touches it
            models.Index(
                fields=["status", "-created_at"],
                condition=~models.Q(status="success"),
                name="usage_unsuccessful_recent",
            ),
            # the request explorer sorted by cost / latency: a team's costliest or slowest
            # records walked in order (the id breaks ties, as the keyset cursor does). With no
            # team filter (finance, admins) PostgreSQL unions the teams' walks (MergeAppend).
            models.Index(fields=["team", "-cost_usd", "-id"], name="usage_team_cost"),
            models.Index(fields=["team", "-latency_ms", "-id"], name="usage_team_latency"),
            # PostgreSQL only, created by migration 0008 (GIN is not portable): the explorer's
            # metadata search, `metadata @> {"key": value}`, partial on records having any.
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(cost_usd__gte=0), name="usage_cost_non_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.request_id} {self.model_name} {usd_exact(self.cost_usd)}"


class UsageLedger(models.Model):
    """The key of a request's ledger (its usage records and budget settlements), inserted
    in the transaction that writes them: a ledger written twice (a retry after a lost commit
    reply, a spool replayed again) finds its key taken and writes nothing. Purged after
    USAGE_LEDGER_KEEP_DAYS, long after any spool could be replayed."""

    key = models.CharField(max_length=32, primary_key=True)
    written_at = models.DateTimeField(db_index=True)  # the purge: keys older than the window

    def __str__(self) -> str:
        return self.key


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
    # Counters (and the limit they are compared with): integer units on SQLite, exact.
    limit_usd = MoneyCounterField()
    soft_threshold = models.DecimalField(
        max_digits=4, decimal_places=3, default=Decimal("0.8"), help_text="Fraction of the limit."
    )
    action = models.CharField(max_length=16, choices=Action.choices, default=Action.BLOCK)
    downgrade_tier = models.ForeignKey(
        "routing.Tier", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    period_start = models.DateTimeField()
    spent_usd = MoneyCounterField(default=ZERO)
    reserved_usd = MoneyCounterField(default=ZERO)
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
        return f"{self.team} {self.period} {usd_exact(self.limit_usd)}"

    @property
    def owner(self) -> str:
        """Whose budget it is, in a sentence: "key <name>" or "team"."""
        return f"key {self.api_key.name}" if self.api_key else "team"


class BudgetReservation(models.Model):
    """Worst-case cost held against a budget during an upstream call; settled or swept."""

    budget = models.ForeignKey(Budget, on_delete=models.CASCADE, related_name="reservations")
    request_id = models.CharField(max_length=64)
    amount_usd = MoneyCounterField()
    created_at = models.DateTimeField(auto_now_add=True)
    settled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            # the sweeper: open reservations older than the timeout
            models.Index(fields=["settled_at", "created_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.request_id} {usd_exact(self.amount_usd)}"


# Latency histogram: upper bounds (ms, exclusive) of each bucket; the last bucket is open-ended.
# Percentiles cannot be summed, histograms can: each rollup row keeps one count per bucket,
# and the dashboard merges them with SUM and interpolates p95 inside the bucket that holds it.
LATENCY_BOUNDS_MS = (
    100,
    200,
    300,
    500,
    750,
    1000,
    1500,
    2000,
    3000,
    4000,
    5000,
    7500,
    10000,
    20000,
    60000,
)
LATENCY_FIELDS = (
    *(f"lat_lt_{bound}" for bound in LATENCY_BOUNDS_MS),
    f"lat_ge_{LATENCY_BOUNDS_MS[-1]}",
)


def _count_field() -> models.PositiveIntegerField:
    return models.PositiveIntegerField(default=0)


class DailySums(models.Model):
    """A daily rollup row: its key (local day x team x prompt x model x tier) and what the
    usage records under it add up to: status counts, token sums, cost, the all-flagship
    counterfactual and a latency histogram."""

    day = models.DateField()
    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="+")
    prompt = models.ForeignKey(
        "prompts.Prompt", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    model_name = models.CharField(max_length=100)
    tier_name = models.CharField(max_length=32, blank=True)
    requests = models.PositiveIntegerField(default=0)
    errors = models.PositiveIntegerField(default=0)
    cancelled = models.PositiveIntegerField(default=0)
    input_tokens = models.BigIntegerField(default=0)
    cached_input_tokens = models.BigIntegerField(default=0)
    cache_write_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    reasoning_tokens = models.BigIntegerField(default=0)
    cost_usd = cost_field()
    # The same tokens priced at the flagship tier's primary model, at the price of the day.
    flagship_cost_usd = cost_field()
    # What the batch and flex tiers saved against the same model's standard tier, and what
    # cached input saved against the same input uncached (a cache-write premium counts
    # against it), both at the records' own model price (docs/cost-levers.md).
    batch_saved_usd = cost_field()
    cache_saved_usd = cost_field()
    latency_ms_sum = models.BigIntegerField(default=0)
    ttft_ms_sum = models.BigIntegerField(default=0)
    ttft_count = models.PositiveIntegerField(default=0)
    lat_lt_100 = _count_field()
    lat_lt_200 = _count_field()
    lat_lt_300 = _count_field()
    lat_lt_500 = _count_field()
    lat_lt_750 = _count_field()
    lat_lt_1000 = _count_field()
    lat_lt_1500 = _count_field()
    lat_lt_2000 = _count_field()
    lat_lt_3000 = _count_field()
    lat_lt_4000 = _count_field()
    lat_lt_5000 = _count_field()
    lat_lt_7500 = _count_field()
    lat_lt_10000 = _count_field()
    lat_lt_20000 = _count_field()
    lat_lt_60000 = _count_field()
    lat_ge_60000 = _count_field()

    class Meta:
        abstract = True
        ordering = ["day"]
        indexes = [
            # the dashboard for finance/admin (every team) over a range of days
            models.Index(fields=["day"]),
            # the dashboard for a member: their teams over a range of days
            models.Index(fields=["team", "day"]),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.team_id} {self.model_name} {usd_exact(self.cost_usd)}"


def _costs_non_negative(name: str) -> models.CheckConstraint:
    return models.CheckConstraint(
        condition=models.Q(cost_usd__gte=0) & models.Q(flagship_cost_usd__gte=0), name=name
    )


class DailyRollup(DailySums):
    """Usage records summed per day (in settings.TIME_ZONE) x team x prompt x model x tier x purpose.

    Written only by `spend.rollups.usage_rollup_run`: a day's rows are replaced as a whole, so a
    row's key is unique by construction. `RollupState.rolled_until` says which records they cover.
    """

    purpose = models.CharField(max_length=16, choices=Purpose.choices, default=Purpose.GATEWAY)

    class Meta(DailySums.Meta):
        constraints = [_costs_non_negative("rollup_cost_non_negative")]


class DailySummary(DailySums):
    """`DailyRollup`'s rows summed over purpose (day x team x prompt x model x tier).

    The dashboard reads these unless it filters on purpose: the same figures from less than
    half as many rows. Written with the day's DailyRollup rows, in the same transaction.
    """

    class Meta(DailySums.Meta):
        verbose_name_plural = "daily summaries"
        constraints = [_costs_non_negative("summary_cost_non_negative")]


class RollupState(models.Model):
    """One row: rollups hold exactly the usage records created before `rolled_until`.

    The dashboard adds the raw records from `rolled_until` on, so it never counts a record twice
    nor misses one. `last_record_id` is the newest record the last run saw: a record above it
    dated before the watermark arrived late, and its day is recomputed. `time_zone` is the zone
    the days were cut in; a change rebuilds them.
    """

    name = models.CharField(max_length=32, unique=True, default="usage")
    rolled_until = models.DateTimeField(null=True, blank=True)
    last_record_id = models.BigIntegerField(default=0)
    time_zone = models.CharField(max_length=64, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.name} rolled until {self.rolled_until}"


class AlertTarget(models.Model):
    """Where alerts go: emails and/or a webhook. No team: every team's alerts (e.g. finance).

    The webhook signing secret is not stored here: it is read from the environment variable
    named by settings.SPEND_ALERT_WEBHOOK_SECRET_ENV.
    """

    team = models.ForeignKey(
        "accounts.Team", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    name = models.CharField(max_length=100)
    emails = models.TextField(blank=True, help_text="Comma- or newline-separated addresses.")
    webhook_url = models.URLField(max_length=500, blank=True)
    notify_budget = models.BooleanField(default=True)
    notify_error_spike = models.BooleanField(default=True)
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def email_list(self) -> list[str]:
        return [e.strip() for e in self.emails.replace("\n", ",").split(",") if e.strip()]


class AlertEvent(models.Model):
    """An alert condition that was reached. The unique constraints make each one fire once:
    a budget's threshold once per budget period, an error spike once per model and window."""

    class Threshold(models.TextChoices):
        SOFT = "soft", "Soft threshold"
        HARD = "hard", "Hard limit"
        ERROR_SPIKE = "error_spike", "Upstream error spike"

    threshold = models.CharField(max_length=16, choices=Threshold.choices)
    team = models.ForeignKey(
        "accounts.Team", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    budget = models.ForeignKey(
        Budget, null=True, blank=True, on_delete=models.CASCADE, related_name="alerts"
    )
    # the model name for an error spike; blank for budget alerts
    subject = models.CharField(max_length=100, blank=True)
    period_start = models.DateTimeField()
    message = models.CharField(max_length=300)
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # the dashboard's alert list: recent alerts of some teams
            models.Index(fields=["team", "-created_at"]),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["budget", "threshold", "period_start"],
                condition=models.Q(budget__isnull=False),
                name="alert_once_per_budget_threshold_period",
            ),
            models.UniqueConstraint(
                fields=["threshold", "subject", "period_start"],
                condition=models.Q(budget__isnull=True),
                name="alert_once_per_subject_window",
            ),
        ]

    def __str__(self) -> str:
        return self.message


class AlertDelivery(models.Model):
    """One alert sent (or being sent) to one target over one channel."""

    class Channel(models.TextChoices):
        EMAIL = "email"
        WEBHOOK = "webhook"

    class Status(models.TextChoices):
        PENDING = "pending"
        SENDING = "sending"
        SENT = "sent"
        FAILED = "failed"

    event = models.ForeignKey(AlertEvent, on_delete=models.CASCADE, related_name="deliveries")
    target = models.ForeignKey(AlertTarget, on_delete=models.CASCADE, related_name="deliveries")
    channel = models.CharField(max_length=16, choices=Channel.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "alert deliveries"
        constraints = [
            models.UniqueConstraint(
                fields=["event", "target", "channel"], name="one_delivery_per_target_channel"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event} → {self.target} ({self.channel}: {self.status})"


class ReplayRun(models.Model):
    """A what-if replay: the last `days` of usage routed again under a proposed policy."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    policy = models.ForeignKey("routing.Policy", on_delete=models.CASCADE, related_name="+")
    days = models.PositiveSmallIntegerField(default=7)
    # the teams replayed (access: a viewer must see every one of them)
    team_ids = models.JSONField(default=list)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    window_start = models.DateTimeField(null=True, blank=True)
    window_end = models.DateTimeField(null=True, blank=True)
    result = models.JSONField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"replay {self.policy} over {self.days} days ({self.status})"
