"""Not one usage record lost or doubled: a server killed with requests in flight, a database
outage under load, a key deleted mid-request, a batch written twice, a client that goes
away, and a job submitted while the broker is down. End to end on the site under uvicorn
(the simulator as its upstream), on whichever database the run uses."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import datetime as dt
import signal
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from django.db import connection
from django.db.models import Count, Sum
from django.utils import timezone

from accounts.models import ApiKey, Team
from accounts.services import api_key_create
from playground.models import Job
from routing.models import Provider
from spend.budgets import BudgetInfo, Settlement, budget_reservations_sweep, budget_set
from spend.models import Budget, BudgetReservation, UsageLedger, UsageRecord
from spend.usage import Ledger, UsageRow, usage_spools_replay
from spend.usage_sql import ledgers_write
from tests.conftest import serve_site, stop
from tests.gateway.conftest import add_model, wait_for
from tests.gateway.test_budgets_live import hanging_tier

pytestmark = pytest.mark.django_db(transaction=True)

HELLO = {"model": "tier:mini", "messages": [{"role": "user", "content": "Hello there"}]}


def chat(site: str, key: str, timeout: float = 60, **body) -> httpx.Response:
    return httpx.post(
        f"{site}/v1/chat/completions",
        json={**HELLO, **body},
        headers={"Authorization": f"Bearer {key}"},
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def slow_upstream() -> Iterator[str]:
    """A simulator that takes about a second per answer: requests stay in flight."""
    from simulator.testing import SimulatorServer

    with SimulatorServer(latency_scale=2.0) as server:
        yield server.url


@pytest.fixture
def spool(tmp_path: Path, settings) -> Path:
    """A spool directory of this test's own: its servers spool there, its sweeps replay it."""
    settings.USAGE_SPOOL_DIR = str(tmp_path / "spool")
    return tmp_path / "spool"


def records_by_request() -> dict[str, int]:
    rows = UsageRecord.objects.values("request_id").annotate(n=Count("id"))
    return {row["request_id"]: row["n"] for row in rows}


def assert_no_record_doubled() -> None:
    rows = UsageRecord.objects.values("request_id", "attempt").annotate(n=Count("id"))
    assert [row for row in rows if row["n"] > 1] == []


def assert_ledger_equals_records(team: Team) -> None:
    budget = Budget.objects.get(team=team, api_key=None)
    total = UsageRecord.objects.filter(team=team).aggregate(s=Sum("cost_usd"))["s"] or 0
    assert budget.spent_usd == Decimal(total).quantize(Decimal("1e-10"))
    assert budget.reserved_usd == 0
    assert not BudgetReservation.objects.filter(settled_at=None).exists()


# --- kill -9 ------------------------------------------------------------------------------------


def test_a_server_killed_with_50_requests_in_flight_keeps_every_answered_record(
    gateway_env, seeded, team, api_key, slow_upstream, spool
):
    """The writer holds everything in memory for 30 s (USAGE_FLUSH_SECONDS): without the
    spool, every answered request's record would die with the process."""
    Provider.objects.filter(name="openai").update(base_url=slow_upstream)
    budget_set(team=team, limit_usd=Decimal("100"))
    url, process = serve_site(slow_upstream, USAGE_SPOOL_DIR=str(spool), USAGE_FLUSH_SECONDS="30")
    answers: list[httpx.Response] = []

    def one() -> None:
        with contextlib.suppress(httpx.HTTPError):  # the server dies under it
            answers.append(chat(url, api_key))

    try:
        warm = chat(url, api_key)  # the lease is taken; its record written at once
        assert warm.status_code == 200
        assert wait_for(lambda: UsageRecord.objects.exists())
        threads = [threading.Thread(target=one) for _ in range(50)]
        for thread in threads:
            thread.start()
        assert wait_for(lambda: len(answers) >= 10, timeout=60)
        process.send_signal(signal.SIGKILL)
        process.wait()
        for thread in threads:
            thread.join()
    finally:
        stop(process)
    answered = {r.headers["x-request-id"] for r in answers if r.status_code == 200}
    assert 10 <= len(answered) < 50  # some answered, some cut by the kill
    assert UsageRecord.objects.count() == 1  # nothing since the warm-up before the kill

    replayed = usage_spools_replay()  # what the sweeper does first
    budget_reservations_sweep(older_than=dt.timedelta(0))

    assert replayed >= len(answered)
    counts = records_by_request()
    assert {request_id: counts.get(request_id) for request_id in answered} == dict.fromkeys(
        answered, 1
    )
    assert_no_record_doubled()
    assert_ledger_equals_records(team)
    assert usage_spools_replay() == 0  # replayed once, then gone
    assert list(spool.glob("*.spool")) == []


