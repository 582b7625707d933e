"""The gateway benchmark's load: SDK clients, and the patterns in which they send.

- `queue`: N clients share a queue of requests, each sending the next as soon as it is
  answered (the 0 ms upstream levels).
- `waves`: N clients in a closed loop against a slow upstream, started together (`lockstep`,
  as a batch fan-out or a retry storm does) or client i at i/N s (`spread`).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

MESSAGES = [
    {"role": "system", "content": "You triage customer support messages."},
    {"role": "user", "content": "My invoice shows a double charge for November, please help."},
]
STARTS = ("lockstep", "spread")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


@dataclass
class Run:
    """The answers of one path at one level. Requests per second are either answers over the
    time spent (`queue`), or the mean over slices of the sum of the clients' own rates
    (`waves`: see `waves`)."""

    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    seconds: float = 0.0
    error_kinds: dict[str, int] = field(default_factory=dict)
    slice_rates: list[float] = field(default_factory=list)
    # `waves`: the latencies of each client's first, second... request after the start.
    by_wave: list[list[float]] = field(default_factory=list)

    @property
    def rps(self) -> float:
        if self.slice_rates:
            return statistics.fmean(self.slice_rates)
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def p(self, q: float) -> float:
        return percentile(self.latencies, q) * 1000

    def add(self, other: Run) -> None:
        self.latencies += other.latencies
        self.errors += other.errors
        self.seconds += other.seconds
        self.slice_rates += other.slice_rates
        for number, latencies in enumerate(other.by_wave):
            if number == len(self.by_wave):
                self.by_wave.append([])
            self.by_wave[number] += latencies
        for kind, count in other.error_kinds.items():
            self.error_kinds[kind] = self.error_kinds.get(kind, 0) + count


CLIENTS = ("sdk", "http")


class SdkClient:
    """The official `openai` SDK, as users call the gateway."""

    def __init__(self, base_url: str, api_key: str) -> None:
        import httpx2
        import openai

        self.sdk = openai.AsyncOpenAI(
            base_url=base_url,
            api_key=api_key,
            max_retries=0,
            timeout=60,
            http_client=openai.DefaultAsyncHttpxClient(
                # Idle connections are dropped before the servers' 5 s keep-alive ends, so
                # that a request never goes out on a connection the server is closing; kept
                # long enough to outlast the pause between a warm-up wave and the measured
                # ones.
                limits=httpx2.Limits(
                    max_connections=2000, max_keepalive_connections=2000, keepalive_expiry=4.0
                )
            ),
        )

    async def complete(self, model: str) -> None:
        await self.sdk.chat.completions.create(model=model, messages=MESSAGES, max_tokens=200)

    async def close(self) -> None:
        await self.sdk.close()


class StatusError(Exception):
    def __init__(self, status_code: int) -> None:
        super().__init__(status_code)
        self.status_code = status_code


class HttpClient:
    """The SDK's request (same body and headers that matter) over a bare aiohttp session,
    the answer read as JSON. The SDK costs its process a few ms of CPU per request (models
    built from every answer): at 256 clients in lockstep, one SDK process cannot send and
    read 256 requests a second on these cores, on either path. This client spends an eighth
    of that (bench/README.md), so the levels measure the site, not the client."""

    def __init__(self, base_url: str, api_key: str) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
        self.bodies: dict[str, bytes] = {}
        self.session: Any = None

    async def complete(self, model: str) -> None:
        import aiohttp

        if self.session is None:
            # keep-alive as the SDK's: idle connections dropped before the servers' 5 s
            self.session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=4.0),
                timeout=aiohttp.ClientTimeout(total=60),
            )
        body = self.bodies.get(model)
        if body is None:
            body = self.bodies[model] = json.dumps(
                {"model": model, "messages": MESSAGES, "max_tokens": 200}
            ).encode()
        async with self.session.post(self.url, data=body, headers=self.headers) as response:
            answer = await response.read()
            if response.status != 200:
                raise StatusError(response.status)
        json.loads(answer)

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()


def make_client(base_url: str, api_key: str, kind: str = "sdk") -> SdkClient | HttpClient:
    if kind not in CLIENTS:
        raise ValueError(f"client must be one of {CLIENTS}")
    return SdkClient(base_url, api_key) if kind == "sdk" else HttpClient(base_url, api_key)


async def one(client: Any, model: str, run: Run) -> bool:
    started = time.perf_counter()
    try:
        await client.complete(model)
    except Exception as exc:
        run.errors += 1
        kind = f"{type(exc).__name__} {getattr(exc, 'status_code', '')}".strip()
        run.error_kinds[kind] = run.error_kinds.get(kind, 0) + 1
        return False
    run.latencies.append(time.perf_counter() - started)
    return True


async def queue(client: Any, model: str, requests: int, concurrency: int) -> Run:
    run = Run()
    pending = iter(range(requests))

    async def worker() -> None:
        for _ in pending:
            await one(client, model, run)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    run.seconds = time.perf_counter() - started
    return run


async def waves(client: Any, model: str, clients: int, count: int, start: str) -> Run:
    """`clients` clients send `count` requests each, each the next as soon as the previous is
    answered. First one unmeasured wave (all at once) opens the connections on every hop;
    then all wait for the last of its answers and start together (`lockstep`) or client i
    after i/N s (`spread`). Requests per second: the sum over clients of answers / (last
    answer - first send), which counts the spread pattern's staggered starts for nothing."""
    if start not in STARTS:
        raise ValueError(f"start must be one of {STARTS}")
    await asyncio.gather(*(one(client, model, Run()) for _ in range(clients)))
    run = Run(by_wave=[[] for _ in range(count)])
    rates: list[float] = []

    async def closed_loop(index: int) -> None:
        if start == "spread":
            await asyncio.sleep(index / clients)
        began = time.perf_counter()
        answered = 0
        for number in range(count):
            if await one(client, model, run):
                answered += 1
                run.by_wave[number].append(run.latencies[-1])
        if answered:
            rates.append(answered / (time.perf_counter() - began))

    started = time.perf_counter()
    await asyncio.gather(*(closed_loop(index) for index in range(clients)))
    run.seconds = time.perf_counter() - started
    run.slice_rates.append(sum(rates))
    return run


async def ttfb(client: SdkClient, model: str, samples: int) -> list[float]:
    """Time to the first streamed content chunk, through the SDK."""
    values = []
    for _ in range(samples):
        started = time.perf_counter()
        stream = await client.sdk.chat.completions.create(
            model=model, messages=MESSAGES, max_tokens=200, stream=True
        )
        first = None
        async for chunk in stream:
            if first is None and chunk.choices and chunk.choices[0].delta.content:
                first = time.perf_counter() - started
        values.append(first or float("nan"))
    return values


async def soak(base_url: str, key: str, model: str, in_flight: int, kind: str = "sdk") -> dict:
    """`in_flight` requests at once, after 50 warm-up requests (caches and connections)."""
    client = make_client(base_url, key, kind)
    await queue(client, model, 50, 10)
    run = Run()
    started = time.perf_counter()
    await asyncio.gather(*(one(client, model, run) for _ in range(in_flight)))
    run.seconds = time.perf_counter() - started
    await client.close()
    return {
        "in_flight": in_flight,
        "ok": len(run.latencies),
        "errors": run.errors,
        "error_kinds": run.error_kinds,
        "wall_s": run.seconds,
        "p50_ms": run.p(0.5),
        "p99_ms": run.p(0.99),
    }
