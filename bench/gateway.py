"""Gateway overhead benchmark (not a test): SDK → simulator against SDK → Switchboard → simulator.

    python bench/gateway.py                      # PostgreSQL at DATABASE_URL (see below)
    python bench/gateway.py --requests 2000 --concurrency 1,16,64,256 --json out.json
    python bench/gateway.py --compare /work/wt/before --budget-only   # this code against that
    BUDGET_LEASES=false python bench/gateway.py  # per-request budget reservations

It migrates and seeds a benchmark database (catalog, a team with a budget and one without,
the sample prompts) with the served code's own migrations and seeding, and serves the site
under uvicorn (production settings, one worker unless --workers). Then, on the same
machine, the same chat completion (`model="tier:mini"`, non-streamed) straight to the
simulator (**direct**) and through the site (**gateway**, with a budget, and
**gateway_no_budget**), the paths interleaved in slices so that all see the same load:

1. Upstream 0 ms: at each concurrency, N clients share a queue of `--requests` requests.
   Then the time to the first streamed chunk, one stream at a time.
2. Upstream `--upstream` s (a simulator whose every answer takes that long): at each
   concurrency N, N clients in a closed loop, each sending `--waves` requests per slice,
   started together (**lockstep**: a batch fan-out, a retry storm) or client i at i/N s
   (**spread**), after one unmeasured wave. Then a soak: `--soak` requests at once.

Per level and path: latency p50, p99 and p99/p50, requests per second and, for a gateway
path, its ratio to direct, the latency added to direct's, and the site's CPU per request.
`--site-root DIR` serves another checkout's code instead of this one's; `--compare DIR`
serves it beside this one (paths `compare_gateway...`), for a before/after table from the
same minutes. Each code has its own database (`--database-url`, `--compare-database-url`).
`--client http` sends the same request over bare aiohttp instead of the SDK: the SDK's own
CPU per request limits what one client process can send at 256 in flight, on both paths.
`--access-log` runs the sites as production does by default, a JSON access line per request
(`LOG_LEVEL=INFO`; the lines go to a file); without it they log warnings only.
Figures only: nothing is asserted. Recorded in bench/README.md ("Gateway"). The client, the
sites and the simulator share this machine's cores; the load average is printed with them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(ROOT)  # the project instead of bench/, whose requests.py shadows the package

from bench.gatewaybench import load  # noqa: E402
from bench.gatewaybench.sites import Site  # noqa: E402

DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/switchboard_bench_gateway"
DEFAULT_COMPARE_DB = DEFAULT_DB + "_compare"
DIRECT_MODEL, GATEWAY_MODEL = "gpt-5.4-mini", "tier:mini"


@dataclass
class Target:
    """One path: `direct`, or a site with or without a budget."""

    name: str
    url: str
    key: str
    model: str
    client: Any
    site: Site | None = None

    @property
    def label(self) -> str:
        return f"{self.name} [{self.site.commit}]" if self.site else self.name


def targets_for(
    simulator_url: str, sites: list[Site], budget_only: bool, client: str
) -> list[Target]:
    paths = [("direct", simulator_url, "direct", DIRECT_MODEL, None)]
    for site in sites:
        with_budget, without = site.keys
        paths.append((site.prefix, site.url, with_budget, GATEWAY_MODEL, site))
        if not budget_only:
            paths.append((f"{site.prefix}_no_budget", site.url, without, GATEWAY_MODEL, site))
    return [
        Target(name, url, key, model, load.make_client(url, key, client), site)
        for name, url, key, model, site in paths
    ]


async def close(targets: list[Target]) -> None:
    for target in targets:
        await target.client.close()


# ------------------------------------------------------------------------------ levels


async def measure_level(
    args: argparse.Namespace, targets: list[Target], upstream_s: float, start: str, n: int
) -> dict:
    """One level, the paths interleaved in slices (every other slice in reverse order)."""
    requests = max(args.requests, n * 4)
    runs = {target.name: load.Run() for target in targets}
    cpu = dict.fromkeys(runs, 0.0)
    sent = dict.fromkeys(runs, 0)
    for number in range(args.slices):
        for target in targets if number % 2 == 0 else targets[::-1]:
            before = target.site.cpu_seconds() if target.site else 0.0
            if start == "queue":
                run = await load.queue(target.client, target.model, requests // args.slices, n)
                sent[target.name] += requests // args.slices
            else:
                run = await load.waves(target.client, target.model, n, args.waves, start)
                sent[target.name] += n * (args.waves + 1)  # the warm-up wave is served too
            # The site's CPU for these requests (its usage writer may finish a little later).
            await asyncio.sleep(0.2)
            if target.site:
                cpu[target.name] += target.site.cpu_seconds() - before
            runs[target.name].add(run)
    level: dict = {"upstream_s": upstream_s, "start": start, "concurrency": n}
    if start == "queue":
        level["requests"] = requests
    else:
        level["waves"] = args.waves * args.slices
    direct = runs["direct"]
    for target in targets:
        run, name = runs[target.name], target.name
        level[f"{name}_p50_ms"] = run.p(0.5)
        level[f"{name}_p99_ms"] = run.p(0.99)
        level[f"{name}_p99_over_p50"] = run.p(0.99) / run.p(0.5) if run.latencies else math.nan
        level[f"{name}_rps"] = run.rps
        if run.by_wave:
            level[f"{name}_wave_p50_ms"] = [
                load.percentile(latencies, 0.5) * 1000 for latencies in run.by_wave
            ]
        level[f"{name}_errors"] = run.errors
        if run.error_kinds:
            level[f"{name}_error_kinds"] = run.error_kinds
        if target.site:
            level[f"{name}_rps_ratio"] = run.rps / direct.rps if direct.rps else math.nan
            level[f"{name}_added_p50_ms"] = run.p(0.5) - direct.p(0.5)
            level[f"{name}_added_p99_ms"] = run.p(0.99) - direct.p(0.99)
            level[f"{name}_site_cpu_ms_per_request"] = 1000 * cpu[name] / max(sent[name], 1)
    level["load_average"] = os.getloadavg()
    print_level(level, targets)
    return level


def upstream_label(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:g} s"


def print_level(level: dict, targets: list[Target]) -> None:
    upstream = upstream_label(level["upstream_s"])
    size = (
        f"{level['requests']} requests" if level["start"] == "queue" else f"{level['waves']} waves"
    )
    print(
        f"upstream {upstream}, {level['start']}, c={level['concurrency']} ({size} per path; "
        f"load average {level['load_average'][0]:.2f})",
        flush=True,
    )
    width = max(len(target.label) for target in targets)
    for target in targets:
        name = target.name
        line = (
            f"  {target.label:<{width}}  p50 {level[name + '_p50_ms']:8.2f}  "
            f"p99 {level[name + '_p99_ms']:8.2f} ms  p99/p50 {level[name + '_p99_over_p50']:5.2f}"
            f"  {level[name + '_rps']:6.1f} rps"
        )
        if target.site:
            line += (
                f"  ratio {level[name + '_rps_ratio']:.3f}"
                f"  added p50 {level[name + '_added_p50_ms']:+.2f} ms"
                f"  site cpu {level[name + '_site_cpu_ms_per_request']:.2f} ms/req"
            )
        line += f"  {level[name + '_errors']} err"
        if level.get(f"{name}_wave_p50_ms"):
            line += "  p50 by wave " + "/".join(f"{v:.0f}" for v in level[name + "_wave_p50_ms"])
        print(line, flush=True)
        if level.get(f"{name}_error_kinds"):
            print(f"      errors: {level[name + '_error_kinds']}", flush=True)


def print_summary(results: dict, names: list[str]) -> None:
    """One Markdown row per level: for each gateway path, RPS ratio to direct, p50, p99/p50
    and site CPU per request."""
    if not results["levels"]:
        return
    heads = " | ".join(f"{name}: rps ratio, p50, p99/p50, cpu" for name in names)
    print(f"\n| upstream | start | c | direct rps, p50, p99/p50 | {heads} |", flush=True)
    print("|---|---|---:|---:|" + "---:|" * len(names), flush=True)
    for level in results["levels"]:
        cells = [
            upstream_label(level["upstream_s"]),
            level["start"],
            str(level["concurrency"]),
            f"{level['direct_rps']:.1f}, {level['direct_p50_ms']:.1f} ms, "
            f"{level['direct_p99_over_p50']:.2f}",
        ]
        cells += [
            f"**{level[name + '_rps_ratio']:.3f}**, {level[name + '_p50_ms']:.1f} ms, "
            f"{level[name + '_p99_over_p50']:.2f}, {level[name + '_site_cpu_ms_per_request']:.2f}"
            for name in names
        ]
        print("| " + " | ".join(cells) + " |", flush=True)


# ------------------------------------------------------------------------------ phases


async def fast_phase(args: argparse.Namespace, simulator_url: str, sites: list[Site]) -> dict:
    """Upstream 0 ms: the queue levels, then time to the first streamed chunk."""
    targets = targets_for(simulator_url, sites, args.budget_only, args.client)
    results: dict = {"levels": []}
    # Warm up connections, caches and the snapshot on every path.
    for target in targets:
        await load.queue(target.client, target.model, 200, 8)
    if args.requests:
        for n in args.concurrency:
            results["levels"].append(await measure_level(args, targets, 0.0, "queue", n))
    if args.ttfb_samples:
        ttfb_ms = {}
        for target in targets:
            streams = load.SdkClient(target.url, target.key)
            values = await load.ttfb(streams, target.model, args.ttfb_samples)
            await streams.close()
            ttfb_ms[target.name] = {
                "p50_ms": load.percentile(values, 0.5) * 1000,
                "p99_ms": load.percentile(values, 0.99) * 1000,
            }
        results["ttfb"] = ttfb_ms
        print(
            "streams, time to first content chunk (concurrency 1): "
            + ", ".join(
                f"{p} p50 {v['p50_ms']:.2f} / p99 {v['p99_ms']:.2f} ms" for p, v in ttfb_ms.items()
            ),
            flush=True,
        )
    await close(targets)
    return results


async def slow_phase(args: argparse.Namespace, simulator_url: str, sites: list[Site]) -> dict:
    """Upstream `--upstream` s: lockstep and spread starts at each concurrency, then the soak."""
    targets = targets_for(simulator_url, sites, args.budget_only, args.client)
    results: dict = {"levels": []}
    if args.waves:
        for n in args.concurrency:
            # With one client, spread is lockstep.
            for start in args.starts if n > 1 else args.starts[:1]:
                results["levels"].append(
                    await measure_level(args, targets, args.upstream, start, n)
                )
    await close(targets)
    if args.soak:
        soaks = [("direct", simulator_url, "direct", DIRECT_MODEL)]
        soaks += [(site.prefix, site.url, site.keys[0], GATEWAY_MODEL) for site in sites]
        for name, url, key, model in soaks:
            result = await load.soak(url, key, model, args.soak, args.client)
            results[f"soak_{name}"] = result
            print(
                f"soak {name}: {args.soak} in flight against a {args.upstream:g} s upstream: "
                f"{result['ok']} ok, {result['errors']} errors, wall {result['wall_s']:.2f} s, "
                f"p50 {result['p50_ms']:.0f} ms, p99 {result['p99_ms']:.0f} ms",
                flush=True,
            )
    return results


def serve_and_run(sites: list[Site], phase: Any) -> dict:
    started: list[Site] = []
    try:
        for site in sites:
            site.start()
            started.append(site)
        return asyncio.run(phase)
    finally:
        for site in started:
            site.stop()


# ------------------------------------------------------------------------------ main


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


def numbers(text: str) -> list[int]:
    return [int(x) for x in text.split(",")]


def starts(text: str) -> list[str]:
    chosen = text.split(",")
    if not chosen or set(chosen) - set(load.STARTS):
        raise argparse.ArgumentTypeError(f"choose among {','.join(load.STARTS)}")
    return chosen


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB))
    parser.add_argument("--concurrency", type=numbers, default=[1, 16, 64, 256])
    parser.add_argument("--slices", type=int, default=4, help="interleaved slices per level")
    parser.add_argument(
        "--requests", type=int, default=1000, help="per path and level, upstream 0 ms (0: skip)"
    )
    parser.add_argument("--ttfb-samples", type=int, default=200, help="streams per path (0: skip)")
    parser.add_argument(
        "--upstream", type=float, default=1.0, help="the slow upstream's answer time, s (0: skip)"
    )
    parser.add_argument(
        "--waves", type=int, default=3, help="requests per client and slice, slow upstream"
    )
    parser.add_argument(
        "--starts", type=starts, default=list(load.STARTS), help="lockstep,spread (slow upstream)"
    )
    parser.add_argument("--soak", type=int, default=500, help="requests in flight (0: skip)")
    parser.add_argument(
        "--client",
        choices=load.CLIENTS,
        default="sdk",
        help="sdk: the openai SDK; http: the same request over bare aiohttp (less client CPU)",
    )
    parser.add_argument("--workers", type=int, default=1, help="uvicorn workers per site")
    parser.add_argument(
        "--access-log", action="store_true", help="an access line per request, as in production"
    )
    parser.add_argument(
        "--budget-only", action="store_true", help="leave out the paths without a budget"
    )
    parser.add_argument(
        "--site-root", type=Path, default=ROOT, help="serve this checkout's code (default: this)"
    )
    parser.add_argument(
        "--compare", type=Path, metavar="DIR", help="also serve this checkout's code, interleaved"
    )
    parser.add_argument(
        "--compare-database-url",
        default=os.environ.get("BENCH_COMPARE_DATABASE_URL", DEFAULT_COMPARE_DB),
    )
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    if args.compare and args.compare_database_url == args.database_url:
        parser.error("each code needs its own database (--compare-database-url)")
    for root in filter(None, (args.site_root, args.compare)):
        if not (root / "config" / "asgi.py").exists():
            parser.error(f"{root} is not a Switchboard checkout")
    return args


def main() -> None:
    args = parse_args()
    from simulator.testing import SimulatorServer

    sites = [Site("gateway", args.site_root, args.database_url, args.workers, args.access_log)]
    if args.compare:
        sites.append(
            Site(
                "compare_gateway",
                args.compare,
                args.compare_database_url,
                args.workers,
                args.access_log,
            )
        )
    results: dict = {
        "machine": machine(),
        "args": {
            k: str(v) if isinstance(v, Path) else v
            for k, v in vars(args).items()
            if not k.endswith("database_url")
        },
        "sites": {site.prefix: site.describe() for site in sites},
        "budget_leases": os.environ.get("BUDGET_LEASES", "on (default)"),
        # The machine may be shared: the load average says how much the figures waited.
        "load_average_start": os.getloadavg(),
        "levels": [],
    }
    print(f"machine: {results['machine']}, budget leases: {results['budget_leases']}")
    for site in sites:
        print(f"{site.prefix}: {site.root} at {site.commit}", flush=True)
    with SimulatorServer(latency_scale=0) as simulator:
        for site in sites:
            site.prepare(simulator.url)
        if args.requests or args.ttfb_samples:
            fast = serve_and_run(sites, fast_phase(args, simulator.url, sites))
            results["levels"] += fast.pop("levels")
            results.update(fast)
    if args.upstream and (args.waves or args.soak):
        with SimulatorServer(answer_seconds=args.upstream) as slow:
            for site in sites:
                site.point(slow.url)
            slow_results = serve_and_run(sites, slow_phase(args, slow.url, sites))
            results["levels"] += slow_results.pop("levels")
            results.update(slow_results)
    print_summary(results, [site.prefix for site in sites])
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
