"""Fill a benchmark database with many sessions (~35% empty) and their messages, quickly.

    .venv/bin/python bench/generate.py [--sessions 1000000] [--seed 1] [--reset] [--now 2026-12-06T12:00:00Z]
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/hermes_bench .venv/bin/python bench/generate.py --reset

Without DATABASE_URL the database is the SQLite file /tmp/hermes_bench_scale.sqlite3 (never the
project's db.sqlite3); bench_analytics.py and bench_admin.py read the same database afterwards.
A PostgreSQL or MariaDB database named in DATABASE_URL is created if it does not exist.

The data: 8 models, 6 sources and 3 profiles of different popularity, sessions spread evenly over the 90
days up to --now (default: the current time, so "now" lies inside the data as on a live site and the
pages' live windows read real rows), each empty with a probability that depends on its model and
source (~35% overall),
the others with 1 + Exp(m) messages (user/assistant/tool turns), m chosen so that there are
--messages-per-session messages per session overall (default 5: 1M sessions, ~5M messages, so
~7.6 per non-empty session). Deterministic for a given --seed and --sessions. Rows go in through
the raw driver, in chunks, in session-id order (so every index is appended to): executemany on
SQLite, COPY on PostgreSQL, multi-row INSERT on MariaDB/MySQL, with foreign-key checks off during
the load (the rows are consistent by construction). The tables are analysed at the end, so the
planner sees the real sizes.

The has-messages flag is written by this script, not by the triggers: on PostgreSQL the load runs
with ``session_replication_role = replica``, which switches every trigger off (the flag's too), so
each session row carries ``has_messages`` = "this session gets at least one message", and its
messages go in the same transaction. On SQLite and MariaDB the triggers stay on and find the flag
already set. ``manage.py verify_sessions`` on the result reports no drift.
"""

import argparse
import datetime as dt
import math
import os
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import create_database_if_missing

DEFAULT_SQLITE = Path(tempfile.gettempdir()) / "hermes_bench_scale.sqlite3"

# (name, share of sessions, probability that a session of this model is empty)
MODELS = [
    ("anthropic/claude-opus-4.6", 0.22, 0.25),
    ("anthropic/claude-sonnet-4.5", 0.18, 0.30),
    ("openai/gpt-5", 0.15, 0.35),
    ("openai/gpt-5-mini", 0.12, 0.40),
    ("google/gemini-2.5-pro", 0.10, 0.30),
    ("nous/hermes-4-405b", 0.10, 0.45),
    ("meta/llama-4-maverick", 0.07, 0.50),
    ("deepseek/deepseek-v3.2", 0.06, 0.40),
]
# (source, share of sessions, factor on the model's empty probability; the shares average ~1.0)
SOURCES = [
    ("cli", 0.30, 0.9),
    ("telegram", 0.25, 1.0),
    ("discord", 0.15, 1.0),
    ("cron", 0.12, 1.4),
    ("api_server", 0.12, 0.8),
    ("slack", 0.06, 1.0),
]
# (profile, share of sessions): hermes keeps one state.db per profile; most users have only "default".
PROFILES = [("default", 0.75), ("work", 0.20), ("research", 0.05)]
CHUNK = 20_000  # sessions per transaction
CUTOVER_SHARE = 0.3  # the last 30% of the days have the abandoned-agent tally and follow a marker
TALLY_REASONS = (("timeout", 0.6), ("error", 0.3), ("cancelled", 0.1))
# Every table the generator fills or the read side keeps, children before parents.
TABLES = (
    "sessions_app_message",
    "sessions_app_modelusage",
    "sessions_app_session",
    "sessions_app_sessionday",
    "sessions_app_rollupmark",
    "sessions_app_sessionrollupstate",
    "sessions_app_deletedsessions",
    "sessions_app_metriclabel",
    "sessions_app_trendmarker",
    "agents_app_abandonedagenttally",
    "agents_app_retiredabandonedagents",
    "agents_app_languagemodel",
)

SESSION_COLUMNS = (
    "id", "model_id", "source", "user_id", "started_at", "ended_at", "end_reason", "message_count",
    "tool_call_count", "api_call_count", "input_tokens", "output_tokens", "cache_read_tokens",
    "cache_write_tokens", "reasoning_tokens", "title", "has_messages", "profile",
)  # fmt: skip
MESSAGE_COLUMNS = ("session_id", "role", "content", "tool_calls", "tool_name", "timestamp", "token_count", "model_id")
TOOL_CALLS = '[{"id": "call_1", "type": "function", "function": {"name": "web_search", "arguments": "{}"}}]'


