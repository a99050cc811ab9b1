"""prune_empty_sessions: the safety rules, batches, the command's prompt and errors, and real races."""

import datetime as dt
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from sessions_app import pruning
from sessions_app.management.base import parse_duration
from sessions_app.models import Message, Session
from sessions_app.pruning import prune_empty_sessions
from tests.holding_writer import HoldingWriter

ROOT = Path(__file__).resolve().parents[2]
NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
OLD = NOW - dt.timedelta(days=3)


def add_message(session, content="hi"):
    Message.objects.create(session=session, role="user", content=content)


@pytest.fixture
def landscape(legacy_session):
    """One session per safety rule; returns the ids expected to be deleted and kept."""
    ended = {"ended_at": OLD + dt.timedelta(minutes=5), "end_reason": "timeout"}
    legacy_session(session_id="gone_gpt", model="openai/gpt-5", started_at=OLD, **ended)
    legacy_session(session_id="gone_gemini", model="google/gemini-3-pro", source="telegram", started_at=OLD, **ended)
    legacy_session(session_id="gone_nomodel", model=None, started_at=OLD, **ended)
    add_message(legacy_session(session_id="spoke", started_at=OLD, **ended))
    legacy_session(session_id="recent", started_at=NOW - dt.timedelta(hours=1), **ended)
    legacy_session(session_id="open", started_at=OLD)
    parent = legacy_session(session_id="parent", started_at=OLD, **ended)
    add_message(legacy_session(session_id="child", started_at=OLD, parent_session=parent, **ended))
    return {"gone_gpt", "gone_gemini", "gone_nomodel"}, {"spoke", "recent", "open", "parent", "child"}


def remaining():
    return set(Session.objects.values_list("pk", flat=True))


def test_deletes_only_old_closed_childless_empty_sessions(landscape):
    gone, kept = landscape
    result = prune_empty_sessions(now=NOW)
    assert remaining() == kept
    assert result.deleted == {"openai/gpt-5": 1, "google/gemini-3-pro": 1, None: 1}
    assert result.total_deleted == len(gone)
    assert result.kept == {"too_recent": 1, "open": 1, "has_children": 1, "changed": 0, "locked": 0}
    assert list(Message.objects.filter(session_id="spoke").values_list("content", flat=True)) == ["hi"]
    assert Session.objects.get(pk="child").parent_session_id == "parent"


def test_include_open_prunes_sessions_that_never_ended(landscape):
    gone, kept = landscape
    result = prune_empty_sessions(now=NOW, include_open=True)
    assert remaining() == kept - {"open"}
    assert result.total_deleted == len(gone) + 1
    assert result.kept["open"] == 0


def test_grace_period_is_strict(legacy_session):
    legacy_session(session_id="at_cutoff", started_at=NOW - dt.timedelta(hours=24), ended_at=NOW)
    legacy_session(session_id="just_before", started_at=NOW - dt.timedelta(hours=24, seconds=1), ended_at=NOW)
    result = prune_empty_sessions(now=NOW)
    assert remaining() == {"at_cutoff"}
    assert result.kept["too_recent"] == 1
    assert prune_empty_sessions(now=NOW, older_than=dt.timedelta(days=2)).total_deleted == 0


def test_model_and_source_filters_are_exact(legacy_session):
    ended = {"started_at": OLD, "ended_at": OLD}
    legacy_session(session_id="gpt5_cli", model="openai/gpt-5", source="cli", **ended)
    legacy_session(session_id="gpt5_tg", model="openai/gpt-5", source="telegram", **ended)
    legacy_session(session_id="mini_cli", model="openai/gpt-5-mini", source="cli", **ended)
    result = prune_empty_sessions(now=NOW, model="openai/gpt-5", source="cli")
    assert result.deleted == {"openai/gpt-5": 1}
    assert remaining() == {"gpt5_tg", "mini_cli"}
    assert prune_empty_sessions(now=NOW, model="openai/gpt").total_deleted == 0
    prune_empty_sessions(now=NOW, source="telegram")
    assert remaining() == {"mini_cli"}


