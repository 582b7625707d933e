"""Model lifecycle: near-shutdown warnings, the one-step remap, alerts sent once."""

from __future__ import annotations

import datetime as dt
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from django.core import mail
from django.template import Context, Template
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone

from core.models import AuditEvent
from routing.models import Model, Rule, ShutdownAlert, Tier, TierModel
from routing.selectors import models_near_shutdown
from routing.services import model_remap_to_replacement
from spend.alerts import SIGNATURE_HEADER, TIMESTAMP_HEADER, webhook_verify
from spend.lifecycle import shutdown_alerts_send

pytestmark = pytest.mark.usefixtures("seeded")
TODAY = dt.date(2026, 11, 1)


def _only_mini_retires(days_left: int, today: dt.date | None = None) -> Model:
    """Clear the seed's lifecycle, then give gpt-5.4-mini a shutdown `days_left` away."""
    today = today or timezone.localdate()
    Model.objects.update(shutdown_date=None)
    mini = Model.objects.get(name="gpt-5.4-mini")
    mini.shutdown_date = today + dt.timedelta(days=days_left)
    mini.save()
    return mini


def test_the_seed_retires_the_gpt_5_4_family_on_december_11():
    retiring = Model.objects.filter(shutdown_date=dt.date(2026, 12, 11)).order_by("name")
    assert {m.name: m.replacement.name for m in retiring} == {
        "gpt-5.4": "gpt-6.1-sol",
        "gpt-5.4-mini": "gpt-6.1-terra",
        "gpt-5.4-nano": "gpt-6-luna",
        "gpt-5.5": "gpt-6-astra",
    }


@pytest.mark.parametrize(("days_left", "listed"), [(31, False), (30, True), (0, True), (-3, True)])
def test_models_within_30_days_or_past_their_shutdown_are_listed(days_left, listed):
    _only_mini_retires(days_left, TODAY)
    notices = models_near_shutdown(today=TODAY)
    assert [n.model.name for n in notices] == (["gpt-5.4-mini"] if listed else [])
    if listed:
        notice = notices[0]
        assert notice.days_left == days_left
        assert notice.is_past == (days_left < 0)
        assert notice.tiers == ["mini"]
        assert notice.replacement.name == "gpt-6.1-terra"


def test_a_notice_lists_the_rules_that_name_the_model():
    _only_mini_retires(10, TODAY)
    mini = Model.objects.get(name="gpt-5.4-mini")
    Rule.objects.create(
        policy=Rule.objects.first().policy,
        position=9,
        name="Pin mini",
        action="model",
        target_model=mini,
    )
    TierModel.objects.filter(model=mini).delete()
    (notice,) = models_near_shutdown(today=TODAY, in_use_only=True)
    assert notice.tiers == []
    assert notice.rules == ["default: Pin mini"]


def test_unused_models_only_warn_when_asked_about_by_name():
    _only_mini_retires(10, TODAY)
    TierModel.objects.filter(model__name="gpt-5.4-mini").delete()
    assert models_near_shutdown(today=TODAY, in_use_only=True) == []
    assert len(models_near_shutdown(today=TODAY)) == 1


def test_the_template_tag_renders_the_warning_for_other_pages(bob):
    _only_mini_retires(12)
    request = RequestFactory().get("/")
    request.user = bob
    html = Template("{% load routing_tags %}{% lifecycle_warnings %}").render(
        Context({"request": request})
    )
    assert 'data-testid="lifecycle-warning"' in html
    assert "gpt-5.4-mini" in html
    assert "in 12 days" in html
    assert "Remap to" not in html  # only on routing pages, for admins
    scoped = Template('{% load routing_tags %}{% lifecycle_warnings models="gpt-5.4,gpt-6-luna" %}')
    assert "lifecycle-warning" not in scoped.render(Context({"request": request}))


def test_the_routing_page_warns_about_a_tier_model_near_shutdown(client, bob):
    _only_mini_retires(20)
    client.force_login(bob)
    html = client.get(reverse("routing:index")).content.decode()
    assert 'data-testid="lifecycle-warning"' in html
    assert "in 20 days" in html
    assert "Remap to gpt-6.1-terra" not in html
    assert "remap on the Routing page" in html


def test_no_warning_when_nothing_is_near_shutdown(client, bob):
    _only_mini_retires(90)
    client.force_login(bob)
    html = client.get(reverse("routing:index")).content.decode()
    assert "lifecycle-warning" not in html


