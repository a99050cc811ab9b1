"""import_hermes on hermes-agent schema 30 files (tests/hermes_fixtures.py ``v30``): profiles per row,
undone and compacted messages, per-model usage, prompts stored once, and what hermes changes in place.

Every expected figure is computed by SQL on the source file (``FileTruth``), never by our code.
"""

import datetime as dt
import json
import sqlite3
import time
from collections import Counter
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.db.models import Count, Q

from sessions_app.analytics import empty_session_rates
from sessions_app.importers import KNOWN_SCHEMA_VERSION, LAST_MESSAGE_KEY, MESSAGE_FLAGS_KEY, import_hermes_db
from sessions_app.integrity import verify_sessions
from sessions_app.models import Message, ModelUsage, Session
from tests.hermes_fixtures import StateDB

JAN1 = 1767225600.0  # 2026-01-01T00:00:00Z
DAY = 86400.0
# SQLite's own count of a tool_calls value, as hermes counts it: a list's length, a dict is one call.
TOOL_CALLS_SQL = (
    "CASE json_type(tool_calls) WHEN 'array' THEN json_array_length(tool_calls) WHEN 'object' THEN 1 ELSE 0 END"
)


class FileTruth:
    """What a state.db says, by SQL on the file."""

    def __init__(self, path, default_profile="default"):
        self.conn = sqlite3.connect(path)
        self.default = default_profile

    def rows(self, sql, params=()):
        return self.conn.execute(sql, params).fetchall()

    def sessions(self) -> dict[str, dict]:
        sql = f"""
            SELECT s.id, COALESCE(NULLIF(s.profile_name, ''), ?), NULLIF(s.model, ''), s.source, s.started_at,
                   COALESCE(NULLIF(s.system_prompt, ''), p.prompt),
                   (SELECT COUNT(*) FROM messages m WHERE m.session_id = s.id),
                   (SELECT COUNT(*) FROM messages m WHERE m.session_id = s.id AND m.active),
                   (SELECT COALESCE(SUM({TOOL_CALLS_SQL}), 0) FROM messages m WHERE m.session_id = s.id AND m.active)
            FROM sessions s LEFT JOIN system_prompts p ON p.hash = s.system_prompt_hash
        """  # noqa: S608
        keys = ("profile", "model", "source", "started_at", "system_prompt", "rows", "active", "tool_calls")
        return {row[0]: dict(zip(keys, row[1:], strict=True)) for row in self.rows(sql, (self.default,))}

    def flags(self) -> dict[int, tuple[bool, bool]]:
        return {mid: (bool(a), bool(c)) for mid, a, c in self.rows("SELECT id, active, compacted FROM messages")}

    def usage(self) -> set[tuple]:
        sql = """SELECT session_id, model, billing_provider, billing_base_url, billing_mode, task, api_call_count,
                 input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens,
                 estimated_cost_usd, actual_cost_usd, cost_status, first_seen FROM session_model_usage"""
        return {
            (*row[:12], Decimal(repr(row[12])).quantize(Decimal("1e-10")), row[13], row[14], moment(row[15]))
            for row in self.rows(sql)
        }

    def grouped(self, key_sql: str) -> dict:
        """{key: (sessions, empty)} grouping the file's sessions by ``key_sql`` (a column expression)."""
        sql = f"""SELECT {key_sql} AS k, COUNT(*),
                  SUM(NOT EXISTS (SELECT 1 FROM messages m WHERE m.session_id = s.id))
                  FROM sessions s GROUP BY k"""  # noqa: S608
        return {key: (n, empty) for key, n, empty in self.rows(sql, ())}


def moment(seconds):
    """Unix seconds as a DateTimeField holds them (microseconds), or None."""
    return None if seconds is None else dt.datetime.fromtimestamp(seconds, dt.UTC)


