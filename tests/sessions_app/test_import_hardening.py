"""import_hermes on crafted and hostile state.db files (issue 17, items 7-14): a bad row is skipped,
counted and named, the rest of its page imported, alike on every backend; the source is never
written to, nor beside. Files are built here with sqlite3; expected numbers come from how they were built."""

import json
import os
import sqlite3
import subprocess
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import OperationalError

from sessions_app import validation
from sessions_app.importers import DROPPED_PARENT_KEY, LAST_MESSAGE_KEY, MISSING_PARENT_KEY, import_hermes_db
from sessions_app.importers import source as source_module
from sessions_app.importers.writer import Writer
from sessions_app.models import Message, Session
from tests.hermes_fixtures import SCHEMAS, StateDB, without_digest

JAN1 = 1767225600.0


def run(*args, **options):
    out, err = StringIO(), StringIO()
    call_command("import_hermes", *map(str, args), stdout=out, stderr=err, **options)
    return out.getvalue(), err.getvalue()


def _nested(depth: int):
    value = 1
    for _ in range(depth):
        value = [value]
    return value


BAD_JSON = {
    "deep": json.dumps([{"id": "c", "args": _nested(validation.MAX_JSON_DEPTH + 5)}]),
    "nul-key": '[{"id": "c", "a\\u0000b": 1}]',  # NUL repaired (counted), not skipped: see below
    "surrogate-key": '[{"id": "c", "\\ud800": 1}]',
    "big-int": json.dumps([{"id": "c", "n": 2**64}]),
}


@pytest.mark.parametrize("case", ["deep", "surrogate-key", "big-int"])
def test_bad_json_in_tool_calls_is_skipped_named_and_the_page_goes_on(db, tmp_path, case):
    with StateDB(tmp_path / "state.db") as src:
        src.session("s")
        src.message("s", "user", "before", timestamp=JAN1 + 1)
        bad = src.message("s", "assistant", None, timestamp=JAN1 + 2, tool_calls=BAD_JSON[case])
        src.message("s", "user", "after", timestamp=JAN1 + 3)

    result = import_hermes_db(tmp_path / "state.db")

    assert (result.messages_imported, result.messages_skipped) == (2, 1)
    assert result.skipped_rows == {"message: invalid tool_calls": [f"rowid {bad}"]}
    assert list(Message.objects.order_by("id").values_list("content", flat=True)) == ["before", "after"]
    assert Session.objects.get().message_count == 2
    assert import_hermes_db(tmp_path / "state.db").messages_imported == 0  # a rerun is not stuck on it


def test_nul_in_a_json_key_is_repaired_alike_everywhere(db, tmp_path):
    with StateDB(tmp_path / "state.db") as src:
        src.session("s")
        src.message("s", "assistant", None, tool_calls=BAD_JSON["nul-key"])
    result = import_hermes_db(tmp_path / "state.db")
    assert (result.messages_imported, result.values_repaired) == (1, 1)
    assert Message.objects.get().tool_calls == [{"id": "c", "a\ufffdb": 1}]


@pytest.mark.parametrize("case", ["deep", "surrogate-key", "big-int"])
def test_bad_json_in_model_config_and_extra_columns_skips_the_session(db, tmp_path, case):
    with StateDB(tmp_path / "state.db", "new") as src:
        src.session("a", model_config=BAD_JSON[case])
        src.session("b", handoff_state=BAD_JSON[case])
        src.session("c")
        src.message("a", "user", "lost with its session")
        src.message("c", "assistant", "kept", reasoning_details=BAD_JSON[case])
        src.message("c", "user", "kept too")

    result = import_hermes_db(tmp_path / "state.db")

    assert sorted(Session.objects.values_list("pk", flat=True)) == ["c"]
    assert (result.sessions_skipped, result.messages_imported) == (2, 1)
    assert result.skipped_rows["session: invalid model_config"] == ["'a'"]
    assert result.skipped_rows["session: invalid extra"] == ["'b'"]
    assert result.skipped_rows["message: invalid extra"] == ["rowid 2"]


