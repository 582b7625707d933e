"""Team admins' writes from the site: budgets (team and key) and alert targets, each audited,
and the "send a test" of an alert target."""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from accounts.models import ApiKey, Team, User
from core.audit import audit_record
from spend.alerts import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WEBHOOK_TIMEOUT_SECONDS,
    webhook_secret,
    webhook_signature,
)
from spend.budgets import budget_set
from spend.models import AlertTarget, Budget

log = logging.getLogger(__name__)

TEST_EVENT_TYPE = "test"


def _budget_fields(budget: Budget | None) -> dict | None:
    if budget is None:
        return None
    return {
        "limit_usd": str(budget.limit_usd),
        "period": budget.period,
        "action": budget.action,
        "downgrade_tier": budget.downgrade_tier.name if budget.downgrade_tier else None,
        "soft_threshold": str(budget.soft_threshold),
    }


@transaction.atomic
def budget_change(
    *,
    team: Team,
    api_key: ApiKey | None,
    limit_usd: Decimal,
    period: str,
    action: str,
    downgrade_tier: str | None,
    soft_threshold: Decimal,
    actor: User | None,
) -> Budget:
    """Create or change the team's (or one of its keys') budget, and record who did it."""
    current = (
        Budget.objects.select_related("downgrade_tier").filter(team=team, api_key=api_key).first()
    )
    before = _budget_fields(current)
    budget = budget_set(
        team=team,
        api_key=api_key,
        limit_usd=limit_usd,
        period=period,
        action=action,
        downgrade_tier=downgrade_tier if action == Budget.Action.DOWNGRADE else None,
        soft_threshold=soft_threshold,
    )
    budget.refresh_from_db()
    after = _budget_fields(budget)
    if before != after:
        audit_record(
            actor=actor,
            action="budget.create" if current is None else "budget.change",
            obj=budget,
            team=team,
            before=before,
            after={**(after or {}), "api_key": api_key.prefix if api_key else None},
        )
    return budget


@transaction.atomic
def alert_target_create(
    *, team: Team, name: str, emails: str, webhook_url: str, actor: User | None
) -> AlertTarget:
    target = AlertTarget.objects.create(
        team=team, name=name, emails=emails, webhook_url=webhook_url
    )
    audit_record(
        actor=actor,
        action="alert_target.create",
        obj=target,
        team=team,
        after={"name": name, "emails": target.email_list, "webhook_url": webhook_url},
    )
    return target


@transaction.atomic
def alert_target_delete(*, target: AlertTarget, actor: User | None) -> None:
    audit_record(
        actor=actor,
        action="alert_target.delete",
        obj=target,
        team=target.team,
        before={
            "name": target.name,
            "emails": target.email_list,
            "webhook_url": target.webhook_url,
        },
    )
    target.delete()


@dataclass(frozen=True)
class TestResult:
    """How each channel of a test alert went: None when the target has no such channel."""

    email: str | None
    webhook: str | None

    @property
    def ok(self) -> bool:
        return all(r is None or r.startswith("sent") for r in (self.email, self.webhook))


def _test_payload(target: AlertTarget, actor: User | None) -> dict:
    return {
        "type": TEST_EVENT_TYPE,
        "team": target.team.slug if target.team else None,
        "message": f"Test alert for {target.name}, sent by {actor or 'Switchboard'}.",
        "created_at": timezone.now().isoformat(),
    }


def _send_test_email(target: AlertTarget, payload: dict) -> str:
    try:
        send_mail(
            f"[Switchboard] Test alert: {target.name}",
            f"{payload['message']}\n\nReal alerts to this target look like this one.",
            None,
            target.email_list,
            fail_silently=False,
        )
    except Exception as exc:  # SMTP errors have no common base class worth naming
        log.warning("test alert email to %s failed: %s", target.name, exc)
        return f"failed: {exc}"[:300]
    return f"sent to {', '.join(target.email_list)}"


def _send_test_webhook(target: AlertTarget, payload: dict) -> str:
    body = json.dumps(payload, sort_keys=True).encode()
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Switchboard-Alerts/1",
        TIMESTAMP_HEADER: str(timestamp),
        "X-Switchboard-Event": TEST_EVENT_TYPE,
    }
    secret = webhook_secret()
    if secret is not None:
        headers[SIGNATURE_HEADER] = webhook_signature(secret=secret, timestamp=timestamp, body=body)
    request = urllib.request.Request(target.webhook_url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT_SECONDS) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        return f"failed: HTTP {exc.code}"
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        return f"failed: {exc.__class__.__name__}"
    unsigned = (
        "" if secret else f" (unsigned: ${settings.SPEND_ALERT_WEBHOOK_SECRET_ENV} is not set)"
    )
    return f"sent, HTTP {status}{unsigned}"


def alert_target_test(*, target: AlertTarget, actor: User | None) -> TestResult:
    """Send a test alert to every channel of the target now, each on its own: a webhook goes
    out whether or not the mail could be delivered."""
    payload = _test_payload(target, actor)
    result = TestResult(
        email=_send_test_email(target, payload) if target.email_list else None,
        webhook=_send_test_webhook(target, payload) if target.webhook_url else None,
    )
    audit_record(
        actor=actor,
        action="alert_target.test",
        obj=target,
        team=target.team,
        after={"email": result.email, "webhook": result.webhook},
    )
    return result