def ours_usage() -> set[tuple]:
    return {
        (
            u.session_id, u.model.name if u.model else "", u.billing_provider, u.billing_base_url, u.billing_mode,
            u.task, u.api_calls, u.input_tokens, u.output_tokens, u.cache_read_tokens, u.cache_write_tokens,
            u.reasoning_tokens, u.estimated_cost_usd, u.actual_cost_usd, u.cost_status,
            u.first_seen,
        )
        for u in ModelUsage.objects.select_related("model")
    }  # fmt: skip


def assert_matches_file(path, default_profile="default"):
    """Every session, counter, flag, prompt and usage row as the file says."""
    truth = FileTruth(path, default_profile)
    expected = truth.sessions()
    stored = {s.pk: s for s in Session.objects.select_related("model")}
    assert stored.keys() == expected.keys()
    rows = dict(
        Message.objects.values("session_id").annotate(n=Count("pk"), live=Count("pk", filter=Q(active=True)))
        .values_list("session_id", "n")
    )  # fmt: skip
    for sid, want in expected.items():
        s = stored[sid]
        assert s.profile == want["profile"], sid
        assert (s.model.name if s.model else None) == want["model"], sid
        assert s.system_prompt == want["system_prompt"], sid
        assert (s.message_count, s.tool_call_count) == (want["active"], want["tool_calls"]), sid
        assert rows.get(sid, 0) == want["rows"], sid
        assert s.has_messages == (want["rows"] > 0), sid
    file_flags = truth.flags()
    ours = dict(((m, (a, c)) for m, a, c in Message.objects.values_list("hermes_id", "active", "compacted")))
    assert ours == file_flags
    assert ours_usage() == truth.usage()
    assert verify_sessions().total == 0


def build_v30(path, *, schema="v30") -> StateDB:
    """Sessions of two profiles (and rows without one), prompts by hash, tool calls, undone and
    compacted messages, per-model usage with a model switch and an auxiliary task, and empty sessions."""
    src = StateDB(path, schema)
    prompt = src.prompt("You are Hermes. " * 50)
    other_prompt = src.prompt("You are a careful coder.")
    src.session("a1", model="anthropic/claude-opus-4.6", source="cli", started_at=JAN1, profile_name="work",
                system_prompt_hash=prompt, title="trip", last_activity_at=JAN1 + 50)  # fmt: skip
    src.message("a1", "user", "plan a trip", timestamp=JAN1 + 1)
    src.message("a1", "assistant", None, timestamp=JAN1 + 2, tool_calls=[{"id": "c1"}, {"id": "c2"}])
    src.message("a1", "tool", "ok", timestamp=JAN1 + 3, tool_call_id="c1", tool_name="search")
    src.message("a1", "user", "no, undo that", timestamp=JAN1 + 4, active=0)  # undone
    src.message("a1", "assistant", "old answer", timestamp=JAN1 + 5, active=0, compacted=1,
                tool_calls={"id": "c3"})  # fmt: skip
    src.usage("a1", "anthropic/claude-opus-4.6", api_call_count=3, input_tokens=1200, output_tokens=300,
              estimated_cost_usd=0.0123, first_seen=JAN1 + 1, last_seen=JAN1 + 40, cost_status="estimated")  # fmt: skip
    src.usage("a1", "openai/gpt-5", api_call_count=1, input_tokens=50, output_tokens=10, first_seen=JAN1 + 41)
    src.usage("a1", "openai/gpt-5-mini", task="compression", billing_provider="openai", api_call_count=2,
              input_tokens=900, output_tokens=80, first_seen=JAN1 + 30)  # fmt: skip
    src.session("b1", model="openai/gpt-5", source="telegram", started_at=JAN1 + DAY, profile_name="home",
                system_prompt="inline prompt", system_prompt_hash=other_prompt)  # fmt: skip
    src.message("b1", "user", "hi", timestamp=JAN1 + DAY + 1)
    src.session("b2", model="openai/gpt-5", source="telegram", started_at=JAN1 + DAY + 5, profile_name="home")
    src.session("c1", model="", source="cron", started_at=JAN1 + 2 * DAY, system_prompt_hash=other_prompt)
    src.message("c1", "user", "tick", timestamp=JAN1 + 2 * DAY + 1, active=0)  # only an undone message: not empty
    src.session("c2", model="meta/llama-4", source="cron", started_at=JAN1 + 2 * DAY + 9, profile_name="")
    src.usage("c2", "meta/llama-4", api_call_count=1, input_tokens=7)  # usage, no message: a lost transcript
    return src


