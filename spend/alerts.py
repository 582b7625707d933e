"""Alerts: a budget's soft threshold and hard limit, and upstream error spikes.

Each alert condition becomes one `AlertEvent` row; its unique constraints (budget, threshold,
period start) and (threshold, model, window start) make a condition fire once per period or
window, however many checks, workers or gateway processes notice it at the same time. The
event's deliveries (email via Django's mail, and a webhook) are sent by a Celery task that
claims each delivery with a conditional UPDATE, so a retry never sends twice what was sent.

Webhook signature: `X-Switchboard-Signature: sha256=<hex>` is the HMAC-SHA256 of
`<timestamp>.<body>` under the secret held in the environment variable named by
`settings.SPEND_ALERT_WEBHOOK_SECRET_ENV`; `X-Switchboard-Timestamp` is that Unix timestamp.
A receiver recomputes the HMAC over the timestamp header, a dot and the raw body, compares in
constant time, and rejects timestamps older than a few minutes (replay). See `webhook_verify`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import os
import time
import urllib.error
import urllib.request
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Case, Count, F, IntegerField, Q, Sum, Value, When
from django.utils import timezone

from core.money import usd
from spend.models import AlertDelivery, AlertEvent, AlertTarget, Budget, UsageRecord
from spend.selectors import BudgetStatus, budget_status

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Switchboard-Signature"
TIMESTAMP_HEADER = "X-Switchboard-Timestamp"
WEBHOOK_TIMEOUT_SECONDS = 10
MAX_ATTEMPTS = 5
REPLAY_TOLERANCE_SECONDS = 300

EVENT_TYPES: dict[str, str] = {
    AlertEvent.Threshold.SOFT: "budget.soft_threshold",
    AlertEvent.Threshold.HARD: "budget.hard_limit",
    AlertEvent.Threshold.ERROR_SPIKE: "upstream.error_spike",
}


# ------------------------------------------------------------------ signing


def webhook_secret() -> bytes | None:
    """The signing secret, from the environment (never the database)."""
    value = os.environ.get(settings.SPEND_ALERT_WEBHOOK_SECRET_ENV, "")
    return value.encode() if value else None


def webhook_signature(*, secret: bytes, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def webhook_verify(
    *,
    secret: bytes,
    body: bytes,
    timestamp: str,
    signature: str,
    now: float | None = None,
    tolerance: int = REPLAY_TOLERANCE_SECONDS,
) -> bool:
    """What a receiver does: a fresh timestamp and a matching signature, compared in constant
    time."""
    try:
        sent = int(timestamp)
    except (TypeError, ValueError):
        return False
    if abs((now if now is not None else time.time()) - sent) > tolerance:
        return False
    expected = webhook_signature(secret=secret, timestamp=sent, body=body)
    return hmac.compare_digest(expected, signature)


# ------------------------------------------------------------------ raising events


def alert_event_create(
    *,
    threshold: str,
    period_start: dt.datetime,
    message: str,
    budget: Budget | None = None,
    team_id: int | None = None,
    subject: str = "",
    details: dict | None = None,
) -> AlertEvent | None:
    """Record that a condition was reached and queue its deliveries; None when it already
    fired for this period (the unique constraint decides, not a read before the write)."""
    try:
        with transaction.atomic():
            event = AlertEvent.objects.create(
                threshold=threshold,
                team_id=budget.team_id if budget else team_id,
                budget=budget,
                subject=subject,
                period_start=period_start,
                message=message[:300],
                details=details or {},
            )
            deliveries = _deliveries_create(event)
            ids = [d.id for d in deliveries]
            transaction.on_commit(lambda: _enqueue(ids))
    except IntegrityError:
        return None
    log.info("alert: %s", event.message)
    return event


def _deliveries_create(event: AlertEvent) -> list[AlertDelivery]:
    targets = AlertTarget.objects.filter(is_active=True).filter(
        Q(team__isnull=True) | Q(team_id=event.team_id)
    )
    if event.threshold == AlertEvent.Threshold.ERROR_SPIKE:
        targets = targets.filter(notify_error_spike=True)
    else:
        targets = targets.filter(notify_budget=True)
    deliveries = []
    for target in targets:
        if target.email_list:
            deliveries.append(
                AlertDelivery(event=event, target=target, channel=AlertDelivery.Channel.EMAIL)
            )
        if target.webhook_url:
            deliveries.append(
                AlertDelivery(event=event, target=target, channel=AlertDelivery.Channel.WEBHOOK)
            )
    return AlertDelivery.objects.bulk_create(deliveries)


def _enqueue(delivery_ids: list[int]) -> None:
    from spend.tasks import alert_deliver

    for delivery_id in delivery_ids:
        alert_deliver.delay(delivery_id)


def _budget_scope(budget: Budget) -> str:
    return f"{budget.team.name} ({budget.owner})"


def _budget_message(status: BudgetStatus, threshold: str) -> str:
    budget = status.budget
    what = "reached its soft threshold" if threshold == "soft" else "reached its limit"
    return (
        f"{_budget_scope(budget)} {what}: {usd(status.spent)} of {usd(budget.limit_usd)} "
        f"({status.used_pct}%) this {budget.period} period"
    )


def _worst_case_message(status: BudgetStatus, action: str, request_usd: Decimal) -> str:
    """Spend is below the limit, but a request's worst case did not fit what was left."""
    budget = status.budget
    what = "downgraded" if action == "downgrade" else "refused"
    return (
        f"{_budget_scope(budget)}: a {usd(request_usd)} request was {what}: "
        f"{usd(status.remaining)} left of {usd(budget.limit_usd)} this {budget.period} period"
    )