def test_message_escaped_past_the_limit_is_skipped(db, tmp_path, settings):
    """Astral characters in tool_calls take 14 bytes each as sent (``\\ud83d\\ude00``, escaped once more)."""
    chars = validation.MAX_MESSAGE_BYTES // 14 + 1000  # over the limit at 14 bytes, under it at 12
    assert 12 * chars < validation.MAX_MESSAGE_BYTES < 14 * chars
    with StateDB(tmp_path / "state.db") as src:
        src.session("s")
        big = src.message("s", "assistant", None, tool_calls=json.dumps([{"x": "😀" * chars}], ensure_ascii=False))
        src.message("s", "user", "fine")
    result = import_hermes_db(tmp_path / "state.db")
    assert result.skipped_rows == {"message: message too large": [f"rowid {big}"]}
    assert result.messages_imported == 1


def test_session_too_large_to_send_is_skipped(db, tmp_path, settings):
    settings.HERMES_MAX_CONTENT_CHARS = 12 * 1024 * 1024
    with StateDB(tmp_path / "state.db", "new") as src:
        src.session("big", system_prompt="'" * (7 * 1024 * 1024), cwd="\\" * (6 * 1024 * 1024))  # 26 MiB as sent
        src.session("ok")
    result = import_hermes_db(tmp_path / "state.db")
    assert result.skipped_rows == {"session: session too large": ["'big'"]}
    assert list(Session.objects.values_list("pk", flat=True)) == ["ok"]


# -- item 8: crafted layouts ------------------------------------------------------------------------


def _crafted(path, sessions_sql, messages_sql):
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(sessions_sql)
    conn.execute(messages_sql)
    return conn


def test_sessions_without_a_primary_key_holding_duplicate_ids(db, tmp_path):
    path = tmp_path / "state.db"
    conn = _crafted(
        path,
        "CREATE TABLE sessions (id TEXT, source TEXT, started_at REAL, title TEXT)",
        "CREATE TABLE messages (id INTEGER PRIMARY KEY, session_id TEXT, role TEXT, content TEXT, timestamp REAL)",
    )
    conn.executemany(
        "INSERT INTO sessions VALUES (?, 'cli', ?, ?)",
        [("a", JAN1, "first a"), ("b", JAN1, "b"), ("a", JAN1, "second a"), ("a", JAN1, "third a")],
    )
    conn.executemany("INSERT INTO messages (session_id, role, content, timestamp) VALUES (?, 'user', 'hi', ?)",
                     [("a", JAN1 + 1), ("b", JAN1 + 2)])  # fmt: skip
    conn.close()

    for batch_size in (1, 2, 100):  # pages of one row, or all the copies in one page
        Session.objects.all().delete()
        result = import_hermes_db(path, batch_size=batch_size)
        assert (result.sessions_imported, result.messages_imported) == (2, 2), batch_size
        assert result.skip_reasons == {"session: duplicate id in the file": 2}
        assert result.skipped_rows["session: duplicate id in the file"] == ["'a'"]
        assert Session.objects.get(pk="a").title == "first a"  # the first copy written


@pytest.mark.django_db(transaction=True)  # the retry happens only outside a transaction of the caller's
def test_a_page_retried_after_a_transient_conflict_keeps_its_duplicated_session(tmp_path, monkeypatch):
    path = tmp_path / "state.db"
    conn = _crafted(
        path,
        "CREATE TABLE sessions (id TEXT, source TEXT, started_at REAL, title TEXT)",
        "CREATE TABLE messages (id INTEGER PRIMARY KEY, session_id TEXT, role TEXT, content TEXT, timestamp REAL)",
    )
    conn.executemany(
        "INSERT INTO sessions VALUES (?, 'cli', ?, ?)", [("a", JAN1, "first a"), ("a", JAN1, "x"), ("b", JAN1, "b")]
    )
    conn.close()
    create, failures = Writer.create_sessions, []

    def locked_once(self, sessions):
        if not failures:
            failures.append(1)
            raise OperationalError("database is locked")
        return create(self, sessions)

    monkeypatch.setattr(Writer, "create_sessions", locked_once)
    monkeypatch.setattr("agents_app.db.time.sleep", lambda seconds: None)
    result = import_hermes_db(path, batch_size=100)
    assert failures == [1]
    assert result.sessions_imported == 2 and result.skip_reasons == {"session: duplicate id in the file": 1}
    assert sorted(Session.objects.values_list("pk", flat=True)) == ["a", "b"]


