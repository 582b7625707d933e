"""Run the simulator under uvicorn: shared by `python -m simulator` and `manage.py run_simulator`."""

from __future__ import annotations

import socket

import uvicorn

from simulator.app import create_app

# Long enough for in-flight answers to finish, short enough that a stop never waits on a
# `hang` request (those end when their client disconnects).
_GRACEFUL_SHUTDOWN_SECONDS = 3


def serve(
    *,
    host: str = "127.0.0.1",
    port: int = 8100,
    latency_scale: float = 1.0,
    answer_seconds: float | None = None,
    batch_time_scale: float = 1.0,
    refuse_flex: bool = False,
    fd: int | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM. `fd` is an already listening socket handed over by a parent
    (simulator.testing), which makes the port known before this process starts."""
    config = uvicorn.Config(
        create_app(
            latency_scale,
            answer_seconds=answer_seconds,
            batch_time_scale=batch_time_scale,
            refuse_flex=refuse_flex,
        ),
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=_GRACEFUL_SHUTDOWN_SECONDS,
        # Benchmarks open hundreds of connections at once.
        backlog=4096,
    )
    sockets = [socket.socket(fileno=fd)] if fd is not None else None
    uvicorn.Server(config).run(sockets=sockets)
