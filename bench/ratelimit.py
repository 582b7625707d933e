"""What a per-key rate-limit check costs on the hot path (target: < 0.3 ms with Redis on
loopback), and that a Redis outage costs one timeout, not one per request.

    python bench/ratelimit.py [--n 5000] [--redis redis://127.0.0.1:6379/0]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

# the project instead of bench/, whose requests.py shadows the package
sys.path[0] = str(Path(__file__).resolve().parent.parent)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")
os.environ.setdefault("LOG_LEVEL", "ERROR")

import django  # noqa: E402  (after the path and environment are set)

django.setup()

from django.conf import settings  # noqa: E402

from core.ratelimit import rate_limit_hit, rate_limit_reset  # noqa: E402


async def timed(n: int, **limits) -> tuple[float, float]:
    """Median and p99 of one check, in microseconds."""
    key_id = 900_000 + os.getpid() % 1000
    samples = []
    for _ in range(200):
        await rate_limit_hit(key_id=key_id, tokens=10, **limits)
    for _ in range(n):
        started = time.perf_counter()
        await rate_limit_hit(key_id=key_id, tokens=10, **limits)
        samples.append((time.perf_counter() - started) * 1e6)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99)]


async def main(n: int, redis_url: str) -> None:
    big = {"rpm": 10**9, "tpm": 10**12}
    settings.REDIS_URL = ""
    rate_limit_reset()
    print(f"n={n}")
    median, p99 = await timed(n, rpm=None, tpm=None)
    print(f"key without limits:             median {median:7.1f} µs   p99 {p99:7.1f} µs")
    median, p99 = await timed(n, **big)
    print(f"in-process counters (rpm+tpm):  median {median:7.1f} µs   p99 {p99:7.1f} µs")
    if redis_url:
        settings.REDIS_URL = redis_url
        rate_limit_reset()
        median, p99 = await timed(n, rpm=10**9, tpm=None)
        print(f"Redis, rpm only (1 round trip): median {median:7.1f} µs   p99 {p99:7.1f} µs")
        median, p99 = await timed(n, **big)
        print(f"Redis, rpm+tpm (1 round trip):  median {median:7.1f} µs   p99 {p99:7.1f} µs")
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens: an outage
    settings.RATE_LIMIT_FAIL_OPEN = True
    rate_limit_reset()
    started = time.perf_counter()
    for _ in range(n):
        await rate_limit_hit(key_id=1, tokens=10, **big)
    per = (time.perf_counter() - started) / n * 1e6
    print(
        f"Redis down, fail open:          mean   {per:7.1f} µs   (one failed connect, then local)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    asyncio.run(main(args.n, args.redis))
