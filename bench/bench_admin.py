"""The admin at scale: page times and query counts on the database bench/generate.py filled.

    .venv/bin/python bench/generate.py --sessions 1000000 --reset   # once
    .venv/bin/python bench/bench_admin.py [--repeat 5] [--pages analytics]
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/hermes_bench .venv/bin/python bench/bench_admin.py

Requests each page with django.test.Client as a superuser (production settings, DEBUG off): the
session changelist (first page; filtered by the busiest model; filtered by ?empty=yes; both, the
analytics page's drill-down link), the LanguageModel changelist, the analytics page
(/admin/sessions_app/session/empty-rates/) and one /metrics scrape. For each: the median time of
--repeat requests after a warm-up, the number of queries, and their SQL time: every query of one
request replayed through the raw driver, execute() and fetchall() both timed (SQLite hands grouped
rows out while they are fetched, so execute() alone undercounts), and every query that counts rows.
Goals, printed beside each page (issue 21, at 1M sessions on SQLite and PostgreSQL; at 10M on
PostgreSQL the analytics page <= 500 ms and /metrics <= 200 ms): the analytics page <= 150 ms, the
LanguageModel changelist <= 100 ms, /metrics <= 50 ms, the session changelists < 1 s; at most 20
queries; no full-table COUNT(*) on unfiltered pages on PostgreSQL (where the planner's estimate is
used instead). Prints the peak RSS, which must not grow with the number of sessions (compare 200k
with 1M). Exit status 0 unless it crashes.
"""

import argparse
import re
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.generate import peak_rss_mib, use_bench_database

USERNAME = "bench-admin"
MAX_QUERIES = 20
MAX_SECONDS = 1.0  # the session changelists
PAGE_SECONDS = 0.150  # the analytics page at 1M sessions (issue 21; 0.5 s at 10M on PostgreSQL)
MODELS_SECONDS = 0.100  # the LanguageModel changelist (issue 21)
METRICS_SECONDS = 0.050  # one /metrics scrape at 1M sessions (issue 21; 0.2 s at 10M on PostgreSQL)
# A COUNT over the session or message table with no WHERE clause: a full-table count.
FULL_COUNT = re.compile(
    r'SELECT COUNT\(\*\) AS "__count" FROM "sessions_app_(session|message)"\s*$', re.IGNORECASE | re.DOTALL
)


def pages(only: list[str] | None = None) -> list[tuple[str, str, bool, float]]:
    """(label, URL, unfiltered, goal in seconds) for every page to time (those whose label contains
    one of ``only``, if given)."""
    from django.db.models import Count
    from django.urls import reverse

    from sessions_app.models import Session

    def chosen(label: str) -> bool:
        return not only or any(word.lower() in label.lower() for word in only)

    busiest = 0
    if any(chosen(label) for label in ("filtered by model", "by model and empty")):  # a full read: only if needed
        busiest = Session.objects.order_by().values("model").annotate(n=Count("pk")).order_by("-n")[0]["model"]
    sessions = reverse("admin:sessions_app_session_changelist")
    every = [
        ("session changelist", sessions, True, MAX_SECONDS),
        ("  filtered by model", f"{sessions}?model__id__exact={busiest}", False, MAX_SECONDS),
        ("  filtered by empty", f"{sessions}?empty=yes", False, MAX_SECONDS),
        ("  by model and empty", f"{sessions}?model__id__exact={busiest}&empty=yes", False, MAX_SECONDS),
        ("LanguageModel changelist", reverse("admin:agents_app_languagemodel_changelist"), True, MODELS_SECONDS),
        ("analytics page", reverse("admin:sessions_app_session_empty_rates"), True, PAGE_SECONDS),
        ("/metrics scrape", "/metrics", True, METRICS_SECONDS),
    ]
    return [page for page in every if chosen(page[0])]


def superuser_client():
    from django.contrib.auth import get_user_model
    from django.test import Client

    user, _ = get_user_model().objects.update_or_create(
        username=USERNAME, defaults={"is_staff": True, "is_superuser": True, "is_active": True}
    )
    client = Client()
    client.force_login(user)
    return client


def get(client, url: str):
    response = client.get(url, secure=True)  # production settings redirect plain HTTP to HTTPS
    if response.status_code != 200:
        raise SystemExit(f"GET {url} answered {response.status_code}")
    return response


def measure(client, url: str, repeat: int) -> dict:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    get(client, url)  # warm-up: caches, templates, the session of the login
    with CaptureQueriesContext(connection) as captured:
        get(client, url)
    queries = [{**query, "time": replay(connection, query["sql"])} for query in captured.captured_queries]
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        get(client, url)
        times.append(time.perf_counter() - start)
    return {
        "median": statistics.median(times),
        "queries": len(queries),
        "sql_time": sum(float(q["time"]) for q in queries),
        "slowest": max(queries, key=lambda q: float(q["time"])) if queries else None,
        "counts": [q for q in queries if "COUNT(" in q["sql"].upper()],
        "all": queries,
    }


