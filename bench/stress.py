"""Stress test of the save path: real worker processes, real database, then exact invariant checks.

    python bench/stress.py [--processes 8] [--agents 200] [--batches 4] [--per-batch 5] [--shared 10]
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/hermes python bench/stress.py ...
    DATABASE_URL=mysql://root@127.0.0.1:3306/hermes python bench/stress.py ...

Without DATABASE_URL it uses a fresh SQLite file in the temp directory. With a server URL it
never touches the named database: it creates ``<name>_stress`` beside it (dropped afterwards
unless ``--keep``), migrates it, and runs there. Loopback only; bounded by ``--timeout``.

Each of N worker processes (``--processes``) runs ``--agents`` agents, all starting together:
  - plain agents: several flushes of several messages (some with tool calls), then ``end()``;
  - compressing agents: flushes, ``compress(summary)``, more flushes on the child, ``end()``;
  - silent agents: ``end()`` without a message (counted in the abandoned-agent tally only);
  - shared sessions: ``append_messages`` to one of ``--shared`` ids that every process writes to.
Every message content is unique. A worker records what was committed (session id -> contents,
tool calls, compression links, silent agents) in a JSON file, and any exception it met. The
parent then checks that no session is duplicated or empty, every message is present exactly
once, the counters equal the rows, compression chains are linked and start with their summary,
the tally equals the silent agents, and no worker met an error (``database is locked`` and
deadlocks must be retried by the save path, never reach the caller).

Prints processes x agents x messages, elapsed time and throughput; exits 1 on a violated
invariant or a worker crash, never because of a timing. ``run_stress()`` is importable, so the
test suite runs a short version against its own test database.
"""

import argparse
import json
import logging
import os
import random
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("anthropic/claude-opus-4.6", "openai/gpt-5", "google/gemini-3-pro", "local-llama")
SOURCES = ("cli", "telegram", "discord", "cron")


@dataclass
class StressResult:
    processes: int
    agents: int
    sessions: int = 0
    messages: int = 0
    tool_calls: int = 0
    silent: int = 0
    compressions: int = 0
    shared_appends: int = 0
    retries: int = 0
    elapsed: float = 0.0
    errors: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    records: list[dict] = field(default_factory=list, repr=False)  # what each worker committed

    @property
    def ok(self) -> bool:
        return not self.errors and not self.violations

    def summary(self) -> str:
        rate = self.messages / self.elapsed if self.elapsed else 0.0
        return (
            f"{self.processes} processes x {self.agents} agents: {self.sessions} sessions, {self.messages} messages "
            f"({self.tool_calls} tool calls), {self.compressions} compressions, {self.silent} silent agents, "
            f"{self.shared_appends} appends to shared sessions; {self.retries} transient-conflict retries; "
            f"{self.elapsed:.1f} s, {rate:,.0f} messages/s"
        )


# -- worker side -------------------------------------------------------------------------------


class _RetryCounter(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record):
        if "transient database conflict" in record.getMessage():
            self.count += 1


def _messages(rng, prefix: str, count: int) -> tuple[list[dict], int]:
    batch, tool_calls = [], 0
    for m in range(count):
        calls = [{"id": f"{prefix}-m{m}-t{t}", "function": {"name": "search"}} for t in range(rng.choice((0, 0, 1, 3)))]
        tool_calls += len(calls)
        role = "assistant" if calls else rng.choice(("user", "assistant", "tool"))
        batch.append(
            {"role": role, "content": f"{prefix}-m{m} " + "x" * rng.randrange(0, 300), "tool_calls": calls or None}
        )
    return batch, tool_calls


