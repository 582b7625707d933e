"""The sites under test: one checkout's code, its own database, served by uvicorn.

The code served may be another checkout's (`--site-root`, `--compare`): its database is
migrated and seeded by that checkout's own code (bench/gatewaybench/prepare.py, run in it),
and uvicorn imports from it, with this checkout's interpreter and packages.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from simulator.testing import stop_process

_PREPARE = Path(__file__).resolve().with_name("prepare.py")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def healthy_within(port: int, seconds: float) -> bool:
    """Whether the site on `port` answers /healthz within `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5):
                return True
        except OSError:
            time.sleep(0.1)
    return False


def commit_of(root: Path) -> str:
    """The checkout's commit, `+` when its files differ from it."""
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "diff", "--quiet", "HEAD"]).returncode
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+" if dirty else "")


def process_cpu_seconds(pid: int) -> float:
    """CPU time of a process, its threads and its child processes (uvicorn's workers), from
    the scheduler's nanosecond counts (Linux /proc): /proc/<pid>/stat counts in 10 ms ticks,
    too coarse for a slice of a few requests."""
    total = 0
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:  # a process that ended meanwhile
        return 0.0
    for task in tasks:
        try:
            total += int((task / "schedstat").read_text().split()[0])
            children = (task / "children").read_text().split()
        except OSError:  # a thread that ended meanwhile
            continue
        total += sum(round(process_cpu_seconds(int(child)) * 1e9) for child in children)
    return total / 1e9


@dataclass
class Site:
    """`prefix` names its paths in the figures: `gateway`, `compare_gateway`..."""

    prefix: str
    root: Path
    database_url: str
    workers: int = 1
    access_log: bool = False  # LOG_LEVEL=INFO (production's default), its lines to a file
    commit: str = ""
    keys: tuple[str, str] = ("", "")
    port: int = 0
    process: subprocess.Popen | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.root = self.root.resolve()
        self.commit = commit_of(self.root)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings.prod",
            "DATABASE_URL": self.database_url,
            "SECRET_KEY": os.environ.get("SECRET_KEY", "bench-" + "x" * 40),
            "SECURE_SSL_REDIRECT": "false",
            "LOG_LEVEL": "INFO" if self.access_log else "WARNING",
            # The checkout's code before this one's, which the editable install points to.
            "PYTHONPATH": str(self.root),
        }

    def describe(self) -> dict:
        name = self.database_url.rpartition("/")[2]
        return {"root": str(self.root), "commit": self.commit, "database": name}

    def prepare(self, simulator_url: str) -> None:
        """Migrate and seed its database with its own code; keep fresh keys of both teams."""
        done = self._run_prepare("prepare", simulator_url)
        lines = [line for line in done.stdout.splitlines() if line.startswith("KEYS ")]
        if not lines:
            raise RuntimeError(f"no keys from {self.root}:\n{done.stdout[-2000:]}")
        with_budget, without = json.loads(lines[-1][5:])
        self.keys = (with_budget, without)

    def point(self, simulator_url: str) -> None:
        """Its catalog's OpenAI provider answers from this simulator (the site restarted)."""
        self._run_prepare("point", simulator_url)

    def _run_prepare(self, mode: str, simulator_url: str) -> subprocess.CompletedProcess:
        done = subprocess.run(
            [sys.executable, str(_PREPARE), mode, self.database_url, simulator_url],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if done.returncode:
            raise RuntimeError(f"{mode} failed in {self.root}:\n{done.stderr[-3000:]}")
        for line in done.stdout.splitlines():
            if not line.startswith("KEYS "):
                print(f"{self.prefix} [{self.commit}]: {line}", flush=True)
        return done

    def start(self) -> None:
        self.port = free_port()
        command = [
            sys.executable,
            "-m",
            "uvicorn",
            "config.asgi:application",
            "--port",
            str(self.port),
            "--no-access-log",
            "--log-level",
            "warning",
            "--backlog",
            "4096",
        ]
        if self.workers > 1:
            command += ["--workers", str(self.workers)]
        with tempfile.TemporaryFile() as log:  # the access lines: the process keeps it open
            stderr = log if self.access_log else None
            self.process = subprocess.Popen(command, cwd=self.root, env=self.env, stderr=stderr)
        if healthy_within(self.port, 30):
            return
        self.stop()
        raise RuntimeError(f"the site of {self.root} did not start")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None:
            stop_process(process, within=30)

    def cpu_seconds(self) -> float:
        assert self.process is not None
        return process_cpu_seconds(self.process.pid)
