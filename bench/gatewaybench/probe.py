"""The site under uvicorn with a probe on its event loop, for bench/profile.py (not a test).

    python probe.py profile PORT OUT   # cProfile of the loop's thread: SIGUSR1 starts, SIGUSR2 dumps
    python probe.py stages PORT OUT    # per request: arrival → upstream call → its answer → sent;
                                       # the loop's stalls, the collector's pauses and the budget
                                       # lease's top-ups (SIGUSR2 dumps)

Run in the checkout (cwd) with its settings in the environment, as bench/gatewaybench/sites.py
starts a site. A dump writes OUT and starts a new count.
"""

from __future__ import annotations

import asyncio
import contextvars
import cProfile
import gc
import json
import signal
import sys
import time
from typing import Any

import uvicorn

STALL_TICK = 0.005  # the stall monitor sleeps this long and records how late it wakes


def profile_app(app: Any, out: str) -> Any:
    profiler = cProfile.Profile()

    def dump(*_: Any) -> None:
        profiler.disable()
        profiler.dump_stats(out)
        profiler.clear()

    signal.signal(signal.SIGUSR1, lambda *_: profiler.enable())
    signal.signal(signal.SIGUSR2, dump)
    return app


def stages_app(app: Any, out: str) -> Any:
    """Each request's arrival, its upstream call's start and answer, and its last byte sent;
    the stall monitor's lateness; each collection's generation and length; each budget
    lease top-up's length (a top-up that requests wait for delays their upstream calls)."""
    import gateway.upstream
    from spend.budgets import Lease

    requests: list[dict[str, float]] = []
    stalls: list[float] = []
    collections: list[tuple[int, float]] = []
    top_ups: list[float] = []
    current: contextvars.ContextVar[dict[str, float]] = contextvars.ContextVar("probe")
    send_upstream = gateway.upstream.send

    async def timed_send(*args: Any, **kwargs: Any) -> Any:
        times = current.get(None)
        started = time.perf_counter()
        try:
            return await send_upstream(*args, **kwargs)
        finally:
            if times is not None:
                times["upstream"], times["answered"] = started, time.perf_counter()

    gateway.upstream.send = timed_send  # post_json and post_stream look it up per call

    top_up = Lease._top_up

    async def timed_top_up(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return await top_up(*args, **kwargs)
        finally:
            top_ups.append(time.perf_counter() - started)

    Lease._top_up = timed_top_up  # type: ignore[method-assign]

    collection_started = 0.0

    def on_collect(phase: str, info: dict[str, int]) -> None:
        nonlocal collection_started
        if phase == "start":
            collection_started = time.perf_counter()
        else:
            collections.append((info["generation"], time.perf_counter() - collection_started))

    gc.callbacks.append(on_collect)

    async def monitor() -> None:
        while True:
            started = time.perf_counter()
            await asyncio.sleep(STALL_TICK)
            stalls.append(time.perf_counter() - started - STALL_TICK)

    async def probed(scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            asyncio.get_running_loop().create_task(monitor())
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        times = {"arrived": time.perf_counter()}
        current.set(times)

        async def timed(message: dict) -> None:
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                times["sent"] = time.perf_counter()
                requests.append(times)

        await app(scope, receive, timed)

    def dump(*_: Any) -> None:
        with open(out, "w") as file:
            json.dump(
                {
                    "requests": requests,
                    "stalls": stalls,
                    "collections": collections,
                    "top_ups": top_ups,
                },
                file,
            )
        for kept in (requests, stalls, collections, top_ups):
            kept.clear()

    signal.signal(signal.SIGUSR2, dump)
    return probed


def main() -> None:
    mode, port, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    from config.asgi import application

    probe = {"profile": profile_app, "stages": stages_app}[mode]
    uvicorn.run(
        probe(application, out),
        port=port,
        access_log=False,
        log_level="warning",
        backlog=4096,
        lifespan="on",
    )


if __name__ == "__main__":
    main()