def worker(config: dict) -> dict:
    """Run one worker's agents (Django must be set up); returns what it committed."""
    from agents_app.agent import Agent
    from sessions_app.services import append_messages

    rng = random.Random(config["seed"] * 1000 + config["worker"])
    retries = _RetryCounter()
    logging.getLogger("sessions_app.services").addHandler(retries)
    w = config["worker"]
    sessions: dict[str, dict] = {}
    record = {"sessions": sessions, "compressions": [], "silent": 0, "shared_appends": 0, "errors": []}

    def committed(session_id, contents, tool_calls):
        entry = sessions.setdefault(session_id, {"contents": [], "tool_calls": 0})
        entry["contents"].extend(contents)
        entry["tool_calls"] += tool_calls

    def flush(agent, prefix):
        batch, calls = _messages(rng, prefix, config["per_batch"])
        for message in batch:
            agent.add_message(message["role"], message["content"], tool_calls=message["tool_calls"])
        agent.flush()
        committed(agent.session_id, [m["content"] for m in batch], calls)

    time.sleep(max(0.0, config["start_at"] - time.time()))
    for a in range(config["agents"]):
        prefix = f"p{w}-a{a}"
        kind = rng.choices(("plain", "compress", "silent", "shared"), weights=(55, 15, 15, 15))[0]
        try:
            if kind == "silent":
                Agent(rng.choice(MODELS), rng.choice(SOURCES)).end("timeout")
                record["silent"] += 1
            elif kind == "shared":
                session_id = f"stress_shared_{config['seed']}_{rng.randrange(config['shared'])}"
                for b in range(config["batches"]):
                    batch, calls = _messages(rng, f"{prefix}-b{b}", config["per_batch"])
                    append_messages(session_id, batch, model=MODELS[0], source="api_server")
                    committed(session_id, [m["content"] for m in batch], calls)
                    record["shared_appends"] += 1
            else:
                agent = Agent(rng.choice(MODELS), rng.choice(SOURCES), user_id=str(w))
                for b in range(config["batches"]):
                    flush(agent, f"{prefix}-b{b}")
                if kind == "compress":
                    summary = f"{prefix} summary"
                    child = agent.compress(summary)
                    committed(child.session_id, [summary], 0)
                    record["compressions"].append(
                        {"parent": agent.session_id, "child": child.session_id, "summary": summary}
                    )
                    for b in range(config["batches"]):
                        flush(child, f"{prefix}-c{b}")
                    agent = child
                agent.end()
        except Exception:
            record["errors"].append(f"worker {w} agent {a} ({kind}): {traceback.format_exc()}")
            if len(record["errors"]) >= 5:
                break
    record["retries"] = retries.count
    return record


def _worker_main(argv: list[str]) -> None:
    config_path, output_path = argv
    config = json.loads(Path(config_path).read_text())
    sys.path.insert(0, str(ROOT))
    os.environ["DJANGO_SETTINGS_MODULE"] = config["settings_module"]
    os.environ.setdefault("DJANGO_SECRET_KEY", "stress-only-" + "x" * 40)
    import django
    from django.conf import settings

    settings.DATABASES["default"]["NAME"] = config["db_name"]
    django.setup()
    try:
        record = worker(config)
    except Exception:
        record = {"errors": [traceback.format_exc()]}
    Path(output_path).write_text(json.dumps(record))


# -- parent side -------------------------------------------------------------------------------


