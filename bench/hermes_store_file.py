"""Write a state.db with hermes-agent's own session store, for checking the importer against the real
thing (schema 30 and later).

Needs an installed hermes-agent (or a fork) whose ``hermes_state.SessionDB`` is importable; it is
not a dependency of this project and nothing of its code is kept here. Run it with that
installation's Python::

    /path/to/hermes-venv/bin/python bench/hermes_store_file.py /tmp/hermes/state.db --sessions 200
    /path/to/hermes-venv/bin/python bench/hermes_store_file.py /tmp/hermes/state.db --grow  # more of it

then ``manage.py import_hermes /tmp/hermes/state.db`` and compare with SQL on the file
(``tests/sessions_app/test_import_v30.py``'s ``FileTruth`` does it). The workload, seeded: sessions of
several sources and models, tool calls, a model switch with per-model usage, auxiliary usage
(compression), undone turns (``rewind_to_message``), in-place compaction (``archive_and_compact``),
titles, ended and open sessions, and sessions that never got a message. ``--grow`` runs a second
round over the same file: new sessions, new turns in old ones, rewinds, compactions and ends.
"""

import argparse
import random
import sys
import time


def workload(db, rng: random.Random, *, sessions: int, prefix: str, start: float) -> None:
    models = ["anthropic/claude-opus-4.6", "openai/gpt-5", "meta/llama-4-maverick:free"]
    sources = ["cli", "telegram", "discord", "cron"]
    prompt = "You are Hermes, a helpful agent. " * 40
    for number in range(sessions):
        sid = f"{prefix}_{number:05d}"
        model = rng.choice(models)
        db.create_session(sid, rng.choice(sources), model=model, system_prompt=prompt if number % 3 else None)
        if rng.random() < 0.3:
            continue  # built for a sub-task that never ran: an empty session
        turns = rng.randint(1, 6)
        for turn in range(turns):
            user = db.append_message(sid, "user", f"question {turn} of {sid}", timestamp=start + number * 60 + turn)
            if rng.random() < 0.4:
                db.append_message(
                    sid, "assistant", None, tool_calls=[{"id": f"c{turn}", "type": "function",
                    "function": {"name": "search", "arguments": "{}"}}], timestamp=start + number * 60 + turn + 0.1,
                )  # fmt: skip
                db.append_message(sid, "tool", "result", tool_call_id=f"c{turn}", tool_name="search",
                                  timestamp=start + number * 60 + turn + 0.2)  # fmt: skip
            db.append_message(sid, "assistant", f"answer {turn}", timestamp=start + number * 60 + turn + 0.3)
            db.update_token_counts(sid, input_tokens=rng.randint(100, 900), output_tokens=rng.randint(10, 200),
                                   model=model, api_call_count=1, estimated_cost_usd=0.001)  # fmt: skip
            if turn == 1 and rng.random() < 0.3:  # switched model mid-session
                model = rng.choice(models)
        if rng.random() < 0.2:
            db.record_auxiliary_usage(sid, "compression", model="openai/gpt-5-mini", input_tokens=500,
                                      output_tokens=50)  # fmt: skip
        if turns > 2 and rng.random() < 0.3:
            try:
                db.rewind_to_message(sid, user)  # undo the last turn
            except Exception as exc:  # a guard of hermes' own may refuse: keep going
                print(f"rewind {sid}: {exc}", file=sys.stderr)
        if turns > 3 and rng.random() < 0.3:
            try:
                db.archive_and_compact(sid, [{"role": "user", "content": f"[summary of {sid}]"}])
            except Exception as exc:
                print(f"compact {sid}: {exc}", file=sys.stderr)
        if rng.random() < 0.5:
            db.set_session_title(sid, f"title {sid}")
        if rng.random() < 0.7:
            db.end_session(sid, rng.choice(["completed", "timeout", "error"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path")
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--grow", action="store_true", help="a second round over an existing file")
    args = parser.parse_args()
    from pathlib import Path

    from hermes_state import SessionDB  # the installed hermes-agent's own store

    db = SessionDB(db_path=Path(args.path))
    rng = random.Random(args.seed + (1 if args.grow else 0))
    start = time.time() - 3 * 86400
    workload(db, rng, sessions=args.sessions, prefix="grow" if args.grow else "s", start=start)
    if args.grow:  # and turns, undos, compactions and ends in the first round's sessions
        import sqlite3

        reader = sqlite3.connect(f"file:{args.path}?mode=ro", uri=True)
        users = "SELECT id FROM messages WHERE session_id = ? AND role = 'user' AND active ORDER BY id"
        for number in range(args.sessions):
            sid = f"s_{number:05d}"
            live = [row[0] for row in reader.execute(users, (sid,))]
            try:
                if number % 5 == 0 and len(live) >= 2:
                    db.rewind_to_message(sid, live[-1])
                elif number % 11 == 0 and live:
                    db.archive_and_compact(sid, [{"role": "user", "content": f"[summary of {sid}, again]"}])
                elif number % 7 == 0:
                    db.append_message(sid, "user", "one more thing", timestamp=time.time() - 60)
                    db.end_session(sid, "completed")
            except Exception as exc:  # a guard of hermes' own may refuse: keep going
                print(f"{sid}: {exc}", file=sys.stderr)
        reader.close()
    db.close()


if __name__ == "__main__":
    main()
