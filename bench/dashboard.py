"""Dashboard at scale: N usage records in PostgreSQL, the rollup, the page and the CSV exports.

    python bench/dashboard.py --rows 10000000            # load (COPY), roll up, measure
    python bench/dashboard.py --rows 1000000 --days 30
    python bench/dashboard.py --skip-load                # measure again on the loaded data

It works in its own database (default `switchboard_bench` on the local PostgreSQL; created
when missing), never the development or test one. Records are generated deterministically
(seeded), in time order, priced with the seeded catalog's real prices, and loaded with
psycopg's `cursor.copy` (COPY FROM STDIN) with the ledger's secondary indexes dropped during
the load and rebuilt after it. The page and the exports are measured in-process through
Django's test client (full middleware, template rendering, the real database), logged in as
finance (every team) and as a member of one team. Prints a Markdown report.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(ROOT)  # the project instead of bench/, whose requests.py shadows the package

PURPOSES = [("gateway", 88), ("classifier", 6), ("playground", 3), ("batch", 2), ("shadow", 1)]
STATUSES = [("success", 975), ("error", 20), ("cancelled", 5)]
# per tier: the primary model, its fallback, and the model's latency (base ms, ms per 1k out)
TIER_MODELS = {
    "nano": ("gpt-5.4-nano", "gpt-6-luna", 250, 150),
    "mini": ("gpt-5.4-mini", "gpt-6.1-terra", 400, 300),
    "flagship": ("gpt-5.4", "gpt-6.1-sol", 700, 900),
    "reasoning": ("gpt-5.5", "gpt-6-astra", 2500, 2500),
}
NEXT_TIER = {"nano": "mini", "mini": "flagship", "flagship": "reasoning", "reasoning": "reasoning"}
PROMPT_TIERS = [("mini", 55), ("nano", 15), ("flagship", 20), ("reasoning", 10)]
COLUMNS = (
    "created_at",
    "request_id",
    "team_id",
    "api_key_id",
    "prompt_version_id",
    "purpose",
    "rule",
    "route_reason",
    "model_id",
    "model_name",
    "tier_name",
    "service_tier",
    "attempt",
    "stream",
    "input_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "output_tokens",
    "reasoning_tokens",
    "cost_usd",
    "latency_ms",
    "ttft_ms",
    "status",
    "error_code",
    "error_message",
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="usage records to load")
    parser.add_argument("--days", type=int, default=90, help="spread over this many days")
    parser.add_argument("--teams", type=int, default=20)
    parser.add_argument("--prompts-per-team", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=15, help="timed requests per case")
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/switchboard_bench"
        ),
    )
    parser.add_argument("--skip-load", action="store_true", help="measure the loaded data")
    parser.add_argument(
        "--rebuild-rollups",
        action="store_true",
        help="with --skip-load: drop the rollups and time a rollup from scratch again",
    )
    parser.add_argument("--seed", type=int, default=7)
    return parser.parse_args()


def configure(database_url: str) -> None:
    os.environ["DATABASE_URL"] = database_url
    os.environ["DEBUG"] = "false"  # DEBUG keeps every query in memory
    os.environ.setdefault("ALLOWED_HOSTS", "testserver,localhost,127.0.0.1")
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.dev"
    import psycopg

    name = database_url.rsplit("/", 1)[1]
    admin_url = database_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


# ------------------------------------------------------------------ fixtures in the database


def seed(args: argparse.Namespace, now: dt.datetime) -> dict:
    from django.contrib.auth.models import Group

    from accounts.models import ApiKey, Membership, Role, Team, User
    from prompts.models import Prompt, PromptVersion
    from routing.models import Model, Price
    from routing.seed import seed_catalog
    from spend.models import Budget
    from spend.periods import period_start

    seed_catalog(simulator_url="http://127.0.0.1:8100/v1")
    rng = random.Random(args.seed)
    teams = []
    for i in range(args.teams):
        team, _ = Team.objects.get_or_create(
            slug=f"team-{i:02d}", defaults={"name": f"Team {i:02d}"}
        )
        teams.append(team)
        for k in range(2):
            if not ApiKey.objects.filter(team=team, name=f"service-{k}").exists():
                ApiKey.objects.create(
                    team=team, name=f"service-{k}", prefix=f"sb_{i:02d}{k}", hashed_key=f"{i}-{k}"
                )
        Budget.objects.update_or_create(
            team=team,
            api_key=None,
            defaults={
                "limit_usd": Decimal(rng.choice([500, 1000, 2500, 5000])),
                "period_start": period_start("monthly", now),
                "spent_usd": Decimal(rng.randint(100, 4000)),
            },
        )
    prompts = []
    for team in teams:
        for p in range(args.prompts_per_team):
            prompt, _ = Prompt.objects.get_or_create(
                team=team, slug=f"prompt-{p}", defaults={"name": f"Prompt {p}"}
            )
            version = prompt.versions.first() or PromptVersion.objects.create(
                prompt=prompt, number=1, user_template="{{ x }}"
            )
            tier = rng.choices([t for t, _ in PROMPT_TIERS], [w for _, w in PROMPT_TIERS])[0]
            prompts.append((team.id, version.id, tier))
    keys = {}
    for key in ApiKey.objects.filter(team__in=teams):
        keys.setdefault(key.team_id, []).append(key.id)
    models = {}
    for model in Model.objects.all():
        price = Price.objects.filter(model=model).order_by("-effective_from").first()
        # integer price per 1M tokens x 1e6 (micro-dollars per 1M): exact cost arithmetic
        models[model.name] = (
            model.id,
            int(price.input_per_mtok * 1_000_000),
            int(price.cached_input_per_mtok * 1_000_000),
            int(price.output_per_mtok * 1_000_000),
        )
    finance, _ = User.objects.get_or_create(username="bench-finance")
    finance.groups.set(Group.objects.filter(name=Role.FINANCE))
    member, _ = User.objects.get_or_create(username="bench-member")
    Membership.objects.get_or_create(user=member, team=teams[0])
    return {
        "teams": [t.id for t in teams],
        "prompts": prompts,
        "keys": keys,
        "models": models,
        "finance": finance,
        "member": member,
        "member_team": teams[0],
    }


# ------------------------------------------------------------------ generating the ledger


def _cost_text(units: int) -> str:
    """1e-10 USD units as a NUMERIC(20,10) literal."""
    return f"{units // 10**10}.{units % 10**10:010d}"


def generate(args: argparse.Namespace, fixtures: dict, now: dt.datetime, rng: random.Random):
    """Yield COPY text chunks (~100k lines each), in time order, ending just before `now`."""
    teams = fixtures["teams"]
    team_weights = [1 / (i + 1) ** 0.8 for i in range(len(teams))]  # a few big teams
    prompts_by_team: dict[int, list] = {}
    for team_id, version_id, tier in fixtures["prompts"]:
        prompts_by_team.setdefault(team_id, []).append((version_id, tier))
    models = fixtures["models"]
    keys = fixtures["keys"]
    start = now - dt.timedelta(days=args.days)
    span = (now - start).total_seconds() - 1
    chunk = 100_000
    produced = 0
    serial = 0
    while produced < args.rows:
        n = min(chunk, args.rows - produced)
        lo = span * produced / args.rows
        hi = span * (produced + n) / args.rows
        offsets = sorted(rng.uniform(lo, hi) for _ in range(n))
        team_pick = rng.choices(teams, team_weights, k=n)
        purpose_pick = rng.choices([p for p, _ in PURPOSES], [w for _, w in PURPOSES], k=n)
        status_pick = rng.choices([s for s, _ in STATUSES], [w for _, w in STATUSES], k=n)
        lines = []
        for i in range(n):
            serial += 1
            created = start + dt.timedelta(seconds=offsets[i])
            team_id = team_pick[i]
            purpose = purpose_pick[i]
            status = status_pick[i]
            reason = ""
            if purpose == "classifier":
                version_id, tier = None, "nano"
            else:
                roll = rng.random()
                team_prompts = prompts_by_team[team_id]
                version_id, tier = team_prompts[int(roll * 10) % len(team_prompts)]
                if roll < 0.08:
                    version_id = None  # free-form /v1 calls, no prompt
                if rng.random() < 0.02 and tier != "reasoning":
                    reason = f"escalated to {NEXT_TIER[tier]}: {TIER_MODELS[tier][0]} empty output"
                    tier = NEXT_TIER[tier]
            primary, fallback, base_ms, per_k_ms = TIER_MODELS[tier]
            model_name, attempt = (fallback, 2) if rng.random() < 0.03 else (primary, 1)
            if attempt == 2:  # the explorer's "fell back" filter reads the route's notes
                reason = f"{primary} failed (server_error)"
            model_id, p_in, p_cached, p_out = models[model_name]
            input_tokens = int(rng.lognormvariate(6.8, 0.9)) + 20
            cached = int(input_tokens * rng.uniform(0.2, 0.8)) if rng.random() < 0.3 else 0
            output_tokens = int(rng.lognormvariate(5.0, 0.8)) + 1
            reasoning = int(output_tokens * rng.uniform(1, 4)) if tier == "reasoning" else 0
            output_tokens += reasoning
            if status != "success":
                output_tokens = reasoning = 0
                if status == "error":
                    input_tokens = cached = 0
            # cost in 1e-10 USD: tokens x (price per 1M x 1e6) / 100
            units = (
                (input_tokens - cached) * p_in + cached * p_cached + output_tokens * p_out
            ) // 100
            latency = int(base_ms + per_k_ms * output_tokens / 1000 * rng.uniform(0.6, 1.6))
            if status == "error":
                latency = int(rng.uniform(50, 30_000))
            stream = rng.random() < 0.3
            ttft = str(int(latency * rng.uniform(0.1, 0.4))) if stream else "\\N"
            key_id = rng.choice(keys[team_id]) if purpose == "gateway" else None
            lines.append(
                "\t".join(
                    (
                        created.isoformat(),
                        f"req_bench_{serial:09d}",
                        str(team_id),
                        str(key_id) if key_id else "\\N",
                        str(version_id) if version_id else "\\N",
                        purpose,
                        "Routine tasks to mini" if tier == "mini" else "",
                        reason,
                        str(model_id),
                        model_name,
                        tier,
                        "default",
                        str(attempt),
                        "t" if stream else "f",
                        str(input_tokens),
                        str(cached),
                        "0",
                        str(output_tokens),
                        str(reasoning),
                        _cost_text(units),
                        str(latency),
                        ttft,
                        status,
                        "upstream_failed" if status == "error" else "",
                        "",
                    )
                )
            )
        produced += n
        yield "\n".join(lines) + "\n", produced


def load(args: argparse.Namespace, fixtures: dict, now: dt.datetime) -> dict:
    from django.db import connection

    from spend.models import DailyRollup, DailySummary, RollupState, UsageRecord

    table = UsageRecord._meta.db_table
    rng = random.Random(args.seed)
    with connection.cursor() as cursor:
        # CASCADE: playground comparisons point at usage records (none in the bench database)
        cursor.execute(
            f"TRUNCATE {table}, {DailyRollup._meta.db_table}, {DailySummary._meta.db_table} "
            "RESTART IDENTITY CASCADE"
        )
        RollupState.objects.all().delete()
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s "
            "AND indexname NOT LIKE %s",
            [table, "%_pkey"],
        )
        indexes = cursor.fetchall()
        cursor.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = %s::regclass AND contype = 'f'",
            [table],
        )
        foreign_keys = cursor.fetchall()
        # A deferred foreign-key check per copied row is most of a naive COPY's time: drop
        # them and the secondary indexes, load, then rebuild and validate each in one pass.
        for name, _definition in foreign_keys:
            cursor.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
        for name, _definition in indexes:
            cursor.execute(f'DROP INDEX "{name}"')
    started = time.perf_counter()
    raw = connection.connection  # the psycopg connection under Django's wrapper
    statement = f"COPY {table} ({', '.join(COLUMNS)}) FROM STDIN"
    with raw.cursor() as cursor, cursor.copy(statement) as copy:
        for text, produced in generate(args, fixtures, now, rng):
            copy.write(text)
            if produced % 1_000_000 == 0:
                rate = produced / (time.perf_counter() - started)
                print(f"  copied {produced:,} rows ({rate:,.0f}/s)", file=sys.stderr)
    raw.commit()
    copied = time.perf_counter() - started
    started = time.perf_counter()
    with connection.cursor() as cursor:
        for _name, definition in indexes:
            cursor.execute(definition)
        for name, definition in foreign_keys:
            cursor.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
        cursor.execute(f"ANALYZE {table}")
    indexed = time.perf_counter() - started
    return {"copy_s": copied, "index_s": indexed}


# ------------------------------------------------------------------ measuring


def timed(fn, repeat: int) -> tuple[float, float, float, object]:
    fn()
    fn()  # warm: connections, template and price caches
    samples = []
    result = None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    p95 = samples[min(len(samples) - 1, round(0.95 * (len(samples) - 1)))]
    return samples[0], statistics.median(samples), p95, result


def measure_page(client, params: dict, repeat: int) -> tuple[float, float, float, int]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def get():
        response = client.get("/usage/", params)
        assert response.status_code == 200, response.status_code
        return response

    best, median, p95, _ = timed(get, repeat)
    with CaptureQueriesContext(connection) as queries:
        get()
    return best, median, p95, len(queries.captured_queries)


def measure_export(client, url: str, params: dict, repeat: int) -> tuple[float, int, int]:
    def get():
        response = client.get(url, params)
        assert response.status_code == 200
        body = b"".join(response.streaming_content)
        return len(body), body.count(b"\n") - 1

    _best, median, _p95, (size, lines) = timed(get, repeat)
    return median, size, lines


def main() -> None:
    args = parse_args()
    configure(args.database_url)
    from django.conf import settings
    from django.db import connection
    from django.db.models import Sum
    from django.test import Client
    from django.utils import timezone

    import spend.views  # noqa: F401  (load every module now: edits during a long run can't mix in)
    from spend.models import DailyRollup, DailySummary, RollupState, UsageRecord
    from spend.rollups import local_day, usage_rollup_run

    now = timezone.now()
    fixtures = seed(args, now)
    report = [f"### {args.rows:,} usage records over {args.days} days, {args.teams} teams"]
    if not args.skip_load:
        print(f"loading {args.rows:,} rows…", file=sys.stderr)
        timings = load(args, fixtures, now)
        report.append(
            f"- load: COPY {timings['copy_s']:.0f} s ({args.rows / timings['copy_s']:,.0f} rows/s), "
            f"index and foreign-key rebuild + ANALYZE {timings['index_s']:.0f} s"
        )
    if not args.skip_load or args.rebuild_rollups:
        DailyRollup.objects.all().delete()
        DailySummary.objects.all().delete()
        RollupState.objects.all().delete()
        print("rolling up…", file=sys.stderr)
        started = time.perf_counter()
        result = usage_rollup_run(now=now)
        full = time.perf_counter() - started
        report.append(
            f"- rollup from scratch: {full:.1f} s for {len(result.days)} days → "
            f"{DailyRollup.objects.count():,} rollup rows, "
            f"{DailySummary.objects.count():,} summary rows (without purpose)"
        )
    started = time.perf_counter()
    usage_rollup_run()
    report.append(
        f"- incremental rollup run (what beat does every 5 min: yesterday + today): "
        f"{time.perf_counter() - started:.1f} s"
    )
    records = UsageRecord.objects.count()
    ledger_total = UsageRecord.objects.aggregate(t=Sum("cost_usd"))["t"]
    watermark = RollupState.objects.get().rolled_until
    rolled = DailyRollup.objects.aggregate(t=Sum("cost_usd"), n=Sum("requests"))
    summed = DailySummary.objects.aggregate(t=Sum("cost_usd"), n=Sum("requests"))
    in_rollups = UsageRecord.objects.filter(created_at__lt=watermark).aggregate(t=Sum("cost_usd"))
    assert rolled["t"] == summed["t"] == in_rollups["t"], (rolled, summed, in_rollups)
    assert rolled["n"] == summed["n"], (rolled, summed)
    report.append(
        f"- check: rollups hold {rolled['n']:,} of {records:,} records; their cost "
        f"${rolled['t']:,} (and the summaries') equals the ledger's before the watermark "
        f"exactly (ledger total ${ledger_total:,.2f})"
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_size_pretty(pg_total_relation_size('spend_usagerecord'))")
        report.append(f"- ledger table with indexes: {cursor.fetchone()[0]}")

    finance = Client()
    finance.force_login(fixtures["finance"])
    member = Client()
    member.force_login(fixtures["member"])
    team = fixtures["member_team"]
    today = local_day(now).isoformat()
    cases = [
        ("finance, all teams, 7d", finance, {"range": "7d"}),
        ("finance, all teams, 30d", finance, {"range": "30d"}),
        ("finance, all teams, month to date", finance, {"range": "mtd"}),
        ("finance, all teams, today", finance, {"range": "today"}),
        (
            f"finance, all teams, {args.days}d custom",
            finance,
            {
                "range": "custom",
                "start": local_day(now - dt.timedelta(days=args.days - 1)).isoformat(),
                "end": today,
            },
        ),
        ("finance, 30d, model filter", finance, {"range": "30d", "model": "gpt-5.4-mini"}),
        ("member of one team, 30d", member, {"range": "30d"}),
        (
            "member, 30d, one prompt",
            member,
            {"range": "30d", "team": team.slug, "prompt": team.prompts.first().id},
        ),
    ]
    report += [
        "",
        f"Dashboard page (`GET /usage/`, in-process, PostgreSQL, {args.repeat} timed requests after 2 warm-ups; TIME_ZONE={settings.TIME_ZONE}):",
        "",
        "| case | best | median | p95 | queries |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, client, params in cases:
        best, median, p95, queries = measure_page(client, params, args.repeat)
        report.append(f"| {name} | {best:.0f} ms | {median:.0f} ms | {p95:.0f} ms | {queries} |")
        print(report[-1], file=sys.stderr)

    # Worst case: beat stopped at midnight, so all of today is read from the raw ledger.
    midnight = dt.datetime.combine(local_day(now), dt.time.min).replace(tzinfo=now.tzinfo)
    DailyRollup.objects.filter(day=local_day(now)).delete()
    DailySummary.objects.filter(day=local_day(now)).delete()
    RollupState.objects.update(rolled_until=midnight)
    today_raw = UsageRecord.objects.filter(created_at__gte=midnight).count()
    for name, client, params in [
        ("finance, 30d, today all raw", finance, {"range": "30d"}),
        ("member, 30d, today all raw", member, {"range": "30d"}),
    ]:
        best, median, p95, queries = measure_page(client, params, args.repeat)
        report.append(
            f"| {name} ({today_raw:,} raw records) | {best:.0f} ms | {median:.0f} ms "
            f"| {p95:.0f} ms | {queries} |"
        )
        print(report[-1], file=sys.stderr)
    usage_rollup_run()

    report += [
        "",
        "CSV exports (streamed, whole body consumed):",
        "",
        "| export | median | rows | size |",
        "|---|---:|---:|---:|",
    ]
    yesterday = local_day(now - dt.timedelta(days=1)).isoformat()
    exports = [
        ("daily totals, all teams, 30d", "/usage/export/daily.csv", {"range": "30d"}, 3),
        (
            "usage records, all teams, 1 day",
            "/usage/export/usage.csv",
            {"range": "custom", "start": yesterday, "end": yesterday},
            3,
        ),
        (
            "usage records, one team, 7d",
            "/usage/export/usage.csv",
            {"range": "7d", "team": team.slug},
            2,
        ),
    ]
    for name, url, params, repeat in exports:
        median, size, lines = measure_export(finance, url, params, repeat)
        report.append(
            f"| {name} | {median:.0f} ms | {lines:,} | {size / 1e6:.1f} MB ({lines / median * 1000:,.0f} rows/s) |"
        )
        print(report[-1], file=sys.stderr)
    load1, load5, _load15 = os.getloadavg()
    report.append("")
    report.append(
        f"Machine: {os.cpu_count()} CPUs, load average {load1:.1f} (1 min) / {load5:.1f} (5 min) "
        "at the end of the run."
    )
    print("\n".join(report))


if __name__ == "__main__":
    main()
