"""One /metrics scrape at scale: ``render_metrics`` versus the same aggregates in hand-written SQL.

    DATABASE_URL=sqlite:////tmp/metrics_bench.sqlite3 .venv/bin/python bench/generate.py --sessions 200000
    DATABASE_URL=sqlite:////tmp/metrics_bench.sqlite3 .venv/bin/python bench/bench_metrics.py [--repeat 5]
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/hermes_metricsbench .venv/bin/python bench/bench_metrics.py

Times, in the same process and on the same data (the database bench/generate.py filled):
  scrape - ``render_metrics()``: both ORM queries, the model cap, the collector and
           ``generate_latest``, i.e. everything the view does but the access check
  sql    - the same two aggregates (sessions, empty, summed message_count and newest start per
           (model, source); the abandoned-agent tally per (model, source, end reason)) through
           the raw DB-API cursor, over the same structures (emptiness is the ``has_messages``
           flag); two shapes of the sessions query are timed (one GROUP BY (model, source) joined
           to the model names afterwards; the names joined before grouping, as the ORM does; on
           SQLite the first one over a table scan) and the fastest is the baseline
and prints the medians, the ratio scrape / best sql and the goal beside them (one scrape < 300 ms
at 1M sessions on SQLite and PostgreSQL), after checking that every shape gives the snapshot's
numbers. The summed ``message_count`` is in no index, so both sides read every session row.
Prints the peak RSS, which must not grow with the number of sessions (compare 200k with 1M).
Exit status 0 unless it crashes (or a hand query disagrees with the ORM).
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.bench_analytics import run_sql, time_all
from bench.generate import peak_rss_mib, use_bench_database

S, L = "sessions_app_session", "agents_app_languagemodel"
T = "agents_app_abandonedagenttally"
GOAL_SECONDS = 0.05  # at 1M sessions, on SQLite and PostgreSQL (issue 21; 0.2 s at 10M)


def exact(column: str, connection) -> str:
    """``column`` compared byte for byte, as the ORM groups it (MySQL/MariaDB need a binary collation)."""
    if connection.vendor != "mysql":
        return column
    return f"{column} COLLATE " + ("utf8mb4_nopad_bin" if connection.mysql_is_mariadb else "utf8mb4_0900_bin")


def hand_sql(connection) -> tuple[dict[str, str], str]:
    """The sessions query in its shapes (rows: model name, source, sessions, empty, messages,
    newest), and the tally query (rows: model name, source, end reason, agents)."""
    source = exact("s.source", connection)
    unflagged = "NOT s.has_messages" if connection.vendor == "postgresql" else "s.has_messages = 0"
    empty_sum = f"SUM(CASE WHEN {unflagged} THEN 1 ELSE 0 END)"
    if connection.vendor == "postgresql":
        empty_sum = f"COUNT(*) FILTER (WHERE {unflagged})"
    counts = f"COUNT(*) n, {empty_sum} e, COALESCE(SUM(s.message_count), 0) msg, MAX(s.started_at) newest"
    grouped = f"SELECT s.model_id, {source} src, {counts} FROM {S} s GROUP BY s.model_id, {source}"
    sessions = {
        "group, then join the names": (
            f"SELECT l.name, g.src, g.n, g.e, g.msg, g.newest FROM ({grouped}) g LEFT JOIN {L} l ON l.id = g.model_id"
        ),
        "join the names, then group": (
            f"SELECT MIN(l.name), {source} src, {counts} FROM {S} s LEFT JOIN {L} l ON l.id = s.model_id "
            f"GROUP BY s.model_id, {source}"
        ),
    }
    if connection.vendor == "sqlite":
        # SQLite reads the (model, started_at, has_messages) index in order and looks up every
        # row for message_count; a table scan sorted into groups afterwards reads less.
        sessions["group, then join the names, table scan"] = sessions["group, then join the names"].replace(
            f"FROM {S} s GROUP BY", f"FROM {S} s NOT INDEXED GROUP BY"
        )
    tally = (
        f"SELECT l.name, {exact('t.source', connection)} src, {exact('t.end_reason', connection)} reason, "
        f"SUM(t.count) FROM {T} t JOIN {L} l ON l.id = t.model_id GROUP BY l.name, src, reason"
    )
    return sessions, tally


def as_counts(rows) -> dict:
    """{(model key, source): (sessions, empty, messages)} as metrics_snapshot keys them, uncapped."""
    from sessions_app.analytics import NO_MODEL_KEY

    return {(name or NO_MODEL_KEY, source): (int(n), int(e), int(msg)) for name, source, n, e, msg, _ in rows}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5, help="Timed runs of each candidate (default %(default)s).")
    args = parser.parse_args()
    use_bench_database()
    from django.db import connection

    from agents_app.models import AbandonedAgentTally
    from sessions_app.analytics import metrics_snapshot
    from sessions_app.metrics import render_metrics
    from sessions_app.models import Message, Session

    sessions = Session.objects.count()
    if not sessions:
        print("the benchmark database is empty: run bench/generate.py first", file=sys.stderr)
        return 1
    messages = Message.objects.order_by().values("pk").count()
    tallies = AbandonedAgentTally.objects.count()
    connection.ensure_connection()
    raw = connection.connection
    shapes, tally_sql = hand_sql(connection)

    # The snapshot is uncapped (the renderer caps the labels): its groups, summed over the profiles,
    # are the hand SQL's.
    snapshot = metrics_snapshot()
    expected = {}
    for g in snapshot.sessions:
        if g.sessions:
            totals = expected.get((g.model, g.source), (0, 0, 0))
            expected[g.model, g.source] = (totals[0] + g.sessions, totals[1] + g.empty, totals[2] + g.messages)
    for name, sql in shapes.items():
        if (got := as_counts(run_sql(raw, sql))) != expected:
            raise SystemExit(f"hand SQL {name!r} disagrees with metrics_snapshot: {got} != {expected}")
    expected_agents = sum(g.agents for g in snapshot.abandoned)
    if (got := sum(int(row[3]) for row in run_sql(raw, tally_sql))) != expected_agents:
        raise SystemExit(f"hand tally SQL counts {got} abandoned agents, metrics_snapshot {expected_agents}")

    candidates = {"scrape (render_metrics)": lambda: render_metrics()}
    for name, sql in shapes.items():
        candidates[f"sql: {name}"] = lambda sql=sql: (run_sql(raw, sql), run_sql(raw, tally_sql))
    print(
        f"/metrics scrape on {connection.vendor} ({connection.settings_dict['NAME']}): {sessions:,} sessions, "
        f"{messages:,} messages, {tallies:,} tally rows; median of {args.repeat} runs after a warm-up"
    )
    medians = time_all(candidates, args.repeat)
    best_name = min((name for name in medians if name.startswith("sql: ")), key=medians.get)
    best = medians[best_name]
    for name, seconds in medians.items():
        mark = "  <- baseline" if name == best_name else ""
        print(f"  {name:<44} {seconds:8.3f}s  {seconds / best:5.2f}x{mark}")
    scrape = medians["scrape (render_metrics)"]
    size = len(render_metrics())
    print(f"ratio scrape / best sql = {scrape / best:.2f}x; exposition {size:,} bytes")
    per_million = scrape * 1_000_000 / sessions
    met = "met" if per_million < GOAL_SECONDS else "MISSED"
    print(
        f"scrape {scrape * 1000:.0f} ms at {sessions:,} sessions (~{per_million * 1000:.0f} ms per million if "
        f"linear; goal < {GOAL_SECONDS * 1000:.0f} ms at 1M on SQLite and PostgreSQL: {met})"
    )
    print(f"peak RSS {peak_rss_mib():.0f} MiB (goal: flat in the number of sessions; compare 200k with 1M)")
    return 0


if __name__ == "__main__":
    start = time.perf_counter()
    status = main()
    print(f"({time.perf_counter() - start:.1f}s in all)")
    sys.exit(status)
