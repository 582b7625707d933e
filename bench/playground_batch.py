"""Playground figures: the results page of a 5,000-row batch (UX.md 14: first page < 2 s, the
DOM holds one page of rows), and the batch runner's throughput against the simulator.

    python bench/playground_batch.py [--rows 5000] [--items 400] [--concurrency 8]

Runs on a throwaway SQLite file with the LocMem cache; the runner part starts a simulator
(latency scale 0.2) and runs a job in this process, through the gateway's pipeline. Prints
figures; nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

# the project instead of bench/, whose requests.py shadows the package
sys.path[0] = str(Path(__file__).resolve().parent.parent)
_db = Path(tempfile.mkdtemp()) / "bench.sqlite3"
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
os.environ["DATABASE_URL"] = f"sqlite:///{_db}"
os.environ.pop("REDIS_URL", None)

import django  # noqa: E402

django.setup()

from asgiref.sync import async_to_sync  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402

from accounts.models import Membership, Team, User  # noqa: E402
from playground.models import Job, JobItem  # noqa: E402
from prompts.models import Label, PromptVersion  # noqa: E402


def setup(rows: int) -> tuple[User, Job]:
    call_command("migrate", verbosity=0)
    from prompts.seed import seed_prompts
    from routing.seed import seed_catalog

    seed_catalog(simulator_url="http://127.0.0.1:9/v1")
    team = Team.objects.create(slug="bench", name="Bench")
    user = User.objects.create_user("bench", "b@example.com", "pw", is_superuser=True)
    Membership.objects.create(user=user, team=team)
    seed_prompts(team=team, author=None)
    version = Label.objects.get(prompt__team=team, prompt__slug="support-triage").version
    job = Job.objects.create(
        team=team,
        kind=Job.Kind.COMPARE,
        prompt_version=version,
        columns=[{"tier": "mini"}, {"tier": "flagship"}],
        status=Job.Status.DONE,
        total_items=rows * 2,
        done_items=rows * 2,
    )
    rng = random.Random(1)
    categories = ["billing", "bug", "account", "feature", "other"]
    items = []
    for row in range(rows):
        message = f"Ticket {row}: " + " ".join(
            rng.choice(["charged", "crash", "login", "refund", "slow"]) for _ in range(30)
        )
        for column in range(2):
            category = rng.choice(categories)
            items.append(
                JobItem(
                    job=job,
                    row_index=row,
                    column_index=column,
                    input={"variables": {"message": message, "channel": "email"}},
                    status="done",
                    output=f'{{"category": "{category}", "urgency": "low"}}',
                    tier_name=["mini", "flagship"][column],
                    cost_usd=Decimal("0.0001") * (1 + 3 * column),
                    latency_ms=rng.randint(200, 1500),
                    input_tokens=90,
                    output_tokens=12,
                    checks={"json": True, "schema": True},
                    passed=rng.random() > 0.05,
                )
            )
    JobItem.objects.bulk_create(items, batch_size=2000)
    return user, job


def results_page(user: User, job: Job) -> None:
    setup_test_environment()
    client = Client()
    client.force_login(user)
    for label, query in [
        ("first page (50 rows)", ""),
        ("100 rows per page", "?size=100"),
        ("page 40", "?page=40"),
        ("failures only", "?filter=failures"),
        ("different only", "?filter=different"),
        ("search", "?q=refund+crash"),
    ]:
        client.get(f"/playground/batch/{job.pk}/{query}")  # warm
        start = time.perf_counter()
        response = client.get(f"/playground/batch/{job.pk}/{query}")
        elapsed = time.perf_counter() - start
        rows = len(re.findall(rb'class="pg-row"', response.content))
        print(f"  {label:<22} {elapsed * 1000:7.0f} ms  {rows:3d} rows in the page")


def runner(items: int, concurrency: int) -> None:
    from playground.columns import ColumnSpec
    from playground.runner import job_run

    settings.PLAYGROUND_BATCH_CONCURRENCY = concurrency
    team = Team.objects.get(slug="bench")
    version = PromptVersion.objects.select_related("prompt").get(
        prompt__team=team, prompt__slug="support-triage"
    )
    # the job as job_submit stores it, without enqueueing it: this process runs it
    job = Job.objects.create(
        team=team,
        kind=Job.Kind.API,
        prompt_version=version,
        columns=[ColumnSpec(tier="mini").to_dict()],
        total_items=items,
    )
    JobItem.objects.bulk_create(
        JobItem(job=job, row_index=i, input={"variables": {"message": f"Ticket {i}: refund"}})
        for i in range(items)
    )
    start = time.perf_counter()
    status = async_to_sync(job_run)(job.pk)
    elapsed = time.perf_counter() - start
    job.refresh_from_db()
    errors = list(
        job.items.filter(status="error").values_list("error_code", "error_message").distinct()[:3]
    )
    print(
        f"  {items} items, concurrency {concurrency}: {elapsed:.2f} s "
        f"({items / elapsed:.0f} items/s), status {status}, {job.done_items} done"
        + (f", {job.failed_items} failed: {errors}" if errors else "")
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--items", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    started = time.perf_counter()
    user, job = setup(args.rows)
    print(f"seeded a {args.rows}-row x 2-column batch in {time.perf_counter() - started:.1f} s")
    print("results page (Django test client, SQLite):")
    results_page(user, job)
    from routing.models import Provider
    from simulator.testing import SimulatorServer

    print("batch runner (simulator at latency scale 0.2, mini):")
    with SimulatorServer(latency_scale=0.2) as server:
        provider = Provider.objects.get(name="openai")
        provider.base_url = server.url
        provider.save()
        runner(args.items // 4, 1)
        runner(args.items, args.concurrency)


if __name__ == "__main__":
    main()
