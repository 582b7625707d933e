"""The site's CPU per gateway request as instructions counted by callgrind (not a test).

    python bench/instructions.py                          # 200 requests per path
    python bench/instructions.py --requests 500 --paths gateway
    python bench/instructions.py --site-root /work/main   # serve another checkout's code

Wall-clock CPU time on a shared machine moves with the machine; an instruction count does
not, so two code versions can be compared in minutes, one after the other, to a fraction of
a per cent. The same set-up as bench/gateway.py (its database helpers, client and request):
the simulator with zero latency, and the site under uvicorn with production settings and one
worker, run by `valgrind --tool=callgrind` with instrumentation off until the measured
requests. Per path: warm-up requests, then instrumentation on, N chat completions
(`model="tier:mini"`, non-streamed) at concurrency 1 through the openai SDK, a pause for the
usage writer, a dump; it prints the site's instructions per request (every thread: the event
loop, the usage writer, the sync-to-async thread).

Under callgrind a request takes 25-100 times longer (more on a busy machine), so work paced
by the clock (the usage writer's batches every USAGE_FLUSH_SECONDS, the hot cache's checks
every HOT_CHECK_SECONDS, the budget lease's renewal every BUDGET_LEASE_IDLE_SECONDS) would fall on far fewer requests than at full speed, and the counts
would follow the machine's load: both intervals are stretched by `--time-scale` (100; 1 for
production values), so that a batch holds tens of records, as at full speed, and no check
falls in a run. Compare code versions with this script; read times from bench/gateway.py.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import django

ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(ROOT)  # the project instead of bench/, whose requests.py shadows the package

from bench.gatewaybench.load import make_client, queue  # noqa: E402
from bench.gatewaybench.sites import Site, free_port, healthy_within  # noqa: E402

SETTINGS_ENV = ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "SECRET_KEY", "SECURE_SSL_REDIRECT")
DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/switchboard_bench_instructions"
PATHS = ("gateway", "gateway_no_budget")


def start_site(site_root: Path, port: int, env: dict[str, str], out_dir: str) -> subprocess.Popen:
    """uvicorn under callgrind, instrumentation off (near full speed) until asked."""
    command = [
        "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",
        f"--callgrind-out-file={out_dir}/callgrind.out",
        sys.executable,
        "-m",
        "uvicorn",
        "config.asgi:application",
        "--port",
        str(port),
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    process = subprocess.Popen(
        command,
        cwd=site_root,
        # A fixed hash seed: string hashes and set orders, so counts, repeat from run to run.
        env={**env, "PYTHONPATH": str(site_root), "PYTHONHASHSEED": "0"},
        stderr=subprocess.DEVNULL,  # valgrind's banner and per-dump notices
    )
    if healthy_within(port, 180):
        return process
    process.kill()
    raise RuntimeError("the site did not start under callgrind")


def callgrind(pid: int, *options: str) -> None:
    subprocess.run(["callgrind_control", *options, str(pid)], check=True, capture_output=True)


def dump_instructions(pid: int, out_dir: str, label: str) -> int:
    """Dump the counters and return their total (Ir)."""
    before = set(Path(out_dir).glob("callgrind.out*"))
    callgrind(pid, f"--dump={label}")
    (dump,) = set(Path(out_dir).glob("callgrind.out*")) - before
    for line in dump.read_text().splitlines():
        if line.startswith(("totals:", "summary:")):
            return int(line.split()[1])
    raise RuntimeError(f"no totals in {dump}")


async def measure(args, site_url: str, keys: dict[str, str], pid: int, out_dir: str) -> None:
    for path in args.paths:
        client = make_client(f"{site_url}/v1", keys[path])
        await queue(client, "tier:mini", args.warmup, 1)
        callgrind(pid, "--zero")
        callgrind(pid, "--instr=on")
        run = await queue(client, "tier:mini", args.requests, 1)
        await asyncio.sleep(args.settle)  # the usage writer's last batch
        total = dump_instructions(pid, out_dir, path)
        callgrind(pid, "--instr=off")
        await client.close()
        done = len(run.latencies)
        print(
            f"{path}: {total / max(done, 1):,.0f} instructions per request "
            f"({done} requests, {run.errors} errors, {total:,} in all, "
            f"{1000 * run.seconds / max(done, 1):.1f} ms per request under callgrind)",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB))
    parser.add_argument("--requests", type=int, default=200, help="measured, per path")
    parser.add_argument("--warmup", type=int, default=50, help="requests before measuring")
    parser.add_argument(
        "--paths",
        type=lambda s: s.split(","),
        default=list(PATHS),
        help="gateway,gateway_no_budget",
    )
    parser.add_argument(
        "--site-root",
        type=Path,
        default=ROOT,
        help="serve this checkout's code (default: this one)",
    )
    parser.add_argument(
        "--time-scale",
        type=float,
        default=100.0,
        help="stretch the clock-paced intervals by the slowdown under callgrind",
    )
    parser.add_argument("--keep", help="keep the callgrind dumps in this folder")
    args = parser.parse_args()

    from simulator.testing import SimulatorServer

    out_dir = args.keep or tempfile.mkdtemp(prefix="callgrind-")
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    with SimulatorServer(latency_scale=0) as simulator:
        bench_site = Site("gateway", args.site_root, args.database_url)
        bench_site.prepare(simulator.url)  # migrated and seeded by the served checkout
        budget_key, free_key = bench_site.keys
        os.environ.update({name: bench_site.env[name] for name in SETTINGS_ENV})
        django.setup()
        from django.conf import settings

        flush_seconds = settings.USAGE_FLUSH_SECONDS * args.time_scale
        args.settle = 2 * flush_seconds + 0.5
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings.prod",
            "DATABASE_URL": args.database_url,
            "SECRET_KEY": os.environ.get("SECRET_KEY", "bench-" + "x" * 40),
            "SECURE_SSL_REDIRECT": "false",
            "LOG_LEVEL": "WARNING",
            "USAGE_FLUSH_SECONDS": str(flush_seconds),
            "HOT_CHECK_SECONDS": str(settings.HOT_CHECK_SECONDS * args.time_scale),
            "BUDGET_LEASE_IDLE_SECONDS": str(settings.BUDGET_LEASE_IDLE_SECONDS * args.time_scale),
        }
        port = free_port()
        site = start_site(args.site_root.resolve(), port, env, out_dir)
        try:
            print(f"site: {args.site_root.resolve()} under callgrind, dumps in {out_dir}")
            keys = {"gateway": budget_key, "gateway_no_budget": free_key}
            asyncio.run(measure(args, f"http://127.0.0.1:{port}", keys, site.pid, out_dir))
        finally:
            site.terminate()
            site.wait(timeout=60)


if __name__ == "__main__":
    main()