def test_dry_run_counts_per_model_and_writes_nothing(landscape):
    gone, kept = landscape
    with CaptureQueriesContext(connection) as queries:
        result = prune_empty_sessions(now=NOW, dry_run=True)
    assert result.dry_run and result.batches == 0
    assert result.deleted == {"openai/gpt-5": 1, "google/gemini-3-pro": 1, None: 1}
    assert remaining() == gone | kept
    assert not [q for q in queries if not q["sql"].lstrip().upper().startswith("SELECT")]


def test_deletes_in_batches(legacy_session):
    spoke = set()
    for i in range(25):
        legacy_session(session_id=f"s{i:02d}a", started_at=OLD, ended_at=OLD)
        add_message(legacy_session(session_id=f"s{i:02d}b", started_at=OLD, ended_at=OLD))
        spoke.add(f"s{i:02d}b")
    with CaptureQueriesContext(connection) as queries:
        result = prune_empty_sessions(now=NOW, batch_size=10)
    assert (result.batches, result.total_deleted, remaining()) == (3, 25, spoke)  # 10 + 10 + 5
    deletes = [q for q in queries if q["sql"].startswith("DELETE") and "rollupmark" not in q["sql"]]
    assert len(deletes) == 3


def test_the_delete_statement_itself_checks_messages_and_children(legacy_session):
    legacy_session(session_id="s1", started_at=OLD, ended_at=OLD)
    with CaptureQueriesContext(connection) as queries:
        prune_empty_sessions(now=NOW)
    deletes = [q["sql"] for q in queries if q["sql"].startswith("DELETE") and "rollupmark" not in q["sql"]]
    assert len(deletes) == 1  # no Collector: no SELECT-then-DELETE-by-pk, no cascade on messages
    assert "sessions_app_session" in deletes[0]
    assert "sessions_app_message" in deletes[0] and "parent_session_id" in deletes[0]
    assert "NOT" in deletes[0].upper()


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"older_than": dt.timedelta(0)}, "older_than"),
        ({"older_than": dt.timedelta(hours=-1)}, "older_than"),
        ({"older_than": 3600}, "older_than"),
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": True}, "batch_size"),
        ({"batch_size": 10**6}, "batch_size"),
    ],
)
def test_bad_arguments_are_refused(landscape, kwargs, field):
    gone, kept = landscape
    with pytest.raises(ValidationError) as exc:
        prune_empty_sessions(**kwargs)
    assert field in exc.value.message_dict
    assert remaining() == gone | kept


@pytest.mark.django_db(transaction=True)
def test_each_batch_commits_on_its_own(legacy_session, monkeypatch):
    for i in range(6):
        legacy_session(session_id=f"s{i}", started_at=OLD, ended_at=OLD)
    real = pruning._delete_batch
    calls = []

    def fail_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("database went away")
        return real(*args, **kwargs)

    monkeypatch.setattr(pruning, "_delete_batch", fail_second)
    with pytest.raises(RuntimeError):
        prune_empty_sessions(now=NOW, batch_size=2)
    assert remaining() == {"s2", "s3", "s4", "s5"}  # the first batch stayed deleted


# --- the command ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30m", 1800), ("24h", 86400), ("7d", 604800), ("2w", 1209600), ("1d12h", 129600), ("90", 90), (" 5S ", 5)],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text, "--older-than") == dt.timedelta(seconds=seconds)


def run(*args, **options):
    out, err = io.StringIO(), io.StringIO()
    call_command("prune_empty_sessions", *args, stdout=out, stderr=err, **options)
    return out.getvalue(), err.getvalue()


@pytest.fixture
def old_sessions(legacy_session):
    ended = {"started_at": timezone.now() - dt.timedelta(days=3), "ended_at": timezone.now() - dt.timedelta(days=3)}
    for i in range(3):
        legacy_session(session_id=f"gpt_{i}", model="openai/gpt-5", **ended)
    legacy_session(session_id="opus_0", model="anthropic/claude-opus-4.6", **ended)
    legacy_session(session_id="open_0", started_at=ended["started_at"])
    return {"gpt_0", "gpt_1", "gpt_2", "opus_0", "open_0"}


