"""Benchmark ``import_hermes`` on SQLite: messages per second, against the raw driver.

    .venv/bin/python bench/bench_import.py [--messages 500000] [--batch-size 2000]

Builds a hermes-agent state.db in /tmp (sessions of several models, ~30% of them empty, messages
of concurrent sessions interleaved, tool calls and reasoning on some), imports it into a fresh
SQLite database with the real engine, imports it again (nothing new: the idempotent path), then
times the floor: plain ``sqlite3`` reading the same pages and ``executemany``-inserting the same
rows into an equivalent table and index. Prints messages/s and the ratio. Exit status 0 unless it
crashes; a few minutes at the default size on a small machine.
"""

import argparse
import json
import os
import random
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MODELS = ["anthropic/claude-opus-4.6", "openai/gpt-5", "google/gemini-2.5-pro", "nous/hermes-4-405b", None]
SOURCES = ["cli", "telegram", "discord", "cron", "api_server"]


def build_source(path: Path, messages: int, seed: int = 7) -> int:
    """Write a state.db with ``messages`` message rows; returns the number of sessions."""
    from tests.hermes_fixtures import SCHEMAS

    rng = random.Random(seed)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    conn.executescript(SCHEMAS["current"])
    per_session = 36
    talking = messages // per_session + 1
    sessions = int(talking / 0.7)  # ~30% of the sessions never speak (eager creation)
    start = 1_760_000_000.0
    conn.execute("BEGIN")
    rows = []
    for n in range(sessions):
        rows.append(
            (f"2026{n:010d}_{rng.getrandbits(24):06x}", rng.choice(SOURCES), rng.choice(MODELS),
             json.dumps({"temperature": 0.7}), "You are Hermes." * 20, start + n * 30.0, start + n * 30.0 + 600,
             "completed", rng.randint(0, 99999), rng.randint(0, 9999), round(rng.random(), 6), f"chat {n}")
        )  # fmt: skip
    conn.executemany(
        "INSERT INTO sessions (id, source, model, model_config, system_prompt, started_at, ended_at, end_reason,"
        " input_tokens, output_tokens, estimated_cost_usd, title) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
        rows,
    )
    speaking = [row[0] for row in rows if rng.random() < 0.7][:talking]
    conn.execute("COMMIT")
    # Messages of ~8 concurrent sessions interleave, as in a busy gateway.
    content = "Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 5
    window, written, cursor, ts = 8, 0, 0, start
    active: list[list] = []
    batch = []
    conn.execute("BEGIN")
    while written < messages:
        while len(active) < window and cursor < len(speaking):
            active.append([speaking[cursor], 0])
            cursor += 1
        if not active:
            active.append([speaking[rng.randrange(len(speaking))], 0])
        slot = active[rng.randrange(len(active))]
        sid, k = slot
        role = ("user", "assistant", "tool")[k % 3]
        tool_calls = (
            json.dumps([{"id": f"c{k}", "function": {"name": "search", "arguments": "{}"}}])
            if role == "assistant"
            else None
        )
        reasoning = "thinking..." if role == "assistant" else None
        ts += 0.25
        batch.append((sid, role, content, tool_calls, "search" if role == "tool" else None, ts, 120, reasoning))
        written += 1
        slot[1] += 1
        if slot[1] >= per_session:
            active.remove(slot)
        if len(batch) >= 10_000:
            _insert_messages(conn, batch)
    _insert_messages(conn, batch)
    conn.execute("COMMIT")
    conn.close()
    return sessions


def _insert_messages(conn, batch):
    conn.executemany(
        "INSERT INTO messages (session_id, role, content, tool_calls, tool_name, timestamp, token_count, reasoning)"
        " VALUES (?,?,?,?,?,?,?,?)",
        batch,
    )
    batch.clear()


