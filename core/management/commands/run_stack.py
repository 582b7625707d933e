"""`make run`: demo data, then the simulator, a Celery worker (with beat) and the web server,
stopped together by Ctrl-C."""

from __future__ import annotations

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
        seed_output = StringIO()
        call_command("seed_demo", stdout=seed_output)
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
        processes = {
            name: subprocess.Popen(command, start_new_session=True)
            for name, command in commands.items()
        }
        url = f"http://{host}:{port}/"
        try:
            self._wait_until_up(f"{url}healthz", processes)
            self.stdout.write(self.style.SUCCESS(f"\nSwitchboard is running at {url}"))
            if "password '" in seed_output.getvalue():
                self.stdout.write(seed_output.getvalue().strip())
            else:
                self.stdout.write(
                    "Log in as 'admin' with the password printed by the first `make run` "
                    "(reset it: .venv/bin/python manage.py changepassword admin)."
                )
            self.stdout.write(
                f"Simulator upstream on http://127.0.0.1:{simulator_port}/v1. Ctrl-C stops all."
            )
            while all(p.poll() is None for p in processes.values()):
                time.sleep(0.5)
            stopped = [name for name, p in processes.items() if p.poll() is not None]
            self.stderr.write(f"{', '.join(stopped)} stopped; shutting down the rest.")
        except KeyboardInterrupt:
            self.stdout.write("\nStopping…")
        finally:
            self._stop(processes)

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
        for process in processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for process in processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
