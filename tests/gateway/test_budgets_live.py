"""Budgets on the hot path, through the running site: block (402), downgrade, exactness under
200 simultaneous requests, the sweeper after a server killed mid-request (each with budget
leases, the default, and with per-request reservations), and the hard-limit alert that
blocked and downgraded requests raise."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import email
import re
import signal
import threading
import time
from decimal import Decimal
from pathlib import Path

import httpx
import openai
import pytest
from django.conf import settings
from django.db.models import Sum

from config.celery import app as celery_app
from routing.models import Tier, TierModel
from spend.alerts import webhook_verify
from spend.budgets import budget_reservations_sweep, budget_set
from spend.models import (
    AlertDelivery,
    AlertEvent,
    AlertTarget,
    Budget,
    BudgetReservation,
    UsageRecord,
)
from tests.conftest import Receiver, wait_for_budgets
from tests.gateway.conftest import add_model, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

TRIAGE = {"message": "My card was declined twice today.", "channel": "email"}
HELLO = [{"role": "user", "content": "Say hello to the team."}]


def run(site: str, key: str, **body) -> httpx.Response:
    return httpx.post(
        f"{site}/api/v1/prompts/support-triage/run",
        headers={"Authorization": f"Bearer {key}"},
        json={"variables": TRIAGE, **body},
        timeout=30,
    )


def usage_total(team) -> Decimal:
    """The sum of the team's usage records, at the column's 10 places (SQLite sums REALs)."""
    total = UsageRecord.objects.filter(team=team).aggregate(total=Sum("cost_usd"))["total"]
    return Decimal(total or 0).quantize(Decimal("1e-10"))


def explain_worst_case(site: str, key: str, body: dict) -> Decimal:
    response = httpx.post(
        f"{site}/api/v1/route", headers={"Authorization": f"Bearer {key}"}, json=body
    )
    return Decimal(response.json()["worst_case_cost_usd"])


@pytest.fixture(params=["leases", "per-request"])
def mode(request, monkeypatch) -> str:
    monkeypatch.setenv("BUDGET_LEASES", str(request.param == "leases"))
    monkeypatch.setenv("BUDGET_LEASE_IDLE_SECONDS", "0.5")
    return request.param


@pytest.fixture
def gateway_env(gateway_env, mode) -> None:
    """The servers under test run in this test's budget mode."""


@pytest.fixture
def tiny_budget(team, catalog) -> Budget:
    return budget_set(team=team, limit_usd=Decimal("0.0001"))


def test_a_blocking_budget_answers_402_on_both_surfaces(tiny_budget, site, api_key):
    client = openai.OpenAI(base_url=f"{site}/v1", api_key=api_key, max_retries=0)

    with pytest.raises(openai.APIStatusError) as error:
        client.chat.completions.create(model="tier:mini", messages=HELLO, max_tokens=500)
    response = run(site, api_key)

    assert error.value.status_code == 402
    assert error.value.body["code"] == "budget_exceeded"
    assert error.value.body["type"] == "insufficient_quota"
    assert response.status_code == 402
    assert response.json()["error"]["code"] == "budget_exceeded"
    assert response.json()["error"]["details"]["scope"] == "team"
    # each refusal is one record of its own (the request explorer lists it), never spend
    refusals = wait_for(
        lambda: list(UsageRecord.objects.all()) if UsageRecord.objects.count() == 2 else None
    )
    assert [(r.status, r.error_code, r.cost_usd) for r in refusals] == [
        ("refused", "budget_exceeded", 0)
    ] * 2
    tiny_budget.refresh_from_db()
    assert tiny_budget.reserved_usd == tiny_budget.spent_usd == 0


def downgrade_budget(team, site: str, key: str) -> Budget:
    """A budget that fits one triage run at nano, not one at mini, and downgrades to nano."""
    mini = explain_worst_case(site, key, {"prompt": "support-triage", "variables": TRIAGE})
    nano = explain_worst_case(
        site, key, {"prompt": "support-triage", "variables": TRIAGE, "tier": "nano"}
    )
    assert nano < mini
    return budget_set(
        team=team,
        limit_usd=(mini + nano) / 2,
        action=Budget.Action.DOWNGRADE,
        downgrade_tier="nano",
    )


def test_a_downgrade_budget_routes_to_the_cheaper_tier_and_says_so(team, catalog, site, api_key):
    downgrade_budget(team, site, api_key)
    wait_for_budgets()

    body = run(site, api_key).json()

    assert body["tier"] == "nano"
    assert body["model"] == "gpt-5.4-nano"
    assert body["route"]["reason"].endswith(
        "team budget limit reached: downgraded from mini to nano"
    )
    assert Decimal(body["budget"]["remaining_usd"]) >= 0


def test_a_downgrade_is_recorded_as_a_skipped_candidate_with_the_request_metadata(
    team, catalog, site, api_key
):
    downgrade_budget(team, site, api_key)
    wait_for_budgets()

    response = run(site, api_key, metadata={"task_tag": "invoice", "customer": 42})

    assert response.status_code == 200, response.text
    # the usage writer records the request a moment after it is answered
    record = wait_for(
        lambda: UsageRecord.objects.filter(request_id=response.headers["x-request-id"]).first()
    )
    assert record is not None
    assert record.route_skipped == [
        {"tier": "mini", "model": "", "reason": "team budget limit reached: downgraded to nano"}
    ]
    assert record.metadata == {"task_tag": "invoice", "customer": 42}


