"""verify_sessions: finds flag and counter drift (read-only), repairs it with --repair, exit 3/0."""

import importlib
import io
import json
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from sessions_app.integrity import verify_sessions
from sessions_app.models import Message, Session
from sessions_app.services import append_messages

ROOT = Path(__file__).resolve().parents[2]
migration = importlib.import_module("sessions_app.migrations.0004_session_has_messages")


def state() -> dict:
    return {
        pk: rest for pk, *rest in Session.objects.values_list("pk", "has_messages", "message_count", "tool_call_count")
    }


@contextmanager
def triggers_dropped():
    """The flag's triggers dropped (as in a restore or a load that bypassed them), then restored."""
    with connection.schema_editor() as editor:
        migration.drop_triggers(None, editor)
    try:
        yield
    finally:
        with connection.schema_editor() as editor:
            migration.install_triggers(None, editor)


def run(*args) -> tuple[str, int]:
    out = io.StringIO()
    try:
        call_command("verify_sessions", *args, stdout=out)
    except CommandError as exc:
        return out.getvalue(), exc.returncode
    return out.getvalue(), 0


@pytest.fixture
def drifted(transactional_db, legacy_session):
    """Six sessions, built with messages through the ORM (triggers on), then one drift of each kind
    made with the triggers off or by a raw counter update. Returns ids by role."""
    ids = {}
    for role in ("clean", "clean_empty", "flag_without_rows", "rows_without_flag", "count_off", "tools_off"):
        ids[role] = legacy_session(session_id=role).pk
    # Counters as the save path keeps them: tool calls counted as a list's length, a dict as 1.
    plan = {"clean": [None, [{"id": 1}, {"id": 2}]], "flag_without_rows": [None], "count_off": [None, None]}
    plan["tools_off"] = [{"id": 1}]
    for pk, calls in plan.items():
        Message.objects.bulk_create([Message(session_id=pk, role="assistant", tool_calls=c) for c in calls])
        tools = sum(len(c) if isinstance(c, list) else 1 for c in calls if c)
        Session.objects.filter(pk=pk).update(message_count=len(calls), tool_call_count=tools)
    with triggers_dropped():
        Message.objects.filter(session_id="flag_without_rows").delete()
        Session.objects.filter(pk="flag_without_rows").update(message_count=0)
        Message.objects.create(session_id="rows_without_flag", role="user")
        Session.objects.filter(pk="rows_without_flag").update(message_count=1)
    Session.objects.filter(pk="count_off").update(message_count=5)
    Session.objects.filter(pk="tools_off").update(tool_call_count=0)
    return ids


EXPECTED_COUNTS = {"flag_without_rows": 1, "rows_without_flag": 1, "message_count_off": 1, "tool_call_count_off": 1}
TRUTH = {
    "clean": [True, 2, 2],
    "clean_empty": [False, 0, 0],
    "flag_without_rows": [False, 0, 0],
    "rows_without_flag": [True, 1, 0],
    "count_off": [True, 2, 0],
    "tools_off": [True, 1, 1],
}


def test_clean_database(db, legacy_session):
    legacy_session()
    tool_calls = [{"id": "a"}, {"id": "b"}]
    append_messages("saved", [{"role": "assistant", "tool_calls": tool_calls}], model="m", source="cli")
    out, code = run()
    assert code == 0
    assert "2 sessions and 0 rollup days checked: clean." in out


def test_finds_each_kind_read_only_across_batches(drifted):
    before = state()
    assert before != TRUTH
    result = verify_sessions(batch_size=2)
    assert result.sessions_checked == 6
    assert result.counts == EXPECTED_COUNTS
    assert result.examples == {
        "flag_without_rows": ["flag_without_rows"],
        "rows_without_flag": ["rows_without_flag"],
        "message_count_off": ["count_off"],
        "tool_call_count_off": ["tools_off"],
    }
    assert not result.repaired
    assert state() == before  # read-only


def test_command_exit_status_and_repair(drifted):
    out, code = run("--batch-size", "4")
    assert code == 3
    assert "flag_without_rows    1  e.g. flag_without_rows" in out
    assert "drift found" in out
    out, code = run("--repair", "--batch-size", "4")
    assert code == 3
    assert "repaired" in out
    assert state() == TRUTH
    assert run()[1] == 0


def test_json_output(drifted):
    out, code = run("--json")
    assert code == 3
    data = json.loads(out)
    assert data["sessions_checked"] == 6
    assert {kind: value["sessions"] for kind, value in data["drift"].items()} == EXPECTED_COUNTS


def test_exit_status_of_the_real_process(drifted):
    script = (
        "import os, sys; os.environ['DJANGO_SETTINGS_MODULE'] = 'tests.settings';"
        "from django.conf import settings; import django;"
        f"settings.DATABASES['default']['NAME'] = {connection.settings_dict['NAME']!r}; django.setup();"
        "from django.core.management import execute_from_command_line;"
        "execute_from_command_line(['manage.py', 'verify_sessions'] + sys.argv[1:])"
    )
    read_only = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert read_only.returncode == 3, read_only.stderr
    repair = subprocess.run(
        [sys.executable, "-c", script, "--repair"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert repair.returncode == 3, repair.stderr
    clean = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert clean.returncode == 0, clean.stderr
    assert state() == TRUTH


@pytest.mark.parametrize("size", ["0", "-1", "50001"])
def test_bad_batch_size(db, size):
    with pytest.raises(CommandError, match="--batch-size") as exc:
        call_command("verify_sessions", "--batch-size", size)
    assert exc.value.returncode == 1


def test_counters_count_active_messages_and_the_flag_any_row(db):
    """hermes' rule: an undone or compacted message is kept (the session is not empty) but not counted."""
    append_messages(
        "s1",
        [
            {"role": "user", "content": "kept", "tool_calls": [{"id": 1}, {"id": 2}]},
            {"role": "user", "content": "undone", "active": False, "tool_calls": [{"id": 3}]},
            {"role": "assistant", "content": "summarized away", "active": False, "compacted": True},
        ],
        model="m",
        source="cli",
    )
    append_messages("s2", [{"role": "user", "content": "only undone", "active": False}], model="m", source="cli")
    assert state() == {"s1": [True, 1, 2], "s2": [True, 0, 0]}
    assert verify_sessions().total == 0
    # A writer that counted every row (as an earlier import did) is drift, and --repair fixes it.
    Session.objects.filter(pk="s1").update(message_count=3, tool_call_count=3)
    drift = verify_sessions(repair=True)
    assert drift.counts["message_count_off"] == 1 and drift.counts["tool_call_count_off"] == 1
    assert state() == {"s1": [True, 1, 2], "s2": [True, 0, 0]}
    Message.objects.filter(session_id="s2").update(active=True)  # reactivated by another writer
    assert verify_sessions(repair=True).examples["message_count_off"] == ["s2"]
    assert state()["s2"] == [True, 1, 0]
