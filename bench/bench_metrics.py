"""One /metrics scrape at scale: ``render_metrics`` versus the same aggregates in hand-written SQL.

    DATABASE_URL=sqlite:////tmp/metrics_bench.sqlite3 .venv/bin/python bench/generate.py --sessions 200000
    DATABASE_URL=sqlite:////tmp/metrics_bench.sqlite3 .venv/bin/python bench/bench_metrics.py [--repeat 5]
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/hermes_metricsbench .venv/bin/python bench/bench_metrics.py

Times, in the same process and on the same data (the database bench/generate.py filled):
  scrape - ``render_metrics()``: both ORM queries, the model cap, the collector and
           ``generate_latest``, i.e. everything the view does but the access check
  sql    - the same two aggregates (sessions, empty, summed message_count and newest start per
           (model, source); the abandoned-agent tally per (model, source, end reason)) through
           the raw DB-API cursor; two shapes of the sessions query are timed (one GROUP BY with
           NOT EXISTS per row; totals UNION ALL an anti-join for the empty ones) and the fastest
           is the baseline
and prints the medians and the ratio scrape / best sql, after checking that every shape gives the
snapshot's numbers. Emptiness is still decided by a probe of the message index per session; the
database-kept has-messages flag will make both sides faster. Exit status 0 unless it crashes (or a
hand query disagrees with the ORM).
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.bench_analytics import run_sql, time_all
from bench.generate import peak_rss_mib, use_bench_database

S, M, L = "sessions_app_session", "sessions_app_message", "agents_app_languagemodel"
T = "agents_app_abandonedagenttally"
NOT_EXISTS = f"NOT EXISTS (SELECT 1 FROM {M} m WHERE m.session_id = s.id)"
GOAL_SECONDS = 0.3  # at 1M sessions, on SQLite and PostgreSQL (issue 16)


def exact(column: str, connection) -> str:
    """``column`` compared byte for byte, as the ORM groups it (MySQL/MariaDB need a binary collation)."""
    if connection.vendor != "mysql":
        return column
    return f"{column} COLLATE " + ("utf8mb4_nopad_bin" if connection.mysql_is_mariadb else "utf8mb4_0900_bin")


def hand_sql(connection) -> tuple[dict[str, str], str]:
    """The sessions query in its shapes (rows: model name, source, sessions, empty, messages,
    newest), and the tally query (rows: model name, source, end reason, agents)."""
    source = exact("s.source", connection)
    empty_sum = f"SUM(CASE WHEN {NOT_EXISTS} THEN 1 ELSE 0 END)"
    if connection.vendor == "postgresql":
        empty_sum = f"COUNT(*) FILTER (WHERE {NOT_EXISTS})"
    named = "SELECT l.name, g.src, g.n, g.e, g.msg, g.newest FROM ({}) g LEFT JOIN {} l ON l.id = g.model_id"
    one_pass = (
        f"SELECT s.model_id, {source} src, COUNT(*) n, {empty_sum} e, COALESCE(SUM(s.message_count), 0) msg, "
        f"MAX(s.started_at) newest FROM {S} s GROUP BY s.model_id, {source}"
    )
    union = (
        f"SELECT model_id, src, SUM(n) n, SUM(e) e, SUM(msg) msg, MAX(newest) newest FROM ("
        f"SELECT s.model_id, {source} src, COUNT(*) n, 0 e, SUM(s.message_count) msg, MAX(s.started_at) newest "
        f"FROM {S} s GROUP BY s.model_id, {source} "
        f"UNION ALL SELECT s.model_id, {source} src, 0 n, COUNT(*) e, 0 msg, NULL newest "
        f"FROM {S} s WHERE {NOT_EXISTS} GROUP BY s.model_id, {source}) u GROUP BY model_id, src"
    )
    sessions = {
        "group + not-exists per row": named.format(one_pass, L),
        "counts + anti-join (union all)": named.format(union, L),
    }
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

    # Uncapped (the bench data has 8 models), so the hand SQL's groups are the snapshot's.
    snapshot = metrics_snapshot(max_models=10**6)
    expected = {(g.model, g.source): (g.sessions, g.empty, g.messages) for g in snapshot.sessions}
    for name, sql in shapes.items():
        if (got := as_counts(run_sql(raw, sql))) != expected:
            raise SystemExit(f"hand SQL {name!r} disagrees with metrics_snapshot: {got} != {expected}")
    expected_agents = sum(g.agents for g in snapshot.abandoned)
    if (got := sum(int(row[3]) for row in run_sql(raw, tally_sql))) != expected_agents:
        raise SystemExit(f"hand tally SQL counts {got} abandoned agents, metrics_snapshot {expected_agents}")

    candidates = {"scrape (render_metrics)": lambda: render_metrics(max_models=50)}
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
    size = len(render_metrics(max_models=50))
    print(f"ratio scrape / best sql = {scrape / best:.2f}x; exposition {size:,} bytes")
    per_million = scrape * 1_000_000 / sessions
    print(
        f"scrape {scrape:.3f}s at {sessions:,} sessions (~{per_million:.2f}s per million if linear; "
        f"goal < {GOAL_SECONDS}s at 1M on SQLite and PostgreSQL)"
    )
    print(f"peak RSS {peak_rss_mib():.0f} MiB")
    return 0


if __name__ == "__main__":
    start = time.perf_counter()
    status = main()
    print(f"({time.perf_counter() - start:.1f}s in all)")
    sys.exit(status)
