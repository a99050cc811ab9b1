"""The has_messages flag stays exact when a row is replaced rather than deleted (issue 23): SQLite's
INSERT OR REPLACE / UPDATE OR REPLACE (which fire no delete trigger), MariaDB's REPLACE and
ON DUPLICATE KEY UPDATE, PostgreSQL's ON CONFLICT DO UPDATE, each from a raw connection of its own
that knows nothing of our settings. TRUNCATE on MariaDB is outside what triggers see: it is
documented, and ``verify_sessions`` finds and repairs the drift it leaves."""

import io

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from sessions_app.models import Message, Session
from tests.sessions_app.test_has_messages_flag import assert_flags_exact, flags, second_connection

T = "2026-01-01 00:00:00"


@pytest.fixture
def raw(transactional_db, legacy_session):
    """Sessions a (one message, id 101), b (two: 201, 202), c (none), and a raw connection."""
    for session_id in ("a", "b", "c"):
        legacy_session(session_id=session_id)
    conn, p = second_connection()
    cursor = conn.cursor()
    insert = f"INSERT INTO sessions_app_message (id, session_id, role, timestamp) VALUES ({p}, {p}, 'user', {p})"  # noqa: S608
    for message_id, session_id in ((101, "a"), (201, "b"), (202, "b")):
        cursor.execute(insert, (message_id, session_id, T))
    assert flags() == {"a": True, "b": True, "c": False}
    yield cursor, p
    conn.close()


def _replacing(vendor: str, p: str) -> str:
    """The statement that writes message (id, session_id) over an existing id, in this dialect."""
    columns = "(id, session_id, role, timestamp) VALUES"
    if vendor == "sqlite":
        return f"INSERT OR REPLACE INTO sessions_app_message {columns} ({p}, {p}, 'user', {p})"
    if vendor == "mysql":
        return f"REPLACE INTO sessions_app_message {columns} ({p}, {p}, 'user', {p})"
    return (
        f"INSERT INTO sessions_app_message {columns} ({p}, {p}, 'user', {p}) "
        "ON CONFLICT (id) DO UPDATE SET session_id = EXCLUDED.session_id"
    )


def test_replacing_a_sessions_only_message_with_another_sessions_clears_its_flag(raw, vendor):
    cursor, p = raw
    cursor.execute(_replacing(vendor, p), (101, "c", T))  # a's only message becomes c's
    assert flags() == {"a": False, "b": True, "c": True}
    assert list(Message.objects.values_list("id", "session_id").order_by("id")) == [(101, "c"), (201, "b"), (202, "b")]
    assert_flags_exact()


def test_replacing_one_of_two_keeps_the_flag(raw, vendor):
    cursor, p = raw
    cursor.execute(_replacing(vendor, p), (201, "a", T))  # b keeps 202
    assert flags() == {"a": True, "b": True, "c": False}
    cursor.execute(_replacing(vendor, p), (202, "b", T))  # replaced within its own session
    assert flags() == {"a": True, "b": True, "c": False}
    assert_flags_exact()


def test_several_rows_replaced_in_one_statement(raw, vendor):
    cursor, p = raw
    if vendor == "postgresql":
        pytest.skip("not applicable: ON CONFLICT cannot touch one row twice; one row each is tested above")
    verb = "INSERT OR REPLACE" if vendor == "sqlite" else "REPLACE"
    cursor.execute(
        f"{verb} INTO sessions_app_message (id, session_id, role, timestamp) "
        f"VALUES (201, 'c', 'user', {p}), (202, 'c', 'user', {p}), (101, 'c', 'user', {p})",
        (T, T, T),
    )
    assert flags() == {"a": False, "b": False, "c": True}
    assert_flags_exact()


def test_sqlite_update_or_replace_of_an_id(raw, vendor):
    if vendor != "sqlite":
        pytest.skip("not applicable: UPDATE OR REPLACE is SQLite's")
    cursor, _ = raw
    cursor.execute("UPDATE OR REPLACE sessions_app_message SET id = 101 WHERE id = 201")  # a's row goes
    assert flags() == {"a": False, "b": True, "c": False}
    cursor.execute("UPDATE OR REPLACE sessions_app_message SET id = 202, session_id = 'c' WHERE id = 101")
    assert flags() == {"a": False, "b": False, "c": True}
    assert_flags_exact()


def test_an_ignored_insert_leaves_every_flag_as_it_was(raw, vendor):
    cursor, p = raw
    verb = {"sqlite": "INSERT OR IGNORE", "mysql": "INSERT IGNORE", "postgresql": "INSERT"}[vendor]
    tail = " ON CONFLICT DO NOTHING" if vendor == "postgresql" else ""
    cursor.execute(
        f"{verb} INTO sessions_app_message (id, session_id, role, timestamp) VALUES (101, 'c', 'user', {p}){tail}",
        (T,),
    )
    assert flags() == {"a": True, "b": True, "c": False}  # 101 is still a's
    Message.objects.create(session_id="c", role="user")  # a later insert settles any note left behind
    assert flags() == {"a": True, "b": True, "c": True}
    assert_flags_exact()


def test_mariadb_on_duplicate_key_update_moves_the_flag(raw, vendor):
    if vendor != "mysql":
        pytest.skip("not applicable: MariaDB's upsert")
    cursor, _ = raw
    cursor.execute(
        "INSERT INTO sessions_app_message (id, session_id, role, timestamp) VALUES (101, 'c', 'user', %s) "
        "ON DUPLICATE KEY UPDATE session_id = VALUES(session_id)",
        (T,),
    )
    assert flags() == {"a": False, "b": True, "c": True}


def test_truncate_is_outside_the_triggers_and_verify_sessions_repairs_it(raw, vendor):
    cursor, _ = raw
    if vendor == "sqlite":
        pytest.skip("not applicable: SQLite has no TRUNCATE (DELETE without WHERE fires the triggers)")
    if vendor == "postgresql":
        cursor.execute("TRUNCATE sessions_app_message")  # PostgreSQL's TRUNCATE trigger (0004) clears the flags
        assert flags() == {"a": False, "b": False, "c": False}
        return
    cursor.execute("TRUNCATE TABLE sessions_app_message")  # no trigger fires: the flags drift
    assert flags() == {"a": True, "b": True, "c": False}
    with pytest.raises(CommandError) as drift:
        call_command("verify_sessions", stdout=io.StringIO(), stderr=io.StringIO())
    assert drift.value.returncode == 3
    with pytest.raises(CommandError, match="repaired"):
        call_command("verify_sessions", "--repair", stdout=io.StringIO(), stderr=io.StringIO())
    assert flags() == {"a": False, "b": False, "c": False}
    call_command("verify_sessions", stdout=io.StringIO(), stderr=io.StringIO())  # no drift left
    assert Session.objects.count() == 3 and connection.vendor == "mysql"
