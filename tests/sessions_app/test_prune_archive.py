"""prune_empty_sessions --archive: every deleted session is in the archive, whole, even after kill -9."""

import datetime as dt
import io
import json
import os
import signal
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from sessions_app import pruning
from sessions_app.models import Message, Session
from sessions_app.pruning import prune_empty_sessions

ROOT = Path(__file__).resolve().parents[2]
NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
OLD = NOW - dt.timedelta(days=3)
COLUMNS = {f.attname for f in Session._meta.concrete_fields}


def read_archive(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def make_empty(legacy_session, n: int, **fields):
    for i in range(n):
        legacy_session(session_id=f"gone_{i:04d}", started_at=OLD, ended_at=OLD, end_reason="timeout", **fields)


def test_every_deleted_row_is_archived_with_all_columns(legacy_session, tmp_path):
    full = legacy_session(
        session_id="full",
        started_at=OLD,
        ended_at=OLD + dt.timedelta(microseconds=123456),
        end_reason="timeout",
        user_id="42",
        model_config={"temperature": 0.2},
        estimated_cost_usd=Decimal("0.1234567890"),
        api_call_count=3,
        title="t",
        extra={"archived": 0},
    )
    make_empty(legacy_session, 4)
    Message.objects.create(session=legacy_session(session_id="kept", started_at=OLD, ended_at=OLD), role="user")
    path = tmp_path / "archive.jsonl"
    with path.open("x", encoding="utf-8") as archive:
        result = prune_empty_sessions(now=NOW, batch_size=2, archive=archive)
    records = {record["id"]: record for record in read_archive(path)}
    assert set(records) == {"full", *(f"gone_{i:04d}" for i in range(4))}
    assert result.total_deleted == len(records)
    assert set(records["full"]) == COLUMNS | {"model_name"}
    assert records["full"]["model_name"] == "openai/gpt-5" and records["full"]["model_id"] == full.model_id
    assert records["full"]["estimated_cost_usd"] == "0.1234567890"
    assert records["full"]["ended_at"] == "2026-05-29T12:00:00.123456+00:00"
    assert records["full"]["model_config"] == {"temperature": 0.2}
    assert set(Session.objects.values_list("pk", flat=True)) == {"kept"}


def test_a_session_that_got_a_message_is_neither_deleted_nor_archived(legacy_session, monkeypatch):
    make_empty(legacy_session, 2)
    real = pruning._delete_batch

    def message_arrives(condition, batch, **kwargs):
        Message.objects.create(session_id="gone_0001", role="user", content="late")
        return real(condition, batch, **kwargs)

    monkeypatch.setattr(pruning, "_delete_batch", message_arrives)
    archive = io.StringIO()
    prune_empty_sessions(now=NOW, archive=archive)
    assert [json.loads(line)["id"] for line in archive.getvalue().splitlines()] == ["gone_0000"]
    assert set(Session.objects.values_list("pk", flat=True)) == {"gone_0001"}


def test_command_archive_paths(legacy_session, tmp_path):
    make_empty(legacy_session, 3, model=None)
    existing = tmp_path / "old.jsonl"
    existing.write_text("")
    with pytest.raises(CommandError, match="--archive-append"):
        call_command("prune_empty_sessions", "--archive", str(existing), "--yes")
    with pytest.raises(CommandError, match="does not exist"):
        call_command("prune_empty_sessions", "--archive", str(tmp_path / "nowhere" / "a.jsonl"), "--yes")
    with pytest.raises(CommandError, match="stdout"):
        call_command("prune_empty_sessions", "--archive", "-", "--format", "json", "--yes")
    out, err = io.StringIO(), io.StringIO()
    call_command("prune_empty_sessions", "--archive", "-", "--yes", stdout=out, stderr=err)
    assert sorted(json.loads(line)["id"] for line in out.getvalue().splitlines()) == [f"gone_{i:04d}" for i in range(3)]
    assert "Deleted 3 empty sessions" in err.getvalue()
    assert not Session.objects.exists()


PRUNER = """
import os, sys
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
import django
from django.conf import settings
settings.DATABASES["default"]["NAME"] = sys.argv[1]
django.setup()
from django.core.management import call_command
call_command("prune_empty_sessions", *sys.argv[2:])
"""


def run_pruner(*args) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", PRUNER, connection.settings_dict["NAME"], "--yes", "-v", "2", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.django_db(transaction=True)
def test_archive_survives_kill_9_between_batches_and_the_rerun_finishes(legacy_session, tmp_path):
    total = 300
    make_empty(legacy_session, total)
    everyone = set(Session.objects.values_list("pk", flat=True))
    path = tmp_path / "archive.jsonl"
    pruner = run_pruner("--older-than", "1s", "--batch-size", "1", "--archive", str(path))
    try:
        for line in pruner.stderr:  # a progress line comes after each batch has committed
            if line.startswith("batch 1:"):
                os.kill(pruner.pid, signal.SIGKILL)
                break
        pruner.wait(timeout=60)
    finally:
        if pruner.poll() is None:
            pruner.kill()
    assert pruner.returncode == -signal.SIGKILL
    deleted = everyone - set(Session.objects.values_list("pk", flat=True))
    archived = {record["id"] for record in read_archive(path)}
    assert deleted, "the first batch committed before the kill"
    assert deleted <= archived  # a row archived but not yet deleted may be there too
    assert len(deleted) < total, "killed before the end"

    rerun = run_pruner("--older-than", "1s", "--batch-size", "50", "--archive", str(path), "--archive-append")
    _, err = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, err
    assert not Session.objects.exists()
    records = read_archive(path)
    assert {record["id"] for record in records} == everyone
    assert all(set(record) == COLUMNS | {"model_name"} for record in records)