def test_the_remap_moves_every_tier_slot_and_rule_and_is_audited(dana):
    mini = Model.objects.get(name="gpt-5.4-mini")
    terra = Model.objects.get(name="gpt-6.1-terra")
    flagship = Tier.objects.get(name="flagship")
    TierModel.objects.create(tier=flagship, model=mini, position=2)
    policy = Rule.objects.first().policy
    pinned = Rule.objects.create(
        policy=policy, position=9, name="Pin mini", action="model", target_model=mini
    )
    result = model_remap_to_replacement(model=mini, actor=dana)
    assert sorted(result.tiers) == ["flagship", "mini"]
    assert result.rules == ["default: Pin mini"]
    assert not TierModel.objects.filter(model=mini).exists()
    assert not Rule.objects.filter(target_model=mini).exists()
    # mini's tier: terra takes the primary slot, and appears once
    assert list(
        TierModel.objects.filter(tier__name="mini")
        .order_by("position")
        .values_list("model__name", "position")
    ) == [("gpt-6.1-terra", 0)]
    assert list(
        TierModel.objects.filter(tier=flagship)
        .order_by("position")
        .values_list("model__name", flat=True)
    ) == ["gpt-5.4", "gpt-6.1-sol", "gpt-6.1-terra"]
    pinned.refresh_from_db()
    assert pinned.target_model == terra
    actions = sorted(AuditEvent.objects.values_list("action", flat=True))
    assert actions == ["model.remap", "rule.remap", "tier.remap", "tier.remap"]
    assert all(event.actor == dana for event in AuditEvent.objects.all())
    tier_event = AuditEvent.objects.get(
        action="tier.remap", object_id=str(Tier.objects.get(name="mini").pk)
    )
    assert (tier_event.before, tier_event.after) == (
        ["gpt-5.4-mini", "gpt-6.1-terra"],
        ["gpt-6.1-terra"],
    )


def test_the_remap_button_remaps_for_an_admin(client, dana):
    _only_mini_retires(5)
    mini = Model.objects.get(name="gpt-5.4-mini")
    client.force_login(dana)
    html = client.get(reverse("routing:index")).content.decode()
    assert "Remap to gpt-6.1-terra" in html
    response = client.post(reverse("routing:model-remap", args=[mini.pk]), follow=True)
    assert "Remapped gpt-5.4-mini → gpt-6.1-terra in tiers mini." in response.content.decode()
    assert "lifecycle-warning" not in response.content.decode()  # nothing uses it any more


@pytest.mark.parametrize("user", ["bob", "charlie"])
def test_only_admins_remap(client, request, user):
    mini = Model.objects.get(name="gpt-5.4-mini")
    client.force_login(request.getfixturevalue(user))
    assert client.post(reverse("routing:model-remap", args=[mini.pk])).status_code == 403
    assert TierModel.objects.filter(model=mini).exists()
    assert not AuditEvent.objects.exists()


def test_a_model_without_a_replacement_cannot_be_remapped(client, dana):
    mini = Model.objects.get(name="gpt-5.4-mini")
    mini.replacement = None
    mini.save()
    client.force_login(dana)
    response = client.post(reverse("routing:model-remap", args=[mini.pk]), follow=True)
    assert "has no replacement set" in response.content.decode()
    assert TierModel.objects.filter(model=mini).exists()


# --- alerts ---------------------------------------------------------------------------------


SECRET = "lifecycle-test-secret"


