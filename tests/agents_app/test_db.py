"""Transient database errors, in one list (``agents_app.db.TRANSIENT_ERRORS``), are retried; the
others reach the caller at once. On MariaDB, a foreign ``INSERT ... SELECT`` into the message
table makes the save path fail on the AUTO-INC lock (1467) unless that is retried (issue 23)."""

import logging
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from unittest import mock

import psycopg
import pytest
from django.db import OperationalError, connection
from psycopg import errors as pg_errors

from agents_app import db as hermes_db
from agents_app.db import TRANSIENT_ERRORS, is_transient
from sessions_app.models import Message, Session
from sessions_app.services import append_messages

ROOT = Path(__file__).resolve().parents[2]


def _wrapped(cause: BaseException) -> OperationalError:
    """The driver's error as Django raises it (``DatabaseErrorWrapper``: same args, the cause kept)."""
    exc = OperationalError(*cause.args)
    exc.__cause__ = cause
    return exc


def _sqlite_error(code: int, message: str) -> sqlite3.OperationalError:
    exc = sqlite3.OperationalError(message)
    exc.sqlite_errorcode = code
    return exc


def _mysql_error(number: int, message: str = "error"):
    mysqldb = pytest.importorskip("MySQLdb")
    return mysqldb.OperationalError(number, message)


@pytest.mark.parametrize("sqlstate", sorted(TRANSIENT_ERRORS["postgresql"]))
def test_every_listed_postgresql_error_is_transient(sqlstate):
    assert is_transient(_wrapped(pg_errors.lookup(sqlstate)("conflict")))


@pytest.mark.parametrize("number", sorted(TRANSIENT_ERRORS["mysql"]))
def test_every_listed_mysql_error_is_transient(number):
    assert is_transient(_wrapped(_mysql_error(number)))


@pytest.mark.parametrize("code", [5, 6, 5 | 1 << 8, 5 | 2 << 8, 5 | 3 << 8, 6 | 1 << 8])
def test_sqlite_busy_and_locked_with_their_extended_codes_are_transient(code):
    assert is_transient(_wrapped(_sqlite_error(code, "database is locked")))


@pytest.mark.parametrize(
    "cause",
    [
        lambda: pg_errors.lookup("57014")("canceling statement due to statement timeout"),
        lambda: pg_errors.lookup("53100")("could not extend file: No space left on device"),
        lambda: pg_errors.lookup("57P01")("terminating connection due to administrator command"),
        lambda: psycopg.OperationalError("server closed the connection unexpectedly"),
        lambda: _mysql_error(2013, "Lost connection to MySQL server during query"),
        lambda: _mysql_error(2006, "MySQL server has gone away"),
        lambda: _mysql_error(1114, "The table is full"),
        lambda: _mysql_error(3024, "Query execution was interrupted, maximum statement execution time exceeded"),
        lambda: _sqlite_error(13, "database or disk is full"),
        lambda: _sqlite_error(8, "attempt to write a readonly database"),
        lambda: _sqlite_error(11, "database disk image is malformed"),
    ],
    ids=lambda cause: "",
)
def test_errors_a_retry_cannot_cure_or_could_write_twice_are_not_transient(cause):
    assert not is_transient(_wrapped(cause()))


def test_transient_errors_are_retried_and_the_rest_raised_at_once(monkeypatch):
    monkeypatch.setattr(hermes_db.time, "sleep", lambda seconds: None)
    monkeypatch.setattr(hermes_db, "connections", {"default": mock.Mock(in_atomic_block=False)})
    calls = []

    def deadlocked_twice():
        calls.append(1)
        if len(calls) <= 2:
            raise _wrapped(_mysql_error(1467, "Failed to read auto-increment value from storage engine"))
        return "written"

    assert hermes_db.run_with_retry(deadlocked_twice) == "written" and len(calls) == 3


def test_retries_stop_after_the_attempts_or_the_time_allowed(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(hermes_db.time, "sleep", lambda seconds: clock.__setitem__(0, clock[0] + seconds))
    monkeypatch.setattr(hermes_db.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(hermes_db, "connections", {"default": mock.Mock(in_atomic_block=False)})
    calls = []

    def always_locked(wait: float):
        calls.append(1)
        clock[0] += wait  # the lock wait the database spent before giving up
        raise _wrapped(_sqlite_error(5, "database is locked"))

    with pytest.raises(OperationalError):
        hermes_db.run_with_retry(lambda: always_locked(0.0))
    assert len(calls) == hermes_db.RETRY_ATTEMPTS
    calls.clear()
    with pytest.raises(OperationalError):
        hermes_db.run_with_retry(lambda: always_locked(20.0))  # SQLite's busy timeout, spent each time
    assert len(calls) == 2  # a third run would start past RETRY_WITHIN


FOREIGN_INSERT_SELECT = """
import os, sys, time
os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
import django
from django.conf import settings
settings.DATABASES["default"]["NAME"] = sys.argv[1]
django.setup()
from django.db import connection
until = time.time() + float(sys.argv[2])
statements = 0
with connection.cursor() as cursor:
    while time.time() < until:
        # Another client copying messages in bulk: InnoDB holds the table's AUTO-INC lock for the
        # whole statement, and the has_messages trigger locks each row's session meanwhile.
        cursor.execute(
            "INSERT INTO sessions_app_message (session_id, role, content, timestamp, model_id) "
            "SELECT session_id, role, 'copied', timestamp, model_id FROM sessions_app_message "
            "WHERE session_id IN ('s0', 's1', 's2', 's3') AND content = 'seed' LIMIT 200"
        )
        statements += 1
print(statements)
"""


@pytest.mark.django_db(transaction=True)
def test_the_save_path_beside_a_foreign_insert_select_loses_nothing(vendor, caplog):
    if vendor != "mysql":
        pytest.skip("not applicable: only InnoDB has a table-level AUTO-INC lock (1467)")
    sessions = [f"s{i}" for i in range(4)]
    for session_id in sessions:
        append_messages(session_id, [{"role": "user", "content": "seed"}] * 50, model="m", source="cli")
    foreign = subprocess.Popen(
        [sys.executable, "-c", FOREIGN_INSERT_SELECT, connection.settings_dict["NAME"], "8"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    mine = 0
    try:
        time.sleep(2)  # the other process has started Django and is copying
        with caplog.at_level(logging.WARNING, logger="agents_app.db"):
            deadline = time.time() + 5
            while time.time() < deadline:
                append_messages(sessions[mine % 4], [{"role": "user", "content": "mine"}], model="m", source="cli")
                mine += 1
    finally:
        out, err = foreign.communicate(timeout=60)
    assert foreign.returncode == 0, err
    assert int(out) > 0
    assert any("1467" in record.getMessage() for record in caplog.records), "the race did not happen"
    assert Message.objects.filter(content="mine").count() == mine  # every call wrote its message, once
    for session in Session.objects.all():
        assert session.message_count == 50 + Message.objects.filter(session=session, content="mine").count()
        assert session.has_messages
