"""Faults injected into the save path: a killed writer, a terminated connection, a read-only or
full SQLite file. Each must leave whole batches or nothing, exact counters, and a clear error.

The SIGKILL tests start ``_writer`` in a child process (``WRITER_COMMAND``) and kill it.
"""

import contextlib
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.db import DEFAULT_DB_ALIAS, DatabaseError, InterfaceError, OperationalError, connection, connections

from agents_app import db as hermes_db
from agents_app.agent import Agent
from agents_app.models import AbandonedAgentTally, LanguageModel
from sessions_app import _sql
from sessions_app.models import Message, Session
from sessions_app.services import append_messages

ROOT = Path(__file__).resolve().parents[1]
KILL_BATCH = 200


# -- the writer process ------------------------------------------------------------------------


WRITER_COMMAND = """
import os, sys
os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
import django
from django.conf import settings
settings.DATABASES["default"]["NAME"] = sys.argv[1]
django.setup()
from tests.test_faults import _writer
_writer(*sys.argv[2:])
"""


def _writer(mode: str, session_id: str) -> None:
    fw, append = _sql, append_messages
    if mode == "hang-before-commit":
        insert = fw.insert_messages

        def insert_then_hang(*args, **kwargs):
            insert(*args, **kwargs)
            print("inserted", flush=True)  # the rows are in, the transaction is open: kill me now
            time.sleep(120)

        fw.insert_messages = insert_then_hang
        append(session_id, _batch("hang", KILL_BATCH), model="m", source="cli")
    elif mode == "loop":
        print("ready", flush=True)
        for number in range(10_000):
            append(session_id, _batch(f"{os.getpid()}-{number}", KILL_BATCH), model="m", source="cli")
            print(f"committed {number}", flush=True)


def _batch(prefix: str, count: int) -> list[dict]:
    return [
        {"role": "user", "content": f"{prefix}/{m} " + "x" * 500, "tool_calls": [{"id": "t"}] if m % 4 == 0 else None}
        for m in range(count)
    ]


def _start_writer(mode: str, session_id: str) -> subprocess.Popen:
    command = [sys.executable, "-c", WRITER_COMMAND, str(connection.settings_dict["NAME"]), mode, session_id]
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    watchdog = threading.Timer(120, proc.kill)
    watchdog.daemon = True
    watchdog.start()
    return proc


def _wait_for(proc: subprocess.Popen, line: str) -> None:
    got = proc.stdout.readline().strip()
    if got != line:
        proc.kill()
        pytest.fail(f"writer said {got!r} instead of {line!r}: {proc.stderr.read()[-3000:]}")


def _kill(proc: subprocess.Popen) -> list[str]:
    proc.send_signal(signal.SIGKILL)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    return out.splitlines()


def _assert_counters_equal_rows():
    for session in Session.objects.all():
        contents = list(session.messages.values_list("content", "tool_calls"))
        assert session.message_count == len(contents), session.pk
        assert session.tool_call_count == sum(len(calls or ()) for _, calls in contents), session.pk


def _assert_healthy_and_writable(session_id: str):
    """The killed writer's locks are gone: another writer gets through at once."""
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA integrity_check")
            assert cursor.fetchall() == [("ok",)]
    before = Message.objects.filter(session_id=session_id).count()
    append_messages(session_id, _batch("after", 1), model="m", source="cli")
    assert Message.objects.filter(session_id=session_id).count() == before + 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("existing", [False, True], ids=["new-session", "existing-session"])
def test_writer_killed_between_insert_and_commit_leaves_nothing(existing):
    if existing:
        append_messages("victim", _batch("first", 3), model="m", source="cli")
    proc = _start_writer("hang-before-commit", "victim")
    _wait_for(proc, "inserted")
    _kill(proc)
    if existing:
        assert list(Message.objects.values_list("content", flat=True)) == [m["content"] for m in _batch("first", 3)]
        assert Session.objects.get().message_count == 3
    else:
        assert not Session.objects.exists()
        assert not Message.objects.exists()
    _assert_counters_equal_rows()
    _assert_healthy_and_writable("victim")