def _budget_details(status: BudgetStatus) -> dict:
    budget = status.budget
    return {
        "budget_id": budget.id,
        "team": budget.team.slug,
        "api_key": budget.api_key.prefix if budget.api_key else None,
        "period": budget.period,
        "period_start": status.period_start.isoformat(),
        "period_end": status.period_end.isoformat() if status.period_end else None,
        "limit_usd": str(budget.limit_usd),
        "spent_usd": str(status.spent),
        "reserved_usd": str(status.reserved),
        "used_pct": str(status.used_pct),
        "soft_threshold": str(budget.soft_threshold),
        "action": budget.action,
    }


def budget_alerts_check(*, now: dt.datetime | None = None) -> list[AlertEvent]:
    """Raise the soft and hard alerts of every budget whose current period reached them."""
    now = now or timezone.now()
    candidates = Budget.objects.filter(
        spent_usd__gte=F("limit_usd") * F("soft_threshold")
    ).select_related("team", "api_key")
    statuses = [budget_status(b, now=now) for b in candidates]
    fired = set(
        AlertEvent.objects.filter(budget__in=[s.budget for s in statuses]).values_list(
            "budget_id", "threshold", "period_start"
        )
    )
    events = []
    for status in statuses:
        reached = []
        if status.state in ("warning", "limit"):
            reached.append(AlertEvent.Threshold.SOFT)
        if status.state == "limit":
            reached.append(AlertEvent.Threshold.HARD)
        for threshold in reached:
            if (status.budget.id, threshold, status.period_start) in fired:
                continue
            event = alert_event_create(
                threshold=threshold,
                budget=status.budget,
                period_start=status.period_start,
                message=_budget_message(status, threshold),
                details=_budget_details(status),
            )
            if event:
                events.append(event)
    return events


def budget_limit_reached(
    *,
    budget_id: int,
    now: dt.datetime | None = None,
    action: str = "block",
    request_usd: Decimal | None = None,
) -> AlertEvent | None:
    """The gateway refused (`block`) or downgraded a request of up to `request_usd` at this
    budget's limit: raise the hard alert now. When spend is still below the limit (the
    request's worst case did not fit what was left), the alert says so."""
    budget = Budget.objects.select_related("team", "api_key").filter(id=budget_id).first()
    if budget is None:
        return None
    status = budget_status(budget, now=now)
    details = _budget_details(status)
    if request_usd is not None and status.spent < budget.limit_usd:
        message = _worst_case_message(status, action, request_usd)
        details |= {"trigger": "worst_case_did_not_fit", "request_usd": str(request_usd)}
    else:
        message = _budget_message(status, AlertEvent.Threshold.HARD)
        details |= {"trigger": "limit_reached"}
    return alert_event_create(
        threshold=AlertEvent.Threshold.HARD,
        budget=budget,
        period_start=status.period_start,
        message=message,
        details={**details, "request_action": action},
    )