@pytest.mark.parametrize("bad_ids", [["'x'", "'y'"], ["NULL"], ["2.5", "X'00'"]])
def test_message_ids_that_are_not_integers(db, tmp_path, bad_ids):
    path = tmp_path / "state.db"
    conn = _crafted(
        path,
        "CREATE TABLE sessions (id TEXT PRIMARY KEY, source TEXT, started_at REAL)",
        "CREATE TABLE messages (id, session_id TEXT, role TEXT, content TEXT, timestamp REAL)",
    )
    conn.execute("INSERT INTO sessions VALUES ('s', 'cli', ?)", (JAN1,))
    conn.execute("INSERT INTO messages VALUES (1, 's', 'user', 'one', ?)", (JAN1 + 1,))
    for bad in bad_ids:
        conn.execute(f"INSERT INTO messages VALUES ({bad}, 's', 'user', 'bad', ?)", (JAN1 + 2,))  # noqa: S608
    conn.execute("INSERT INTO messages VALUES (3, 's', 'user', 'three', ?)", (JAN1 + 3,))
    conn.close()

    out, _ = run(path)

    assert list(Message.objects.order_by("id").values_list("content", flat=True)) == ["one", "three"]
    assert "skipped, message: id is not an integer: " + str(len(bad_ids)) in out
    assert "rowid 2 (id " in out
    assert Session.objects.get().message_count == 2


def test_a_fifo_is_refused_without_being_opened(db, tmp_path):
    fifo = tmp_path / "state.db"
    os.mkfifo(fifo)
    with pytest.raises(CommandError, match="not a regular file"):
        run(fifo)  # opening it for reading would block forever


# -- item 10: the source is never written, nor beside ------------------------------------------------


def _wal_file_without_sidecars(path):
    with StateDB(path) as src:
        src.session("s")
        src.message("s", "user", "hi")
    assert not Path(f"{path}-wal").exists()  # the last connection checkpointed and removed it
    assert Path(path).read_bytes()[18:20] == b"\x02\x02"  # the header's read/write versions: WAL mode


def test_a_writable_directory_is_left_as_it_was(db, tmp_path):
    path = tmp_path / "hermes" / "state.db"
    path.parent.mkdir()
    _wal_file_without_sidecars(path)
    before = {p.name: p.stat().st_mtime_ns for p in path.parent.iterdir()}
    data = path.read_bytes()

    assert import_hermes_db(path).messages_imported == 1

    assert {p.name: p.stat().st_mtime_ns for p in path.parent.iterdir()} == before
    assert path.read_bytes() == data


def _read_only_directory(directory: Path, read_only: bool) -> None:
    """chmod for a user; root may write anywhere, so for root the directory is made immutable."""
    if os.getuid() != 0:
        directory.chmod(0o555 if read_only else 0o755)
        return
    done = subprocess.run(["chattr", "+i" if read_only else "-i", str(directory)], capture_output=True, check=False)
    if done.returncode and read_only:
        pytest.skip(f"cannot make a directory read-only as root here: {done.stderr!r}")


def test_a_wal_file_in_a_read_only_directory(db, tmp_path):
    path = tmp_path / "hermes" / "state.db"
    path.parent.mkdir()
    _wal_file_without_sidecars(path)
    _read_only_directory(path.parent, True)
    try:
        with pytest.raises(OSError):
            (path.parent / "probe").touch()  # the directory is read-only indeed
        result = import_hermes_db(path)
        assert (result.sessions_imported, result.messages_imported) == (1, 1)
        assert sorted(p.name for p in path.parent.iterdir()) == ["state.db"]
    finally:
        _read_only_directory(path.parent, False)


