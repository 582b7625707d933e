"""`make run`: demo data, then the simulator, a Celery worker (with beat) and the web server,
stopped together by Ctrl-C or SIGTERM (each child runs in a process group of its own, which
is signalled whole, so none outlives the stack)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from io import StringIO

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand


class Stop(Exception):
    """SIGTERM (or SIGHUP) arrived: stop the stack as Ctrl-C does."""


def _raise_stop(signum: int, _frame: object) -> None:
    raise Stop(signal.Signals(signum).name)


class Command(BaseCommand):
    help = "Start the simulator, a Celery worker with beat, and uvicorn; Ctrl-C stops all of them."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--simulator-port", type=int, default=8100)
        parser.add_argument(
            "--latency-scale", default=os.environ.get("SIMULATOR_LATENCY_SCALE", "1.0")
        )

    def handle(self, *args, host, port, simulator_port, latency_scale, **options):
        for signum in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, _raise_stop)
        processes: dict[str, subprocess.Popen] = {}
        try:
            self._run(processes, host, port, simulator_port, latency_scale)
        except (KeyboardInterrupt, Stop):
            self.stdout.write("\nStopping…")
        finally:
            # Deaf to further signals while stopping: a second Ctrl-C must not leave children.
            for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                signal.signal(signum, signal.SIG_IGN)
            self._stop(processes)

    def _run(self, processes, host, port, simulator_port, latency_scale) -> None:
        seed_output = StringIO()
        simulator_url = f"http://127.0.0.1:{simulator_port}/v1"
        call_command("seed_demo", simulator_url=simulator_url, stdout=seed_output)
        python = sys.executable
        commands = {
            "simulator": [
                python,
                "-m",
                "simulator",
                "--port",
                str(simulator_port),
                "--latency-scale",
                latency_scale,
            ],
            "worker": [
                python,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "-B",
                "--pool=threads",
                "-c",
                "4",
                "--loglevel=WARNING",
                "--schedule",
                str(settings.VAR_DIR / "celerybeat-schedule"),
            ],
            "web": [
                python,
                "-m",
                "uvicorn",
                "config.asgi:application",
                "--host",
                host,
                "--port",
                str(port),
                "--no-access-log",
            ],
        }
        # Alerts the worker mails are printed in this output unless EMAIL_URL says otherwise.
        env = {**os.environ, "SIMULATOR_URL": simulator_url}
        for name, command in commands.items():
            processes[name] = subprocess.Popen(command, start_new_session=True, env=env)
        url = f"http://{host}:{port}/"
        self._wait_until_up(f"{url}healthz", processes)
        self.stdout.write(self.style.SUCCESS(f"\nSwitchboard is running at {url}"))
        if "password '" in seed_output.getvalue():
            self.stdout.write(seed_output.getvalue().strip())
        else:
            self.stdout.write(
                "Log in as 'admin' with the password printed by the first `make run` "
                "(reset it: .venv/bin/python manage.py changepassword admin)."
            )
        self.stdout.write(f"Simulator upstream on {simulator_url}. Ctrl-C stops all.")
        self.stdout.flush()
        while all(p.poll() is None for p in processes.values()):
            time.sleep(0.5)
        stopped = [name for name, p in processes.items() if p.poll() is not None]
        self.stderr.write(f"{', '.join(stopped)} stopped; shutting down the rest.")

    def _wait_until_up(self, health_url: str, processes: dict) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p in processes.values()):
                return
            try:
                with urllib.request.urlopen(health_url, timeout=1):
                    return
            except OSError:
                time.sleep(0.3)

    def _stop(self, processes: dict) -> None:
        """SIGTERM to each child's whole process group (beat, pool processes included), then
        SIGKILL to any group still there after 15 s."""
        for process in processes.values():
            _signal_group(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for process in processes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            # The leader has exited (or is stuck): whatever is left of its group goes too.
            _signal_group(process.pid, signal.SIGKILL)
            process.wait()


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signum)
