"""Delivery of lifecycle alerts, on the spend app's alert plumbing.

Recipients: the admins, finance people and superusers with an email address, plus every
active alert target without a team (`spend.AlertTarget`, set up in the admin for budget
alerts: the same finance/ops inboxes and webhooks get lifecycle alerts). Webhooks are signed
exactly like budget alerts (`spend.alerts.webhook_signature`: HMAC-SHA256 of
`<timestamp>.<body>` under the secret named by `settings.SPEND_ALERT_WEBHOOK_SECRET_ENV`).

Lifecycle alerts are not budget events, so they are recorded as `routing.ShutdownAlert`
rather than `spend.AlertEvent` (whose kinds are budget thresholds and error spikes)."""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.db.models import Q

from accounts.models import Role, User

log = logging.getLogger(__name__)
WEBHOOK_TIMEOUT_SECONDS = 5
EVENT_TYPE = "model.shutdown_approaching"


@dataclass
class Delivery:
    emails: list[str] = field(default_factory=list)
    webhooks: dict[str, str] = field(default_factory=dict)  # url → "sent" or the error


def _global_targets() -> list[Any]:
    # spend depends on routing (usage rows name models); this import goes the other way, so it
    # stays inside the function and touches only the alert tables.
    from spend.models import AlertTarget

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
    from spend.alerts import (
        SIGNATURE_HEADER,
        TIMESTAMP_HEADER,
        webhook_secret,
        webhook_signature,
    )

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


def alert_deliver(*, subject: str, text: str, payload: dict[str, Any]) -> Delivery:
    """Email, then webhooks (see alert_email and alert_webhooks)."""
    emails = alert_email(subject=subject, text=text)
    return Delivery(
        emails=emails, webhooks=alert_webhooks(subject=subject, text=text, payload=payload)
    )
