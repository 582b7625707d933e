from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import time
from decimal import Decimal

import pytest
from django.core import mail
from django.db import IntegrityError, transaction

from spend import alerts
from spend.models import AlertDelivery, AlertEvent, AlertTarget, Budget, UsageRecord
from spend.periods import period_start
from tests.conftest import WEBHOOK_SECRET as SECRET

NOW = dt.datetime(2026, 11, 20, 12, tzinfo=dt.UTC)


@pytest.fixture
def eager(settings) -> None:
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.CELERY_TASK_EAGER_PROPAGATES = False


@pytest.fixture
def budget(team) -> Budget:
    return Budget.objects.create(
        team=team,
        limit_usd=Decimal("100"),
        spent_usd=Decimal("85"),
        period_start=period_start("monthly", NOW),
    )


@pytest.fixture
def targets(team, other_team, receiver) -> dict[str, AlertTarget]:
    return {
        "team": AlertTarget.objects.create(
            team=team, name="A leads", emails="lead@a.example, ops@a.example"
        ),
        "finance": AlertTarget.objects.create(
            name="Finance", emails="finance@example.com", webhook_url=receiver.url
        ),
        "other": AlertTarget.objects.create(
            team=other_team, name="B leads", emails="lead@b.example"
        ),
    }


def sent_to() -> list[list[str]]:
    return sorted(message.to for message in mail.outbox)


