"""Append path: Agent/append_messages versus the raw driver doing the same transactions.

    python bench/bench_append.py [--sessions 200] [--flushes 5] [--repeat 5]
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/hermes_bench python bench/bench_append.py

For B = 1, 10, 100 messages per flush it times S sessions x F flushes three ways, in the same
process, on the same tables and connection settings:
  orm      - append_messages (validation, get_or_create, bulk insert, counter update, one transaction)
  raw      - the driver: BEGIN; insert-or-ignore the session; insert the batch (the same columns and
             stored values as the ORM side); update counters; COMMIT
  per-msg  - the driver, one transaction per message with its own counter update (hermes-agent's store)
and prints the median time per flush and the ratios orm/raw and orm/per-msg, for first flushes,
later flushes and overall, with the goals of issue 12 beside the overall rows: orm/raw at most 4x
at B = 1 and 2.5x at B = 10 on SQLite, 1.5x on PostgreSQL and MariaDB; orm/per-msg below 1x at
B >= 10 everywhere. The three writers take turns at going first, repeat by repeat.
"""

import argparse
import datetime as dt
import itertools
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import median, setup_django, timed

_run = itertools.count()
# Goals for orm/raw overall, per backend and batch size (issue 12); None: no goal at that size.
RAW_GOALS = {"sqlite": {1: 4.0, 10: 2.5}, "postgresql": 1.5, "mysql": 1.5}


def goal_text(vendor: str, batch: int, ratio_raw: float, ratio_pm: float) -> str:
    goal = RAW_GOALS[vendor]
    goal = goal.get(batch) if isinstance(goal, dict) else goal
    parts = []
    if goal is not None:
        parts.append(f"orm/raw <= {goal:g}x: {'met' if ratio_raw <= goal else 'MISSED'}")
    if batch >= 10:
        parts.append(f"orm/per-msg < 1x: {'met' if ratio_pm < 1 else 'MISSED'}")
    return "  " + "; ".join(parts) if parts else ""


def messages(batch: int, flush: int) -> list[dict]:
    return [
        {"role": "user" if i % 2 else "assistant", "content": f"message {flush}-{i} " + "x" * 200} for i in range(batch)
    ]


def orm_writer(session_ids, batch, flushes):
    from sessions_app.services import append_messages

    first, later = [], []
    for flush in range(flushes):
        for session_id in session_ids:
            msgs = messages(batch, flush)
            elapsed = timed(lambda: append_messages(session_id, msgs, model="bench/model", source="cli"))  # noqa: B023
            (first if flush == 0 else later).append(elapsed)
    return first, later


