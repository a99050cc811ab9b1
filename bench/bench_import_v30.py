"""Benchmark ``import_hermes`` on schema 30 files: the first import, a re-import with nothing new, a
re-import after hermes changed a little in place, and a long parent chain.

    .venv/bin/python bench/bench_import_v30.py [--sessions 100000] [--chain 16000] [--runs 3]
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/hermes_bench_import .venv/bin/python bench/bench_import_v30.py

Builds a schema-30 state.db in /tmp (tests/hermes_fixtures.py's ``v30``): ``--sessions`` sessions,
about 70% of them with ~8 messages (a few undone or compacted), one or two per-model usage rows each,
prompts stored once by hash. Then, on the database DATABASE_URL names (default: a fresh SQLite file;
it is emptied first):

- the first import (messages per second);
- a re-import with nothing new, median of ``--runs``, beside the floor any change check pays: plain
  ``sqlite3`` reading the same session rows and the per-session message aggregate (count, active)
  from the file, and nothing else;
- a re-import after hermes changed 1% of the sessions (a new turn, an undo, an end, a usage update);
- ``--chain`` sessions linked in one chain, each parent before its child in the file: every link's
  ancestors are the whole chain so far, the case that cost O(N²) queries before the linking pass was
  made linear (16,000 links: 58 s reported; 8,000 took 25 s here, 4,000 took 5 s).

Prints seconds and ratios; exits 0 unless it crashes.
"""

import argparse
import hashlib
import json
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import setup_django

START = 1_780_000_000.0
MODELS = ["anthropic/claude-opus-4.6", "openai/gpt-5", "meta/llama-4-maverick:free", "google/gemini-2.5-pro"]


def build(path: Path, sessions: int, seed: int = 30) -> tuple[int, int]:
    """A schema-30 state.db; returns (sessions, messages)."""
    from tests.hermes_fixtures import SCHEMAS

    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    rng = random.Random(seed)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    conn.executescript(SCHEMAS["v30"])
    prompts = [f"You are Hermes, profile prompt {n}. " * 30 for n in range(5)]
    hashes = [hashlib.sha256(p.encode()).hexdigest() for p in prompts]
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO system_prompts VALUES (?, ?)", zip(hashes, prompts, strict=True))
    session_rows, message_rows, usage_rows = [], [], []
    for n in range(sessions):
        sid = f"2026{n:010d}_{rng.getrandbits(24):06x}"
        started, model = START + n * 20.0, rng.choice(MODELS)
        speaks = rng.random() < 0.7
        turns = rng.randint(2, 6) if speaks else 0
        active = 0
        for turn in range(turns):
            for role in ("user", "assistant"):
                flag = 0 if (turn == turns - 1 and rng.random() < 0.1) else 1
                calls = json.dumps([{"id": f"c{turn}"}]) if role == "assistant" and turn % 2 else None
                message_rows.append(
                    (sid, role, f"{role} turn {turn} " * 8, calls, started + turn * 3 + (role == "assistant"), flag)
                )
                active += flag
        session_rows.append((sid, rng.choice(["cli", "telegram", "discord", "cron"]), model, started,
                             started + 600 if rng.random() < 0.8 else None, rng.choice(hashes), active,
                             rng.choice(["default", "work", None]), started + 590))  # fmt: skip
        if speaks:
            usage_rows.append((sid, model, "", turns, turns * 400, turns * 60, started, started + 590))
            if rng.random() < 0.2:
                usage_rows.append((sid, "openai/gpt-5-mini", "compression", 1, 900, 80, started, started + 500))
    conn.executemany(
        "INSERT INTO sessions (id, source, model, started_at, ended_at, system_prompt_hash, message_count,"
        " profile_name, last_activity_at) VALUES (?,?,?,?,?,?,?,?,?)",
        session_rows,
    )
    conn.executemany(
        "INSERT INTO messages (session_id, role, content, tool_calls, timestamp, active) VALUES (?,?,?,?,?,?)",
        message_rows,
    )
    conn.executemany(
        "INSERT INTO session_model_usage (session_id, model, task, api_call_count, input_tokens, output_tokens,"
        " first_seen, last_seen) VALUES (?,?,?,?,?,?,?,?)",
        usage_rows,
    )
    conn.execute("COMMIT")
    conn.close()
    return len(session_rows), len(message_rows)