@pytest.fixture
def v30(tmp_path):
    src = build_v30(tmp_path / "state.db")
    yield src
    src.close()


def test_a_v30_file_imports_exactly(db, v30):
    result = import_hermes_db(v30.path)

    assert result.schema_version == 30 and not result.warnings
    assert (result.sessions_imported, result.messages_imported, result.usage_imported) == (5, 7, 4)
    assert result.sessions_by_profile == Counter({"work": 1, "home": 2, "default": 2})
    assert_matches_file(v30.path)
    a1 = Session.objects.get(pk="a1")
    assert (a1.message_count, a1.tool_call_count) == (3, 2)  # hermes counts active messages only
    assert a1.extra[MESSAGE_FLAGS_KEY] == [5, 3] and a1.extra[LAST_MESSAGE_KEY] == 5
    assert Session.objects.get(pk="c1").has_messages  # an undone conversation is not an empty session
    assert not Session.objects.get(pk="c2").has_messages
    again = import_hermes_db(v30.path)
    assert (again.sessions_imported, again.sessions_updated, again.sessions_unchanged) == (0, 0, 5)
    assert (again.messages_imported, again.messages_flags_changed, again.usage_imported, again.usage_updated) == (
        0, 0, 0, 0,
    )  # fmt: skip
    assert_matches_file(v30.path)


@pytest.mark.parametrize("by", ["model", "source", "profile", "day"])
def test_every_grouping_matches_sql_on_the_file(db, v30, by):
    import_hermes_db(v30.path)
    key_sql = {
        "model": "COALESCE(NULLIF(model, ''), '(none)')",
        "source": "source",
        "profile": "COALESCE(NULLIF(profile_name, ''), 'default')",
        "day": "date(started_at, 'unixepoch')",
    }[by]
    want = FileTruth(v30.path).grouped(key_sql)
    report = empty_session_rates(by)
    got = {str(row.key): (row.sessions, row.empty) for row in report.rows}
    assert got == want
    assert (report.total.sessions, report.total.empty) == (sum(n for n, _ in want.values()), 2)


def test_what_hermes_changes_in_place_is_followed(db, v30):
    import_hermes_db(v30.path)
    # hermes runs on: a rewind in a1, a compaction in b1 with its summary, the end of b2 with a
    # first message, new usage and an updated usage row, a title and the archive flag.
    v30.update("messages", "session_id = 'a1' AND id >= 2", active=0)  # rewound to the first turn
    v30.message("a1", "user", "again", timestamp=JAN1 + 60)
    v30.update("messages", "session_id = 'b1'", active=0, compacted=1)
    v30.message("b1", "user", "[summary] said hi", timestamp=JAN1 + DAY + 9)
    v30.message("b2", "user", "late first words", timestamp=JAN1 + DAY + 20)
    v30.update("sessions", "id = 'b2'", ended_at=JAN1 + DAY + 30, end_reason="completed", input_tokens=99)
    v30.update("sessions", "id = 'a1'", title="trip (2)", archived=1, hidden=1, last_activity_at=JAN1 + 70,
               rewind_count=1, message_count=2)  # fmt: skip
    v30.update("session_model_usage", "session_id = 'a1' AND model = 'openai/gpt-5'", api_call_count=4)
    v30.usage("b2", "openai/gpt-5", api_call_count=1, input_tokens=99)

    result = import_hermes_db(v30.path)

    assert result.messages_imported == 3
    assert result.messages_flags_changed == 2 + 1  # a1: ids 2 and 3 undone; b1: its message compacted
    assert (result.usage_imported, result.usage_updated, result.usage_removed) == (1, 1, 0)
    assert_matches_file(v30.path)
    a1 = Session.objects.get(pk="a1")
    assert (a1.title, a1.extra["archived"], a1.extra["hidden"], a1.extra["last_activity_at"]) == (
        "trip (2)", 1, 1, JAN1 + 70,
    )  # fmt: skip
    b2 = Session.objects.get(pk="b2")
    assert (b2.end_reason, b2.input_tokens, b2.has_messages) == ("completed", 99, True)
    again = import_hermes_db(v30.path)
    assert (again.messages_imported, again.messages_flags_changed, again.sessions_updated) == (0, 0, 0)