def use_bench_database() -> None:
    """Point Django at the benchmark database (DATABASE_URL, else the /tmp SQLite file) and set it up."""
    if not os.environ.get("DATABASE_URL"):
        os.environ["DATABASE_URL"] = f"sqlite:///{DEFAULT_SQLITE}"
    os.environ["DJANGO_DEBUG"] = "0"  # no per-query logging in connection.queries
    os.environ.setdefault("DJANGO_SECRET_KEY", "bench-only-" + "x" * 40)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hermes_site.settings")
    import django

    django.setup()


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far, in MiB (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def expected_empty_fraction() -> float:
    return sum(mw * sw * min(1.0, empty * factor) for _, mw, empty in MODELS for _, sw, factor in SOURCES)


def exponential_mean(per_session: float) -> float:
    """m such that 1 + floor(Exp(m)) averages ``per_session / (1 - empty fraction)`` messages.

    E[floor(X)] = 1 / (e^(1/m) - 1) for X ~ Exp(mean m).
    """
    per_non_empty = per_session / (1 - expected_empty_fraction())
    if per_non_empty <= 1:
        raise ValueError("--messages-per-session too small: every non-empty session has at least one message")
    return 1 / math.log(1 + 1 / (per_non_empty - 1))


def sessions_and_messages(n_sessions: int, seed: int, end: dt.datetime, days: int, model_ids: dict, per_session: float):
    """Yield (session_rows, message_rows) chunks of plain tuples, in session-id order.

    Timestamps are aware UTC datetimes; the writer formats them for its backend.
    """
    rng = random.Random(seed)
    # Profiles come from a second generator, so the other columns stay those of earlier rounds.
    profile_rng = random.Random(f"profile-{seed}")
    profile_names, profile_weights = zip(*PROFILES, strict=True)
    rate = 1 / exponential_mean(per_session)
    model_names, model_weights, model_empty = zip(*MODELS, strict=True)
    source_names, source_weights, source_factor = zip(*SOURCES, strict=True)
    start = end - dt.timedelta(days=days)
    step = days * 86_400 / n_sessions
    contents = [
        ("Please look into this: " + " ".join(f"word{(k * 7 + j) % 97}" for j in range(4 + k % 29)))[: 40 + k * 5]
        for k in range(48)
    ]
    second = dt.timedelta(seconds=1)
    sessions, messages = [], []
    for n in range(n_sessions):
        # Evenly spread with jitter: started_at grows with n, and so does the id's time prefix.
        started = start + dt.timedelta(seconds=(n + rng.random()) * step)
        session_id = f"{started:%Y%m%d_%H%M%S}_{rng.getrandbits(64):016x}"
        m = rng.choices(range(len(MODELS)), model_weights)[0]
        s = rng.choices(range(len(SOURCES)), source_weights)[0]
        model_id = model_ids[model_names[m]]
        empty = rng.random() < model_empty[m] * source_factor[s]
        count = 0 if empty else 1 + int(rng.expovariate(rate))
        tool_calls = 0
        for k in range(count):
            role = ("user", "assistant", "tool")[k % 3]
            calls = role == "assistant" and k % 2 == 1
            tool_calls += calls
            messages.append(
                (
                    session_id,
                    role,
                    contents[rng.randrange(48)],
                    TOOL_CALLS if calls else None,
                    "web_search" if role == "tool" else None,
                    started + (k + 1) * 7 * second,
                    20 + k * 13,
                    model_id,
                )
            )
        ended = started + (count * 7 + 30) * second
        reason = ("timeout" if rng.random() < 0.5 else "error") if empty else "completed"
        sessions.append(
            (
                session_id,
                model_id,
                source_names[s],
                f"user{rng.randrange(20_000)}",
                started,
                ended,
                reason,
                count,
                tool_calls,
                (count + 1) // 2,
                count * 900,
                count * 120,
                count * 400,
                0,
                0,
                None if empty else f"Conversation {n}",
                count > 0,  # has_messages, exact by construction (see the module docstring)
                profile_rng.choices(profile_names, profile_weights)[0],
            )
        )
        if len(sessions) >= CHUNK:
            yield sessions, messages
            sessions, messages = [], []
    if sessions:
        yield sessions, messages


class Writer:
    """Bulk insert through the DB-API connection Django opened, one transaction per chunk."""

    def __init__(self, connection):
        connection.ensure_connection()
        self.vendor = connection.vendor
        self.conn = connection.connection
        self.django_connection = connection

    def __enter__(self):
        cur = self.conn.cursor()
        if self.vendor == "sqlite":
            cur.execute("PRAGMA foreign_keys = OFF")  # must be outside a transaction
            cur.execute("PRAGMA synchronous = OFF")
            cur.execute("PRAGMA cache_size = -262144")  # 256 MiB
        elif self.vendor == "postgresql":
            cur.execute("SET session_replication_role = replica")  # no FK triggers during the load
        else:
            cur.execute("SET foreign_key_checks = 0")
        return self

    def __exit__(self, *exc):
        cur = self.conn.cursor()
        if self.vendor == "sqlite":
            cur.execute("PRAGMA foreign_keys = ON")
            cur.execute("PRAGMA synchronous = NORMAL")
        elif self.vendor == "postgresql":
            cur.execute("SET session_replication_role = DEFAULT")
        else:
            cur.execute("SET foreign_key_checks = 1")

    def timestamp(self, value: dt.datetime):
        if self.vendor == "postgresql":
            return value  # psycopg adapts aware datetimes
        # Django stores naive UTC on SQLite (str(datetime)) and MySQL/MariaDB.
        return str(value.replace(tzinfo=None))

    def write(self, sessions, messages):
        fix = self.timestamp
        sessions = [(*row[:4], fix(row[4]), fix(row[5]), *row[6:]) for row in sessions]
        messages = [(*row[:5], fix(row[5]), *row[6:]) for row in messages]
        cur = self.conn.cursor()
        if self.vendor == "postgresql":
            with self.conn.transaction():
                for table, columns, rows in (
                    ("sessions_app_session", SESSION_COLUMNS, sessions),
                    ("sessions_app_message", MESSAGE_COLUMNS, messages),
                ):
                    with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                        for row in rows:
                            copy.write_row(row)
            return
        p = "?" if self.vendor == "sqlite" else "%s"
        cur.execute("BEGIN" if self.vendor == "sqlite" else "START TRANSACTION")
        for table, columns, rows in (
            ("sessions_app_session", SESSION_COLUMNS, sessions),
            ("sessions_app_message", MESSAGE_COLUMNS, messages),
        ):
            sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join([p] * len(columns))})"
            cur.executemany(sql, rows)  # mysqlclient turns this into multi-row INSERTs
        cur.execute("COMMIT")

    def write_tally(self, rows):
        """The abandoned-agent tally rows, in one transaction."""
        p = "%s" if self.vendor != "sqlite" else "?"
        columns = "day, model_id, source, end_reason, count"
        cur = self.conn.cursor()
        rows = [(day if self.vendor == "postgresql" else day.isoformat(), *rest) for day, *rest in rows]
        sql = f"INSERT INTO agents_app_abandonedagenttally ({columns}) VALUES ({', '.join([p] * 5)})"
        if self.vendor == "postgresql":
            with self.conn.transaction():
                cur.executemany(sql, rows)
            return
        cur.execute("BEGIN" if self.vendor == "sqlite" else "START TRANSACTION")
        cur.executemany(sql, rows)
        cur.execute("COMMIT")

    def analyze(self):
        cur = self.conn.cursor()
        if self.vendor == "sqlite":
            cur.execute("ANALYZE")
            cur.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        elif self.vendor == "postgresql":
            # VACUUM also sets the visibility map, which index-only scans need.
            cur.execute(
                "VACUUM (ANALYZE) sessions_app_session, sessions_app_message, agents_app_languagemodel, "
                "agents_app_abandonedagenttally"
            )
        else:
            cur.execute("ANALYZE TABLE sessions_app_session, sessions_app_message, agents_app_languagemodel")
            cur.fetchall()