def run_stress(
    *,
    processes: int = 4,
    agents: int = 50,
    batches: int = 3,
    per_batch: int = 4,
    shared: int = 5,
    seed: int = 1,
    timeout: float = 600.0,
    settings_module: str | None = None,
) -> StressResult:
    """Run the workers against the default database (as configured in this process) and check
    the invariants over everything they committed. The database should hold no other writer's
    data for the tally check; sessions and messages of other runs are ignored."""
    from django.db import connection

    from agents_app.models import AbandonedAgentTally

    settings_module = settings_module or os.environ["DJANGO_SETTINGS_MODULE"]
    db_name = str(connection.settings_dict["NAME"])
    tally_before = sum(AbandonedAgentTally.objects.values_list("count", flat=True))
    connection.close()  # SQLite: leave the file to the workers
    result = StressResult(processes=processes, agents=agents)
    with tempfile.TemporaryDirectory(prefix="hermes-stress-") as tmp:
        start_at = time.time() + 1.5 + 0.3 * processes  # every worker imports Django first
        procs = []
        for w in range(processes):
            config = {
                "worker": w,
                "seed": seed,
                "agents": agents,
                "batches": batches,
                "per_batch": per_batch,
                "shared": shared,
                "start_at": start_at,
                "db_name": db_name,
                "settings_module": settings_module,
            }
            config_path, output_path = Path(tmp, f"config{w}.json"), Path(tmp, f"worker{w}.json")
            config_path.write_text(json.dumps(config))
            command = [sys.executable, str(Path(__file__).resolve()), "--worker", str(config_path), str(output_path)]
            procs.append((subprocess.Popen(command, cwd=ROOT, stderr=subprocess.PIPE, text=True), output_path))
        records = []
        deadline = time.time() + timeout
        for proc, output_path in procs:
            try:
                _, stderr = proc.communicate(timeout=max(1.0, deadline - time.time()))
            except subprocess.TimeoutExpired:
                proc.kill()
                _, stderr = proc.communicate()
                result.errors.append(f"worker pid {proc.pid} killed after the {timeout:.0f} s time limit")
            if proc.returncode != 0:
                result.errors.append(f"worker pid {proc.pid} exited {proc.returncode}: {stderr[-2000:]}")
            if output_path.exists():
                records.append(json.loads(output_path.read_text()))
            else:
                result.errors.append(f"worker pid {proc.pid} wrote no record")
        result.elapsed = time.time() - start_at
    for record in records:
        result.errors.extend(record.get("errors", []))
    result.records = records
    check(records, result, tally_before=tally_before)
    return result


def check(records: list[dict], result: StressResult, *, tally_before: int = 0) -> StressResult:
    """Compare what the workers committed with the database; adds violations to ``result``."""
    from django.db.models import Count

    from agents_app.models import AbandonedAgentTally
    from sessions_app.models import Message, Session

    expected: dict[str, Counter] = {}
    expected_tools: Counter = Counter()
    owners: dict[str, int] = {}
    compressions = []
    for index, record in enumerate(records):
        result.silent += record.get("silent", 0)
        result.shared_appends += record.get("shared_appends", 0)
        result.retries += record.get("retries", 0)
        compressions.extend(record.get("compressions", []))
        for session_id, entry in record.get("sessions", {}).items():
            shared = session_id.startswith("stress_shared_")
            if not shared and owners.setdefault(session_id, index) != index:
                result.violations.append(f"session id {session_id} generated by two processes")
            expected.setdefault(session_id, Counter()).update(entry["contents"])
            expected_tools[session_id] += entry["tool_calls"]
    result.compressions = len(compressions)
    result.sessions = len(expected)
    result.messages = sum(sum(c.values()) for c in expected.values())
    result.tool_calls = sum(expected_tools.values())

    ids = list(expected)
    stored: dict[str, Counter] = {session_id: Counter() for session_id in ids}
    sessions: dict[str, dict] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        rows = Session.objects.filter(pk__in=chunk).annotate(rows=Count("messages"))
        for row in rows.values("id", "message_count", "tool_call_count", "parent_session_id", "end_reason", "rows"):
            if row["id"] in sessions:
                result.violations.append(f"session {row['id']} returned twice")
            sessions[row["id"]] = row
        for session_id, content in Message.objects.filter(session_id__in=chunk).values_list("session_id", "content"):
            stored[session_id][content] += 1
    for session_id in ids:
        row = sessions.get(session_id)
        if row is None:
            result.violations.append(f"session {session_id} is missing")
            continue
        if row["rows"] == 0:
            result.violations.append(f"session {session_id} has no message")
        if row["message_count"] != row["rows"]:
            result.violations.append(
                f"session {session_id}: message_count {row['message_count']} != {row['rows']} rows"
            )
        if row["tool_call_count"] != expected_tools[session_id]:
            counter, written = row["tool_call_count"], expected_tools[session_id]
            result.violations.append(f"session {session_id}: tool_call_count {counter} != {written} written")
        if stored[session_id] != expected[session_id]:
            lost = expected[session_id] - stored[session_id]
            extra = stored[session_id] - expected[session_id]
            result.violations.append(
                f"session {session_id}: {sum(lost.values())} messages lost, {sum(extra.values())} duplicated or unknown"
                f" (e.g. {list((lost or extra).elements())[:3]})"
            )
    for link in compressions:
        child = sessions.get(link["child"])
        if child and child["parent_session_id"] != link["parent"]:
            result.violations.append(f"compression child {link['child']} links to {child['parent_session_id']}")
        parent = sessions.get(link["parent"])
        if parent and parent["end_reason"] != "compression":
            result.violations.append(f"compressed session {link['parent']} ended with {parent['end_reason']!r}")
        first = Message.objects.filter(session_id=link["child"]).order_by("id").values_list("content", flat=True)[:1]
        if list(first) != [link["summary"]]:
            result.violations.append(f"compression child {link['child']} does not start with its summary")
    tally = sum(AbandonedAgentTally.objects.values_list("count", flat=True)) - tally_before
    if tally != result.silent:
        result.violations.append(f"abandoned-agent tally grew by {tally}, but {result.silent} agents were silent")
    return result