def error_spike_check(*, now: dt.datetime | None = None) -> list[AlertEvent]:
    """One alert per model and window when its upstream error rate over the last window is
    at or above the threshold (with enough requests to mean something)."""
    now = now or timezone.now()
    config: dict[str, Any] = settings.SPEND_ERROR_SPIKE
    window = dt.timedelta(minutes=config["window_minutes"])
    rate = Decimal(str(config["rate"]))
    seconds = int(window.total_seconds())
    window_start = dt.datetime.fromtimestamp(int(now.timestamp()) // seconds * seconds, tz=dt.UTC)
    rows = (
        UsageRecord.objects.filter(created_at__gte=now - window, created_at__lt=now)
        .exclude(status=UsageRecord.Status.REFUSED)  # not an upstream call
        .values("model_name")
        .annotate(
            requests=Count("id"),
            errors=Sum(
                Case(
                    When(status=UsageRecord.Status.ERROR, then=Value(1)),
                    default=Value(0),
                    output_field=IntegerField(),
                )
            ),
        )
        .filter(requests__gte=config["min_requests"])
        .order_by()
    )
    events = []
    for row in rows:
        if Decimal(row["errors"]) < rate * row["requests"]:
            continue
        pct = (Decimal(row["errors"]) * 100 / row["requests"]).quantize(Decimal("0.1"))
        event = alert_event_create(
            threshold=AlertEvent.Threshold.ERROR_SPIKE,
            subject=row["model_name"],
            period_start=window_start,
            message=(
                f"Upstream errors on {row['model_name']}: {row['errors']} of {row['requests']} "
                f"requests ({pct}%) in the last {config['window_minutes']} minutes"
            ),
            details={
                "model": row["model_name"],
                "requests": row["requests"],
                "errors": row["errors"],
                "error_pct": str(pct),
                "window_minutes": config["window_minutes"],
            },
        )
        if event:
            events.append(event)
    return events


# ------------------------------------------------------------------ delivering


def alert_payload(event: AlertEvent) -> dict:
    return {
        "id": event.id,
        "type": EVENT_TYPES[event.threshold],
        "threshold": event.threshold,
        "team": event.team.slug if event.team else None,
        "subject": event.subject or None,
        "message": event.message,
        "period_start": event.period_start.isoformat(),
        "details": event.details,
        "created_at": event.created_at.isoformat(),
    }


class DeliveryFailed(Exception):
    """The channel refused or did not answer; the task retries."""


def _claim(delivery_id: int) -> bool:
    """Take a pending (or failed) delivery; False when it was sent or another worker has it."""
    claimed = AlertDelivery.objects.filter(
        id=delivery_id,
        status__in=[AlertDelivery.Status.PENDING, AlertDelivery.Status.FAILED],
        attempts__lt=MAX_ATTEMPTS,
    ).update(status=AlertDelivery.Status.SENDING, attempts=F("attempts") + 1)
    return claimed == 1


def alert_delivery_send(*, delivery_id: int) -> AlertDelivery | None:
    """Send one delivery once. Raises DeliveryFailed (after recording it) so the task retries."""
    if not _claim(delivery_id):
        return None
    delivery = AlertDelivery.objects.select_related("event__team", "target").get(id=delivery_id)
    try:
        if delivery.channel == AlertDelivery.Channel.EMAIL:
            _send_email(delivery)
        else:
            delivery.response_status = _send_webhook(delivery)
    except DeliveryFailed as exc:
        delivery.status = AlertDelivery.Status.FAILED
        delivery.error = str(exc)[:500]
        delivery.save(update_fields=["status", "error", "response_status"])
        raise
    delivery.status = AlertDelivery.Status.SENT
    delivery.sent_at = timezone.now()
    delivery.error = ""
    delivery.save(update_fields=["status", "sent_at", "error", "response_status"])
    return delivery


def _send_email(delivery: AlertDelivery) -> None:
    event = delivery.event
    subject = f"[Switchboard] {event.get_threshold_display()}: {event.message}"[:200]
    body = (
        f"{event.message}\n\n"
        + "\n".join(f"{key}: {value}" for key, value in event.details.items())
        + "\n\nThis alert is sent once per budget period (or error window)."
    )
    try:
        send_mail(subject, body, None, delivery.target.email_list, fail_silently=False)
    except Exception as exc:  # SMTP errors have no common base class worth naming
        raise DeliveryFailed(f"email: {exc}") from exc


def _send_webhook(delivery: AlertDelivery) -> int:
    secret = webhook_secret()
    if secret is None:
        raise DeliveryFailed(
            f"webhook: no signing secret in ${settings.SPEND_ALERT_WEBHOOK_SECRET_ENV}"
        )
    body = json.dumps(alert_payload(delivery.event), sort_keys=True).encode()
    timestamp = int(time.time())
    request = urllib.request.Request(
        delivery.target.webhook_url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": "Switchboard-Alerts/1",
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: webhook_signature(secret=secret, timestamp=timestamp, body=body),
            "X-Switchboard-Event": EVENT_TYPES[delivery.event.threshold],
            "X-Switchboard-Delivery": str(delivery.id),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT_SECONDS) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        delivery.response_status = exc.code
        raise DeliveryFailed(f"webhook: HTTP {exc.code}") from exc
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise DeliveryFailed(f"webhook: {exc.__class__.__name__}") from exc


def alert_deliveries_retry(*, now: dt.datetime | None = None) -> int:
    """Re-queue deliveries a lost task or a dead worker left behind."""
    now = now or timezone.now()
    stale = AlertDelivery.objects.filter(attempts__lt=MAX_ATTEMPTS).filter(
        Q(status=AlertDelivery.Status.PENDING, created_at__lt=now - dt.timedelta(minutes=5))
        | Q(status=AlertDelivery.Status.FAILED, created_at__lt=now - dt.timedelta(minutes=30))
    )
    ids = list(stale.values_list("id", flat=True)[:200])
    _enqueue(ids)
    return len(ids)