def reset(connection) -> None:
    """Empty every table of ``TABLES`` that exists (an older schema may lack some)."""
    existing = set(connection.introspection.table_names())
    tables = [table for table in TABLES if table in existing]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
        elif connection.vendor == "mysql":
            cursor.execute("SET foreign_key_checks = 0")
            for table in tables:
                cursor.execute(f"TRUNCATE TABLE {table}")
            cursor.execute("SET foreign_key_checks = 1")
        else:
            for table in tables:
                cursor.execute(f"DELETE FROM {table}")


def tally_rows(seed: int, start: dt.datetime, days: int, model_ids: dict, per_day: int):
    """Abandoned-agent tally rows (day, model id, source, end reason, agents) for the last
    ``CUTOVER_SHARE`` of the days: about ``per_day`` agents a day, spread like the sessions."""
    rng = random.Random(f"tally-{seed}")
    first = int(days * (1 - CUTOVER_SHARE))
    rows = []
    for offset in range(first, days + 1):
        day = (start + dt.timedelta(days=offset)).date()
        for name, model_share, empty in MODELS:
            for source, source_share, _ in SOURCES:
                for reason, reason_share in TALLY_REASONS:
                    agents = round(
                        per_day * model_share * source_share * reason_share * empty * 2 * rng.uniform(0.5, 1.5)
                    )
                    if agents:
                        rows.append((day, model_ids[name], source, reason, agents))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=1_000_000, help="Sessions to create (default %(default)s).")
    parser.add_argument("--seed", type=int, default=1, help="Random seed (default %(default)s).")
    parser.add_argument(
        "--messages-per-session",
        type=float,
        default=5.0,
        help="Average messages per session, empty ones included (default %(default)s).",
    )
    parser.add_argument("--days", type=int, default=90, help="Days the sessions span (default %(default)s).")
    parser.add_argument(
        "--now",
        type=lambda text: dt.datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(dt.UTC),
        default=dt.datetime.now(dt.UTC),
        help="When the data ends, an ISO datetime (default: the current time, so now lies inside the data).",
    )
    parser.add_argument(
        "--reset", action="store_true", help="Delete the sessions, messages and models already in the database."
    )
    args = parser.parse_args()
    if args.sessions < 1 or args.days < 1:
        parser.error("--sessions and --days must be positive")

    if not os.environ.get("DATABASE_URL") and args.reset:
        for suffix in ("", "-wal", "-shm"):  # a fresh file is faster than DELETE
            Path(f"{DEFAULT_SQLITE}{suffix}").unlink(missing_ok=True)
    use_bench_database()
    from django.core.management import call_command
    from django.db import connection

    from agents_app.models import LanguageModel
    from sessions_app.models import Session, TrendMarker

    create_database_if_missing(connection)
    call_command("migrate", verbosity=0)
    existing = Session.objects.count()
    if existing and not args.reset:
        print(f"{connection.settings_dict['NAME']} already has {existing:,} sessions; pass --reset to replace them.")
        return 2
    if existing or args.reset:
        reset(connection)

    started = time.perf_counter()
    model_ids = {name: LanguageModel.objects.create(name=name).pk for name, _, _ in MODELS}
    end = args.now
    n_sessions = n_messages = n_empty = 0
    with Writer(connection) as writer:
        for sessions, messages in sessions_and_messages(
            args.sessions, args.seed, end, args.days, model_ids, args.messages_per_session
        ):
            writer.write(sessions, messages)
            n_sessions += len(sessions)
            n_messages += len(messages)
            n_empty += sum(1 for row in sessions if row[7] == 0)
            if sys.stderr.isatty():
                print(f"\r{n_sessions:,} sessions, {n_messages:,} messages", end="", file=sys.stderr)
        loaded = time.perf_counter() - started
        if sys.stderr.isatty():
            print(file=sys.stderr)
        start = end - dt.timedelta(days=args.days)
        tally = tally_rows(args.seed, start, args.days, model_ids, per_day=args.sessions // args.days // 10 or 1)
        writer.write_tally(tally)
        cutover = start + dt.timedelta(days=int(args.days * (1 - CUTOVER_SHARE)), hours=9, minutes=30)
        TrendMarker.objects.create(at=cutover, label="lazy session creation on", note="bench/generate.py")
        writer.analyze()
    total = time.perf_counter() - started
    print(
        f"generated on {connection.vendor} ({connection.settings_dict['NAME']}): {n_sessions:,} sessions "
        f"({n_empty:,} empty = {n_empty / n_sessions:.1%}), {n_messages:,} messages, "
        f"{len(MODELS)} models, {len(SOURCES)} sources, {len(PROFILES)} profiles, "
        f"{args.days} days up to {args.now:%Y-%m-%d %H:%M} UTC, {len(tally):,} tally rows "
        f"({sum(row[4] for row in tally):,} abandoned agents), a marker at {cutover:%Y-%m-%d %H:%M}, "
        f"seed {args.seed}"
    )
    print(
        f"time: {loaded:.1f}s to load ({n_messages / loaded:,.0f} messages/s), {total:.1f}s with ANALYZE; "
        f"peak RSS {peak_rss_mib():.0f} MiB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