def raw_floor(source: Path, target: Path, batch_size: int) -> float:
    """Seconds for plain sqlite3 to page through the messages and insert them (JSON re-encoded, one
    transaction per page, same pragmas and index as our table): the floor any importer sits on."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    out = sqlite3.connect(target, isolation_level=None)
    out.executescript(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
        "CREATE TABLE m (id INTEGER PRIMARY KEY, session_id TEXT, role TEXT, content TEXT, tool_call_id TEXT,"
        " tool_calls TEXT, tool_name TEXT, timestamp TEXT, token_count INTEGER, finish_reason TEXT,"
        " reasoning TEXT, extra TEXT); CREATE INDEX m_s ON m (session_id, timestamp, id);"
    )
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, isolation_level=None)
    sql = (
        "SELECT id, session_id, role, content, tool_call_id, tool_calls, tool_name, timestamp, token_count,"
        " finish_reason, reasoning FROM messages WHERE id > ? ORDER BY id LIMIT ?"
    )
    started, after = time.perf_counter(), 0
    while rows := src.execute(sql, (after, batch_size)).fetchall():
        after = rows[-1][0]
        out.execute("BEGIN IMMEDIATE")
        out.executemany(
            "INSERT INTO m (session_id, role, content, tool_call_id, tool_calls, tool_name, timestamp, token_count,"
            " finish_reason, reasoning) VALUES (?,?,?,?,?,?,?,?,?,?)",
            [
                (r[1], r[2], r[3], r[4], r[5] and json.dumps(json.loads(r[5])), r[6], str(r[7]), r[8], r[9], r[10])
                for r in rows
            ],
        )
        out.execute("COMMIT")
    elapsed = time.perf_counter() - started
    src.close()
    out.close()
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=500_000, help="Message rows in the generated state.db.")
    parser.add_argument("--batch-size", type=int, default=2000, help="Importer batch size.")
    args = parser.parse_args()

    tmp = Path(tempfile.gettempdir())
    source, target, floor_db = (
        tmp / "hermes_bench_state.db",
        tmp / "hermes_bench_target.sqlite3",
        tmp / "hermes_bench_raw.sqlite3",
    )
    for suffix in ("", "-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    os.environ["DATABASE_URL"] = f"sqlite:///{target}"
    os.environ["DJANGO_DEBUG"] = "0"  # production settings: no per-query debug logging
    os.environ.setdefault("DJANGO_SECRET_KEY", "bench-only-" + "x" * 40)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hermes_site.settings")
    import django

    django.setup()
    from django.core.management import call_command

    from sessions_app.importers import import_hermes_db

    t0 = time.perf_counter()
    sessions = build_source(source, args.messages)
    print(
        f"source: {source} ({sessions:,} sessions, {args.messages:,} messages) built in {time.perf_counter() - t0:.1f}s"
    )
    call_command("migrate", verbosity=0)

    t0, c0 = time.perf_counter(), time.process_time()
    result = import_hermes_db(source, batch_size=args.batch_size)
    first, first_cpu = time.perf_counter() - t0, time.process_time() - c0
    t0 = time.perf_counter()
    again = import_hermes_db(source, batch_size=args.batch_size)
    second = time.perf_counter() - t0
    c0 = time.process_time()
    floor = raw_floor(source, floor_db, args.batch_size)
    floor_cpu = time.process_time() - c0

    rate, floor_rate = result.messages_imported / first, args.messages / floor
    print(f"import:  {result.sessions_imported:,} sessions, {result.messages_imported:,} messages in {first:.1f}s"
          f" = {rate:,.0f} messages/s (batch size {args.batch_size});"
          f" {result.messages_imported / first_cpu:,.0f} per CPU second (steadier on a shared machine)")  # fmt: skip
    print(f"again:   {again.sessions_imported + again.messages_imported} new rows in {second:.1f}s (idempotent run)")
    print(f"raw sqlite3 read+insert of the messages: {floor:.1f}s = {floor_rate:,.0f} messages/s;"
          f" {args.messages / floor_cpu:,.0f} per CPU second")  # fmt: skip
    print(
        f"ratio: importer / raw driver = {rate / floor_rate:.2f} (wall clock), {floor_cpu / first_cpu:.2f} (CPU time)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
