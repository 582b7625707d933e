"""`manage.py run_simulator --port 8100 [--latency-scale 1.0] [--host 127.0.0.1]`."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from simulator.server import serve


class Command(BaseCommand):
    help = (
        "Serve the OpenAI-compatible simulator (/v1/responses, /v1/chat/completions, /v1/models)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8100)
        parser.add_argument(
            "--latency-scale",
            type=float,
            default=1.0,
            help="multiplies the simulated latencies; 0 answers at once",
        )

    def handle(
        self, *args: Any, host: str, port: int, latency_scale: float, **options: Any
    ) -> None:
        self.stdout.write(f"Simulator on http://{host}:{port}/v1 (latency scale {latency_scale}).")
        self.stdout.flush()  # before uvicorn takes over the process
        serve(host=host, port=port, latency_scale=latency_scale)
