"""prune_empty_sessions --archive: every deleted session is in the archive, whole, even after kill -9."""

import datetime as dt
import errno
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


# -- a full disk (issue 23) -----------------------------------------------------------------------


def _archived_ids(path: Path) -> list[str]:
    return [record["id"] for record in read_archive(path)]  # every line parses, or this fails


def _disk_full_after(monkeypatch, path: Path, writes: int):
    """Let ``writes`` writes to the archive at ``path`` through, then write half of the next one
    and fail with ENOSPC, as a filling disk does."""
    real_write, seen = os.write, []

    def write(descriptor, data):
        if os.readlink(f"/proc/self/fd/{descriptor}") != str(path):
            return real_write(descriptor, data)
        seen.append(len(data))
        if len(seen) <= writes:
            return real_write(descriptor, data)
        if len(seen) == writes + 1 and len(data) > 1:
            return real_write(descriptor, bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", write)


def test_a_full_disk_stops_prune_with_a_command_error_and_nothing_lost(legacy_session, tmp_path, monkeypatch):
    make_empty(legacy_session, 7)
    path = tmp_path / "archive.jsonl"
    _disk_full_after(monkeypatch, path, writes=2)  # batches 1 and 2 fit, batch 3 tears and fails
    with pytest.raises(CommandError, match=r"No space left on device\. The batch being archived was not deleted"):
        call_command("prune_empty_sessions", "--archive", str(path), "--batch-size", "2", "--yes", stdout=io.StringIO())
    archived = _archived_ids(path)  # no torn line: the file was cut back to its last whole line
    assert path.read_bytes().endswith(b"\n")
    left = set(Session.objects.values_list("pk", flat=True))
    assert sorted(archived) == [f"gone_{i:04d}" for i in range(4)]
    assert left == {f"gone_{i:04d}" for i in range(4, 7)}  # nothing deleted past the synced lines
    monkeypatch.undo()  # room again: the rerun appends the rest
    call_command("prune_empty_sessions", "--archive", str(path), "--archive-append", "--yes", stdout=io.StringIO())
    assert sorted(_archived_ids(path)) == [f"gone_{i:04d}" for i in range(7)]
    assert not Session.objects.exists()


def test_appending_cuts_a_torn_tail_first(legacy_session, tmp_path):
    make_empty(legacy_session, 2)
    path = tmp_path / "archive.jsonl"
    path.write_text('{"id": "earlier", "model_name": null}\n{"id": "torn", "mod', encoding="utf-8")  # an old crash
    err = io.StringIO()
    call_command(
        "prune_empty_sessions", "--archive", str(path), "--archive-append", "--yes", stdout=io.StringIO(), stderr=err
    )
    assert _archived_ids(path) == ["earlier", "gone_0000", "gone_0001"]
    assert "cut a torn last line (19 bytes)" in err.getvalue()


@pytest.mark.parametrize("content", ["not json at all\n", "[1, 2]\n", '{"no": "id"}\n'])
def test_appending_to_a_file_that_is_not_an_archive_is_refused(legacy_session, tmp_path, content):
    make_empty(legacy_session, 1)
    path = tmp_path / "notes.txt"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(CommandError, match="is not an archived session"):
        call_command("prune_empty_sessions", "--archive", str(path), "--archive-append", "--yes")
    assert path.read_text(encoding="utf-8") == content and Session.objects.count() == 1


def test_an_archive_on_a_device_that_is_always_full(legacy_session):
    make_empty(legacy_session, 2)
    with pytest.raises(CommandError, match="No space left on device"):
        call_command("prune_empty_sessions", "--archive", "/dev/full", "--archive-append", "--yes")
    assert Session.objects.count() == 2


LIMITED_PRUNER = """
import os, resource, signal, sys
os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
import django
from django.conf import settings
settings.DATABASES["default"]["NAME"] = sys.argv[1]
django.setup()
limit = int(sys.argv[2])
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
import manage
sys.argv = ["manage.py", "prune_empty_sessions", *sys.argv[3:]]
manage.main()
"""


@pytest.mark.django_db(transaction=True)
def test_a_real_file_size_limit_tears_no_line_and_loses_nothing(legacy_session, tmp_path, vendor):
    if vendor == "sqlite":
        pytest.skip("not applicable: the limit would stop this process's own writes to the SQLite file too")
    make_empty(legacy_session, 40)
    path = tmp_path / "archive.jsonl"
    limit = 5_000  # the kernel writes up to the limit, then refuses: the last line of a batch is torn
    options = ["--yes", "--older-than", "1s", "--batch-size", "3", "--archive", str(path)]
    proc = subprocess.run(
        [sys.executable, "-c", LIMITED_PRUNER, connection.settings_dict["NAME"], str(limit), *options],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "--archive: writing failed: File too large" in proc.stderr
    archived = _archived_ids(path)
    assert 0 < len(archived) < 40 and os.path.getsize(path) <= limit
    left = set(Session.objects.values_list("pk", flat=True))
    assert left == {f"gone_{i:04d}" for i in range(40)} - set(archived)