def _setup_database(keep: bool) -> Callable[[], None]:
    """Configure Django; returns a clean-up function (drops a server-side stress database)."""
    if not os.environ.get("DATABASE_URL"):
        sys.path.insert(0, str(ROOT))
        from bench.common import setup_django

        setup_django("hermes_stress.sqlite3")
        return lambda: None
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SECRET_KEY", "stress-only-" + "x" * 40)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hermes_site.settings")
    import django
    from django.conf import settings

    default = settings.DATABASES["default"]
    if default["ENGINE"].endswith("sqlite3"):
        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        return lambda: None
    # A server: Django's test-database machinery creates, migrates and drops <name>_stress.
    default.setdefault("TEST", {})["NAME"] = f"{default['NAME']}_stress"
    django.setup()
    from django.db import connection

    connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    if keep:
        return lambda: print(f"kept database {connection.settings_dict['NAME']}")
    return lambda: connection.creation.destroy_test_db(default["NAME"], verbosity=0)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        _worker_main(argv[1:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=8, help="worker processes (default 8)")
    parser.add_argument("--agents", type=int, default=200, help="agents per process (default 200)")
    parser.add_argument("--batches", type=int, default=4, help="flushes per agent (default 4)")
    parser.add_argument("--per-batch", type=int, default=5, help="messages per flush (default 5)")
    parser.add_argument("--shared", type=int, default=10, help="session ids shared by all processes (default 10)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds before workers are killed (default 900)")
    parser.add_argument("--keep", action="store_true", help="keep the <name>_stress database of a server")
    args = parser.parse_args(argv)
    cleanup = _setup_database(args.keep)
    from django.db import connection

    try:
        print(f"stress on {connection.vendor} ({connection.settings_dict['NAME']})", flush=True)
        result = run_stress(
            processes=args.processes,
            agents=args.agents,
            batches=args.batches,
            per_batch=args.per_batch,
            shared=args.shared,
            seed=args.seed,
            timeout=args.timeout,
        )
    finally:
        connection.close()
        cleanup()
    print(result.summary())
    for error in result.errors[:10]:
        print("ERROR:", error, file=sys.stderr)
    for violation in result.violations[:50]:
        print("VIOLATION:", violation, file=sys.stderr)
    print("OK: every invariant holds, nothing lost" if result.ok else "FAILED", flush=True)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