def test_soft_threshold_alert_is_sent_once_per_period(
    budget, targets, eager, secret_env, receiver, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        first = alerts.budget_alerts_check(now=NOW)
    with django_capture_on_commit_callbacks(execute=True):
        second = alerts.budget_alerts_check(now=NOW + dt.timedelta(hours=1))

    assert [e.threshold for e in first] == ["soft"]
    assert second == []
    assert AlertEvent.objects.count() == 1
    # the team's target and the all-teams target, never team B's
    assert sent_to() == [["finance@example.com"], ["lead@a.example", "ops@a.example"]]
    assert "85.0%" in mail.outbox[0].subject + mail.outbox[1].subject
    assert len(receiver.requests) == 1
    assert set(AlertDelivery.objects.values_list("status", flat=True)) == {"sent"}


def test_the_hard_limit_fires_its_own_alert_once(
    budget, targets, eager, secret_env, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        alerts.budget_alerts_check(now=NOW)
    budget.spent_usd = Decimal("100")
    budget.save()
    with django_capture_on_commit_callbacks(execute=True):
        hard = alerts.budget_alerts_check(now=NOW)
        again = alerts.budget_alerts_check(now=NOW)
        refused = alerts.budget_limit_reached(budget_id=budget.id, now=NOW)

    assert [e.threshold for e in hard] == ["hard"]
    assert again == []
    assert refused is None
    assert sorted(AlertEvent.objects.values_list("threshold", flat=True)) == ["hard", "soft"]


def test_a_request_whose_worst_case_did_not_fit_raises_the_hard_alert_and_says_so(
    budget, targets, eager, django_capture_on_commit_callbacks
):
    budget.limit_usd = Decimal("0.08")
    budget.spent_usd = Decimal("0.07")
    budget.save()
    with django_capture_on_commit_callbacks(execute=True):
        event = alerts.budget_limit_reached(
            budget_id=budget.id, now=NOW, request_usd=Decimal("0.5812")
        )
        twice = alerts.budget_limit_reached(
            budget_id=budget.id, now=NOW, request_usd=Decimal("0.5812")
        )

    assert event.threshold == "hard"
    assert event.message == (
        "Team A (team): a $0.5812 request was refused: $0.01 left of $0.08 this monthly period"
    )
    assert event.details["trigger"] == "worst_case_did_not_fit"
    assert event.details["request_usd"] == "0.5812"
    assert twice is None
    assert "a $0.5812 request was refused" in mail.outbox[0].subject


def test_a_downgrade_at_the_limit_says_downgraded(
    budget, targets, eager, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        event = alerts.budget_limit_reached(
            budget_id=budget.id, now=NOW, action="downgrade", request_usd=Decimal("30")
        )
    assert "a $30.00 request was downgraded: $15.00 left of $100.00" in event.message
    assert event.details["request_action"] == "downgrade"


def test_spend_at_the_limit_says_the_limit_was_reached_whatever_the_request(
    budget, targets, eager, django_capture_on_commit_callbacks
):
    budget.spent_usd = Decimal("100.004")
    budget.save()
    with django_capture_on_commit_callbacks(execute=True):
        event = alerts.budget_limit_reached(
            budget_id=budget.id, now=NOW, request_usd=Decimal("0.01")
        )
    assert event.message == (
        "Team A (team) reached its limit: $100.00 of $100.00 (100.0%) this monthly period"
    )
    assert event.details["trigger"] == "limit_reached"


def test_a_new_period_alerts_again(budget, targets, eager, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        alerts.budget_alerts_check(now=NOW)
    next_month = dt.datetime(2026, 12, 20, 12, tzinfo=dt.UTC)
    # the gateway rolls the row into the new period at its next request
    budget.period_start = period_start("monthly", next_month)
    budget.spent_usd = Decimal("90")
    budget.save()
    with django_capture_on_commit_callbacks(execute=True):
        events = alerts.budget_alerts_check(now=next_month)

    assert [e.period_start for e in events] == [period_start("monthly", next_month)]
    assert AlertEvent.objects.filter(threshold="soft").count() == 2


def test_spend_of_a_finished_period_does_not_alert(budget, targets):
    later = dt.datetime(2026, 12, 2, tzinfo=dt.UTC)  # the row still holds November's spend
    assert alerts.budget_alerts_check(now=later) == []


def test_the_database_refuses_a_second_event_for_the_same_threshold_and_period(budget):
    start = period_start("monthly", NOW)
    AlertEvent.objects.create(threshold="soft", budget=budget, period_start=start, message="1")
    with pytest.raises(IntegrityError), transaction.atomic():
        AlertEvent.objects.create(threshold="soft", budget=budget, period_start=start, message="2")
    assert (
        alerts.alert_event_create(threshold="soft", budget=budget, period_start=start, message="3")
        is None
    )


def test_webhook_is_signed_with_hmac_sha256_over_timestamp_and_body(
    budget, targets, eager, secret_env, receiver, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        alerts.budget_alerts_check(now=NOW)

    headers, body = receiver.requests[0]
    timestamp = headers["X-Switchboard-Timestamp"]
    expected = hmac.new(SECRET.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    assert headers["X-Switchboard-Signature"] == "sha256=" + expected.hexdigest()
    assert abs(int(timestamp) - time.time()) < 60
    assert headers["X-Switchboard-Event"] == "budget.soft_threshold"
    payload = json.loads(body)
    assert payload["team"] == "team-a"
    assert payload["details"]["limit_usd"] == "100.0000000000"
    assert SECRET not in body.decode()

    ok = alerts.webhook_verify(
        secret=SECRET.encode(),
        body=body,
        timestamp=timestamp,
        signature=headers["X-Switchboard-Signature"],
    )
    assert ok
    tampered = body.replace(b"team-a", b"team-b")
    assert not alerts.webhook_verify(
        secret=SECRET.encode(),
        body=tampered,
        timestamp=timestamp,
        signature=headers["X-Switchboard-Signature"],
    )
    assert not alerts.webhook_verify(
        secret=SECRET.encode(),
        body=body,
        timestamp=timestamp,
        signature=headers["X-Switchboard-Signature"],
        now=int(timestamp) + 3600,
    )


def test_a_failed_webhook_is_retried_and_sent_only_once(budget, targets, secret_env, receiver):
    receiver.statuses = [503]
    event = alerts.alert_event_create(
        threshold="soft", budget=budget, period_start=NOW, message="A at 85%"
    )
    delivery = AlertDelivery.objects.get(event=event, channel="webhook")

    with pytest.raises(alerts.DeliveryFailed):
        alerts.alert_delivery_send(delivery_id=delivery.id)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.response_status, delivery.attempts) == ("failed", 503, 1)

    assert alerts.alert_delivery_send(delivery_id=delivery.id).status == "sent"
    assert alerts.alert_delivery_send(delivery_id=delivery.id) is None
    assert len(receiver.requests) == 2


def test_a_webhook_without_a_configured_secret_is_not_sent_unsigned(
    budget, targets, receiver, monkeypatch, settings
):
    monkeypatch.delenv(settings.SPEND_ALERT_WEBHOOK_SECRET_ENV, raising=False)
    event = alerts.alert_event_create(
        threshold="soft", budget=budget, period_start=NOW, message="A at 85%"
    )
    delivery = AlertDelivery.objects.get(event=event, channel="webhook")
    with pytest.raises(alerts.DeliveryFailed, match="no signing secret"):
        alerts.alert_delivery_send(delivery_id=delivery.id)
    assert receiver.requests == []


def test_an_upstream_error_spike_alerts_once_per_model_and_window(
    make_usage, team, other_team, targets, eager, django_capture_on_commit_callbacks
):
    for i in range(30):
        make_usage(
            team=team if i % 2 else other_team,
            at=NOW - dt.timedelta(minutes=10, seconds=i),
            model="gpt-5.4-mini",
            status=UsageRecord.Status.ERROR if i < 9 else UsageRecord.Status.SUCCESS,
        )
    for i in range(30):  # a healthy model
        make_usage(team=team, at=NOW - dt.timedelta(minutes=5, seconds=i), model="gpt-5.4")

    with django_capture_on_commit_callbacks(execute=True):
        events = alerts.error_spike_check(now=NOW)
        again = alerts.error_spike_check(now=NOW + dt.timedelta(minutes=1))

    assert [(e.threshold, e.subject) for e in events] == [("error_spike", "gpt-5.4-mini")]
    assert "9 of 30" in events[0].message
    assert again == []
    assert ["finance@example.com"] in sent_to()  # the all-teams target
    assert ["lead@b.example"] not in sent_to()


@pytest.mark.celery_worker
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_delivers_the_signed_webhook(secret_env, receiver, celery_worker, team):
    budget = Budget.objects.create(
        team=team,
        limit_usd=Decimal("10"),
        spent_usd=Decimal("9"),
        period_start=period_start("monthly", dt.datetime.now(dt.UTC)),
    )
    AlertTarget.objects.create(name="Finance hook", webhook_url=receiver.url)

    events = alerts.budget_alerts_check()

    receiver.wait_for(1)
    assert [e.threshold for e in events] == ["soft"]
    headers, body = receiver.requests[0]
    assert alerts.webhook_verify(
        secret=SECRET.encode(),
        body=body,
        timestamp=headers["X-Switchboard-Timestamp"],
        signature=headers["X-Switchboard-Signature"],
    )
    assert json.loads(body)["details"]["budget_id"] == budget.id
