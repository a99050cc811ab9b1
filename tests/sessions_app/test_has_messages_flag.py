"""Session.has_messages equals EXISTS(message rows) after every kind of writer, on every backend.

The expected flags are written out from how each test builds its data; ``assert_flags_exact``
additionally compares every session's flag with the rows as they are.
"""

import importlib
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from django.db import connection

from sessions_app.models import Message, Session
from sessions_app.services import append_messages

ROOT = Path(__file__).resolve().parents[2]
migration = importlib.import_module("sessions_app.migrations.0004_session_has_messages")
TRIGGERS = {"sessions_app_message_flag_insert", "sessions_app_message_flag_delete", "sessions_app_message_flag_move"}


def flags() -> dict[str, bool]:
    return dict(Session.objects.values_list("pk", "has_messages"))


def assert_flags_exact() -> None:
    with_rows = set(Message.objects.values_list("session_id", flat=True))
    assert flags() == {pk: pk in with_rows for pk in Session.objects.values_list("pk", flat=True)}


def message(session, content="hello", **fields):
    return Message(session=session, role="user", content=content, **fields)


def test_migrations_installed_the_triggers(db, vendor):
    with connection.cursor() as cursor:
        if vendor == "sqlite":
            cursor.execute(
                "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'sessions_app_message'"
            )
        elif vendor == "postgresql":
            cursor.execute(
                "SELECT tgname FROM pg_trigger WHERE tgrelid = 'sessions_app_message'::regclass AND NOT tgisinternal"
            )
        else:
            cursor.execute(
                "SELECT trigger_name FROM information_schema.triggers "
                "WHERE event_object_schema = DATABASE() AND event_object_table = 'sessions_app_message'"
            )
        names = {row[0] for row in cursor.fetchall()}
    extra = {
        "postgresql": {"sessions_app_message_flag_truncate"},
        "sqlite": {  # migration 0009: REPLACE deletes without delete triggers there
            "sessions_app_message_flag_replace",
            "sessions_app_message_flag_replace_id",
            "sessions_app_message_flag_replaced_insert",
            "sessions_app_message_flag_replaced_update",
        },
    }
    assert names == TRIGGERS | extra.get(vendor, set())


def test_append_messages_sets_the_flag_once(db):
    Session.objects.create(id="empty", source="cli")
    _, created = append_messages("talk", [{"role": "user", "content": "hi"}], model="m", source="cli")
    assert created
    assert flags() == {"empty": False, "talk": True}
    append_messages("talk", [{"role": "assistant", "content": "hello"}] * 3, model="m", source="cli")
    assert flags() == {"empty": False, "talk": True}
    assert_flags_exact()


def test_create_and_bulk_create(db, legacy_session):
    one, two, three, untouched = (legacy_session() for _ in range(4))
    Message.objects.create(session=one, role="user", content="first")
    assert flags() == {one.pk: True, two.pk: False, three.pk: False, untouched.pk: False}
    Message.objects.bulk_create([message(two), message(three), message(three), message(one)])
    assert flags() == {one.pk: True, two.pk: True, three.pk: True, untouched.pk: False}
    assert_flags_exact()


def test_queryset_delete_clears_only_when_the_last_row_goes(db, legacy_session):
    one, two, three = (legacy_session() for _ in range(3))
    Message.objects.bulk_create([message(one, "a"), message(one, "b"), message(two, "c"), message(three, "d")])
    Message.objects.filter(session=one, content="a").delete()
    assert flags() == {one.pk: True, two.pk: True, three.pk: True}
    # One statement over several sessions: one loses its last row, one keeps one.
    Message.objects.filter(content__in=["b", "c"]).delete()
    assert flags() == {one.pk: False, two.pk: False, three.pk: True}
    assert_flags_exact()


def test_cascading_session_delete(db, legacy_session):
    doomed, kept = legacy_session(), legacy_session()
    Message.objects.bulk_create([message(doomed), message(doomed), message(kept)])
    doomed.delete()
    assert flags() == {kept.pk: True}
    assert Message.objects.count() == 1


def test_moving_messages_between_sessions(db, legacy_session):
    source, target, other = legacy_session(), legacy_session(), legacy_session()
    first, second = Message.objects.bulk_create([message(source, "a"), message(source, "b")])
    Message.objects.create(session=other, role="user", content="c")
    Message.objects.filter(pk=first.pk).update(session=target)
    assert flags() == {source.pk: True, target.pk: True, other.pk: True}
    Message.objects.filter(pk=second.pk).update(session=target)
    assert flags() == {source.pk: False, target.pk: True, other.pk: True}
    # An update that does not move anything leaves the flags alone.
    Message.objects.filter(session=target).update(content="edited")
    assert flags() == {source.pk: False, target.pk: True, other.pk: True}
    assert_flags_exact()


