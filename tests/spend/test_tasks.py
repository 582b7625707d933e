from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.utils import timezone

from config.celery import app
from spend import tasks
from spend.models import DailyRollup, UsageRecord


def test_content_purge_drops_bodies_older_than_each_teams_retention(make_usage, team, other_team):
    other_team.retention_days = 7
    other_team.save()
    now = timezone.now()
    body = {"input": "secret customer text"}

    def stored(t, days_ago):
        return make_usage(
            team=t, at=now - dt.timedelta(days=days_ago), request_body=body, response_body=body
        )

    old_a, fresh_a = stored(team, 31), stored(team, 29)
    old_b, fresh_b = stored(other_team, 8), stored(other_team, 6)

    assert tasks.content_purge() == 2

    for record in (old_a, old_b):
        record.refresh_from_db()
        assert record.request_body is None
        assert record.response_body is None
        assert record.cost_usd > 0  # the accounting stays
    for record in (fresh_a, fresh_b):
        record.refresh_from_db()
        assert record.request_body == body
        assert record.response_body == body
    assert tasks.content_purge() == 0


def test_rollup_task_rolls_up_the_ledger(make_usage, team):
    record = make_usage(team=team, at=timezone.now() - dt.timedelta(hours=1))

    result = tasks.usage_rollup()

    assert result["rows"] >= 1
    assert DailyRollup.objects.get().cost_usd == record.cost_usd
    assert UsageRecord.objects.count() == 1


def test_periodic_tasks_are_scheduled_and_registered():
    app.loader.import_default_modules()
    scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    for name in (
        "spend.tasks.usage_rollup",
        "spend.tasks.alerts_check",
        "spend.tasks.content_purge",
    ):
        assert name in scheduled
        assert name in app.tasks