def test_a_transcript_hermes_rewrote_is_rewritten_here(db, v30):
    import_hermes_db(v30.path)
    v30.conn.execute("DELETE FROM messages WHERE session_id = 'a1' AND id > 2")  # hermes' replace without archive
    v30.message("a1", "assistant", "new ending", timestamp=JAN1 + 80)

    result = import_hermes_db(v30.path)

    assert (result.messages_removed, result.messages_imported) == (3, 1)
    assert_matches_file(v30.path)


def test_a_no_change_re_import_reads_no_message_of_a_session(db, v30, monkeypatch):
    import_hermes_db(v30.path)
    from sessions_app.importers import source as source_module

    read = []
    for name in ("message_flags", "message_keys", "messages"):
        real = getattr(source_module.Source, name)

        def spy(self, *args, _real=real, _name=name, **kwargs):
            rows = _real(self, *args, **kwargs)
            read.append((_name, len(rows)))
            return rows

        monkeypatch.setattr(source_module.Source, name, spy)
    import_hermes_db(v30.path)
    assert read == []


def test_profile_name_decides_and_an_explicit_profile_that_disagrees_is_reported(db, v30):
    out, err = StringIO(), StringIO()
    call_command("import_hermes", str(v30.path), "--profile", "work", stdout=out, stderr=err)

    stored = dict(Session.objects.values_list("pk", "profile"))
    assert stored == {"a1": "work", "b1": "home", "b2": "home", "c1": "work", "c2": "work"}
    assert "--profile 'work' disagrees with profile_name on 2 sessions" in out.getvalue()
    assert "b1 (home)" in out.getvalue() and "b2 (home)" in out.getvalue()
    assert "schema version 30" in out.getvalue()
    data = StringIO()
    call_command("import_hermes", str(v30.path), "--profile", "work", "--format", "json", stdout=data)
    report = json.loads(data.getvalue())
    assert report["profile_disagreements"] == 2 and report["schema_version"] == 30
    assert report["sessions_by_profile"] == {"home": 2, "work": 3}


def test_a_newer_schema_warns_once_and_imports_what_it_knows(db, tmp_path):
    with build_v30(tmp_path / "state.db", schema="v31") as src:
        src.conn.execute("UPDATE sessions SET auto_archived = 1 WHERE id = 'a1'")
        src.conn.execute("UPDATE messages SET message_uid = 'uid-' || id")

    result = import_hermes_db(tmp_path / "state.db")

    assert result.schema_version == KNOWN_SCHEMA_VERSION + 1
    assert [w for w in result.warnings if "schema version" in w] == [
        f"{tmp_path / 'state.db'} declares schema version 31, newer than 30, the newest this importer knows: "
        "the known columns were imported, the others kept in extra."
    ]
    assert_matches_file(tmp_path / "state.db")
    assert Session.objects.get(pk="a1").extra["auto_archived"] == 1
    assert Message.objects.get(hermes_id=1).extra["message_uid"] == "uid-1"


