"""What the has-messages triggers cost the append path: append_messages with and without them.

    python bench/bench_flag_triggers.py [--sessions 100] [--flushes 5] [--repeat 5]
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/hermes_flagbench python bench/bench_flag_triggers.py

For B = 1, 10, 100 messages per flush it times S new sessions x F flushes through append_messages
on the same database twice per repeat: with the triggers of migrations 0004 and 0009, and with them dropped
(they are installed again afterwards). The two take turns at going first, repeat by repeat, since
the tables grow during a run. Prints the median time per kind of flush and the ratio with/without.
Goals (issue 13): at most 1.3x on SQLite and PostgreSQL, 1.6x on MariaDB.
"""

import argparse
import importlib
import itertools
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.bench_append import messages
from bench.common import median, setup_django, timed

GOALS = {"sqlite": 1.3, "postgresql": 1.3, "mysql": 1.6}
_run = itertools.count()


def set_triggers(on: bool) -> None:
    from django.db import connection

    migration = importlib.import_module("sessions_app.migrations.0004_session_has_messages")
    replace = importlib.import_module("sessions_app.migrations.0010_exact_keys_replace_trigger_marker_range")
    with connection.schema_editor() as editor:
        migration.drop_triggers(None, editor)  # IF EXISTS: from either state
        replace.drop_replace_triggers(None, editor)  # SQLite's REPLACE triggers (0009), the same way
        if on:
            migration.install_triggers(None, editor)
            replace.install_replace_triggers(None, editor)


def flushes(session_ids, batch, count) -> tuple[float, float]:
    """Seconds for all first flushes (which create the session) and for all later ones."""
    from sessions_app.services import append_messages

    first = later = 0.0
    for flush in range(count):
        for session_id in session_ids:
            msgs = messages(batch, flush)
            elapsed = timed(lambda: append_messages(session_id, msgs, model="bench/model", source="cli"))  # noqa: B023
            if flush == 0:
                first += elapsed
            else:
                later += elapsed
    return first, later


def run(args) -> dict:
    results = {}
    try:
        for batch in args.batches:
            per = {"with": [], "without": []}
            for repeat in range(args.repeat):
                for name in ("with", "without") if repeat % 2 == 0 else ("without", "with"):
                    set_triggers(name == "with")
                    ids = [f"flag_{name}_{batch}_{repeat}_{next(_run)}_{i}" for i in range(args.sessions)]
                    per[name].append(flushes(ids, batch, args.flushes))
            results[batch] = per
    finally:
        set_triggers(True)  # the database is left as the migrations made it
    return results


def report(results, args, vendor) -> dict:
    print(
        f"has-messages triggers on {vendor}: {args.sessions} sessions x {args.flushes} flushes through "
        f"append_messages, median of {args.repeat} runs (seconds for all flushes of that kind)"
    )
    print(f"{'B':>4} {'kind':<8} {'with':>9} {'without':>9} {'ratio':>7}")
    goal = GOALS[vendor]
    summary = {}
    for batch, per in results.items():
        for kind, pick in (("first", lambda t: t[0]), ("later", lambda t: t[1]), ("overall", sum)):
            with_, without = (median([pick(t) for t in per[name]]) for name in ("with", "without"))
            ratio = with_ / without
            summary[f"B={batch} {kind}"] = round(ratio, 2)
            flag = "" if kind != "overall" else f"  goal <= {goal}x: {'met' if ratio <= goal else 'MISSED'}"
            print(f"{batch:>4} {kind:<8} {with_:>9.3f} {without:>9.3f} {ratio:>6.2f}x{flag}")
    return summary


def check_flags() -> None:
    """Every session the benchmark wrote has messages, so every flag must be set."""
    from sessions_app.models import Session

    wrong = Session.objects.filter(pk__startswith="flag_with_", has_messages=False).count()
    print(f"sessions written with the triggers on and the flag clear: {wrong}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=100)
    parser.add_argument("--flushes", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--json", action="store_true", help="also print the ratios as JSON")
    args = parser.parse_args()
    setup_django("hermes_bench_flag_triggers.sqlite3")
    from django.db import connection

    summary = report(run(args), args, connection.vendor)
    check_flags()
    if args.json:
        print(json.dumps(summary))


if __name__ == "__main__":
    main()