class Raw:
    """The same statements through the DB-API connection Django opened (same settings, no ORM)."""

    def __init__(self):
        from django.db import connection

        from agents_app.models import LanguageModel

        connection.ensure_connection()
        self.vendor = connection.vendor
        self.conn = connection.connection
        self.model_id = LanguageModel.objects.get_or_create(name="bench/model")[0].pk
        self.p = "?" if self.vendor == "sqlite" else "%s"
        self.begin = {"sqlite": "BEGIN IMMEDIATE", "postgresql": "BEGIN", "mysql": "START TRANSACTION"}[self.vendor]
        if self.vendor == "mysql":
            self.insert_session = (
                "INSERT IGNORE INTO sessions_app_session (id, model_id, source, started_at, message_count, "
                "tool_call_count, api_call_count, input_tokens, output_tokens, cache_read_tokens, "
                "cache_write_tokens, reasoning_tokens) VALUES (%s, %s, %s, %s, 0, 0, 0, 0, 0, 0, 0, 0)"
            )
        else:
            p = self.p
            self.insert_session = (
                "INSERT INTO sessions_app_session (id, model_id, source, started_at, message_count, "
                "tool_call_count, api_call_count, input_tokens, output_tokens, cache_read_tokens, "
                f"cache_write_tokens, reasoning_tokens) VALUES ({p}, {p}, {p}, {p}, 0, 0, 0, 0, 0, 0, 0, 0) "
                "ON CONFLICT (id) DO NOTHING"
            )
        p = self.p
        # The columns the ORM side lists for these messages (it leaves out columns that are None
        # in the whole batch; listing them with NULLs costs ~20% more per row on SQLite).
        self.insert_message = (
            "INSERT INTO sessions_app_message (session_id, model_id, role, content, timestamp) "
            f"VALUES ({p}, {p}, {p}, {p}, {p})"
        )
        self.update = (
            f"UPDATE sessions_app_session SET message_count = message_count + {p}, "
            f"tool_call_count = tool_call_count + {p} WHERE id = {p}"
        )

    def now(self):
        now = dt.datetime.now(dt.UTC)
        if self.vendor == "sqlite":
            return str(now.replace(tzinfo=None))  # the text Django stores: UTC, no offset
        return now if self.vendor == "postgresql" else now.replace(tzinfo=None)

    def transaction(self, session_id, msgs):
        cur = self.conn.cursor()
        cur.execute(self.begin)
        try:
            now = self.now()
            cur.execute(self.insert_session, (session_id, self.model_id, "cli", now))
            cur.executemany(
                self.insert_message,
                [(session_id, self.model_id, m["role"], m["content"], now) for m in msgs],
            )
            cur.execute(self.update, (len(msgs), 0, session_id))
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise

    def batched(self, session_ids, batch, flushes):
        first, later = [], []
        for flush in range(flushes):
            for session_id in session_ids:
                msgs = messages(batch, flush)
                elapsed = timed(lambda: self.transaction(session_id, msgs))  # noqa: B023
                (first if flush == 0 else later).append(elapsed)
        return first, later

    def per_message(self, session_ids, batch, flushes):
        first, later = [], []
        for flush in range(flushes):
            for session_id in session_ids:
                msgs = messages(batch, flush)
                elapsed = timed(lambda: [self.transaction(session_id, [m]) for m in msgs])  # noqa: B023
                (first if flush == 0 else later).append(elapsed)
        return first, later


def run(args) -> dict:
    raw = Raw()
    results = {}
    writers = [("orm", orm_writer), ("raw", raw.batched), ("per-msg", raw.per_message)]
    for batch in args.batches:
        per = {"orm": [], "raw": [], "per-msg": []}
        for repeat in range(args.repeat):
            # Each writer goes first in turn: the tables and the WAL grow during a run.
            for name, writer in writers[repeat % 3 :] + writers[: repeat % 3]:
                ids = [f"bench_{name}_{batch}_{repeat}_{next(_run)}_{i}" for i in range(args.sessions)]
                first, later = writer(ids, batch, args.flushes)
                per[name].append((sum(first), sum(later)))
        results[batch] = per
    return results


def report(results, args, vendor):
    print(
        f"append path on {vendor}: {args.sessions} sessions x {args.flushes} flushes, "
        f"median of {args.repeat} runs (seconds for all flushes of that kind; ratios = orm / other)"
    )
    print(f"{'B':>4} {'kind':<8} {'orm':>9} {'raw':>9} {'per-msg':>9} {'orm/raw':>8} {'orm/per-msg':>12}")
    summary = {}
    for batch, per in results.items():
        for kind, pick in (("first", lambda t: t[0]), ("later", lambda t: t[1]), ("overall", lambda t: t[0] + t[1])):
            med = {name: median([pick(t) for t in runs]) for name, runs in per.items()}
            ratio_raw = med["orm"] / med["raw"]
            ratio_pm = med["orm"] / med["per-msg"]
            summary[f"B={batch} {kind}"] = {"orm_raw": round(ratio_raw, 2), "orm_per_msg": round(ratio_pm, 2)}
            goals = goal_text(vendor, batch, ratio_raw, ratio_pm) if kind == "overall" else ""
            print(
                f"{batch:>4} {kind:<8} {med['orm']:>9.3f} {med['raw']:>9.3f} {med['per-msg']:>9.3f} "
                f"{ratio_raw:>7.2f}x {ratio_pm:>11.2f}x{goals}"
            )
    return summary


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=100)
    parser.add_argument("--flushes", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--json", action="store_true", help="also print the ratios as JSON")
    args = parser.parse_args()
    setup_django("hermes_bench_append.sqlite3")
    from django.db import connection

    summary = report(run(args), args, connection.vendor)
    if args.json:
        print(json.dumps(summary))


if __name__ == "__main__":
    main()