def test_a_live_writer_committed_wal_is_read_uncommitted_is_not(db, tmp_path):
    path = tmp_path / "state.db"
    src = StateDB(path)
    src.conn.execute("PRAGMA wal_autocheckpoint=0")  # commits stay in the -wal only
    src.session("s")
    src.message("s", "user", "committed, in the wal")
    src.conn.execute("BEGIN IMMEDIATE")
    src.message("s", "user", "not committed")
    wal, shm = Path(f"{path}-wal"), Path(f"{path}-shm")
    sidecars = (wal.read_bytes(), shm.stat().st_size)
    try:
        result = import_hermes_db(path)
        assert (result.sessions_imported, result.messages_imported) == (1, 1)
        assert Message.objects.get().content == "committed, in the wal"
        assert wal.read_bytes() == sidecars[0] and shm.stat().st_size == sidecars[1]
    finally:
        src.conn.execute("COMMIT")
        src.close()
    assert import_hermes_db(path).messages_imported == 1


def test_a_wal_left_by_a_crashed_writer_without_its_shm(db, tmp_path):
    live = tmp_path / "live.db"
    src = StateDB(live)
    src.conn.execute("PRAGMA wal_autocheckpoint=0")
    src.session("s")
    src.message("s", "user", "only in the wal")
    crashed = tmp_path / "crashed" / "state.db"
    crashed.parent.mkdir()
    crashed.write_bytes(live.read_bytes())
    Path(f"{crashed}-wal").write_bytes(Path(f"{live}-wal").read_bytes())
    src.close()

    assert import_hermes_db(crashed).messages_imported == 1
    assert sorted(p.name for p in crashed.parent.iterdir()) == ["state.db", "state.db-wal"]


# -- item 11: multimodal content ------------------------------------------------------------------


def test_multimodal_content_is_decoded_text_kept_images_described(db, tmp_path):
    image = "data:image/png;base64," + "A" * 50_000
    parts = [
        {"type": "text", "text": "What is in"},
        {"type": "image_url", "image_url": {"url": image, "detail": "high"}},
        {"type": "text", "text": "this picture?"},
    ]
    with StateDB(tmp_path / "state.db") as src:
        src.session("s")
        src.message("s", "user", "\x00json:" + json.dumps(parts))
        src.message(
            "s", "user", "\x00json:" + json.dumps([{"type": "image_url", "image_url": {"url": "https://x/y.png"}}])
        )
        src.message("s", "user", "\x00json:not json")  # kept as text, its NUL repaired

    result = import_hermes_db(tmp_path / "state.db")

    assert (result.messages_imported, result.values_repaired) == (3, 1)
    first, second, third = Message.objects.order_by("id")
    assert first.content == "What is in\n\nthis picture?"
    assert first.extra["content_parts"] == [
        {"type": "text", "chars": 10},
        {
            "type": "image_url",
            "image_url": {"url": "data:image/png;base64,…[50,000 characters omitted]", "detail": "high"},
        },
        {"type": "text", "chars": 13},
    ]
    assert second.content is None
    assert second.extra == {"content_parts": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}
    assert third.content == "\ufffdjson:not json"


# -- item 12: a database failure during the import -------------------------------------------------


def test_a_lost_connection_is_a_clear_error_and_a_rerun_resumes(db, tmp_path, monkeypatch):
    with StateDB(tmp_path / "state.db") as src:
        src.session("s")
        for i in range(4):
            src.message("s", "user", f"m{i}", timestamp=JAN1 + i)
    calls = []
    real = Writer.append_messages

    def failing(self, rows, counters):
        calls.append(1)
        if len(calls) == 2:
            raise OperationalError("(2006, 'Server has gone away')")
        return real(self, rows, counters)

    monkeypatch.setattr(Writer, "append_messages", failing)
    with pytest.raises(CommandError, match=r"database failed.*gone away.*run the import again to carry on"):
        run(tmp_path / "state.db", "--batch-size", "2")
    assert Message.objects.count() == 2
    monkeypatch.setattr(Writer, "append_messages", real)
    run(tmp_path / "state.db", "--batch-size", "2")
    assert list(Message.objects.order_by("id").values_list("content", flat=True)) == ["m0", "m1", "m2", "m3"]


