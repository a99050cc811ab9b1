"""Empty-session analytics at scale: ``empty_session_rates`` versus hand-written SQL on the same database.

    .venv/bin/python bench/generate.py --sessions 1000000 --reset   # once
    .venv/bin/python bench/bench_analytics.py [--repeat 5] [--try-fixes]
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/hermes_bench .venv/bin/python bench/bench_analytics.py

Times every report of ``empty_session_rates`` (by model, source, day, week, month and cause) two
ways each, in the same process and on the same data (the database bench/generate.py filled):
  orm  - ``empty_session_rates(by=...)``: the ORM query plus building the report rows
  sql  - the best hand-written SQL over the same structures (the ``has_messages`` flag and the
         covering ``(model|source, started_at, has_messages)`` and ``(started_at, has_messages)``
         indexes): several shapes are timed through the raw DB-API cursor and the fastest is the
         baseline (one GROUP BY counting the unflagged rows; a GROUP BY key and flag folded
         afterwards; for weeks, days folded into weeks; for the causes, the total from the index
         plus a pass over the empty rows only)
and prints the medians, the ratio orm / best sql and the goals beside them (issue 21: the per-model
report <= 30 ms at 1M sessions on SQLite and PostgreSQL, now that it reads the daily rollup and only
the recent days live; issue 13: every report within 1.2x of the best hand SQL over the sessions).
The numbers of every shape are checked against the ORM's. --try-fixes also
times alternatives (on SQLite a memory-mapped database) so their effect can be judged with numbers.
Prints the peak RSS, which must not grow with the number of sessions (compare 200k with 1M).
Exit status 0 unless it crashes (or a hand query disagrees with the ORM).
"""

import argparse
import datetime as dt
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.generate import peak_rss_mib, use_bench_database

S, L = "sessions_app_session", "agents_app_languagemodel"
REPORTS = ("model", "source", "day", "week", "month", "cause")
RATIO_GOAL = 1.2
FAST_GOAL = {"model": 0.030, "source": 0.150}  # seconds at 1M sessions, SQLite and PostgreSQL
# The reports take the time "now" (which decides never_ended against open) as a parameter; fix it
# so the ORM and the hand SQL count the same thing.
NOW = dt.datetime.now(dt.UTC)
USAGE = ("api_call_count", "message_count", "tool_call_count", "input_tokens", "output_tokens",
         "cache_read_tokens", "cache_write_tokens", "reasoning_tokens")  # fmt: skip


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
        "postgresql": "date_trunc('month', s.started_at AT TIME ZONE 'UTC')::date",  # to_char() costs more
        "mysql": "DATE_FORMAT(s.started_at, '%Y-%m')",
    }[connection.vendor]
    return {"model": "s.model_id", "source": source, "day": day, "week": week, "month": month}


def count_where(connection, condition: str) -> str:
    if connection.vendor == "postgresql":
        return f"COUNT(*) FILTER (WHERE {condition})"
    return f"SUM(CASE WHEN {condition} THEN 1 ELSE 0 END)"


def not_flagged(connection) -> str:
    return "NOT s.has_messages" if connection.vendor == "postgresql" else "s.has_messages = 0"


def cause_sql(connection) -> dict[str, tuple[str, list]]:
    """Hand SQL for ``by="cause"``: one row (sessions, lost_transcript, never_ended, open, ghost)."""
    from agents_app.conf import hermes_settings

    stale = connection.ops.adapt_datetimefield_value(NOW - hermes_settings.HERMES_OPEN_GRACE)
    usage = "(" + " OR ".join(f"s.{column} > 0" for column in USAGE) + ")"
    causes = [
        usage,
        f"NOT {usage} AND s.ended_at IS NULL AND s.started_at < {_p(connection)}",
        f"NOT {usage} AND s.ended_at IS NULL AND s.started_at >= {_p(connection)}",
        f"NOT {usage} AND s.ended_at IS NOT NULL",
    ]
    empty = not_flagged(connection)
    one_pass = ", ".join(count_where(connection, f"{c} AND {empty}") for c in causes)
    empty_only = ", ".join(count_where(connection, c) for c in causes)
    return {
        # The ORM's shape: one pass over every row, each cause a conditional count.
        "one pass, conditional counts": (f"SELECT COUNT(*), {one_pass} FROM {S} s", [stale, stale]),
        # The total from the covering index, the causes from the empty rows only.
        "index count + empty rows only": (
            f"SELECT (SELECT COUNT(*) FROM {S}), {empty_only} FROM {S} s WHERE {empty}",
            [stale, stale],
        ),
    }


def _p(connection) -> str:
    return "?" if connection.vendor == "sqlite" else "%s"