def test_messages_of_another_profiles_session_never_reach_it(db, tmp_path):
    """The data-loss case: profile B's file names a session only profile A's file holds."""
    profiles = tmp_path / "profiles"
    a_path, b_path = profiles / "a" / "state.db", profiles / "b" / "state.db"
    a_path.parent.mkdir(parents=True)
    b_path.parent.mkdir(parents=True)
    with StateDB(a_path, "v30") as a, StateDB(b_path, "v30") as b:
        a.session("shared", model="m", started_at=JAN1)
        a.message("shared", "user", "a1", timestamp=JAN1 + 1)
        b.session("b_own", model="m", started_at=JAN1)
        for i in range(5):  # B's rowids run past A's
            b.message("b_own", "user", f"b{i}", timestamp=JAN1 + 2 + i)
        orphan = b.message("shared", "user", "from b", timestamp=JAN1 + 9)

    import_hermes_db(a_path)
    result_b = import_hermes_db(b_path)
    with StateDB.reopen(a_path) as a:
        a.message("shared", "assistant", "a2", timestamp=JAN1 + 10)
        a.message("shared", "user", "a3", timestamp=JAN1 + 11)
    result_a = import_hermes_db(a_path)

    assert result_b.messages_skipped == 1
    assert result_b.skipped_rows["message: no session row in the file"] == [f"rowid {orphan} (session 'shared')"]
    assert result_a.messages_imported == 2
    shared = Session.objects.get(pk="shared")
    assert [m.content for m in shared.messages.order_by("hermes_id")] == ["a1", "a2", "a3"]
    assert (shared.profile, shared.message_count, shared.extra[LAST_MESSAGE_KEY]) == ("a", 3, 3)
    assert Session.objects.get(pk="b_own").profile == "b"


def test_an_imported_session_of_an_older_version_is_adopted(db, v30):
    """Sessions imported before message flags existed: messages without hermes ids, every row counted."""
    import_hermes_db(v30.path)
    Message.objects.update(hermes_id=None, active=True, compacted=False)
    for session in Session.objects.all():
        session.extra.pop(MESSAGE_FLAGS_KEY, None)
        session.message_count = session.messages.count()
        session.tool_call_count = sum(
            len(m.tool_calls) if isinstance(m.tool_calls, list) else 1
            for m in session.messages.exclude(tool_calls=None)
        )
        session.save()

    result = import_hermes_db(v30.path)

    assert result.messages_flags_changed == 3 and not result.warnings
    assert_matches_file(v30.path)


