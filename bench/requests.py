"""Request explorer at scale: the list's first page (unfiltered and with each single filter),
a deeper page, the sorts and a request's detail, on the data set of `bench/dashboard.py`.

    python bench/dashboard.py --rows 10000000      # once: load the 10M-record data set
    python bench/requests.py                       # measure the explorer on it
    python bench/requests.py --database-url postgres://postgres@127.0.0.1:5432/sb_bench_explorer

It never loads data itself: it migrates the database (the explorer's index is created there if
missing) and reuses the dashboard bench's people (finance sees all 20 teams; the member sees
the biggest one). Every case is requested in-process through Django's test client (full
middleware, the real database and pool): the JSON API, and the HTML page for a few. 2 warm-up
requests, then `--repeat` timed ones. Then the plans PostgreSQL chose (EXPLAIN ANALYZE) for
the list's query in the main cases, and the sizes of the ledger's indexes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(ROOT)  # the project instead of bench/, whose requests.py shadows the package

from bench import dashboard  # noqa: E402  (configure, timed)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=15, help="timed requests per case")
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/switchboard_bench"
        ),
    )
    parser.add_argument("--no-explain", action="store_true")
    return parser.parse_args()


def measure(client, url: str, params: dict, repeat: int) -> tuple[float, float, float, int, int]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def get():
        response = client.get(url, params)
        assert response.status_code == 200, (
            url,
            params,
            response.status_code,
            response.content[:300],
        )
        return response

    best, median, p95, response = dashboard.timed(get, repeat)
    rows = -1
    if response["Content-Type"].startswith("application/json"):
        rows = len(response.json().get("results", [])) if "results" in response.json() else -1
    with CaptureQueriesContext(connection) as queries:
        get()
    return best, median, p95, len(queries.captured_queries), rows


def main() -> None:
    args = parse_args()
    dashboard.configure(args.database_url)
    from django.db import connection
    from django.test import Client
    from django.utils import timezone

    import spend.explorer_views  # noqa: F401  (load every module now)
    from accounts.models import ApiKey, Team, User
    from spend.explorer import RequestFilters, requests_filtered
    from spend.models import UsageRecord

    finance_user = User.objects.get(username="bench-finance")
    member_user = User.objects.get(username="bench-member")
    member_team = Team.objects.get(slug="team-00")
    finance = Client()
    finance.force_login(finance_user)
    member = Client()
    member.force_login(member_user)
    key = ApiKey.objects.filter(team=member_team).order_by("id").first()
    records = UsageRecord.objects.count()
    newest = UsageRecord.objects.order_by("-created_at").values_list("request_id", flat=True)[5000]
    fallback = (
        UsageRecord.objects.filter(route_reason__contains=" failed (")
        .order_by("-created_at")
        .values_list("request_id", flat=True)
        .first()
    )
    prefix = newest[:-3]

    api = "/api/v1/requests"
    single = [
        ("team", {"team": "team-07"}),
        ("key", {"team": member_team.slug, "key": key.prefix}),
        ("prompt", {"prompt": "prompt-1"}),
        ("prompt and version", {"prompt": "prompt-1", "version": 1}),
        ("model (common: gpt-5.4-mini)", {"model": "gpt-5.4-mini"}),
        ("model (rare: gpt-6-astra)", {"model": "gpt-6-astra"}),
        ("tier", {"tier": "reasoning"}),
        ("status error", {"status": "error"}),
        ("status cancelled", {"status": "cancelled"}),
        ("status failed check (none in the data)", {"status": "failed_check"}),
        ("status refused (none in the data)", {"status": "refused"}),
        ("purpose shadow", {"purpose": "shadow"}),
        ("route rule", {"rule": "Routine tasks to mini"}),
        ("fell back", {"route": "fell_back"}),
        ("escalated", {"route": "escalated"}),
        ("min cost $0.05", {"min_cost": "0.05"}),
        ("min latency 10 s", {"min_latency": 10000}),
        ("search: request id prefix", {"q": prefix}),
        ("range 1h", {"range": "1h"}),
        ("range 90d", {"range": "90d"}),
    ]
    cases = [("finance (20 teams), first page, unfiltered (7d)", finance, api, {})]
    cases += [(f"finance, filter: {name}", finance, api, params) for name, params in single]
    cases += [
        ("finance, sort by cost, 24h", finance, api, {"sort": "cost", "range": "24h"}),
        ("finance, sort by cost, 7d", finance, api, {"sort": "cost"}),
        ("finance, sort by latency, 24h", finance, api, {"sort": "latency", "range": "24h"}),
        ("member (1 team), first page, unfiltered", member, api, {}),
        ("member, filter: status error", member, api, {"status": "error"}),
        ("member, filter: model (rare)", member, api, {"model": "gpt-6-astra"}),
    ]
    page_two = finance.get(api, {"page_size": 50}).json()["next_cursor"]
    cases.append(("finance, second page (cursor)", finance, api, {"cursor": page_two}))
    cases += [
        ("HTML page /requests/, finance, unfiltered", finance, "/requests/", {}),
        ("HTML page /requests/, member, status error", member, "/requests/", {"status": "error"}),
    ]
    detail = [
        ("detail API, finance", finance, f"{api}/{newest}", {}),
        ("detail API, a request that fell back (2 records)", finance, f"{api}/{fallback}", {}),
        ("detail drawer (htmx partial), finance", finance, f"/requests/{newest}/", {}),
    ]
    report = [
        f"### Request explorer on {records:,} usage records (PostgreSQL)",
        "",
        f"In-process, {args.repeat} timed requests after 2 warm-ups; page size 50. Targets: first"
        " page ≤ 300 ms, detail ≤ 100 ms.",
        "",
        "| case | best | median | p95 | queries | rows |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, client, url, params in cases + detail:
        headers = {"HTTP_HX_REQUEST": "true"} if url.startswith("/requests/req") else {}
        if headers:
            client.defaults.update(headers)
        best, median, p95, queries, rows = measure(client, url, params, args.repeat)
        for header in headers:
            client.defaults.pop(header)
        line = f"| {name} | {best:.0f} ms | {median:.0f} ms | {p95:.0f} ms | {queries} | {'' if rows < 0 else rows} |"
        report.append(line)
        print(line, file=sys.stderr)

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexrelname, pg_size_pretty(pg_relation_size(indexrelid)) "
            "FROM pg_stat_user_indexes WHERE relname = 'spend_usagerecord' ORDER BY indexrelname"
        )
        sizes = cursor.fetchall()
    report += ["", "Indexes of the ledger:", ""]
    report += [f"- `{name}`: {size}" for name, size in sizes]

    if not args.no_explain:
        teams = tuple(Team.objects.values_list("id", flat=True))
        since = timezone.now() - dt.timedelta(days=7)
        plans = [
            ("unfiltered, finance", RequestFilters(team_ids=teams, since=since)),
            ("status error", RequestFilters(team_ids=teams, since=since, status="error")),
            ("one team", RequestFilters(team_ids=(member_team.id,), since=since)),
            ("rare model", RequestFilters(team_ids=teams, since=since, model="gpt-6-astra")),
        ]
        for name, filters in plans:
            qs = requests_filtered(filters).order_by("-created_at", "-id")[:51]
            report += ["", f"EXPLAIN ANALYZE, {name}:", "", "```", qs.explain(analyze=True), "```"]
    load1, load5, _ = os.getloadavg()
    report += [
        "",
        f"Machine: {os.cpu_count()} CPUs, load average {load1:.1f} (1 min) / {load5:.1f} (5 min) "
        f"at the end; run at {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
    ]
    print("\n".join(report))


if __name__ == "__main__":
    main()
