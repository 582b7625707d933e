"""Gateway overhead benchmark (not a test): SDK → simulator against SDK → Switchboard → simulator.

    python bench/gateway.py                      # PostgreSQL at DATABASE_URL (see below)
    python bench/gateway.py --requests 2000 --concurrency 1,16,64,256 --json out.json

It creates (or reuses) a benchmark database, migrates and seeds it (catalog, a team, a key,
a budget, the sample prompts), starts the simulator with zero latency and the site under
uvicorn (production settings), then, for each concurrency level, sends the same chat
completion straight to the simulator and through the gateway (`model="tier:mini"`,
non-streamed), interleaving the two so both see the same machine load. It reports latency
p50/p99 of both paths, the added latency (gateway minus direct, per percentile),
requests per second and errors; then time to first byte for streams; then a soak: 500
requests in flight at once against a simulator whose answers take about 1 s.

The figures are recorded in bench/README.md. Everything runs on this machine: the client,
the site and the simulator share its cores, so absolute numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/switchboard_bench_gateway"
MESSAGES = [
    {"role": "system", "content": "You triage customer support messages."},
    {"role": "user", "content": "My invoice shows a double charge for November, please help."},
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


@dataclass
class Run:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    seconds: float = 0.0

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def p(self, q: float) -> float:
        return percentile(self.latencies, q) * 1000


# ------------------------------------------------------------------------------ setup


def prepare_database(database_url: str, simulator_url: str) -> str:
    """Migrate and seed the benchmark database; return a fresh team key."""
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.prod")
    os.environ.setdefault("SECRET_KEY", "bench-" + "x" * 40)
    os.environ.setdefault("SECURE_SSL_REDIRECT", "false")
    if database_url.startswith("postgres"):
        _create_pg_database(database_url)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from accounts.models import Team
    from accounts.services import api_key_create
    from prompts.seed import seed_prompts
    from routing.models import Provider
    from routing.seed import seed_catalog
    from spend.budgets import budget_set

    seed_catalog(simulator_url=simulator_url)
    Provider.objects.filter(name="openai").update(base_url=simulator_url)
    team, _ = Team.objects.get_or_create(slug="bench", defaults={"name": "Benchmark"})
    seed_prompts(team=team, author=None)
    # A budget far above what the run spends: the reserve/settle path is part of the figures.
    budget_set(team=team, limit_usd=__import__("decimal").Decimal("1000000"))
    _, raw_key = api_key_create(team=team, name=f"bench {time.time():.0f}")
    from django.db import connections

    connections.close_all()
    return raw_key


def _create_pg_database(url: str) -> None:
    import psycopg

    base, _, name = url.rpartition("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def start_site(port: int, env: dict[str, str], workers: int) -> subprocess.Popen:
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "config.asgi:application",
        "--port",
        str(port),
        "--no-access-log",
        "--log-level",
        "warning",
        "--backlog",
        "4096",
    ]
    if workers > 1:
        command += ["--workers", str(workers)]
    process = subprocess.Popen(command, cwd=ROOT, env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("the site did not start")


# ------------------------------------------------------------------------------ load


async def one(client, model: str, run: Run) -> None:
    started = time.perf_counter()
    try:
        await client.chat.completions.create(model=model, messages=MESSAGES, max_tokens=200)
    except Exception:
        run.errors += 1
        return
    run.latencies.append(time.perf_counter() - started)


async def load(client, model: str, requests: int, concurrency: int) -> Run:
    run = Run()
    queue = iter(range(requests))

    async def worker() -> None:
        for _ in queue:
            await one(client, model, run)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    run.seconds = time.perf_counter() - started
    return run


async def ttfb(client, model: str, samples: int) -> list[float]:
    """Time to the first streamed content chunk."""
    values = []
    for _ in range(samples):
        started = time.perf_counter()
        stream = await client.chat.completions.create(
            model=model, messages=MESSAGES, max_tokens=200, stream=True
        )
        first = None
        async for chunk in stream:
            if first is None and chunk.choices and chunk.choices[0].delta.content:
                first = time.perf_counter() - started
        values.append(first or float("nan"))
    return values


def make_client(base_url: str, api_key: str):
    import httpx2
    import openai

    return openai.AsyncOpenAI(
        base_url=base_url,
        api_key=api_key,
        max_retries=0,
        timeout=60,
        http_client=openai.DefaultAsyncHttpxClient(
            limits=httpx2.Limits(max_connections=2000, max_keepalive_connections=2000)
        ),
    )


async def measure(args, simulator_url: str, site_url: str, api_key: str) -> dict:
    direct = make_client(simulator_url, "direct")
    gateway = make_client(f"{site_url}/v1", api_key)
    results: dict = {"levels": []}
    # Warm up connections, caches and the snapshot on both paths.
    await load(direct, "gpt-5.4-mini", 200, 8)
    await load(gateway, "tier:mini", 200, 8)
    for concurrency in args.concurrency:
        requests = max(args.requests, concurrency * 4)
        direct_runs, gateway_runs = Run(), Run()
        # Interleave slices so that both paths see the same machine state.
        for _ in range(args.slices):
            for target, model, runs in (
                (direct, "gpt-5.4-mini", direct_runs),
                (gateway, "tier:mini", gateway_runs),
            ):
                run = await load(target, model, requests // args.slices, concurrency)
                runs.latencies += run.latencies
                runs.errors += run.errors
                runs.seconds += run.seconds
        level = {
            "concurrency": concurrency,
            "requests": len(gateway_runs.latencies) + gateway_runs.errors,
            "direct_p50_ms": direct_runs.p(0.5),
            "direct_p99_ms": direct_runs.p(0.99),
            "gateway_p50_ms": gateway_runs.p(0.5),
            "gateway_p99_ms": gateway_runs.p(0.99),
            "added_p50_ms": gateway_runs.p(0.5) - direct_runs.p(0.5),
            "added_p99_ms": gateway_runs.p(0.99) - direct_runs.p(0.99),
            "direct_rps": direct_runs.rps,
            "gateway_rps": gateway_runs.rps,
            "direct_errors": direct_runs.errors,
            "gateway_errors": gateway_runs.errors,
        }
        results["levels"].append(level)
        print_level(level)
    direct_ttfb = await ttfb(direct, "gpt-5.4-mini", args.ttfb_samples)
    gateway_ttfb = await ttfb(gateway, "tier:mini", args.ttfb_samples)
    results["ttfb"] = {
        "direct_p50_ms": percentile(direct_ttfb, 0.5) * 1000,
        "gateway_p50_ms": percentile(gateway_ttfb, 0.5) * 1000,
        "direct_p99_ms": percentile(direct_ttfb, 0.99) * 1000,
        "gateway_p99_ms": percentile(gateway_ttfb, 0.99) * 1000,
    }
    print(
        "streams, time to first content chunk (concurrency 1): "
        f"direct p50 {results['ttfb']['direct_p50_ms']:.2f} ms, "
        f"gateway p50 {results['ttfb']['gateway_p50_ms']:.2f} ms "
        f"(p99 {results['ttfb']['direct_p99_ms']:.2f} / {results['ttfb']['gateway_p99_ms']:.2f})"
    )
    await direct.close()
    await gateway.close()
    return results


async def soak(site_url: str, api_key: str, in_flight: int) -> dict:
    """`in_flight` requests at once through the gateway, the upstream taking about 1 s each."""
    client = make_client(f"{site_url}/v1", api_key)
    run = Run()
    started = time.perf_counter()
    await asyncio.gather(*(one(client, "tier:mini", run) for _ in range(in_flight)))
    run.seconds = time.perf_counter() - started
    await client.close()
    result = {
        "in_flight": in_flight,
        "ok": len(run.latencies),
        "errors": run.errors,
        "wall_s": run.seconds,
        "p50_ms": run.p(0.5),
        "p99_ms": run.p(0.99),
    }
    print(
        f"soak: {in_flight} in flight against a ~1 s upstream: {result['ok']} ok, "
        f"{result['errors']} errors, wall {result['wall_s']:.2f} s, "
        f"p50 {result['p50_ms']:.0f} ms, p99 {result['p99_ms']:.0f} ms"
    )
    return result


def print_level(level: dict) -> None:
    print(
        f"c={level['concurrency']:>3}  direct p50 {level['direct_p50_ms']:7.2f} p99 "
        f"{level['direct_p99_ms']:7.2f} ms {level['direct_rps']:7.0f} rps | gateway p50 "
        f"{level['gateway_p50_ms']:7.2f} p99 {level['gateway_p99_ms']:7.2f} ms "
        f"{level['gateway_rps']:7.0f} rps | added p50 {level['added_p50_ms']:6.2f} p99 "
        f"{level['added_p99_ms']:7.2f} ms | errors {level['direct_errors']}/{level['gateway_errors']}",
        flush=True,
    )


def calibrated_scale(simulator_url: str) -> float:
    """The latency scale at which the benchmark request takes about 1 s upstream."""
    import openai

    client = openai.OpenAI(base_url=simulator_url, api_key="x", max_retries=0)
    started = time.perf_counter()
    client.chat.completions.create(model="gpt-5.4-mini", messages=MESSAGES, max_tokens=200)
    return 1.0 / (time.perf_counter() - started)


def machine() -> dict:
    info = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return info


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB))
    parser.add_argument("--requests", type=int, default=1000, help="per path and level")
    parser.add_argument("--slices", type=int, default=4)
    parser.add_argument(
        "--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[1, 16, 64, 256]
    )
    parser.add_argument("--ttfb-samples", type=int, default=200)
    parser.add_argument("--soak", type=int, default=500, help="requests in flight (0: skip)")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn workers")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()

    from simulator.testing import SimulatorServer

    results: dict = {
        "machine": machine(),
        "args": {k: v for k, v in vars(args).items() if k != "database_url"},
    }
    with SimulatorServer(latency_scale=0) as simulator:
        api_key = prepare_database(args.database_url, simulator.url)
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings.prod",
            "DATABASE_URL": args.database_url,
            "SECRET_KEY": os.environ.get("SECRET_KEY", "bench-" + "x" * 40),
            "SECURE_SSL_REDIRECT": "false",
            "LOG_LEVEL": "WARNING",
        }
        port = free_port()
        site = start_site(port, env, args.workers)
        try:
            print(f"machine: {results['machine']}")
            results.update(
                asyncio.run(measure(args, simulator.url, f"http://127.0.0.1:{port}", api_key))
            )
        finally:
            site.send_signal(signal.SIGTERM)
            site.wait(timeout=30)
    if args.soak:
        with SimulatorServer(latency_scale=1.0) as paced:
            scale = calibrated_scale(paced.url)
        with SimulatorServer(latency_scale=scale) as slow:
            import django
            from django.db import connections

            django.setup()
            from routing.models import Provider

            Provider.objects.filter(name="openai").update(base_url=slow.url)
            connections.close_all()
            port = free_port()
            site = start_site(port, env, args.workers)
            try:
                time.sleep(1.5)  # past the snapshot's check interval
                results["soak"] = asyncio.run(soak(f"http://127.0.0.1:{port}", api_key, args.soak))
                results["soak"]["latency_scale"] = scale
            finally:
                site.send_signal(signal.SIGTERM)
                site.wait(timeout=30)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