def test_the_answer_says_how_much_budget_is_left(team, catalog, site, api_key):
    budget_set(team=team, limit_usd=Decimal("10"))

    body = run(site, api_key).json()

    assert Decimal(body["budget"]["remaining_usd"]) == Decimal("10") - Decimal(body["cost_usd"])


async def _fire(site: str, key: str, count: int, body: dict) -> list[int]:
    limits = httpx.Limits(max_connections=count)
    async with httpx.AsyncClient(base_url=site, limits=limits, timeout=60) as client:

        async def one() -> int:
            response = await client.post(
                "/v1/chat/completions", headers={"Authorization": f"Bearer {key}"}, json=body
            )
            return response.status_code

        return await asyncio.gather(*(one() for _ in range(count)))


def test_200_simultaneous_requests_never_take_spend_past_the_limit(
    team, catalog, site, api_key, mode
):
    body = {"model": "tier:mini", "messages": HELLO, "max_tokens": 400}
    worst = explain_worst_case(site, api_key, body)
    budget = budget_set(team=team, limit_usd=worst * 50 + worst / 2)  # fits about 50
    wait_for_budgets()

    statuses = asyncio.run(_fire(site, api_key, 200, body))

    assert set(statuses) <= {200, 402}
    admitted = statuses.count(200)
    assert admitted >= 50
    settled = wait_for(
        lambda: (
            Budget.objects.filter(pk=budget.pk, reserved_usd=0).exists()
            and UsageRecord.objects.exclude(status="refused").count() >= admitted
        )
    )
    budget.refresh_from_db()
    assert settled  # with leases: the idle lease was returned
    assert budget.spent_usd == usage_total(team)  # the ledger equals the sum of the records
    assert budget.spent_usd <= budget.limit_usd
    upstream = UsageRecord.objects.exclude(status="refused")  # a 402 is a refusal record
    assert upstream.count() == admitted  # one record per admitted request
    assert not BudgetReservation.objects.filter(settled_at=None).exists()
    assert upstream.values("request_id").distinct().count() == admitted  # none charged twice
    assert wait_for(
        lambda: UsageRecord.objects.filter(status="refused").count() == statuses.count(402)
    )  # each refusal listed once
    if mode == "per-request":
        assert statuses.count(402) > 0
        assert BudgetReservation.objects.count() == admitted  # each reserved once
    else:
        # A lease gives back what a request did not spend when it ends, not when its
        # usage is written: the same budget admits more of these cheap requests.
        assert BudgetReservation.objects.count() == 1


def test_requests_in_flight_are_refused_exactly_at_the_limit(team, catalog, site, api_key):
    """Twelve requests at once that each hold their worst case for a second, against a
    budget that fits five and a half: five are admitted, in both modes (a lease never
    refuses what a per-request reservation would admit, in one process)."""
    hanging_tier(timeout="1")
    body = {"model": "tier:hangs", "messages": HELLO, "max_tokens": 100}
    worst = explain_worst_case(site, api_key, body)
    budget = budget_set(team=team, limit_usd=worst * 5 + worst / 2)
    wait_for_budgets()

    statuses = asyncio.run(_fire(site, api_key, 12, body))

    assert sorted(statuses) == [402] * 7 + [504] * 5  # the admitted ones time out upstream
    assert wait_for(lambda: Budget.objects.filter(pk=budget.pk, reserved_usd=0).exists())
    budget.refresh_from_db()
    assert budget.spent_usd == 0  # timed-out attempts cost nothing
    upstream = UsageRecord.objects.exclude(status="refused")  # the 402s are refusal records
    assert upstream.values("request_id").distinct().count() == 5


def hanging_tier(timeout: str) -> None:
    """Tier `hangs`: one model the simulator never answers (the gateway times out)."""
    tier = Tier.objects.create(name="hangs", rank=40)
    add_model("gpt-5.4-mini@hang", timeout=timeout)
    TierModel.objects.create(tier=tier, model_id=_model_id("gpt-5.4-mini@hang"), position=0)