def test_a_long_chain_links_in_a_number_of_queries_that_does_not_grow_with_it(
    db, tmp_path, django_assert_max_num_queries
):
    links = 1500
    with StateDB(tmp_path / "state.db", "v30") as src:
        # Ids in reverse order of the chain: every child comes before its parent in the file.
        for i in range(links + 1):
            parent = f"s{i + 1:05d}" if i < links else None
            src.session(f"s{i:05d}", started_at=JAN1 + i, parent_session_id=parent)
    with django_assert_max_num_queries(links // 2):
        result = import_hermes_db(tmp_path / "state.db", batch_size=500)
    assert result.parents_linked == links
    chain = dict(Session.objects.values_list("pk", "parent_session_id"))
    assert all(chain[f"s{i:05d}"] == f"s{i + 1:05d}" for i in range(links))


def test_usage_with_a_model_from_the_save_path_keeps_each_models_share(db):
    from agents_app.agent import Agent

    agent = Agent("openai/gpt-5", "cli")
    agent.add_message("user", "hi")
    agent.add_usage(input_tokens=10, output_tokens=2, api_call_count=1)
    agent.flush()
    agent.switch_model("anthropic/claude-opus-4.6")
    agent.add_message("assistant", "hello")
    agent.add_usage(input_tokens=30, api_call_count=1)
    agent.flush()
    agent.add_usage(output_tokens=5)  # after the last message: reaches the session and the model's row
    agent.end()

    rows = {u.model.name: (u.api_calls, u.input_tokens, u.output_tokens) for u in ModelUsage.objects.all()}
    assert rows == {"openai/gpt-5": (1, 10, 2), "anthropic/claude-opus-4.6": (1, 30, 5)}
    session = Session.objects.get()
    assert (session.input_tokens, session.output_tokens, session.api_call_count) == (40, 7, 2)


def test_the_session_page_shows_usage_per_model_and_message_states(admin_client, v30):
    from django.urls import reverse

    import_hermes_db(v30.path)
    page = admin_client.get(reverse("admin:sessions_app_session_change", args=["a1"])).content.decode()
    assert "Usage per model" in page and "openai/gpt-5-mini" in page and "compression" in page
    assert page.count("(undone)") == 1 and page.count("(compacted)") == 1
    assert "estimated cost (USD)" in page.lower() or "Estimated cost (USD)" in page
    plain = admin_client.get(reverse("admin:sessions_app_session_change", args=["b2"])).content.decode()
    assert "Usage per model" not in plain


def test_timestamps_of_usage_rows_are_kept(db, v30):
    import_hermes_db(v30.path)
    usage = ModelUsage.objects.get(session_id="a1", model__name="anthropic/claude-opus-4.6")
    assert usage.first_seen == dt.datetime.fromtimestamp(JAN1 + 1, dt.UTC)
    assert usage.last_seen == dt.datetime.fromtimestamp(JAN1 + 40, dt.UTC)
    assert usage.estimated_cost_usd == Decimal("0.0123")


HOT_WRITER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("PRAGMA cache_size = 1")  # spill the transaction's pages into the database file early
conn.execute("BEGIN")
for i in range(300):
    conn.execute("INSERT INTO messages (session_id, role, content, timestamp) VALUES ('a1', 'user', ?, ?)",
                 ("uncommitted " * 200, 1767225600.0 + 1000 + i))
print("written", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("COMMIT")
"""


def _digest(path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_hot_rollback_journal_is_read_as_sqlite_would_read_it(db, tmp_path):
    """A hermes writer killed mid-transaction in rollback-journal mode leaves a hot -journal: the
    import reads the committed rows (from a private copy rolled back) and writes nothing beside them."""
    import os
    import signal
    import subprocess
    import sys

    path = tmp_path / "state.db"
    with build_v30(path) as src:
        src.conn.execute("PRAGMA journal_mode = DELETE")
    writer = subprocess.Popen([sys.executable, "-c", HOT_WRITER, str(path), "60"], stdout=subprocess.PIPE, text=True)
    assert writer.stdout.readline().strip() == "written"
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()
    journal = tmp_path / "state.db-journal"
    assert journal.stat().st_size > 0
    before = (_digest(path), _digest(journal))

    result = import_hermes_db(path)

    assert (result.sessions_imported, result.messages_imported) == (5, 7)
    assert not Message.objects.filter(content__startswith="uncommitted").exists()
    assert (_digest(path), _digest(journal)) == before  # the user's files, untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.db", "state.db-journal"]
    # SQLite itself, once it may write, rolls the journal back to what the import read.
    assert_matches_file(path)


def test_a_live_rollback_journal_writer_is_waited_for(db, tmp_path):
    import subprocess
    import sys

    path = tmp_path / "state.db"
    with build_v30(path) as src:
        src.conn.execute("PRAGMA journal_mode = DELETE")
    writer = subprocess.Popen([sys.executable, "-c", HOT_WRITER, str(path), "1"], stdout=subprocess.PIPE, text=True)
    assert writer.stdout.readline().strip() == "written"

    result = import_hermes_db(path)
    writer.wait(timeout=30)

    # Either before the writer's transaction or after it, never half of it.
    assert result.messages_imported in (7, 7 + 300)
    assert Message.objects.filter(content__startswith="uncommitted").count() in (0, 300)


def test_new_messages_in_a_few_sessions_are_read_alone(db, tmp_path, monkeypatch):
    """A live file where one early session got a new turn: only that session's messages are read,
    not every message after its mark."""
    with StateDB(tmp_path / "state.db", "v30") as src:
        for n in range(40):
            src.session(f"s{n:02d}", model="m", started_at=JAN1 + n)
            for i in range(10):
                src.message(f"s{n:02d}", "user", f"{n}/{i}", timestamp=JAN1 + n + i / 100)
    import_hermes_db(tmp_path / "state.db")
    with StateDB.reopen(tmp_path / "state.db") as src:
        src.message("s01", "assistant", "late answer", timestamp=JAN1 + 99)
    from sessions_app.importers import source as source_module

    read = []
    real = source_module.Source.messages

    def spy(self, *args, **kwargs):
        rows = real(self, *args, **kwargs)
        read.extend(row[1] for row in rows)
        return rows

    monkeypatch.setattr(source_module.Source, "messages", spy)
    result = import_hermes_db(tmp_path / "state.db")

    assert result.messages_imported == 1 and set(read) == {"s01"}
    assert_matches_file(tmp_path / "state.db")


def test_a_writer_that_starts_during_an_import_is_read_around(db, tmp_path):
    """hermes starts while the file is read immutably (no -wal when the import began): its checkpoint
    changes the file under the reader, which opens it again rather than read a mix of two states."""
    path = tmp_path / "state.db"
    with build_v30(path) as src:
        for n in range(30):
            src.session(f"z{n:02d}", model="m", started_at=JAN1 + 5 * DAY + n)
            src.message(f"z{n:02d}", "user", "x" * 5000, timestamp=JAN1 + 5 * DAY + n + 1)
    assert not (tmp_path / "state.db-wal").exists()
    writes = []

    def hermes_writes_meanwhile(progress):
        if not writes:
            with StateDB.reopen(path) as src:  # hermes' own upkeep: prune, then VACUUM rewrites the file
                src.message("a1", "user", "written during the import", timestamp=JAN1 + 200)
                src.conn.execute("DELETE FROM messages WHERE session_id IN ('z00', 'z01', 'z02', 'z03')")
                src.conn.execute("VACUUM")
                src.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            writes.append(1)

    first = import_hermes_db(path, batch_size=3, progress=hermes_writes_meanwhile)
    assert writes and first.sessions_imported == 35
    import_hermes_db(path)
    assert_matches_file(path)
    assert not Message.objects.filter(session_id="z00").exists()  # deleted by hermes: deleted here too


def test_a_rollback_journal_file_is_read_with_shared_locks_and_nothing_beside_it(db, tmp_path):
    path = tmp_path / "state.db"
    with build_v30(path) as src:
        src.conn.execute("PRAGMA journal_mode = DELETE")
    before = _digest(path)
    result = import_hermes_db(path)
    assert result.sessions_imported == 5 and _digest(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.db"]
    assert_matches_file(path)


REWRITER = """
import sqlite3, sys, time
path, until = sys.argv[1], time.time() + float(sys.argv[2])
while time.time() < until:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("UPDATE sessions SET title = ? WHERE id = 'a1'", (str(time.time()),))
    conn.execute("VACUUM")  # hermes' upkeep rewrites every page of the file
    conn.close()  # the last connection checkpoints into the file and removes the -wal
    time.sleep(0.1)
print("done", flush=True)
"""


def test_a_file_rewritten_again_and_again_during_the_import_is_never_read_torn(db, tmp_path):
    import subprocess
    import sys

    path = tmp_path / "state.db"
    with build_v30(path) as src:
        for n in range(150):
            src.session(f"z{n:03d}", model="m", started_at=JAN1 + 5 * DAY + n)
            for i in range(4):
                src.message(f"z{n:03d}", "user", f"{n}/{i} " * 300, timestamp=JAN1 + 5 * DAY + n + i / 10)
    rewriter = subprocess.Popen([sys.executable, "-c", REWRITER, str(path), "6"], stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 5
        runs = 0
        while time.monotonic() < deadline:
            import_hermes_db(path, batch_size=7)  # never "malformed", never a mix of two states
            runs += 1
    finally:
        assert rewriter.stdout.readline().strip() == "done"
        rewriter.wait(timeout=30)
    import_hermes_db(path)
    assert runs >= 1
    assert_matches_file(path)