def test_command_dry_run_prints_per_model_and_deletes_nothing(old_sessions):
    out, _ = run("--dry-run")
    assert "Would delete 4 empty sessions" in out
    assert [line.split() for line in out.splitlines() if "gpt-5" in line or "opus" in line] == [
        ["openai/gpt-5", "3"],
        ["anthropic/claude-opus-4.6", "1"],
    ]
    assert "still open" in out and ": 1" in out
    assert remaining() == old_sessions


def test_command_json_output(old_sessions):
    out, _ = run("--no-input", "--format", "json", "--older-than", "2d")
    data = json.loads(out)
    assert data["dry_run"] is False and data["older_than_seconds"] == 2 * 86400
    assert data["deleted"] == {
        "total": 4,
        "rows": [{"model": "openai/gpt-5", "sessions": 3}, {"model": "anthropic/claude-opus-4.6", "sessions": 1}],
    }
    assert data["kept"]["total"] == 1 and data["kept"]["reasons"]["open"] == 1
    assert remaining() == {"open_0"}


def test_command_refuses_without_terminal_or_yes(old_sessions, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO("yes\n"))  # piped input is not a confirmation
    with pytest.raises(CommandError, match="--yes"):
        run()
    assert remaining() == old_sessions


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


@pytest.mark.parametrize(("answer", "deleted"), [("yes", True), ("y", True), ("no", False), ("", False)])
def test_command_asks_on_a_terminal(old_sessions, monkeypatch, answer, deleted):
    monkeypatch.setattr(sys, "stdin", FakeTerminal())
    monkeypatch.setattr("builtins.input", lambda: answer)
    if deleted:
        _, err = run()
        assert remaining() == {"open_0"}
    else:
        with pytest.raises(CommandError, match="cancelled"):
            run()
        assert remaining() == old_sessions
    assert "About to delete 4 empty sessions" in err if deleted else True


@pytest.mark.parametrize("flag", ["--yes", "--no-input", "--noinput"])
def test_command_yes_flags_skip_the_prompt(old_sessions, monkeypatch, flag):
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    out, _ = run(flag, "--model", "openai/gpt-5", "--batch-size", "2")
    assert "Deleted 3 empty sessions" in out
    assert remaining() == {"opus_0", "open_0"}


def test_command_include_open(old_sessions):
    run("--yes", "--include-open")
    assert remaining() == set()


def test_command_nothing_to_do(old_sessions):
    out, _ = run("--older-than", "4d")
    assert "Nothing to prune" in out
    assert remaining() == old_sessions


def test_command_warns_about_unknown_model(old_sessions):
    _, err = run("--yes", "--model", "openai/gpt-6")
    assert "No model named 'openai/gpt-6'" in err
    assert remaining() == old_sessions


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--older-than", "24x"], "not a duration"),
        (["--older-than=-5h"], "not a duration"),
        (["--older-than", ""], "not a duration"),
        (["--older-than", "0"], "positive duration"),
        (["--batch-size", "0"], "--batch-size"),
        (["--older-than", "999999d"], "--older-than: 999999 days reaches back before the year 1"),
        (["--older-than", "99999999999d"], "longer than any date range"),
        (["--older-than", "9" * 30], "longer than any date range"),
        (["--model", ""], "--model: must not be empty"),
        (["--source", ""], "--source: must not be empty"),
        (["--tally-keep-days", "-1"], "--tally-keep-days: must be a whole number"),
    ],
)
def test_command_bad_arguments(old_sessions, args, message):
    with pytest.raises(CommandError, match=message):
        run("--yes", *args)
    assert remaining() == old_sessions