def second_connection():
    """A DB-API connection of its own to the test database (not Django's)."""
    settings = connection.settings_dict
    if connection.vendor == "sqlite":
        return sqlite3.connect(settings["NAME"], timeout=20, isolation_level=None), "?"
    if connection.vendor == "postgresql":
        import psycopg

        conn = psycopg.connect(
            dbname=settings["NAME"],
            user=settings["USER"],
            password=settings["PASSWORD"] or None,
            host=settings["HOST"],
            port=settings["PORT"] or None,
            autocommit=True,
        )
        return conn, "%s"
    import MySQLdb

    conn = MySQLdb.connect(
        db=settings["NAME"],
        user=settings["USER"],
        password=settings["PASSWORD"],
        host=settings["HOST"],
        port=int(settings["PORT"] or 3306),
        autocommit=True,
    )
    return conn, "%s"


@pytest.mark.django_db(transaction=True)
def test_raw_sql_from_another_connection(legacy_session):
    one, two = legacy_session(), legacy_session()
    conn, p = second_connection()
    try:
        cur = conn.cursor()
        insert = f"INSERT INTO sessions_app_message (session_id, role, timestamp) VALUES ({p}, 'user', {p})"  # noqa: S608
        cur.execute(insert, (one.pk, "2026-01-01 00:00:00"))
        cur.execute(insert, (one.pk, "2026-01-01 00:00:01"))
        cur.execute(insert, (two.pk, "2026-01-01 00:00:02"))
        assert flags() == {one.pk: True, two.pk: True}
        cur.execute(f"DELETE FROM sessions_app_message WHERE session_id = {p}", (two.pk,))  # noqa: S608
        assert flags() == {one.pk: True, two.pk: False}
        cur.execute("DELETE FROM sessions_app_message")
        assert flags() == {one.pk: False, two.pk: False}
    finally:
        conn.close()


def test_backfill_sets_every_flag_from_the_rows(db, legacy_session):
    sessions = [legacy_session() for _ in range(7)]
    with_rows = {s.pk for s in sessions[::2]}  # 0, 2, 4, 6
    Message.objects.bulk_create([message(s) for s in sessions if s.pk in with_rows])
    # Wrong both ways, as after a restore: rows without the flag, the flag without rows.
    wrong = {sessions[0].pk: False, sessions[2].pk: False, sessions[1].pk: True}
    for pk, value in wrong.items():
        Session.objects.filter(pk=pk).update(has_messages=value)
    assert migration.fill_flag(connection, batch_size=2) == len(wrong)
    assert flags() == {s.pk: s.pk in with_rows for s in sessions}
    assert migration.fill_flag(connection, batch_size=2) == 0


# -- real processes, real server ---------------------------------------------------------------

WORKER = textwrap.dedent(
    """
    import os, sys, time
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import django
    from django.conf import settings
    db_name, role, start_at, count = sys.argv[1:]
    settings.DATABASES["default"]["NAME"] = db_name
    django.setup()
    from django.db import transaction
    from agents_app.db import run_with_retry
    from sessions_app.models import Message
    from sessions_app.services import append_messages

    def delete(session_id, content):
        def attempt():
            with transaction.atomic():
                return Message.objects.filter(session_id=session_id, content=content).delete()[0]
        assert run_with_retry(attempt) == 1

    def add(session_id, content):
        append_messages(session_id, [{"role": "user", "content": content}], model="m", source="cli")

    time.sleep(max(0.0, float(start_at) - time.time()))
    for i in range(int(count)):
        if role == "d1":
            delete(f"a{i}", "first")
            delete(f"b{i}", "old")
        elif role == "d2":
            delete(f"a{i}", "second")
        elif role == "a1":
            add(f"b{i}", "new")
            add(f"c{i}", "one")
        else:
            add(f"c{i}", "two")
    """
)
SESSIONS_PER_GROUP = 30


@pytest.mark.django_db(transaction=True)
def test_concurrent_processes_adding_first_and_deleting_last_messages(legacy_session):
    """Group a: two processes delete the last two rows of each session. Group b: one deletes
    the only row while another appends a new one. Group c: two append the first rows at once."""
    n = SESSIONS_PER_GROUP
    for i in range(n):
        a, b = legacy_session(session_id=f"a{i}"), legacy_session(session_id=f"b{i}")
        legacy_session(session_id=f"c{i}")
        Message.objects.bulk_create([message(a, "first"), message(a, "second"), message(b, "old")])
    start_at = time.time() + 2.0
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, connection.settings_dict["NAME"], role, str(start_at), str(n)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for role in ("d1", "d2", "a1", "a2")
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err
    expected = (
        {f"a{i}": False for i in range(n)} | {f"b{i}": True for i in range(n)} | {f"c{i}": True for i in range(n)}
    )
    assert flags() == expected
    contents = sorted(Message.objects.values_list("session_id", "content"))
    assert contents == sorted(
        [(f"b{i}", "new") for i in range(n)] + [(f"c{i}", c) for i in range(n) for c in ("one", "two")]
    )
    assert_flags_exact()