class _Webhook(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append(
            {
                "json": json.loads(body),
                "verified": webhook_verify(
                    secret=SECRET.encode(),
                    body=body,
                    timestamp=self.headers[TIMESTAMP_HEADER],
                    signature=self.headers[SIGNATURE_HEADER],
                ),
                "event": self.headers["X-Switchboard-Event"],
            }
        )
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook(db, settings, monkeypatch):
    """A global alert target (ops inbox + webhook) on a local HTTP server; signed webhooks."""
    from spend.models import AlertTarget

    monkeypatch.setenv(settings.SPEND_ALERT_WEBHOOK_SECRET_ENV, SECRET)
    _Webhook.received = []
    server = HTTPServer(("127.0.0.1", 0), _Webhook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    AlertTarget.objects.create(
        name="ops",
        emails="ops@example.com",
        webhook_url=f"http://127.0.0.1:{server.server_port}/hook",
    )
    yield _Webhook.received
    server.shutdown()


@pytest.fixture
def finance_user(db):
    from django.contrib.auth.models import Group

    from accounts.models import Role, User

    user = User.objects.create_user("fran", "fran@example.com", "pw")
    user.groups.set(Group.objects.filter(name=Role.FINANCE))
    return user


def test_the_30_day_alert_is_sent_once_by_email_and_webhook(dana, finance_user, bob, webhook):
    _only_mini_retires(30, TODAY)
    sent = shutdown_alerts_send(today=TODAY)
    assert [(a.model.name, a.days_before) for a in sent] == [("gpt-5.4-mini", 30)]
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    # admins, finance and the global alert target; not bob
    assert sorted(message.to) == ["dana@example.com", "fran@example.com", "ops@example.com"]
    assert "gpt-5.4-mini shuts down on 2026-12-01 (30 days)" in message.subject
    assert "Replacement: gpt-6.1-terra" in message.body
    assert [(hook["verified"], hook["event"]) for hook in webhook] == [
        (True, "model.shutdown_approaching")
    ]
    assert [hook["json"] for hook in webhook] == [
        {
            "subject": message.subject,
            "text": message.body,
            "event": "model.shutdown_approaching",
            "model": "gpt-5.4-mini",
            "shutdown_date": "2026-12-01",
            "days_left": 30,
            "alert_days": 30,
            "replacement": "gpt-6.1-terra",
            "tiers": ["mini"],
            "rules": [],
        }
    ]
    # the next runs (the same day, and the days after) send nothing more until 7 days before
    for day in range(23):
        assert shutdown_alerts_send(today=TODAY + dt.timedelta(days=day)) == []
    assert len(mail.outbox) == 1
    seven = shutdown_alerts_send(today=TODAY + dt.timedelta(days=23))
    assert [(a.model.name, a.days_before) for a in seven] == [("gpt-5.4-mini", 7)]
    assert shutdown_alerts_send(today=TODAY + dt.timedelta(days=25)) == []
    assert len(mail.outbox) == 2
    assert len(webhook) == 2
    assert ShutdownAlert.objects.count() == 2


def test_a_model_first_seen_inside_7_days_gets_only_the_7_day_alert(dana):
    _only_mini_retires(5, TODAY)
    sent = shutdown_alerts_send(today=TODAY)
    assert [a.days_before for a in sent] == [7]
    assert shutdown_alerts_send(today=TODAY) == []


def test_no_alert_after_the_shutdown_or_further_than_30_days(dana):
    _only_mini_retires(-1, TODAY)
    assert shutdown_alerts_send(today=TODAY) == []
    _only_mini_retires(31, TODAY)
    assert shutdown_alerts_send(today=TODAY) == []
    assert mail.outbox == []


def test_a_failed_email_leaves_the_alert_unsent_so_the_next_run_retries(dana, settings):
    _only_mini_retires(30, TODAY)
    settings.EMAIL_BACKEND = "tests.routing.broken_mail.Backend"
    with pytest.raises(ConnectionError):
        shutdown_alerts_send(today=TODAY)
    assert not ShutdownAlert.objects.exists()
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert len(shutdown_alerts_send(today=TODAY)) == 1


def test_a_moved_shutdown_date_gets_its_own_alerts(dana):
    mini = _only_mini_retires(30, TODAY)
    shutdown_alerts_send(today=TODAY)
    mini.shutdown_date += dt.timedelta(days=1)  # the provider postponed it by a day
    mini.save()
    assert [a.days_before for a in shutdown_alerts_send(today=TODAY + dt.timedelta(days=1))] == [30]


def test_a_webhook_that_fails_does_not_resend_the_email(dana, webhook):
    from spend.models import AlertTarget

    AlertTarget.objects.update(webhook_url="http://127.0.0.1:9/down")
    _only_mini_retires(7, TODAY)
    (alert,) = shutdown_alerts_send(today=TODAY)
    assert any("failed" in line for line in alert.recipients)
    assert len(mail.outbox) == 1
    assert shutdown_alerts_send(today=TODAY) == []
    assert len(mail.outbox) == 1


@pytest.mark.celery_worker
@pytest.mark.django_db(transaction=True)
def test_the_beat_task_sends_the_alert_once_on_a_real_worker(webhook, celery_worker):
    import time

    from routing.seed import seed_catalog
    from spend.tasks import send_shutdown_alerts

    seed_catalog(simulator_url="http://127.0.0.1:9/v1")
    _only_mini_retires(30)
    # two beat runs at once (four worker threads): the claim lets exactly one send
    send_shutdown_alerts.delay()
    send_shutdown_alerts.delay()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not webhook:
        time.sleep(0.2)
    time.sleep(3)  # room for a duplicate to arrive, if the guard failed
    assert ShutdownAlert.objects.filter(model__name="gpt-5.4-mini", days_before=30).count() == 1
    assert ShutdownAlert.objects.count() == 1
    assert [hook["json"]["model"] for hook in webhook] == ["gpt-5.4-mini"]
    assert all(hook["verified"] for hook in webhook)