@pytest.mark.django_db(transaction=True)
def test_writers_killed_at_random_moments_leave_whole_batches():
    rng = random.Random(6)
    committed = set()
    for _ in range(3):
        proc = _start_writer("loop", "looped")
        _wait_for(proc, "ready")
        time.sleep(rng.uniform(0.2, 0.8))
        said = _kill(proc)
        committed |= {f"{proc.pid}-{line.split()[1]}" for line in said if line.startswith("committed")}
    batches: dict[str, int] = {}
    for content in Message.objects.values_list("content", flat=True):
        prefix = content.split("/")[0]
        batches[prefix] = batches.get(prefix, 0) + 1
    assert committed, "no batch committed before the kills: make the delay longer"
    assert committed <= set(batches)  # every batch the writer saw committed is there
    assert set(batches.values()) == {KILL_BATCH}  # and every batch there is whole
    _assert_counters_equal_rows()
    _assert_healthy_and_writable("looped")


# -- a server: the connection terminated mid-save ----------------------------------------------


def _terminate_writer_backend():
    """Kill this process's database connection from another connection, and wait until it is gone."""
    other = connections.create_connection(DEFAULT_DB_ALIAS)
    try:
        with other.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute("SELECT pg_terminate_backend(%s, 10000)", [connection.connection.info.backend_pid])
                assert cursor.fetchone() == (True,)
                return
            thread_id = connection.connection.thread_id()
            cursor.execute(f"KILL CONNECTION {int(thread_id)}")
            for _ in range(100):
                cursor.execute("SELECT COUNT(*) FROM information_schema.processlist WHERE id = %s", [thread_id])
                if cursor.fetchone() == (0,):
                    return
                time.sleep(0.05)
            pytest.fail(f"connection {thread_id} still alive after KILL")
    finally:
        other.close()


@pytest.fixture
def server_only(transactional_db):
    if connection.vendor == "sqlite":
        pytest.skip("not applicable: SQLite has no server connection to lose")


@pytest.mark.parametrize("where", ["at-next-statement", "at-commit"])
@pytest.mark.parametrize("existing", [False, True], ids=["new-session", "existing-session"])
def test_connection_terminated_mid_flush_keeps_the_agent_buffer(server_only, monkeypatch, where, existing):
    agent = Agent("m", "cli")
    if existing:
        agent.add_message("user", "saved before the fault")
        agent.flush()
    insert = _sql.insert_messages

    def insert_then_lose_connection(*args, **kwargs):
        insert(*args, **kwargs)
        _terminate_writer_backend()
        if where == "at-next-statement":
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")

    monkeypatch.setattr(_sql, "insert_messages", insert_then_lose_connection)
    agent.add_message("user", "one", tool_calls=[{"id": "a"}])
    agent.add_message("assistant", "two")
    with pytest.raises((OperationalError, InterfaceError)) as info:
        agent.flush()
    assert any(word in str(info.value) for word in ("terminat", "closed", "gone away", "Lost connection"))
    assert agent.pending_count == 2  # nothing dropped: the buffer waits for the retry
    monkeypatch.setattr(_sql, "insert_messages", insert)

    # The failed connection was dropped; the next call connects again by itself.
    expected = ["saved before the fault"] if existing else []
    assert list(Message.objects.values_list("content", flat=True)) == expected
    assert agent.flush() == 2
    agent.end()
    session = Session.objects.get(pk=agent.session_id)
    assert list(session.messages.values_list("content", flat=True)) == [*expected, "one", "two"]
    assert (session.message_count, session.tool_call_count, session.end_reason) == (len(expected) + 2, 1, "completed")


def test_connection_terminated_between_flushes_is_reconnected(server_only):
    agent = Agent("m", "cli")
    agent.add_message("user", "one")
    agent.flush()
    _terminate_writer_backend()  # e.g. a server restart or an idle-connection reaper
    agent.add_message("user", "two")
    with pytest.raises((OperationalError, InterfaceError)):
        agent.flush()  # the dead connection is found on first use: a clear error, not a silent loss
    assert agent.pending_count == 1
    assert agent.flush() == 1
    assert list(Message.objects.values_list("content", flat=True)) == ["one", "two"]
    assert Session.objects.get().message_count == 2


# -- SQLite: a read-only file and a full disk --------------------------------------------------


@contextlib.contextmanager
def sqlite_alias(name: str, *, alias: str = "faults"):
    """A second database alias on an SQLite file, configured like the project's SQLite setting."""
    config = {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": name,
        "OPTIONS": {
            "transaction_mode": "IMMEDIATE",
            "timeout": 5,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA foreign_keys=ON;",
        },
    }
    connections.settings[alias] = connections.configure_settings({DEFAULT_DB_ALIAS: {}, alias: config})[alias]
    try:
        yield connections[alias]
    finally:
        connections[alias].close()
        del connections[alias]
        del connections.settings[alias]


