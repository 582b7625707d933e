"""Gateway overhead benchmark (not a test): SDK → simulator against SDK → Switchboard → simulator.

    python bench/gateway.py                      # PostgreSQL at DATABASE_URL (see below)
    python bench/gateway.py --requests 2000 --concurrency 1,16,64,256 --json out.json
    BUDGET_LEASES=false python bench/gateway.py  # per-request budget reservations

It creates (or reuses) a benchmark database, migrates and seeds it (catalog, a team, a key,
a budget, the sample prompts), starts the simulator with zero latency and the site under
uvicorn (production settings; budget leases on unless BUDGET_LEASES=false), then, for each
concurrency level, sends the same chat completion straight to the simulator and through
the gateway (`model="tier:mini"`, non-streamed), interleaving the two so both see the same machine load. It reports latency
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
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(ROOT)  # the project instead of bench/, whose requests.py shadows the package

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
    error_kinds: dict[str, int] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def p(self, q: float) -> float:
        return percentile(self.latencies, q) * 1000


# ------------------------------------------------------------------------------ setup


def prepare_database(database_url: str, simulator_url: str) -> tuple[str, str]:
    """Migrate and seed the benchmark database; return fresh keys of two teams, the first
    with a budget (every request reserves and settles) and the second without."""
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
    from spend.models import Budget

    seed_catalog(simulator_url=simulator_url)
    Provider.objects.filter(name="openai").update(base_url=simulator_url)
    team, _ = Team.objects.get_or_create(slug="bench", defaults={"name": "Benchmark"})
    seed_prompts(team=team, author=None)
    # A budget far above what the run spends: the reserve/settle path is part of the figures.
    budget_set(team=team, limit_usd=Decimal("1000000"))
    _, raw_key = api_key_create(team=team, name=f"bench {time.time():.0f}")
    free, _ = Team.objects.get_or_create(slug="bench-free", defaults={"name": "No budget"})
    Budget.objects.filter(team=free).delete()
    _, free_key = api_key_create(team=free, name=f"bench {time.time():.0f}")
    from django.db import connections

    connections.close_all()
    return raw_key, free_key


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
    except Exception as exc:
        run.errors += 1
        kind = f"{type(exc).__name__} {getattr(exc, 'status_code', '')}".strip()
        run.error_kinds[kind] = run.error_kinds.get(kind, 0) + 1
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
            # Idle connections are dropped before the servers' 5 s keep-alive ends, so that a
            # request never goes out on a connection the server is closing.
            limits=httpx2.Limits(
                max_connections=2000, max_keepalive_connections=2000, keepalive_expiry=2.0
            )
        ),
    )


PATHS = ("direct", "gateway", "gateway_no_budget")


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(
    args, simulator_url: str, site_url: str, keys: tuple[str, str], site_pid: int
) -> dict:
    clients = {
        "direct": (make_client(simulator_url, "direct"), "gpt-5.4-mini"),
        "gateway": (make_client(f"{site_url}/v1", keys[0]), "tier:mini"),
        "gateway_no_budget": (make_client(f"{site_url}/v1", keys[1]), "tier:mini"),
    }
    results: dict = {"levels": []}
    # Warm up connections, caches and the snapshot on every path.
    for client, model in clients.values():
        await load(client, model, 200, 8)
    for concurrency in args.concurrency:
        requests = max(args.requests, concurrency * 4)
        runs = {path: Run() for path in PATHS}
        cpu = dict.fromkeys(PATHS, 0.0)
        # Interleave slices so that every path sees the same machine state.
        for _ in range(args.slices):
            for path in PATHS:
                client, model = clients[path]
                before = process_cpu_seconds(site_pid)
                run = await load(client, model, requests // args.slices, concurrency)
                # The site's CPU for these requests (its usage writer may finish a little later).
                await asyncio.sleep(0.2)
                cpu[path] += process_cpu_seconds(site_pid) - before
                runs[path].latencies += run.latencies
                runs[path].errors += run.errors
                runs[path].seconds += run.seconds
                for kind, count in run.error_kinds.items():
                    runs[path].error_kinds[kind] = runs[path].error_kinds.get(kind, 0) + count
        level: dict = {"concurrency": concurrency, "requests": requests}
        for path, run in runs.items():
            level[f"{path}_p50_ms"] = run.p(0.5)
            level[f"{path}_p99_ms"] = run.p(0.99)
            level[f"{path}_rps"] = run.rps
            level[f"{path}_errors"] = run.errors
            if run.error_kinds:
                level[f"{path}_error_kinds"] = run.error_kinds
        for path in PATHS[1:]:
            level[f"{path}_site_cpu_ms_per_request"] = (
                1000 * cpu[path] / max(len(runs[path].latencies), 1)
            )
            level[f"{path}_added_p50_ms"] = level[f"{path}_p50_ms"] - level["direct_p50_ms"]
            level[f"{path}_added_p99_ms"] = level[f"{path}_p99_ms"] - level["direct_p99_ms"]
        results["levels"].append(level)
        print_level(level)
    ttfb_ms = {}
    for path, (client, model) in clients.items():
        values = await ttfb(client, model, args.ttfb_samples)
        ttfb_ms[path] = {
            "p50_ms": percentile(values, 0.5) * 1000,
            "p99_ms": percentile(values, 0.99) * 1000,
        }
    results["ttfb"] = ttfb_ms
    print(
        "streams, time to first content chunk (concurrency 1): "
        + ", ".join(
            f"{p} p50 {v['p50_ms']:.2f} / p99 {v['p99_ms']:.2f} ms" for p, v in ttfb_ms.items()
        ),
        flush=True,
    )
    for client, _model in clients.values():
        await client.close()
    return results


async def soak(base_url: str, key: str, model: str, in_flight: int, label: str) -> dict:
    """`in_flight` requests at once, the upstream taking about 1 s each."""
    client = make_client(base_url, key)
    await load(client, model, 50, 10)  # steady state: caches and connections warm
    run = Run()
    started = time.perf_counter()
    await asyncio.gather(*(one(client, model, run) for _ in range(in_flight)))
    run.seconds = time.perf_counter() - started
    await client.close()
    result = {
        "in_flight": in_flight,
        "ok": len(run.latencies),
        "errors": run.errors,
        "error_kinds": run.error_kinds,
        "wall_s": run.seconds,
        "p50_ms": run.p(0.5),
        "p99_ms": run.p(0.99),
    }
    print(
        f"soak {label}: {in_flight} in flight against a ~1 s upstream: {result['ok']} ok, "
        f"{result['errors']} errors, wall {result['wall_s']:.2f} s, "
        f"p50 {result['p50_ms']:.0f} ms, p99 {result['p99_ms']:.0f} ms",
        flush=True,
    )
    return result


def print_level(level: dict) -> None:
    parts = [f"c={level['concurrency']:>3}"]
    for path in PATHS:
        added = (
            f" (+{level[path + '_added_p50_ms']:.2f}, site cpu "
            f"{level[path + '_site_cpu_ms_per_request']:.2f} ms/req)"
            if path != "direct"
            else ""
        )
        parts.append(
            f"{path} p50 {level[path + '_p50_ms']:.2f}{added} p99 {level[path + '_p99_ms']:.2f} ms "
            f"{level[path + '_rps']:.0f} rps {level[path + '_errors']} err"
        )
    print(" | ".join(parts), flush=True)
    for path in PATHS:
        if level.get(f"{path}_error_kinds"):
            print(f"      {path} errors: {level[path + '_error_kinds']}", flush=True)


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
        # The machine may be shared: the load average says how much the figures waited.
        "budget_leases": os.environ.get("BUDGET_LEASES", "on (default)"),
        "load_average_start": os.getloadavg(),
    }
    with SimulatorServer(latency_scale=0) as simulator:
        keys = prepare_database(args.database_url, simulator.url)
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
            print(f"machine: {results['machine']}, budget leases: {results['budget_leases']}")
            results.update(
                asyncio.run(
                    measure(args, simulator.url, f"http://127.0.0.1:{port}", keys, site.pid)
                )
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
                results["soak_direct"] = asyncio.run(
                    soak(slow.url, "direct", "gpt-5.4-mini", args.soak, "direct")
                )
                results["soak"] = asyncio.run(
                    soak(f"http://127.0.0.1:{port}/v1", keys[0], "tier:mini", args.soak, "gateway")
                )
                results["soak"]["latency_scale"] = scale
            finally:
                site.send_signal(signal.SIGTERM)
                site.wait(timeout=30)
    results["load_average_end"] = os.getloadavg()
    print(
        f"load average (1, 5, 15 min): {results['load_average_start']} at the start, "
        f"{results['load_average_end']} at the end",
        flush=True,
    )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
