"""Empty-session analytics at scale: ``empty_session_rates`` versus hand-written SQL on the same database.

    .venv/bin/python bench/generate.py --sessions 1000000 --reset   # once
    .venv/bin/python bench/bench_analytics.py [--repeat 5] [--try-fixes]
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/hermes_bench .venv/bin/python bench/bench_analytics.py

Times the per-model and per-source reports and the daily, weekly and monthly trends two ways
each, in the same process and on the same data (the database bench/generate.py filled):
  orm  - ``empty_session_rates(by=...)``: the ORM query plus building the report rows
  sql  - the best hand-written SQL found for that report: several shapes are timed through the
         raw DB-API cursor and the fastest is the baseline (a GROUP BY with NOT EXISTS on the
         message index per row; totals UNION ALL an anti-join for the empty ones; a LEFT JOIN
         on the distinct session ids of the message index was slower everywhere and is left out)
and prints the medians and the ratio orm / best sql. The numbers of every shape are checked
against the ORM's. --try-fixes also times alternatives (the ORM's other query shape; on SQLite a
memory-mapped database) so their effect can be judged with numbers.
Prints the peak RSS. Exit status 0 unless it crashes (or a hand query disagrees with the ORM).
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.generate import peak_rss_mib, use_bench_database

S, M, L = "sessions_app_session", "sessions_app_message", "agents_app_languagemodel"
NOT_EXISTS = f"NOT EXISTS (SELECT 1 FROM {M} m WHERE m.session_id = s.id)"
REPORTS = ("model", "source", "day", "week", "month")


def group_expressions(connection) -> dict[str, str]:
    """The hand-written SQL for each report's key, on ``s`` = the session table."""
    source = "s.source"
    if connection.vendor == "mysql":  # group "CLI" apart from "cli", as the ORM does there
        source += " COLLATE " + ("utf8mb4_nopad_bin" if connection.mysql_is_mariadb else "utf8mb4_0900_bin")
    day = {
        "sqlite": "substr(s.started_at, 1, 10)",  # stored as naive UTC text: the date is its prefix
        "postgresql": "(s.started_at AT TIME ZONE 'UTC')::date",
        "mysql": "DATE(s.started_at)",  # naive UTC
    }[connection.vendor]
    week = {  # the Monday of the week
        "sqlite": "date(substr(s.started_at, 1, 10), '-6 days', 'weekday 1')",
        "postgresql": "date_trunc('week', s.started_at AT TIME ZONE 'UTC')::date",
        "mysql": "DATE(s.started_at) - INTERVAL WEEKDAY(s.started_at) DAY",
    }[connection.vendor]
    month = {
        "sqlite": "substr(s.started_at, 1, 7)",
        "postgresql": "to_char(s.started_at AT TIME ZONE 'UTC', 'YYYY-MM')",
        "mysql": "DATE_FORMAT(s.started_at, '%Y-%m')",
    }[connection.vendor]
    return {"model": "s.model_id", "source": source, "day": day, "week": week, "month": month}


def hand_sql(connection) -> dict[str, dict[str, str]]:
    """For each report, hand-written queries returning (key, sessions, empty) rows."""
    empty_sum = f"SUM(CASE WHEN {NOT_EXISTS} THEN 1 ELSE 0 END)"
    if connection.vendor == "postgresql":
        empty_sum = f"COUNT(*) FILTER (WHERE {NOT_EXISTS})"
    queries = {}
    for by, key in group_expressions(connection).items():
        shapes = {
            # One pass; the EXISTS probe is evaluated per session inside the aggregate.
            "group + not-exists per row": f"SELECT {key} k, COUNT(*) n, {empty_sum} e FROM {S} s GROUP BY k",
            # Totals, plus the empty ones through an anti-join, which PostgreSQL runs as a join
            # (cheaper per row than a SubPlan, and parallel) rather than a per-row subquery.
            "counts + anti-join (union all)": (
                f"SELECT k, SUM(n) n, SUM(e) e FROM (SELECT {key} k, COUNT(*) n, 0 e FROM {S} s GROUP BY k "
                f"UNION ALL SELECT {key} k, 0 n, COUNT(*) e FROM {S} s WHERE {NOT_EXISTS} GROUP BY k) u GROUP BY k"
            ),
        }
        if connection.vendor == "sqlite" and by == "source":
            # A scan of the table rather than of the (source, started_at) index, which is not
            # covering (every entry costs a lookup of the row for its id).
            shapes["group + not-exists per row, table scan"] = (
                f"SELECT {key} k, COUNT(*) n, {empty_sum} e FROM {S} s NOT INDEXED GROUP BY k"
            )
        if by == "model":  # the names of the (few) groups
            shapes = {
                name: f"SELECT l.name, g.n, g.e FROM ({sql}) g LEFT JOIN {L} l ON l.id = g.k"
                for name, sql in shapes.items()
            }
        queries[by] = shapes
    return queries


def run_sql(raw, sql: str) -> list:
    cursor = raw.cursor()
    cursor.execute(sql)
    rows = cursor.fetchall()
    cursor.close()
    return rows