def change_a_little(path: Path, share: float = 0.01, seed: int = 31) -> int:
    """hermes goes on: a new turn, an undo, an end and a usage update in ``share`` of the sessions."""
    rng = random.Random(seed)
    conn = sqlite3.connect(path, isolation_level=None)
    ids = [row[0] for row in conn.execute("SELECT id FROM sessions WHERE message_count > 0")]
    chosen = rng.sample(ids, max(1, int(len(ids) * share)))
    conn.execute("BEGIN")
    for sid in chosen:
        conn.execute("INSERT INTO messages (session_id, role, content, timestamp) VALUES (?, 'user', 'more', ?)",
                     (sid, START + 10**6))  # fmt: skip
        conn.execute("UPDATE messages SET active = 0 WHERE id = (SELECT MIN(id) FROM messages WHERE session_id = ?)",
                     (sid,))  # fmt: skip
        conn.execute("UPDATE sessions SET ended_at = ?, end_reason = 'completed' WHERE id = ?", (START + 10**6, sid))
        conn.execute("UPDATE session_model_usage SET api_call_count = api_call_count + 1 WHERE session_id = ?", (sid,))
    conn.execute("COMMIT")
    conn.close()
    return len(chosen)


def change_floor(path: Path) -> float:
    """What any change check reads at least: every session row and the per-session message counts."""
    started = time.perf_counter()
    conn = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)
    for _ in conn.execute("SELECT * FROM sessions"):
        pass
    for _ in conn.execute("SELECT session_id, MAX(id), COUNT(*), SUM(active != 0) FROM messages GROUP BY session_id"):
        pass
    conn.close()
    return time.perf_counter() - started


def build_chain(path: Path, links: int) -> None:
    from tests.hermes_fixtures import SCHEMAS

    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.executescript(SCHEMAS["v30"])
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO sessions (id, source, started_at, parent_session_id, profile_name)"
        " VALUES (?, 'cli', ?, ?, 'chain')",
        [(f"chain{i:06d}", START + i, f"chain{i - 1:06d}" if i else None) for i in range(links + 1)],
    )
    conn.execute("COMMIT")
    conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--chain", type=int, default=16_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    setup_django("hermes_bench_import_v30.sqlite3")
    from django.db import connection

    from agents_app.models import LanguageModel
    from sessions_app.importers import import_hermes_db
    from sessions_app.models import Message, ModelUsage, RollupMark, Session, SessionDay, SessionRollupState

    def empty() -> None:
        Message.objects.all().delete()
        ModelUsage.objects.all().delete()
        Session.objects.update(parent_session=None)
        Session.objects.all().delete()
        SessionDay.objects.all().delete()
        RollupMark.objects.all().delete()
        SessionRollupState.objects.all().delete()
        LanguageModel.objects.all().delete()

    empty()
    source = Path(tempfile.gettempdir()) / "hermes_bench_v30.db"
    t0 = time.perf_counter()
    sessions, messages = build(source, args.sessions)
    print(f"{connection.vendor}; source {source}: {sessions:,} sessions, {messages:,} messages, built in "
          f"{time.perf_counter() - t0:.1f}s")  # fmt: skip

    t0 = time.perf_counter()
    first = import_hermes_db(source)
    elapsed = time.perf_counter() - t0
    print(f"first import: {elapsed:.1f}s, {first.messages_imported / elapsed:,.0f} messages/s, "
          f"{first.sessions_imported / elapsed:,.0f} sessions/s ({first.usage_imported:,} usage rows)")  # fmt: skip

    again = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        result = import_hermes_db(source)
        again.append(time.perf_counter() - t0)
        assert result.messages_imported == result.messages_flags_changed == result.sessions_updated == 0
    floors = [change_floor(source) for _ in range(args.runs)]
    no_change, floor = statistics.median(again), statistics.median(floors)
    print(f"re-import, nothing new: median {no_change:.2f}s of {args.runs}; floor (sqlite3 reading the session "
          f"rows and the message aggregate) {floor:.2f}s; ratio {no_change / floor:.1f}x")  # fmt: skip

    changed = change_a_little(source)
    t0 = time.perf_counter()
    result = import_hermes_db(source)
    print(f"re-import after {changed:,} sessions changed in place: {time.perf_counter() - t0:.2f}s "
          f"(+{result.messages_imported:,} messages, {result.messages_flags_changed:,} flags, "
          f"{result.sessions_updated:,} sessions and {result.usage_updated:,} usage rows updated)")  # fmt: skip

    chain = Path(tempfile.gettempdir()) / "hermes_bench_chain.db"
    build_chain(chain, args.chain)
    t0 = time.perf_counter()
    linked = import_hermes_db(chain).parents_linked
    print(f"chain of {args.chain:,} links, parents first: {time.perf_counter() - t0:.1f}s "
          f"({linked:,} linked)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
