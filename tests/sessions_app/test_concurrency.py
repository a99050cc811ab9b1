"""Real processes, real database: racing writers never duplicate a session or lose a message."""

import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection

from sessions_app.models import Message, Session

ROOT = Path(__file__).resolve().parents[2]
WORKERS = 8
BATCHES = 6
PER_BATCH = 5


def run_workers(session_ids: list[str]) -> list[int]:
    db_name = connection.settings_dict["NAME"]
    start_at = time.time() + 2.0  # all workers import Django first, then start together
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.concurrent_worker",
                db_name,
                str(worker),
                session_id,
                str(BATCHES),
                str(PER_BATCH),
                str(start_at),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for worker, session_id in enumerate(session_ids)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err
        results.append(int(out.strip()))
    return results


def expected_contents(workers):
    return {f"w{w}-b{b}-m{m}" for w in workers for b in range(BATCHES) for m in range(PER_BATCH)}


@pytest.mark.django_db(transaction=True)
def test_eight_processes_racing_on_one_new_session():
    created = run_workers(["shared_session"] * WORKERS)
    assert sum(created) == 1  # exactly one writer created the row
    session = Session.objects.get()
    contents = list(Message.objects.values_list("content", flat=True))
    assert len(contents) == WORKERS * BATCHES * PER_BATCH
    assert set(contents) == expected_contents(range(WORKERS))
    assert session.message_count == len(contents)
    assert session.tool_call_count == WORKERS * BATCHES


@pytest.mark.django_db(transaction=True)
def test_eight_processes_on_distinct_sessions():
    ids = [f"session_{w}" for w in range(WORKERS)]
    assert run_workers(ids) == [1] * WORKERS
    assert sorted(Session.objects.values_list("id", flat=True)) == ids
    for worker, session_id in enumerate(ids):
        session = Session.objects.get(pk=session_id)
        contents = set(session.messages.values_list("content", flat=True))
        assert contents == expected_contents([worker])
        assert session.message_count == BATCHES * PER_BATCH == session.messages.count()
        assert session.model.name == f"model-{worker}"