# -- item 13: bytes per page ------------------------------------------------------------------------


def test_a_page_ends_at_its_byte_budget(db, tmp_path, monkeypatch):
    monkeypatch.setattr(source_module, "PAGE_CHARS", 1000)
    with StateDB(tmp_path / "state.db") as src:
        src.session("s")
        for i in range(5):
            src.message("s", "user", "x" * 600, timestamp=JAN1 + i)  # one row fits a page, two do not
        src.message("s", "user", "y" * 3000, timestamp=JAN1 + 9)  # alone over the budget: a page of its own
    pages = []
    result = import_hermes_db(tmp_path / "state.db", progress=pages.append)
    assert result.messages_imported == 6
    assert [p.messages_done for p in pages if p.phase == "messages"] == [1, 2, 3, 4, 5, 6]


# -- item 14: bookkeeping keys and parent cycles -----------------------------------------------------


def test_source_columns_named_like_our_bookkeeping_cannot_set_it(db, tmp_path):
    path = tmp_path / "state.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.executescript(SCHEMAS["current"])
    for column in (MISSING_PARENT_KEY, LAST_MESSAGE_KEY, DROPPED_PARENT_KEY):
        conn.execute(f"ALTER TABLE sessions ADD COLUMN {column}")
    conn.execute("ALTER TABLE messages ADD COLUMN content_parts")
    conn.execute("INSERT INTO sessions (id, source, started_at) VALUES ('victim', 'cli', ?)", (JAN1,))
    conn.execute(
        f"INSERT INTO sessions (id, source, started_at, {MISSING_PARENT_KEY}, {LAST_MESSAGE_KEY})"  # noqa: S608
        " VALUES (?, ?, ?, ?, ?)",
        ("spoof", "cli", JAN1, "victim", 10**6),
    )
    conn.execute(
        "INSERT INTO messages (session_id, role, content, timestamp, content_parts)"
        " VALUES ('spoof', 'user', 'hi', ?, 'x')",
        (JAN1 + 1,),
    )
    conn.close()

    result = import_hermes_db(path)

    spoof = Session.objects.get(pk="spoof")
    assert spoof.parent_session_id is None and result.parents_linked == 0
    assert without_digest(spoof.extra) == {
        LAST_MESSAGE_KEY: 1,
        f"source.{MISSING_PARENT_KEY}": "victim",
        f"source.{LAST_MESSAGE_KEY}": 10**6,
    }
    assert Message.objects.get().extra == {"source.content_parts": "x"}


@pytest.mark.parametrize("batch_size", [1, 2, 100])
def test_parent_cycles_are_broken_the_same_way_whatever_the_pages(db, tmp_path, batch_size):
    with StateDB(tmp_path / "state.db") as src:
        src.session("a", parent_session_id="b")
        src.session("b", parent_session_id="c")
        src.session("c", parent_session_id="a")
        src.session("d", parent_session_id="d")
        src.session("e", parent_session_id="a")  # hangs off the cycle: linked

    result = import_hermes_db(tmp_path / "state.db", batch_size=batch_size)

    links = dict(Session.objects.values_list("pk", "parent_session_id"))
    # Links in id order: a -> b, b -> c, then c -> a would close the cycle: dropped. d -> d too.
    assert links == {"a": "b", "b": "c", "c": None, "d": None, "e": "a"}
    assert result.parent_cycles_broken == 2 and result.parents_linked == 3
    assert without_digest(Session.objects.get(pk="c").extra) == {LAST_MESSAGE_KEY: 0, DROPPED_PARENT_KEY: "a"}
    assert not Session.objects.filter(extra__has_key=MISSING_PARENT_KEY).exists()
    again = import_hermes_db(tmp_path / "state.db", batch_size=batch_size)
    assert (again.parent_cycles_broken, again.sessions_updated) == (0, 0)