def replay(connection, sql: str) -> float:
    """Seconds to run ``sql`` (as Django logged it, parameters inlined) through the raw driver,
    execute() and fetchall() together; 0.0 for what cannot be replayed (a transaction's BEGIN,
    a statement whose inlined parameters the driver reads differently)."""
    if not sql.lstrip().upper().startswith(("SELECT", "WITH")):
        return 0.0
    cursor = connection.connection.cursor()
    try:
        start = time.perf_counter()
        cursor.execute(sql)
        cursor.fetchall()
        return time.perf_counter() - start
    except Exception:  # a query the logger's inlining cannot replay is left out
        connection.connection.rollback()
        return 0.0
    finally:
        cursor.close()


def short(sql: str, limit: int = 220) -> str:
    sql = " ".join(sql.split())
    return sql if len(sql) <= limit else sql[: limit - 3] + "..."


def run_pages(client, page_list, repeat: int, verbose: bool, vendor: str) -> list[str]:
    """Time and print each page; returns the goals it missed."""
    problems = []
    for label, url, unfiltered, goal in page_list:
        result = measure(client, url, repeat)
        ok = result["median"] < goal and result["queries"] <= MAX_QUERIES
        print(
            f"{label:<28} {result['median']:>7.3f}s {result['queries']:>8} {result['sql_time']:>7.3f}s  "
            f"< {goal * 1000:.0f} ms: {'met' if ok else 'MISSED'}"
        )
        for query in result["counts"]:
            full = bool(FULL_COUNT.search(" ".join(query["sql"].split())))
            print(f"      count {float(query['time']):.3f}s{' FULL-TABLE' if full else ''}: {short(query['sql'])}")
            if full and unfiltered and vendor == "postgresql":
                problems.append(f"{label.strip()}: full-table count")
        slowest = result["slowest"]
        if slowest is not None and float(slowest["time"]) > 0.1 and slowest not in result["counts"]:
            print(f"      slowest {float(slowest['time']):.3f}s: {short(slowest['sql'])}")
        if not ok:
            problems.append(f"{label.strip()}: {result['median']:.3f}s, {result['queries']} queries")
        if verbose:
            for query in result["all"]:
                print(f"        {float(query['time']):.3f}s {short(query['sql'], 400)}")
    return problems


def try_fixes(client, repeat: int, vendor: str) -> None:
    """Time proposed changes to pages this benchmark measures."""
    import datetime as dt

    from django.db.models import Max
    from django.urls import reverse

    from sessions_app.models import Session

    last = Session.objects.aggregate(last=Max("started_at"))["last"]
    since = (last - dt.timedelta(days=30)).date().isoformat()
    print("proposed fixes:")
    print(f"  analytics page limited to the last 30 days of the data (?since={since}), e.g. as its default:")
    run_pages(client, [("analytics page, 30 days", f"{reverse('admin:sessions_app_session_empty_rates')}?since={since}",
                        False, PAGE_SECONDS)], repeat, False, vendor)  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5, help="Timed requests per page (default %(default)s).")
    parser.add_argument("--verbose", action="store_true", help="Print every query of every page.")
    parser.add_argument(
        "--pages", nargs="+", metavar="WORD", help="Time only the pages whose label contains a WORD (e.g. analytics)."
    )
    parser.add_argument("--try-fixes", action="store_true", help="Also time proposed admin changes.")
    args = parser.parse_args()
    use_bench_database()
    from django.db import connection
    from django.test.utils import setup_test_environment

    from sessions_app.models import Message, Session

    setup_test_environment()  # the test client's host name, and no e-mail
    sessions = Session.objects.count()
    if not sessions:
        print("the benchmark database is empty: run bench/generate.py first", file=sys.stderr)
        return 1
    messages = Message.objects.order_by().values("pk").count()
    client = superuser_client()
    print(
        f"admin on {connection.vendor} ({connection.settings_dict['NAME']}): {sessions:,} sessions, "
        f"{messages:,} messages; median of {args.repeat} requests after a warm-up"
    )
    print(f"{'page':<28} {'median':>8} {'queries':>8} {'sql':>8}  goal at 1M (and <= {MAX_QUERIES} queries)")
    problems = run_pages(client, pages(args.pages), args.repeat, args.verbose, connection.vendor)
    print("goals: " + ("all met" if not problems else "missed - " + "; ".join(problems)))
    if args.try_fixes:
        try_fixes(client, args.repeat, connection.vendor)
    print(f"peak RSS {peak_rss_mib():.0f} MiB (goal: flat in the number of sessions; compare 200k with 1M)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