def test_command_exit_status_on_bad_duration():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    proc = subprocess.run(
        [sys.executable, "manage.py", "prune_empty_sessions", "--older-than", "soon"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert "not a duration" in proc.stderr and proc.stdout == ""


# --- races with real concurrent writers ----------------------------------------------------------


def append_in_subprocess(session_id: str, *, batches=1, per_batch=1, worker=0, start_at=0.0) -> subprocess.Popen:
    """tests/concurrent_worker.py: appends through the real save path from another process."""
    args = [connection.settings_dict["NAME"], worker, session_id, batches, per_batch, start_at]
    return subprocess.Popen(
        [sys.executable, "-m", "tests.concurrent_worker", *map(str, args)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen) -> str:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    return out


@pytest.mark.django_db(transaction=True)
def test_first_message_committed_after_selection_keeps_the_session(legacy_session, monkeypatch):
    for session_id in ("target", "other"):
        legacy_session(session_id=session_id, started_at=OLD, ended_at=OLD)
    real = pruning._delete_batch

    def writer_wins_the_race(eligible, batch, **kwargs):
        assert set(batch) == {"target", "other"}  # both were selected as candidates
        finish(append_in_subprocess("target"))  # another process commits a first message now
        return real(eligible, batch, **kwargs)

    monkeypatch.setattr(pruning, "_delete_batch", writer_wins_the_race)
    result = prune_empty_sessions(now=NOW)
    assert remaining() == {"target"}
    assert list(Message.objects.filter(session_id="target").values_list("content", flat=True)) == ["w0-b0-m0"]
    assert result.total_deleted == 1 and result.kept["changed"] == 1


@pytest.mark.django_db(transaction=True)
def test_child_created_after_selection_keeps_the_parent(legacy_session, monkeypatch):
    legacy_session(session_id="parent", started_at=OLD, ended_at=OLD)
    real = pruning._delete_batch

    def child_appears(eligible, batch, **kwargs):
        add_message(legacy_session(session_id="child", started_at=NOW, parent_session_id="parent"))
        return real(eligible, batch, **kwargs)

    monkeypatch.setattr(pruning, "_delete_batch", child_appears)
    result = prune_empty_sessions(now=NOW)
    assert remaining() == {"parent", "child"}
    assert result.kept["changed"] == 1


@pytest.mark.django_db(transaction=True)
def test_session_locked_by_an_open_write_transaction_is_skipped(legacy_session, vendor):
    if vendor == "sqlite":
        pytest.skip("SQLite serializes write transactions: a prune cannot run while a writer holds one.")
    legacy_session(session_id="target", started_at=OLD, ended_at=OLD)
    legacy_session(session_id="other", started_at=OLD, ended_at=OLD)
    with HoldingWriter("target") as writer:  # its first message is inserted, not committed
        result = prune_empty_sessions(now=NOW)  # the message is invisible to us, but the row is locked
        assert result.total_deleted == 1 and result.kept["locked"] == 1
        writer.commit()
    assert remaining() == {"target"}
    assert Message.objects.get().content == "a late first message"


@pytest.mark.django_db(transaction=True)
def test_writers_racing_a_prune_lose_nothing(legacy_session):
    for i in range(60):
        legacy_session(session_id=f"cand_{i:02d}", started_at=OLD, ended_at=OLD)
    targets = ["cand_07", "cand_23", "cand_41", "cand_58"]
    start_at = time.time() + 2.0  # the writers import Django first, then all start together
    writers = [
        append_in_subprocess(target, batches=3, per_batch=2, worker=w, start_at=start_at)
        for w, target in enumerate(targets)
    ]
    time.sleep(max(0.0, start_at - time.time()))
    result = prune_empty_sessions(now=NOW, batch_size=5)
    for writer in writers:
        finish(writer)
    # Whether a writer came before, during or after the prune, its session exists with every message.
    assert remaining() == set(targets)
    for w, target in enumerate(targets):
        contents = set(Message.objects.filter(session_id=target).values_list("content", flat=True))
        assert contents == {f"w{w}-b{b}-m{m}" for b in range(3) for m in range(2)}
    # A target pruned before its writer came is counted as deleted (and then created again by the writer).
    assert 56 <= result.total_deleted <= 60
    assert result.total_deleted + result.kept["changed"] + result.kept["locked"] <= 60
