"""Model lifecycle alerts: 30 and 7 days before a model's shutdown, each sent once, on the
alert plumbing of this app.

Recipients: the admins, finance people and superusers with an email address, plus every
active alert target without a team (`AlertTarget`, set up in the admin for budget alerts: the
same finance/ops inboxes and webhooks get lifecycle alerts). Webhooks are signed exactly like
budget alerts (`spend.alerts.webhook_signature`: HMAC-SHA256 of `<timestamp>.<body>` under the
secret named by `settings.SPEND_ALERT_WEBHOOK_SECRET_ENV`).

Lifecycle alerts are not budget events, so they are recorded as `routing.ShutdownAlert`
rather than `AlertEvent` (whose kinds are budget thresholds and error spikes)."""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
import urllib.error
import urllib.request
from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import Role, User
from routing.models import Model, ShutdownAlert
from routing.selectors import models_near_shutdown
from spend.alerts import SIGNATURE_HEADER, TIMESTAMP_HEADER, webhook_secret, webhook_signature
from spend.models import AlertTarget

log = logging.getLogger(__name__)
WEBHOOK_TIMEOUT_SECONDS = 5
EVENT_TYPE = "model.shutdown_approaching"


def _global_targets() -> list[Any]:
    return list(AlertTarget.objects.filter(is_active=True, team__isnull=True))


def alert_recipients() -> list[str]:
    """Active admins, finance people and superusers with an email, and the global targets'."""
    users = User.objects.filter(is_active=True).exclude(email="")
    users = users.filter(
        Q(is_superuser=True) | Q(groups__name__in=[Role.ADMIN, Role.FINANCE])
    ).distinct()
    emails = {user.email for user in users}
    for target in _global_targets():
        emails.update(target.email_list)
    return sorted(emails)


def _post(url: str, body: bytes) -> str:
    secret = webhook_secret()
    if secret is None:
        return f"failed: no signing secret in ${settings.SPEND_ALERT_WEBHOOK_SECRET_ENV}"
    timestamp = int(time.time())
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": "Switchboard-Alerts/1",
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: webhook_signature(secret=secret, timestamp=timestamp, body=body),
            "X-Switchboard-Event": EVENT_TYPE,
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT_SECONDS) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        return f"failed: HTTP {exc.code}"
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        return f"failed: {exc.__class__.__name__}"
    return "sent"


def alert_email(*, subject: str, text: str) -> list[str]:
    """Email the recipients; raises if the mail backend fails (the caller can retry)."""
    emails = alert_recipients()
    if emails:
        send_mail(subject, text, None, emails)
    return emails


def alert_webhooks(*, subject: str, text: str, payload: dict[str, Any]) -> dict[str, str]:
    """Post to each global target's webhook; url → "sent" or the failure (logged, not raised:
    the email already went out, and the alert must not be sent twice)."""
    body = json.dumps({"event": EVENT_TYPE, "subject": subject, "text": text, **payload}).encode()
    outcomes = {}
    for target in _global_targets():
        if target.webhook_url:
            outcome = _post(target.webhook_url, body)
            outcomes[target.webhook_url] = outcome
            if outcome != "sent":
                log.warning("lifecycle alert webhook %s %s", target.webhook_url, outcome)
    return outcomes


ALERT_DAYS = (30, 7)


def _lead(days_left: int) -> int | None:
    """The alert due with this many days left: the smallest lead time not yet passed.

    A model first seen 5 days before its shutdown gets the 7-day alert only."""
    due = [lead for lead in ALERT_DAYS if 0 <= days_left <= lead]
    return min(due) if due else None


def shutdown_alerts_send(*, today: dt.date | None = None) -> list[ShutdownAlert]:
    """Send the lifecycle alerts that are due and not yet sent; returns those sent now.

    Each alert is claimed by inserting its ShutdownAlert row (unique per model, shutdown
    date and lead time) in the same transaction as the email: a failed email rolls the claim
    back so the next run retries, and a concurrent run cannot send it twice. Webhooks go out
    after the commit, so no transaction waits on a remote server."""
    today = today or timezone.localdate()
    sent = []
    for notice in models_near_shutdown(today=today, days=max(ALERT_DAYS)):
        lead = _lead(notice.days_left)
        if lead is None or not notice.model.is_active:
            continue
        if ShutdownAlert.objects.filter(
            model=notice.model, shutdown_date=notice.shutdown_date, days_before=lead
        ).exists():
            continue
        message = _message(notice, lead)
        try:
            with transaction.atomic():
                alert = ShutdownAlert.objects.create(
                    model=notice.model, shutdown_date=notice.shutdown_date, days_before=lead
                )
                emails = alert_email(subject=message["subject"], text=message["text"])
                alert.recipients = emails
                alert.save(update_fields=["recipients"])
        except IntegrityError:
            continue  # another run claimed it first
        webhooks = alert_webhooks(**message)
        if webhooks:
            alert.recipients = emails + [f"{url}: {outcome}" for url, outcome in webhooks.items()]
            alert.save(update_fields=["recipients"])
        sent.append(alert)
    return sent


def _message(notice, lead: int) -> dict:
    model: Model = notice.model
    replacement = notice.replacement.name if notice.replacement else None
    uses = notice.tiers and f"tiers: {', '.join(notice.tiers)}"
    rules = notice.rules and f"rules: {'; '.join(notice.rules)}"
    where = "; ".join(part for part in (uses, rules) if part) or "no tier or rule uses it"
    subject = (
        f"[Switchboard] {model.name} shuts down on {notice.shutdown_date:%Y-%m-%d} "
        f"({notice.days_left} days)"
    )
    text = "\n".join(
        [
            f"{model.name} shuts down on {notice.shutdown_date:%Y-%m-%d}, in {notice.days_left} days.",
            f"Used by {where}.",
            f"Replacement: {replacement}. Remap tiers and rules in one step on the Routing page."
            if replacement
            else "No replacement is set: choose one in the catalog, then remap.",
        ]
    )
    payload = {
        "model": model.name,
        "shutdown_date": notice.shutdown_date.isoformat(),
        "days_left": notice.days_left,
        "alert_days": lead,
        "replacement": replacement,
        "tiers": notice.tiers,
        "rules": notice.rules,
    }
    return {"subject": subject, "text": text, "payload": payload}