# --- database outage ------------------------------------------------------------------------------


class TcpProxy:
    """A TCP proxy in front of the database that can be cut (every connection dropped and
    new ones refused) and restored on the same port."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self.listener: socket.socket | None = None
        self.sockets: set[socket.socket] = set()
        self.lock = threading.Lock()

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.sockets |= {client, server}
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        assert self.listener is not None
        self.listener.close()
        with self.lock:
            for sock in self.sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self.sockets.clear()


@contextlib.contextmanager
def database_outage_switch(env: dict[str, str]) -> Iterator[callable]:
    """Fills `env` for the site and yields `outage(seconds)`, which makes the database
    unreachable (PostgreSQL: behind a proxy that is cut) or unwritable (SQLite: the file
    locked by another connection) for that long."""
    if connection.vendor == "postgresql":
        db = connection.settings_dict
        proxy = TcpProxy((db["HOST"] or "127.0.0.1", int(db["PORT"] or 5432)))
        proxy.start()
        env["DATABASE_URL"] = f"postgres://{db['USER']}@127.0.0.1:{proxy.port}/{db['NAME']}"

        def outage(seconds: float) -> None:
            proxy.cut()
            time.sleep(seconds)
            proxy.start()

        yield outage
        proxy.cut()
    else:

        def outage(seconds: float) -> None:
            locker = sqlite3.connect(connection.settings_dict["NAME"], timeout=30)
            locker.execute("BEGIN EXCLUSIVE")
            time.sleep(seconds)
            locker.rollback()
            locker.close()

        yield outage


def test_a_database_outage_under_steady_load_loses_and_doubles_no_record(
    gateway_env, seeded, team, api_key, simulator_url, spool
):
    env = {"USAGE_SPOOL_DIR": str(spool), "USAGE_BACKLOG_MAX_SECONDS": "3"}
    stop_load = threading.Event()
    answers: list[httpx.Response] = []

    def load() -> None:
        while not stop_load.is_set():
            with contextlib.suppress(httpx.HTTPError):
                answers.append(chat(site, api_key, timeout=30))
            time.sleep(0.02)

    with database_outage_switch(env) as outage:
        site, process = serve_site(simulator_url, **env)
        try:
            assert chat(site, api_key).status_code == 200  # the key is cached from now on
            with concurrent.futures.ThreadPoolExecutor(4) as pool:
                loads = [pool.submit(load) for _ in range(3)]
                time.sleep(1)
                cut = pool.submit(outage, 12)
                time.sleep(6)
                during = httpx.get(f"{site}/readyz", timeout=30).json()
                cut.result()
                time.sleep(2)
                stop_load.set()
                for future in loads:
                    future.result()
            answered = {r.headers["x-request-id"] for r in answers if r.status_code == 200}
            assert wait_for(lambda: UsageRecord.objects.count() >= len(answered) + 1, timeout=60)
            after = httpx.get(f"{site}/readyz", timeout=30).json()
        finally:
            stop(process)

    # /readyz turns unready exactly when the oldest unwritten ledger is older than the
    # threshold (USAGE_BACKLOG_MAX_SECONDS, 3 s here)
    stale = during["usage_backlog"]["oldest_seconds"] > 3
    assert during["checks"]["usage_backlog"].startswith("error") == stale
    assert after["usage_backlog"]["count"] == 0
    assert len(answered) > 20
    counts = records_by_request()
    assert {request_id: counts.get(request_id) for request_id in answered} == dict.fromkeys(
        answered, 1
    )
    assert sum(counts.values()) == len(answered) + 1  # and the warm-up's
    assert_no_record_doubled()


# --- a key deleted mid-flight ----------------------------------------------------------------


def test_a_ledger_whose_key_is_deleted_mid_flight_is_written_with_30_other_teams(
    gateway_env, catalog, team, api_key, slow_upstream, spool
):
    """One batch (the writer waits 6 s: on a loaded machine the key must be gone before the
    batch is written) holds all 31 ledgers; one of them names a key that no longer exists. Before: a foreign-key violation, and the batch retried ledger by
    ledger, inserting the others again on each retry."""
    Provider.objects.filter(name="openai").update(base_url=slow_upstream)
    teams = [Team.objects.create(slug=f"t{i}", name=f"T{i}") for i in range(30)]
    keys = [api_key_create(team=other, name="k")[1] for other in teams]
    for budgeted in [team, *teams]:
        budget_set(team=budgeted, limit_usd=Decimal("100"))
    doomed = ApiKey.objects.get(team=team)
    doomed_id = doomed.id
    url, process = serve_site(slow_upstream, USAGE_SPOOL_DIR=str(spool), USAGE_FLUSH_SECONDS="6")
    try:
        with concurrent.futures.ThreadPoolExecutor(31) as pool:
            futures = [pool.submit(chat, url, key) for key in [api_key, *keys]]
            # the doomed key's request is past its checks (its team's budget is held)
            assert wait_for(lambda: Budget.objects.get(team=team).reserved_usd > 0, timeout=30)
            doomed.delete()
            # else the delete set the written record's key to NULL: this test's timing failed
            assert not UsageRecord.objects.exists(), "the batch was written before the delete"
            answers = [future.result() for future in futures]
        assert [r.status_code for r in answers] == [200] * 31, [r.text[:200] for r in answers]
        assert wait_for(lambda: UsageRecord.objects.count() >= 31, timeout=30)
        time.sleep(0.5)  # time for a duplicate, if there were one
    finally:
        stop(process)

    assert UsageRecord.objects.count() == 31
    assert set(records_by_request().values()) == {1}
    record = UsageRecord.objects.get(request_id=answers[0].headers["x-request-id"])
    assert record.api_key_id == doomed_id  # written with the id it had
    for budgeted in [team, *teams]:
        assert_ledger_equals_records(budgeted)


# --- a batch written twice ----------------------------------------------------------------------


def _ledger(team: Team, budget: Budget, cost: str) -> Ledger:
    ledger = Ledger(closed=True)
    ledger.add(
        UsageRow(
            created_at=timezone.now(),
            request_id=f"req_{ledger.key}",
            team_id=team.id,
            model_name="gpt-5.4-mini",
            cost_usd=Decimal(cost),
        )
    )
    info = BudgetInfo(budget.id, team.id, None, budget.period, budget.limit_usd, "block", None)
    ledger.settlements = [Settlement(info, None, spend=Decimal(cost))]
    return ledger


@pytest.mark.parametrize("path", ["django", "native"])
def test_a_batch_retried_after_a_lost_commit_is_written_once(team, path):
    """The writer never saw the commit's reply (the connection dropped after COMMIT), so it
    writes the same batch again, here with a new ledger added: only the new one is written."""
    from spend import pg

    if path == "native" and connection.vendor != "postgresql":
        pytest.skip("the native path is PostgreSQL's")
    budget = budget_set(team=team, limit_usd=Decimal("10"))
    first = [_ledger(team, budget, "0.001"), _ledger(team, budget, "0.002")]
    later = _ledger(team, budget, "0.004")
    parked: list[Ledger] = []

    async def write_twice() -> None:
        pg.serving(path == "native")
        try:
            await ledgers_write(first, set(), lambda ledger, exc: parked.append(ledger))
            await ledgers_write([*first, later], set(), lambda ledger, exc: parked.append(ledger))
        finally:
            await pg.pg_close()
            pg.serving(False)

    asyncio.run(write_twice())

    assert parked == []
    assert UsageRecord.objects.count() == 3
    assert UsageLedger.objects.count() == 3
    budget.refresh_from_db()
    assert budget.spent_usd == Decimal("0.007")


# --- a client that goes away ----------------------------------------------------------------------


def test_a_client_that_goes_away_mid_request_still_gets_its_attempt_recorded(
    gateway_env, seeded, team, api_key, simulator_url
):
    hanging_tier(timeout="60")
    budget_set(team=team, limit_usd=Decimal("100"))
    url, process = serve_site(simulator_url)
    try:
        with pytest.raises(httpx.ReadTimeout):
            chat(url, api_key, timeout=3, model="tier:hangs")
        # well before the upstream's 60 s timeout would record it anyway
        assert wait_for(lambda: UsageRecord.objects.exists(), timeout=30)
    finally:
        stop(process)

    record = UsageRecord.objects.get()
    assert record.status == UsageRecord.Status.CANCELLED
    assert record.error_code == "client_disconnected"
    assert record.input_tokens > 0  # estimated, and said so
    assert "estimated" in record.error_message
    assert wait_for(lambda: Budget.objects.get(team=team).reserved_usd == 0 or None, timeout=15)


# --- billed as served ---------------------------------------------------------------------------


def test_a_flex_request_served_at_default_is_billed_at_default(site, team, api_key):
    add_model("gpt-5.4-mini@noflex")  # the simulator serves its flex requests at default
    flex = chat(site, api_key, model="gpt-5.4-mini@noflex", service_tier="flex")
    default = chat(site, api_key, model="gpt-5.4-mini@noflex", service_tier="default")

    assert flex.status_code == default.status_code == 200
    assert flex.json()["service_tier"] == "default"  # what the upstream says it served
    assert wait_for(lambda: UsageRecord.objects.count() == 2)
    served = UsageRecord.objects.get(request_id=flex.headers["x-request-id"])
    assert served.service_tier == "default"
    assert flex.headers["x-switchboard-cost-usd"] == default.headers["x-switchboard-cost-usd"]


# --- jobs with the broker down ----------------------------------------------------------------------


def test_with_the_broker_down_a_job_is_committed_once_and_answered_202(
    gateway_env, seeded, team, api_key, simulator_url
):
    site, process = serve_site(simulator_url, CELERY_BROKER_URL="redis://127.0.0.1:1/0")
    headers = {"Authorization": f"Bearer {api_key}", "Idempotency-Key": "nightly-1"}
    body = {"inputs": ["hi", "there"]}
    try:
        first = httpx.post(f"{site}/api/v1/jobs", json=body, headers=headers, timeout=60)
        again = httpx.post(f"{site}/api/v1/jobs", json=body, headers=headers, timeout=60)
    finally:
        stop(process)

    assert first.status_code == 202, first.text[:300]
    assert again.status_code in (200, 202), again.text[:300]
    assert again.json()["id"] == first.json()["id"]
    job = Job.objects.get()  # one job, queued for beat's jobs_resume_stale to start
    assert job.status == Job.Status.QUEUED


def test_the_usage_spool_of_a_live_process_is_never_replayed(spool, team):
    from spend.spool import Spool
    from spend.usage import ROW_FIELDS

    live = Spool(spool, ROW_FIELDS)
    budget = budget_set(team=team, limit_usd=Decimal("10"))
    live.append(_ledger(team, budget, "0.001"))

    assert usage_spools_replay() == 0  # its owner holds the lock
    live.close(remove=False)  # the owner dies
    assert usage_spools_replay() == 1
    assert UsageRecord.objects.count() == 1


@pytest.mark.parametrize("owner", ["catches-up", "dies-overflowed"])
def test_ledgers_past_the_queue_bound_are_read_back_from_the_spool_exactly_once(
    spool, team, settings, owner
):
    """Past USAGE_QUEUE_MAX the writer keeps new ledgers in the spool only and reads them back
    once its queue drains; a process that dies overflowed leaves them to the replay. Either
    way every ledger is written once, and replaying again writes nothing."""
    from spend import pg
    from spend.usage import UsageWriter

    settings.USAGE_QUEUE_MAX = 5
    settings.USAGE_FLUSH_SECONDS = 0
    budget = budget_set(team=team, limit_usd=Decimal("100"))
    first = [_ledger(team, budget, "0.1000000001") for _ in range(40)]
    second = [_ledger(team, budget, "0.2000000002") for _ in range(40)]

    async def write() -> tuple[int, int]:
        pg.serving(True)  # a server process: it spools
        try:
            writer = UsageWriter(asyncio.get_running_loop())
            for ledger in first:  # no await between them: the queue holds 5, the spool all
                writer.submit(ledger)
            overflowed = writer.overflowed
            await writer.flush()
            for ledger in second:
                writer.submit(ledger)
            if owner == "catches-up":
                await writer.flush()
                writer.close()
            else:  # killed: its writer stops, its lock goes with it
                writer.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await writer.task
                writer.spool.close(remove=False)
            return overflowed, writer.backlog()[0]
        finally:
            await pg.pg_close()
            pg.serving(False)

    overflowed, left = asyncio.run(write())

    assert overflowed == 35
    replayed = usage_spools_replay()
    if owner == "catches-up":
        assert (left, replayed) == (0, 0)
        assert list(spool.glob("*.spool")) == []
    else:
        assert left == 40
        assert replayed >= 40
    assert usage_spools_replay() == 0
    assert UsageRecord.objects.count() == 80
    assert_no_record_doubled()
    assert set(records_by_request().values()) == {1}
    assert Budget.objects.get(pk=budget.pk).spent_usd == Decimal("12.000000012")


# --- exact refusals near the limit ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("servers", "leases"), [(1, True), (2, False)], ids=["one-process", "two-processes"]
)
def test_back_to_back_requests_near_the_limit_are_refused_only_when_their_worst_case_does_not_fit(
    gateway_env, seeded, team, api_key, simulator_url, monkeypatch, servers, leases
):
    """100 requests one after the other, each holding a worst case ten times what it costs,
    against a budget that fits about 40 of them: request i must be admitted exactly when
    what is left after the records of the requests before it still covers its worst case.
    The usage writers wait half a second before each batch: a finished request's worst case
    is still held in the database when the next request asks (before: refused too early)."""
    from tests.gateway.test_budgets_live import explain_worst_case

    monkeypatch.setenv("BUDGET_LEASES", str(leases))
    monkeypatch.setenv("USAGE_FLUSH_SECONDS", "0.5")
    monkeypatch.setenv("BUDGET_REFUSAL_RECHECK_SECONDS", "1.2")
    body = {"max_tokens": 400}
    started = [serve_site(simulator_url) for _ in range(servers)]
    try:
        urls = [url for url, _process in started]
        worst = explain_worst_case(urls[0], api_key, {**HELLO, **body})
        warm = chat(urls[0], api_key, **body)  # no budget yet: what one request costs
        cost = Decimal(warm.headers["x-switchboard-cost-usd"])
        assert worst > cost * 5
        limit = worst + cost * 40
        budget_set(team=team, limit_usd=limit)
        time.sleep(0.5)  # the servers read the budget again (HOT_CHECK_SECONDS)
        answers = [chat(urls[i % servers], api_key, **body) for i in range(100)]
        admitted = [r for r in answers if r.status_code == 200]
        served = UsageRecord.objects.exclude(status=UsageRecord.Status.REFUSED)
        assert wait_for(lambda: served.count() == len(admitted) + 1, timeout=30)
    finally:
        for _url, process in started:
            stop(process)

    assert {r.status_code for r in answers} == {200, 402}
    costs = dict(UsageRecord.objects.values_list("request_id", "cost_usd"))
    spent = Decimal(0)
    wrong = []
    for index, response in enumerate(answers):
        left = limit - spent
        fits = left >= worst
        if (response.status_code == 200) != fits:
            wrong.append((index, response.status_code, f"left {left}, worst {worst}"))
        if response.status_code == 200:
            spent += Decimal(costs[response.headers["x-request-id"]])
    assert wrong == []
    assert 30 <= len(admitted) <= 50
    budget = Budget.objects.get(team=team)
    assert budget.spent_usd == spent <= limit
