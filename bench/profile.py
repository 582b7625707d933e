"""Where a gateway request's time goes inside the site (not a test).

    python bench/profile.py                                  # CPU by package, top functions
    python bench/profile.py --stages --concurrency 64 --requests 8000   # where the tail waits

The same set-up as bench/gateway.py (its database helpers and client): the simulator with
zero latency, and the site under uvicorn with production settings, one worker, and a probe
on its event loop (bench/gatewaybench/probe.py). After warm-up requests, N chat completions
(`model="tier:mini"`, with a team budget) at the given concurrency.

- Default: cProfile on the event loop's thread (the usage writer's batches included). It
  prints each package's share of the profiled time and the functions with the most time of
  their own. cProfile costs about as much again as the code it measures, most for code that
  makes many small calls, so read shares, not milliseconds; bench/instructions.py counts
  the real cost of a change.
- `--stages`: each request's time from its arrival at the ASGI app to its upstream call, the
  call, and from the answer to the last byte sent, as percentiles; the event loop's stalls
  (a task that sleeps 5 ms and records how late it wakes); the budget lease's top-ups (how
  many, how long each took, the loop's turns included); the garbage collector's passes by
  generation. A stage whose p99 is far above its p50 is where the tail waits (how #20's two
  causes were found: bench/README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import pstats
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(ROOT)  # the project instead of bench/, whose requests.py shadows the package

from bench.gatewaybench.load import make_client, percentile, queue  # noqa: E402
from bench.gatewaybench.sites import Site, free_port, healthy_within  # noqa: E402

DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/switchboard_bench_profile"
PROBE = Path(__file__).resolve().parent / "gatewaybench" / "probe.py"


def start_probe(site: Site, mode: str, out: str) -> subprocess.Popen:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(PROBE), mode, str(port), out], cwd=site.root, env=site.env
    )
    if healthy_within(port, 60):
        site.port = port
        return process
    process.kill()
    raise RuntimeError("the probed site did not start")


async def drive(args, site: Site, pid: int) -> None:
    client = make_client(site.url, site.keys[0], args.client)
    await queue(client, "tier:mini", args.warmup, args.concurrency)
    os.kill(pid, signal.SIGUSR1 if not args.stages else signal.SIGUSR2)  # start afresh
    run = await queue(client, "tier:mini", args.requests, args.concurrency)
    await asyncio.sleep(1.0)  # the usage writer's last batch
    os.kill(pid, signal.SIGUSR2)
    await asyncio.sleep(1.0)
    await client.close()
    done = len(run.latencies)
    print(
        f"{done} requests at concurrency {args.concurrency}, {run.errors} errors, "
        f"{done / run.seconds:.0f} a second; at the client p50 {run.p(0.5):.1f} ms, "
        f"p99 {run.p(0.99):.1f} ms, p99/p50 {run.p(0.99) / run.p(0.5):.2f}"
    )


def package_of(filename: str) -> str:
    if "site-packages/" in filename:
        return filename.split("site-packages/")[1].split("/")[0]
    if filename.startswith(str(ROOT)):
        return "switchboard: " + filename[len(str(ROOT)) + 1 :].split("/")[0]
    if filename == "~":
        return "built-in functions"
    return "standard library"


def report_profile(out: str, top: int) -> None:
    stats = pstats.Stats(out)
    shares: collections.Counter[str] = collections.Counter()
    for (filename, _, _), (_, _, own, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        shares[package_of(filename)] += own
    total = sum(shares.values())
    print(f"\nprofiled time by package ({total:.2f} s in all):")
    for package, seconds in shares.most_common(15):
        print(f"  {100 * seconds / total:5.1f} %  {package}")
    print()
    stats.sort_stats("tottime").print_stats(top)


def report_stages(out: str) -> None:
    with open(out) as file:
        data = json.load(file)
    requests = [r for r in data["requests"] if "upstream" in r]
    stages = {
        "inside the site": [r["sent"] - r["arrived"] for r in data["requests"]],
        "arrival → upstream call": [r["upstream"] - r["arrived"] for r in requests],
        "upstream call": [r["answered"] - r["upstream"] for r in requests],
        "answer → last byte sent": [r["sent"] - r["answered"] for r in requests],
        "event loop stalls": data["stalls"],
        "budget lease top-ups": data["top_ups"],
    }
    print()
    for name, values in stages.items():
        if values:
            p50, p95, p99 = (1000 * percentile(values, q) for q in (0.5, 0.95, 0.99))
            print(
                f"  {name:<26} p50 {p50:7.1f}  p95 {p95:7.1f}  p99 {p99:7.1f}  "
                f"max {1000 * max(values):7.1f} ms  ({len(values)})"
            )
    for generation in (0, 1, 2):
        passes = [seconds for gen, seconds in data["collections"] if gen == generation]
        if passes:
            print(
                f"  collections, generation {generation}: {len(passes)}, "
                f"longest {1000 * max(passes):.1f} ms, {1000 * sum(passes):.0f} ms in all"
            )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB))
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--client", choices=("sdk", "http"), default="http")
    parser.add_argument("--stages", action="store_true", help="time stages, not functions")
    parser.add_argument("--top", type=int, default=30, help="functions listed (profile)")
    parser.add_argument(
        "--site-root", type=Path, default=ROOT, help="serve this checkout's code (default: this)"
    )
    args = parser.parse_args()

    from simulator.testing import SimulatorServer

    descriptor, out = tempfile.mkstemp(prefix="switchboard-probe-")
    os.close(descriptor)
    with SimulatorServer(latency_scale=0) as simulator:
        site = Site("gateway", args.site_root, args.database_url)
        site.prepare(simulator.url)
        process = start_probe(site, "stages" if args.stages else "profile", out)
        try:
            asyncio.run(drive(args, site, process.pid))
        finally:
            process.terminate()
            process.wait(timeout=60)
    try:
        if args.stages:
            report_stages(out)
        else:
            report_profile(out, args.top)
    finally:
        os.unlink(out)


if __name__ == "__main__":
    main()