def _create_tables(alias: str):
    with connections[alias].schema_editor() as editor:
        for model in (LanguageModel, Session, Message, AbandonedAgentTally):
            editor.create_model(model)


def snapshot(alias: str) -> dict:
    return {
        model.__name__: list(model.objects.using(alias).order_by("pk").values())
        for model in (LanguageModel, Session, Message, AbandonedAgentTally)
    }


def integrity(path: Path) -> str:
    import sqlite3

    with contextlib.closing(sqlite3.connect(path)) as db:
        return db.execute("PRAGMA integrity_check").fetchone()[0]


@pytest.fixture
def sqlite_file(django_db_blocker, tmp_path):
    """A migrated SQLite file with one session, on its own alias; the test database is not used
    (a test database would not know the alias), so these run alike on every backend."""
    path = tmp_path / "faults.sqlite3"
    with django_db_blocker.unblock():
        with sqlite_alias(str(path)):
            _create_tables("faults")
            agent = Agent("m", "cli", session_id="existing", using="faults")
            agent.add_message("user", "committed before the fault")
            agent.end()
        yield path


def test_read_only_sqlite_file_gives_a_clear_error(sqlite_file):
    with sqlite_alias(str(sqlite_file)):
        before = snapshot("faults")
    # mode=ro: a file mode of 0444 would not stop root, who runs CI.
    with sqlite_alias(f"file:{sqlite_file}?mode=ro"):
        for session_id in ("existing", "new"):
            agent = Agent("m", "cli", session_id=session_id, using="faults")
            agent.add_message("user", "cannot be written")
            with pytest.raises(OperationalError, match=r"readonly|read-only|unable to open"):
                agent.flush()
            assert agent.pending_count == 1
        with pytest.raises(OperationalError, match=r"readonly|read-only|unable to open"):
            Agent("m", "cli", using="faults").end("timeout")  # the tally upsert fails the same way
    assert integrity(sqlite_file) == "ok"
    with sqlite_alias(str(sqlite_file)):
        assert snapshot("faults") == before
        assert agent.flush() == 1  # writable again: the kept buffer is written once
        assert Message.objects.using("faults").filter(session_id="new").count() == 1


@pytest.mark.parametrize("session_id", ["existing", "new"])
def test_full_sqlite_disk_gives_a_clear_error_and_no_half_write(sqlite_file, session_id):
    with sqlite_alias(str(sqlite_file)) as faults:
        before = snapshot("faults")
        with faults.cursor() as cursor:
            cursor.execute("PRAGMA page_count")
            (pages,) = cursor.fetchone()
            cursor.execute(f"PRAGMA max_page_count = {pages + 1}")
        agent = Agent("m", "cli", session_id=session_id, using="faults")
        for number in range(200):
            agent.add_message("user", f"{number} " + "y" * 2000)
        with pytest.raises(OperationalError, match="full"):
            agent.flush()
        assert agent.pending_count == 200
        assert snapshot("faults") == before
    assert integrity(sqlite_file) == "ok"
    with sqlite_alias(str(sqlite_file)):
        assert snapshot("faults") == before  # also as a new connection sees it
        assert agent.flush() == 200  # space again (no max_page_count on this connection)
        stored = Session.objects.using("faults").get(pk=session_id)
        assert stored.message_count == stored.messages.count() == 200 + (session_id == "existing")


def test_validation_still_comes_first_on_a_broken_database(sqlite_file):
    with sqlite_alias(f"file:{sqlite_file}?mode=ro"):
        agent = Agent("m", "cli", using="faults")
        with pytest.raises(ValidationError):
            agent.add_message("robot", "bad role")
        with pytest.raises(ValidationError):
            append_messages("s", [{"role": "robot"}], model="m", source="cli", using="faults")


def test_database_errors_are_not_mistaken_for_transient_conflicts():
    # Only a conflict the database asks us to retry is retried; a lost connection or a full disk
    # must reach the caller at once (a retry of an ambiguous commit could write twice).
    assert hermes_db.is_transient(OperationalError("database is locked"))
    for message in ("database or disk is full", "attempt to write a readonly database", "terminating connection"):
        assert not hermes_db.is_transient(OperationalError(message))
    assert issubclass(OperationalError, DatabaseError)
