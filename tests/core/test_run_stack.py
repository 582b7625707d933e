"""`make run`: run_stack starts the simulator, a worker and the site, and SIGTERM stops every
process it started; seed_demo, run at each start, keeps what an operator changed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from routing.models import Model, Provider, Tier
from tests.conftest import ROOT, subprocess_env
from tests.servers import free_port, wait_for_http


def _descendants(pid: int) -> set[int]:
    """Every live process under `pid` (children, their children, ...), from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z":
            parents[int(entry.name)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        children = {child for child, parent in parents.items() if parent in frontier}
        frontier = children - found
        found |= children
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.django_db(transaction=True)
def test_sigterm_to_run_stack_stops_every_child_process():
    port, simulator_port = free_port(), free_port()
    stack = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "run_stack",
            "--port",
            str(port),
            "--simulator-port",
            str(simulator_port),
            "--latency-scale",
            "0",
        ],
        cwd=ROOT,
        env=subprocess_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    children: set[int] = set()
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", stack, timeout=120)
        with urllib.request.urlopen(f"http://127.0.0.1:{simulator_port}/v1/models", timeout=5):
            pass
        children = _descendants(stack.pid)
        assert len(children) >= 3  # simulator, worker, web (and the worker's own children)
        stack.send_signal(signal.SIGTERM)
        assert stack.wait(timeout=60) == 0
        deadline = time.monotonic() + 10
        while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [pid for pid in children if _alive(pid)] == []
    finally:  # whatever outlived a failed test
        for pid in children | (_descendants(stack.pid) if stack.poll() is None else set()):
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        if stack.poll() is None:
            stack.kill()
            stack.wait()


def _seed(*args: str) -> str:
    out = StringIO()
    call_command("seed_demo", *args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_the_demo_provider_follows_the_simulator_port():
    _seed("--simulator-url", "http://127.0.0.1:8100/v1")
    _seed("--simulator-url", "http://127.0.0.1:9100/v1")
    assert Provider.objects.get(name="openai").base_url == "http://127.0.0.1:9100/v1"


@pytest.mark.django_db
def test_seeding_twice_keeps_a_provider_url_an_operator_changed():
    _seed("--simulator-url", "http://127.0.0.1:8100/v1")
    Provider.objects.filter(name="openai").update(base_url="https://api.openai.com/v1")
    _seed("--simulator-url", "http://127.0.0.1:9100/v1")
    _seed()
    assert Provider.objects.get(name="openai").base_url == "https://api.openai.com/v1"


@pytest.mark.django_db
def test_seeding_again_keeps_an_operators_catalog_edits():
    _seed()
    Model.objects.filter(name="gpt-5.4-mini").update(context_window=128_000)
    Tier.objects.filter(name="mini").update(description="our own words")
    _seed()
    assert Model.objects.get(name="gpt-5.4-mini").context_window == 128_000
    assert Tier.objects.get(name="mini").description == "our own words"
    assert Model.objects.count() == 8
