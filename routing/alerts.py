"""Alert delivery for lifecycle alerts: Django mail to admins and finance, plus a webhook.

Small on purpose: when the spend app's alert delivery lands (spend/alerts.py), lifecycle
alerts can move onto it; the interface is the same idea (subject, text, JSON payload)."""

from __future__ import annotations

import json
import logging
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.db.models import Q

from accounts.models import Role, User

log = logging.getLogger(__name__)
WEBHOOK_TIMEOUT_SECONDS = 5


@dataclass
class Delivery:
    emails: list[str] = field(default_factory=list)
    webhook: str = ""  # "", "sent" or the error
    channels: list[str] = field(default_factory=list)


def alert_recipients() -> list[str]:
    """Active admins, finance people and superusers with an email address."""
    users = User.objects.filter(is_active=True).exclude(email="")
    users = users.filter(
        Q(is_superuser=True) | Q(groups__name__in=[Role.ADMIN, Role.FINANCE])
    ).distinct()
    return sorted({user.email for user in users})


def alert_deliver(*, subject: str, text: str, payload: dict[str, Any]) -> Delivery:
    """Email the recipients (raises if the mail backend fails) and post the webhook.

    A webhook failure is logged and reported, not raised: the email already went out."""
    delivery = Delivery(emails=alert_recipients())
    if delivery.emails:
        send_mail(subject, text, None, delivery.emails)
        delivery.channels.append("email")
    url = getattr(settings, "ALERT_WEBHOOK_URL", "")
    if url:
        body = json.dumps({"subject": subject, "text": text, **payload}).encode()
        request = urllib.request.Request(
            url, data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT_SECONDS) as response:
                response.read()
            delivery.webhook = "sent"
            delivery.channels.append("webhook")
        except OSError as exc:
            delivery.webhook = f"failed: {exc}"
            log.warning("alert webhook %s failed: %s", url, exc)
    return delivery