def as_counts(by: str, rows) -> dict:
    """{key: (sessions, empty)} with keys as empty_session_rates spells them."""
    from sessions_app.analytics import NO_MODEL_KEY

    counts = {}
    for key, sessions, empty in rows:
        if by == "model":
            key = NO_MODEL_KEY if key is None else key
        elif by in ("day", "week"):
            key = str(key)[:10]
        elif by == "month":
            key = str(key)[:7]
        counts[key] = (int(sessions), int(empty))
    return counts


def time_all(candidates: dict, repeat: int) -> dict[str, float]:
    """Median seconds of each callable; runs are interleaved so they share the machine's noise."""
    for func in candidates.values():  # warm the cache
        func()
    times = {name: [] for name in candidates}
    for _ in range(repeat):
        for name, func in candidates.items():
            start = time.perf_counter()
            func()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def bench_report(by: str, queries: dict, raw, repeat: int, extra_orm: dict | None = None) -> dict:
    from sessions_app.analytics import empty_session_rates

    expected = {row.key: (row.sessions, row.empty) for row in empty_session_rates(by)}
    for name, sql in queries.items():
        got = as_counts(by, run_sql(raw, sql))
        if got != expected:
            raise SystemExit(f"hand SQL {name!r} for by={by} disagrees with empty_session_rates: {got} != {expected}")
    for name, func in (extra_orm or {}).items():
        if (got := func()) != expected:
            raise SystemExit(f"{name!r} for by={by} disagrees with empty_session_rates: {got} != {expected}")
    candidates = {"orm": lambda: empty_session_rates(by)}
    candidates.update(extra_orm or {})
    candidates.update({f"sql: {name}": (lambda sql=sql: run_sql(raw, sql)) for name, sql in queries.items()})
    return time_all(candidates, repeat)


def print_report(by: str, medians: dict) -> dict:
    best_name = min((name for name in medians if name.startswith("sql: ")), key=medians.get)
    best = medians[best_name]
    print(f"  by={by}")
    for name, seconds in medians.items():
        mark = "  <- baseline" if name == best_name else ""
        print(f"    {name:<44} {seconds:8.3f}s  {seconds / best:5.2f}x{mark}")
    ratio = medians["orm"] / best
    print(f"    ratio orm / best sql = {ratio:.2f}x (goal <= 1.2x)")
    return {"orm": medians["orm"], "sql": best, "ratio": ratio}


def try_fixes(connection, raw, queries, repeat: int, reports) -> None:
    """Time alternatives next to the current code, on the same data."""
    from sessions_app.analytics import rates as analytics

    print("alternatives (measured ad hoc; the code and schema are left as they are):")
    shapes = analytics._UNION_VENDORS
    other = set() if connection.vendor in shapes else {connection.vendor}
    label = "one GROUP BY, NOT EXISTS per row" if other == set() else "totals UNION ALL the empty ones"
    print(f"  the ORM's other query shape on {connection.vendor} ({label}):")
    analytics._UNION_VENDORS = other
    try:
        for by in reports:
            print_report(by, bench_report(by, queries[by], raw, repeat))
    finally:
        analytics._UNION_VENDORS = shapes
    if connection.vendor == "sqlite":
        print("  every report with PRAGMA mmap_size = 1 GiB on the connection (pages read without a syscall):")
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA mmap_size = 1073741824")
        try:
            for by in reports:
                print_report(by, bench_report(by, queries[by], raw, repeat))
        finally:
            with connection.cursor() as cursor:
                cursor.execute("PRAGMA mmap_size = 0")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5, help="Timed runs of each query (default %(default)s).")
    parser.add_argument("--reports", nargs="+", choices=REPORTS, default=list(REPORTS), help="Reports to time.")
    parser.add_argument("--try-fixes", action="store_true", help="Also time alternatives (see above).")
    args = parser.parse_args()
    use_bench_database()
    from django.db import connection

    from sessions_app.models import Message, Session

    sessions = Session.objects.count()
    if not sessions:
        print("the benchmark database is empty: run bench/generate.py first", file=sys.stderr)
        return 1
    messages = Message.objects.order_by().values("pk").count()
    connection.ensure_connection()
    raw = connection.connection
    queries = hand_sql(connection)
    print(
        f"empty-session analytics on {connection.vendor} ({connection.settings_dict['NAME']}): "
        f"{sessions:,} sessions, {messages:,} messages; median of {args.repeat} runs after a warm-up"
    )
    summary = {}
    for by in args.reports:
        summary[by] = print_report(by, bench_report(by, queries[by], raw, args.repeat))
    print("summary: " + ", ".join(f"{by} {s['orm']:.3f}s = {s['ratio']:.2f}x sql" for by, s in summary.items()))
    if "model" in summary and connection.vendor == "sqlite":
        print(f"per-model report {summary['model']['orm']:.3f}s (goal < 0.5 s on SQLite)")
    print(f"peak RSS {peak_rss_mib():.0f} MiB")
    if args.try_fixes:
        try_fixes(connection, raw, queries, args.repeat, args.reports)
        print(f"peak RSS after the fixes {peak_rss_mib():.0f} MiB (pages mapped by mmap_size count as resident)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