def hand_sql(connection) -> dict[str, dict[str, tuple[str, list]]]:
    """For each report, hand-written queries (and their parameters) returning (key, sessions, empty)
    rows (for ``cause``, one row of counts)."""
    empty = not_flagged(connection)
    queries = {}
    for by, key in group_expressions(connection).items():
        shapes = {
            # One pass over the covering index; the empty ones are the rows whose flag is off.
            "group, count unflagged": f"SELECT {key} k, COUNT(*) n, {count_where(connection, empty)} e "
            f"FROM {S} s GROUP BY k",
            # Group by key and flag (two counts per key), folded into one row per key.
            "group by key and flag, folded": (
                f"SELECT k, SUM(n) n, SUM(CASE WHEN f THEN 0 ELSE n END) e FROM "
                f"(SELECT {key} k, s.has_messages f, COUNT(*) n FROM {S} s GROUP BY k, f) g GROUP BY k"
            ),
        }
        if by == "week":
            # Group by day (a cheap key), then turn the ~90 day rows into weeks: the week
            # expression runs once per day instead of once per session.
            day = group_expressions(connection)["day"]
            week = {
                "sqlite": "date(d.k, '-6 days', 'weekday 1')",
                "postgresql": "date_trunc('week', d.k)::date",
                "mysql": "d.k - INTERVAL WEEKDAY(d.k) DAY",
            }[connection.vendor]
            shapes["group by day, days folded into weeks"] = (
                f"SELECT {week} k, SUM(d.n) n, SUM(d.e) e FROM (SELECT {day} k, COUNT(*) n, "
                f"{count_where(connection, empty)} e FROM {S} s GROUP BY k) d GROUP BY 1"
            )
        if by == "model":  # the names of the (few) groups, joined after grouping
            shapes = {
                name: f"SELECT l.name, g.n, g.e FROM ({sql}) g LEFT JOIN {L} l ON l.id = g.k"
                for name, sql in shapes.items()
            }
        queries[by] = {name: (sql, []) for name, sql in shapes.items()}
    queries["cause"] = cause_sql(connection)
    return queries


def run_sql(raw, sql: str, params=()) -> list:
    cursor = raw.cursor()
    if params:
        cursor.execute(sql, params)
    else:
        cursor.execute(sql)
    rows = cursor.fetchall()
    cursor.close()
    return rows


def as_counts(by: str, rows) -> dict:
    """{key: (sessions, empty)} with keys as empty_session_rates spells them."""
    from sessions_app.analytics import CAUSES, NO_MODEL_KEY

    if by == "cause":  # one row: sessions, then the empty ones per cause, in the order of CAUSES
        (sessions, *per_cause), *_ = rows
        return {cause: (int(sessions), int(n or 0)) for cause, n in zip(CAUSES, per_cause, strict=True)}
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


def report(by: str):
    from sessions_app.analytics import empty_session_rates

    return empty_session_rates(by, now=NOW)


def bench_report(by: str, queries: dict, raw, repeat: int) -> dict:
    expected = {row.key: (row.sessions, row.empty) for row in report(by)}
    for name, (sql, params) in queries.items():
        got = as_counts(by, run_sql(raw, sql, params))
        if got != expected:
            raise SystemExit(f"hand SQL {name!r} for by={by} disagrees with empty_session_rates: {got} != {expected}")
    candidates = {"orm": lambda: report(by)}
    candidates.update({f"sql: {name}": (lambda q=q: run_sql(raw, *q)) for name, q in queries.items()})
    return time_all(candidates, repeat)


def print_report(by: str, medians: dict, sessions: int) -> dict:
    best_name = min((name for name in medians if name.startswith("sql: ")), key=medians.get)
    best = medians[best_name]
    print(f"  by={by}")
    for name, seconds in medians.items():
        mark = "  <- baseline" if name == best_name else ""
        print(f"    {name:<44} {seconds:8.3f}s  {seconds / best:5.2f}x{mark}")
    ratio = medians["orm"] / best
    goals = [
        f"ratio orm / best sql = {ratio:.2f}x (goal <= {RATIO_GOAL}x: {'met' if ratio <= RATIO_GOAL else 'MISSED'})"
    ]
    met = ratio <= RATIO_GOAL
    if by in FAST_GOAL:
        fast = medians["orm"] <= FAST_GOAL[by]
        met = met and fast
        goals.append(
            f"orm {medians['orm'] * 1000:.0f} ms (goal <= {FAST_GOAL[by] * 1000:.0f} ms at 1M: "
            f"{'met' if fast else 'MISSED'}{'' if sessions >= 1_000_000 else ', this database is smaller'})"
        )
    print("    " + "; ".join(goals))
    return {"orm": medians["orm"], "sql": best, "ratio": ratio, "met": met}


def try_fixes(connection, raw, queries, repeat: int, reports, sessions: int) -> None:
    """Time alternatives next to the current code, on the same data."""
    print("alternatives (measured ad hoc; the code and schema are left as they are):")
    if connection.vendor == "sqlite":
        print("  every report with PRAGMA mmap_size = 1 GiB on the connection (pages read without a syscall):")
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA mmap_size = 1073741824")
        try:
            for by in reports:
                print_report(by, bench_report(by, queries[by], raw, repeat), sessions)
        finally:
            with connection.cursor() as cursor:
                cursor.execute("PRAGMA mmap_size = 0")
    else:
        print(f"  none for {connection.vendor}")


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
        f"{sessions:,} sessions, {messages:,} messages; median of {args.repeat} runs after a warm-up; "
        f"RSS before the reports {peak_rss_mib():.0f} MiB"
    )
    summary = {}
    for by in args.reports:
        summary[by] = print_report(by, bench_report(by, queries[by], raw, args.repeat), sessions)
    print(f"{'report':<8} {'orm':>9} {'hand sql':>9} {'ratio':>6}  goal")
    for by, s in summary.items():
        goal = f"<= {RATIO_GOAL}x" + (f", <= {FAST_GOAL[by] * 1000:.0f} ms at 1M" if by in FAST_GOAL else "")
        print(
            f"{by:<8} {s['orm'] * 1000:7.1f}ms {s['sql'] * 1000:7.1f}ms {s['ratio']:5.2f}x  {goal}: "
            f"{'met' if s['met'] else 'MISSED'}"
        )
    print(f"peak RSS {peak_rss_mib():.0f} MiB (goal: flat in the number of sessions; compare 200k with 1M)")
    if args.try_fixes:
        try_fixes(connection, raw, queries, args.repeat, args.reports, sessions)
        print(f"peak RSS after the fixes {peak_rss_mib():.0f} MiB (pages mapped by mmap_size count as resident)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