def test_the_sweeper_releases_what_a_killed_server_had_reserved(team, killable_site, api_key, mode):
    url, process = killable_site
    hanging_tier(timeout="60")
    body = {"model": "tier:hangs", "messages": HELLO, "max_tokens": 100}
    worst = explain_worst_case(url, api_key, body)
    # Exactly three requests fit: a lease then holds exactly their worst cases too.
    budget = budget_set(team=team, limit_usd=worst * 3)
    wait_for_budgets()

    def call() -> None:
        with contextlib.suppress(httpx.HTTPError):  # the server dies under it
            httpx.post(
                f"{url}/v1/chat/completions",
                headers={"Authorization": f"Bearer {api_key}"},
                json=body,
                timeout=30,
            )

    threads = [threading.Thread(target=call) for _ in range(3)]
    for thread in threads:
        thread.start()
    assert wait_for(lambda: Budget.objects.get(pk=budget.pk).reserved_usd == worst * 3)
    process.send_signal(signal.SIGKILL)
    process.wait()
    for thread in threads:
        thread.join()

    budget.refresh_from_db()
    assert budget.reserved_usd > 0  # left behind by the dead process
    assert budget_reservations_sweep(older_than=dt.timedelta(minutes=15)) == 0  # too recent
    released = budget_reservations_sweep(older_than=dt.timedelta(0))

    assert released == (1 if mode == "leases" else 3)  # the process's lease, or each request's
    budget.refresh_from_db()
    assert budget.reserved_usd == 0
    assert budget.spent_usd == 0
    assert not BudgetReservation.objects.filter(settled_at=None).exists()


def _model_id(name: str) -> int:
    from routing.models import Model

    return Model.objects.get(name=name).id


# ------------------------------------------------------------------ the hard-limit alert


def queued_limit_alerts(budget_id: int, wait: float) -> int:
    """Drain this run's Celery queue (no worker consumes it here) for `wait` seconds; how many
    hard-limit alert tasks for the budget were queued."""
    found = 0
    deadline = time.monotonic() + wait
    with celery_app.connection_for_read() as connection:
        queue = connection.SimpleQueue(settings.CELERY_TASK_DEFAULT_QUEUE)
        while time.monotonic() < deadline:
            try:
                message = queue.get(timeout=0.2)
            except queue.Empty:
                continue
            args = message.decode()[0]
            if message.headers["task"] == "spend.tasks.budget_limit_alert" and args[0] == budget_id:
                found += 1
            message.ack()
        queue.close()
    return found


def test_blocked_requests_queue_one_hard_limit_alert_not_one_each(tiny_budget, site, api_key):
    client = openai.OpenAI(base_url=f"{site}/v1", api_key=api_key, max_retries=0)

    for _ in range(8):
        with pytest.raises(openai.APIStatusError) as error:
            client.chat.completions.create(model="tier:mini", messages=HELLO, max_tokens=500)
        assert error.value.status_code == 402
    statuses = [run(site, api_key).status_code for _ in range(4)]

    assert statuses == [402] * 4
    assert queued_limit_alerts(tiny_budget.id, wait=3) == 1
    assert not AlertEvent.objects.exists()  # no worker here: queued, not sent


def sent_mail(folder: Path) -> list[email.message.Message]:
    files = sorted(folder.glob("*.log")) if folder.exists() else []
    return [
        email.message_from_string(text)
        for path in files
        # the file backend appends every message of one connection to one file
        for text in path.read_text().split("-" * 79 + "\n")
        if text.strip()
    ]


@pytest.fixture
def alert_targets(team, receiver: Receiver) -> AlertTarget:
    return AlertTarget.objects.create(
        team=team, name="A leads", emails="lead@a.example", webhook_url=receiver.url
    )


@pytest.mark.celery_worker
@pytest.mark.parametrize("action", ["block", "downgrade"])
def test_requests_at_the_hard_limit_send_one_alert_by_email_and_signed_webhook(
    action, team, site, api_key, alert_targets, receiver, secret_env, mail_dir, celery_worker
):
    if action == "block":
        budget = budget_set(team=team, limit_usd=Decimal("0.0001"))
    else:
        budget = downgrade_budget(team, site, api_key)
        wait_for_budgets()

    bodies = [run(site, api_key) for _ in range(6)]

    if action == "block":
        assert {r.status_code for r in bodies} == {402}
    else:
        assert bodies[0].status_code == 200
        assert bodies[0].json()["tier"] == "nano"
        assert "budget limit reached: downgraded from mini to nano" in bodies[0].text
    # (a worker can take 20 s to start on a loaded machine)
    assert wait_for(lambda: AlertDelivery.objects.filter(status="sent").count() == 2, timeout=60)
    time.sleep(1.5)  # time for a second alert, if the gateway had queued one per request
    event = AlertEvent.objects.get()
    assert (event.threshold, event.budget_id) == ("hard", budget.id)
    # Spend is below the limit: the alert says a request's worst case did not fit.
    assert event.details["trigger"] == "worst_case_did_not_fit"
    assert event.details["request_action"] == action
    what = "refused" if action == "block" else "downgraded"
    assert re.fullmatch(
        rf"Team A \(team\): a \$0\.\d+ request was {what}: \$0\.\d+ left of \$0\.\d+ "
        r"this monthly period",
        event.message,
    ), event.message
    messages = sent_mail(mail_dir)
    assert len(messages) == 1
    assert messages[0]["To"] == "lead@a.example"
    assert messages[0]["Subject"].startswith("[Switchboard] Hard limit: Team A (team)")
    assert len(receiver.requests) == 1
    headers, body = receiver.requests[0]
    assert headers["X-Switchboard-Event"] == "budget.hard_limit"
    assert webhook_verify(
        secret=secret_env.encode(),
        body=body,
        timestamp=headers["X-Switchboard-Timestamp"],
        signature=headers["X-Switchboard-Signature"],
    )
