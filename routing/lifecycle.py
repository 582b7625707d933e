"""Model lifecycle alerts: 30 and 7 days before a model's shutdown, each sent once."""

from __future__ import annotations

import datetime as dt

from django.db import IntegrityError, transaction
from django.utils import timezone

from routing.alerts import alert_email, alert_webhooks
from routing.models import Model, ShutdownAlert
from routing.selectors import models_near_shutdown

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
