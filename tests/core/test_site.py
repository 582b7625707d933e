from __future__ import annotations

import subprocess
import sys
import time

import pytest
from django.urls import reverse

from core.models import Heartbeat
from tests.conftest import ROOT


def test_healthz_says_ok_without_login(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_reports_each_dependency(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"] == {
        "database": "ok",
        "cache": "ok",
        "broker": "ok",
        "usage_backlog": "ok",
    }


@pytest.mark.django_db
def test_readyz_names_the_broken_dependency_with_503(client):
    from config.celery import app

    working_url, app.conf.broker_url = app.conf.broker_url, "redis://127.0.0.1:1/0"
    try:
        response = client.get("/readyz")
    finally:
        app.conf.broker_url = working_url
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["broker"].startswith("error")


@pytest.mark.django_db
def test_anonymous_user_is_sent_to_login(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


@pytest.mark.django_db
def test_login_page_renders(client):
    response = client.get(reverse("login"))
    assert response.status_code == 200
    assert b'name="password"' in response.content


@pytest.mark.django_db
def test_home_shows_navigation_and_simulator_banner(client, alice, settings):
    settings.OPENAI_API_KEY = ""
    client.force_login(alice)
    page = client.get("/").content.decode()
    for section in ("Prompts", "Playground", "Routing", "Usage"):
        assert f">{section}</a>" in page
    assert "built-in simulator" in page


@pytest.mark.django_db
def test_no_template_syntax_reaches_the_page(client, alice):
    # A `{# #}` comment ends at its line: one that spans two lines is shown to every visitor.
    client.force_login(alice)
    page = client.get("/").content.decode()
    assert "{#" not in page
    assert "{%" not in page


@pytest.mark.django_db
def test_banner_is_hidden_when_a_real_key_is_configured(client, alice, settings):
    settings.OPENAI_API_KEY = "sk-real"
    client.force_login(alice)
    assert "built-in simulator" not in client.get("/").content.decode()


def _run(*args: str, **env: str) -> subprocess.CompletedProcess:
    import os

    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_production_settings_refuse_to_start_without_a_secret_key():
    result = _run(
        "manage.py", "check", DJANGO_SETTINGS_MODULE="config.settings.prod", SECRET_KEY=""
    )
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_production_settings_pass_the_deploy_check():
    result = _run(
        "manage.py",
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        DJANGO_SETTINGS_MODULE="config.settings.prod",
        SECRET_KEY="x" * 50 + "-production-secret-0123456789",
        ALLOWED_HOSTS="switchboard.example.com",
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_unreachable_database_gives_one_clear_line():
    result = _run(
        "manage.py",
        "preflight",
        DJANGO_SETTINGS_MODULE="config.settings.dev",
        DATABASE_URL="postgres://nobody@127.0.0.1:1/nothing",
    )
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1
    assert lines[0].startswith(
        "CommandError: Cannot connect to the postgresql database at 127.0.0.1"
    )
    assert "Check DATABASE_URL" in lines[0]


@pytest.mark.django_db(transaction=True)
def test_a_real_celery_worker_runs_a_task(celery_worker):
    from core.tasks import heartbeat

    heartbeat.delay("smoke")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not Heartbeat.objects.filter(name="smoke").exists():
        time.sleep(0.2)
    assert Heartbeat.objects.filter(name="smoke").exists()
