"""import_hermes: hermes-agent state.db files of three schema generations, built in the tests with known
truth (tests/hermes_fixtures.py), imported through the engine and the command."""

import datetime as dt
import hashlib
import json
import sqlite3
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from agents_app.conf import hermes_settings
from agents_app.models import LanguageModel
from sessions_app import importers
from sessions_app._sql import RowInsert as BatchInsert
from sessions_app.importers import LAST_MESSAGE_KEY, MISSING_PARENT_KEY, HermesImportError, import_hermes_db
from sessions_app.importers import sessions as session_pages
from sessions_app.models import Message, Session
from tests.hermes_fixtures import StateDB, without_digest

JAN1 = 1767225600.0  # 2026-01-01T00:00:00Z


def at(seconds: float) -> dt.datetime:
    return dt.datetime(2026, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=seconds)


@pytest.fixture
def state(tmp_path):
    """A fresh state.db in the given schema generation: ``state("old")``."""
    opened = []

    def make(schema="current", name="state.db"):
        db = StateDB(tmp_path / name, schema)
        opened.append(db)
        return db

    yield make
    for db in opened:
        db.close()


def run(path, *args, **options):
    out, err = StringIO(), StringIO()
    call_command("import_hermes", str(path), *args, stdout=out, stderr=err, **options)
    return out.getvalue(), err.getvalue()


def snapshot():
    return (
        sorted(Session.objects.values_list("pk", "message_count", "tool_call_count", "parent_session_id", "extra")),
        sorted(Message.objects.values_list("session_id", "role", "content", "timestamp")),
    )


def assert_counters_match_rows():
    for session in Session.objects.all():
        rows = list(session.messages.all())
        assert session.message_count == len(rows), session.pk
        assert session.tool_call_count == sum(
            len(m.tool_calls) if isinstance(m.tool_calls, list) else int(bool(m.tool_calls)) for m in rows
        )


# -- what is imported ----------------------------------------------------------------------------


def test_current_schema_every_field(db, state):
    src = state("current")
    src.session(
        "20260101_000000_aaaaaa",
        source="telegram",
        user_id="12345",
        model="anthropic/claude-opus-4.6",
        model_config={"temperature": 0.5, "max_tokens": 4096},
        system_prompt="You are Hermes.",
        started_at=JAN1 + 0.5,
        ended_at=JAN1 + 90.25,
        end_reason="completed",
        message_count=99,  # stale: must not be copied
        tool_call_count=42,
        input_tokens=1200,
        output_tokens=340,
        cache_read_tokens=1000,
        cache_write_tokens=200,
        reasoning_tokens=55,
        billing_provider="anthropic",
        billing_base_url="https://api.anthropic.com",
        billing_mode="api",
        estimated_cost_usd=0.0123,
        actual_cost_usd=0.5,
        title="Trip planning",
    )
    sid = "20260101_000000_aaaaaa"
    src.message(sid, "system", "be brief", timestamp=JAN1 + 1)
    src.message(sid, "user", "héllo 🙂", timestamp=JAN1 + 2, token_count=7)
    src.message(
        sid,
        "assistant",
        None,
        timestamp=JAN1 + 3,
        tool_calls=[{"id": "c1", "function": {"name": "search"}}, {"id": "c2", "function": {"name": "read"}}],
        finish_reason="tool_calls",
        reasoning="need facts",
        reasoning_details=[{"type": "summary", "text": "x"}],
        codex_reasoning_items="not json, kept as text",
    )
    src.message(sid, "tool", "result", timestamp=JAN1 + 4, tool_call_id="c1", tool_name="search")
    src.message(sid, "assistant", "done", timestamp=JAN1 + 5, tool_calls={"id": "c3"})  # a single dict counts 1

    result = import_hermes_db(src.path)

    assert (result.sessions_imported, result.messages_imported, result.messages_skipped) == (1, 5, 0)
    s = Session.objects.get()
    assert s.model.name == "anthropic/claude-opus-4.6" and s.model.provider == "anthropic"
    assert (s.source, s.user_id, s.system_prompt, s.end_reason) == ("telegram", "12345", "You are Hermes.", "completed")
    assert s.model_config == {"temperature": 0.5, "max_tokens": 4096}
    assert s.started_at == dt.datetime(2026, 1, 1, 0, 0, 0, 500000, tzinfo=dt.UTC)
    assert s.ended_at == dt.datetime(2026, 1, 1, 0, 1, 30, 250000, tzinfo=dt.UTC)
    assert (s.message_count, s.tool_call_count) == (5, 3)
    assert (s.input_tokens, s.output_tokens, s.cache_read_tokens, s.cache_write_tokens, s.reasoning_tokens) == (
        1200, 340, 1000, 200, 55,
    )  # fmt: skip
    assert (s.billing_provider, s.billing_base_url, s.billing_mode) == ("anthropic", "https://api.anthropic.com", "api")
    assert (s.estimated_cost_usd, s.actual_cost_usd) == (Decimal("0.0123"), Decimal("0.5"))
    assert s.title == "Trip planning" and s.parent_session_id is None
    assert without_digest(s.extra) == {LAST_MESSAGE_KEY: 5}

    msgs = list(s.messages.order_by("timestamp", "id"))
    assert [m.role for m in msgs] == ["system", "user", "assistant", "tool", "assistant"]
    assert [m.timestamp for m in msgs] == [at(1), at(2), at(3), at(4), at(5)]
    assert msgs[1].content == "héllo 🙂" and msgs[1].token_count == 7
    assistant = msgs[2]
    assert assistant.content is None
    assert assistant.tool_calls == [
        {"id": "c1", "function": {"name": "search"}},
        {"id": "c2", "function": {"name": "read"}},
    ]
    assert (assistant.finish_reason, assistant.reasoning) == ("tool_calls", "need facts")
    assert assistant.extra == {
        "reasoning_details": [{"type": "summary", "text": "x"}],
        "codex_reasoning_items": "not json, kept as text",
    }
    assert (msgs[3].tool_call_id, msgs[3].tool_name, msgs[3].extra) == ("c1", "search", None)
    assert msgs[4].tool_calls == {"id": "c3"}
    assert all(m.model_id is None for m in msgs)  # hermes records no model per message


def test_old_schema_without_optional_columns(db, state):
    src = state("old")
    src.session("s1", model="openai/gpt-5", started_at=JAN1, input_tokens=10)
    src.message("s1", "user", "hi", timestamp=JAN1 + 1)
    src.session("s2", model="", started_at=JAN1 + 10)  # empty model name: no model

    result = import_hermes_db(src.path)

    assert (result.sessions_imported, result.messages_imported, result.empty_sessions) == (2, 1, 1)
    s1, s2 = Session.objects.order_by("pk")
    assert (s1.input_tokens, s1.cache_read_tokens, s1.title, s1.estimated_cost_usd, s1.cwd) == (10, 0, None, None, None)
    assert s1.messages.get().reasoning is None
    assert s2.model is None
    assert {name: (t.sessions, t.empty) for name, t in result.by_model.items()} == {
        "openai/gpt-5": (1, 0),
        importers.NO_MODEL: (1, 1),
    }


def test_new_schema_extra_columns_and_tables(db, state):
    src = state("new")
    src.session(
        "s1", model="m", cwd="/home/me/project", api_call_count=7, archived=1, cost_status="final",
        handoff_state='{"to": "discord"}',
    )  # fmt: skip
    src.message("s1", "assistant", "x", reasoning_content="thinking", platform_message_id="tg-9", observed=1)
    assert {"messages_fts", "schema_version", "state_meta"} <= {
        r[0] for r in src.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    }

    import_hermes_db(src.path)

    s = Session.objects.get()
    assert (s.cwd, s.api_call_count) == ("/home/me/project", 7)
    assert without_digest(s.extra) == {
        "archived": 1, "cost_status": "final", "handoff_state": {"to": "discord"}, LAST_MESSAGE_KEY: 1,
    }  # fmt: skip
    assert s.messages.get().extra == {"reasoning_content": "thinking", "platform_message_id": "tg-9", "observed": 1}


# -- parents ---------------------------------------------------------------------------------------


def test_parent_after_child_missing_parent_and_parent_from_a_later_file(db, state):
    src = state()
    src.session("a_child", parent_session_id="z_parent")  # the parent comes later in id order
    src.session("z_parent")
    src.session("orphan", parent_session_id="not_in_file")
    src.session("selfish", parent_session_id="selfish")

    result = import_hermes_db(src.path, batch_size=1)

    assert Session.objects.get(pk="a_child").parent_session_id == "z_parent"
    assert MISSING_PARENT_KEY not in Session.objects.get(pk="a_child").extra
    orphan = Session.objects.get(pk="orphan")
    assert orphan.parent_session_id is None and orphan.extra[MISSING_PARENT_KEY] == "not_in_file"
    assert Session.objects.get(pk="selfish").parent_session_id is None
    assert (result.parents_linked, result.parents_missing) == (1, 1)

    other = state(name="other.db")  # e.g. another profile's state.db holding the parent
    other.session("not_in_file")
    later = import_hermes_db(other.path)
    orphan.refresh_from_db()
    assert orphan.parent_session_id == "not_in_file" and MISSING_PARENT_KEY not in orphan.extra
    assert later.parents_linked == 1


# -- idempotent, incremental, dry run ---------------------------------------------------------------


def _small_history(src):
    src.session("s1", model="a/m1", started_at=JAN1)
    src.session("s2", model="a/m1", started_at=JAN1 + 1)  # empty
    src.session("s3", model="b/m2", started_at=JAN1 + 2)
    for i in range(3):
        src.message("s1", "user", f"s1-{i}", timestamp=JAN1 + 10 + i)
    src.message("s3", "assistant", "s3-0", timestamp=JAN1 + 20, tool_calls=[{"id": "t"}])


@pytest.mark.parametrize("batch_size", [1, 2, 100])
def test_dry_run_and_real_run_agree_on_parent_links_when_a_parent_is_skipped(db, state, batch_size):
    """A parent further on in the file whose row is skipped: its child is imported unlinked and
    counted as missing its parent, by the dry run and the real run alike."""
    src = state()
    src.session("a_child", parent_session_id="z_parent")
    src.session("b_orphan", parent_session_id="gone")
    src.session("d_child", parent_session_id="e_bad")
    src.session("e_bad", started_at=-1.0)  # skipped: invalid started_at
    src.session("z_parent")

    dry = import_hermes_db(src.path, batch_size=batch_size, dry_run=True)
    real = import_hermes_db(src.path, batch_size=batch_size)

    assert (dry.parents_linked, dry.parents_missing) == (real.parents_linked, real.parents_missing) == (1, 2)
    assert dict(Session.objects.values_list("pk", "parent_session_id")) == {
        "a_child": "z_parent",
        "b_orphan": None,
        "d_child": None,
        "z_parent": None,
    }
    assert any("parent 'e_bad' was skipped" in w for w in real.warnings)


def test_second_run_imports_nothing_and_never_writes_the_source(db, state):
    src = state()
    _small_history(src)
    src.close()
    digest = hashlib.sha256(src.path.read_bytes()).hexdigest()

    first = import_hermes_db(src.path, batch_size=2)
    before = snapshot()
    second = import_hermes_db(src.path, batch_size=2)

    assert (first.sessions_imported, first.messages_imported) == (3, 4)
    assert (second.sessions_imported, second.sessions_updated, second.messages_imported) == (0, 0, 0)
    assert second.sessions_unchanged == 3
    assert snapshot() == before
    assert hashlib.sha256(src.path.read_bytes()).hexdigest() == digest
    assert_counters_match_rows()


def test_incremental_run_imports_only_what_is_new(db, state):
    src = state()
    _small_history(src)
    import_hermes_db(src.path)

    src.message("s1", "assistant", "s1-3", timestamp=JAN1 + 30, tool_calls=[{"id": "x"}, {"id": "y"}])
    src.message("s2", "user", "s2-0", timestamp=JAN1 + 31)  # the empty session speaks at last
    src.session("s4", model="b/m2", started_at=JAN1 + 40)
    src.message("s4", "user", "s4-0", timestamp=JAN1 + 41)
    src.conn.execute(
        "UPDATE sessions SET ended_at = ?, end_reason = 'completed', output_tokens = 99 WHERE id = 's1'", (JAN1 + 50,)
    )

    result = import_hermes_db(src.path, batch_size=2)

    assert (result.sessions_imported, result.sessions_updated, result.messages_imported) == (1, 1, 3)
    s1 = Session.objects.get(pk="s1")
    assert (s1.message_count, s1.tool_call_count, s1.output_tokens, s1.ended_at) == (4, 2, 99, at(50))
    assert [m.content for m in s1.messages.order_by("timestamp", "id")] == ["s1-0", "s1-1", "s1-2", "s1-3"]
    assert Session.objects.get(pk="s2").message_count == 1
    assert Message.objects.count() == 7
    assert_counters_match_rows()
    assert import_hermes_db(src.path).messages_imported == 0


def test_dry_run_writes_nothing_and_predicts_the_real_run(db, state):
    src = state()
    _small_history(src)
    src.session("child", parent_session_id="s3")
    src.message("s3", "bogus", "x", timestamp=JAN1 + 60)

    dry = import_hermes_db(src.path, dry_run=True, batch_size=2)

    assert Session.objects.count() == 0 and Message.objects.count() == 0 and LanguageModel.objects.count() == 0
    assert (dry.sessions_imported, dry.messages_imported, dry.messages_skipped, dry.empty_sessions) == (4, 4, 1, 2)
    assert (dry.models_created, dry.parents_linked) == (2, 1)
    real = import_hermes_db(src.path, batch_size=2)
    fields = ("sessions_imported", "messages_imported", "messages_skipped", "empty_sessions", "models_created")
    assert [getattr(real, f) for f in fields] == [getattr(dry, f) for f in fields]


# -- bad rows ----------------------------------------------------------------------------------------


def test_bad_rows_are_skipped_counted_and_the_rest_imported(db, state):
    src = state()
    src.session("good", model="m")
    src.session("badcfg", model="m", model_config="{not json")
    src.message("badcfg", "user", "lost with its session")
    src.message("good", "user", "1")
    src.message("good", "narrator", "unknown role")
    src.message("good", "assistant", "2", tool_calls="[{broken")
    src.message("good", "assistant", "3", tool_calls='[{"x": NaN}]')
    src.message("nowhere", "user", "orphan message")
    src.message("good", "user", "4")

    result = import_hermes_db(src.path)

    assert list(Session.objects.values_list("pk", flat=True)) == ["good"]
    good = Session.objects.get()
    assert [m.content for m in good.messages.order_by("id")] == ["1", "4"] and good.message_count == 2
    assert (result.sessions_skipped, result.messages_imported, result.messages_skipped) == (1, 2, 5)
    assert result.skip_reasons == {
        "session: invalid JSON in model_config": 1,
        "message: its session was skipped": 1,
        "message: no session row in the file": 1,
        "message: unknown role": 1,
        "message: invalid JSON in tool_calls": 2,
    }
    assert len(result.warnings) == 4  # one per bad row; the lost messages are counted, not listed
    again = import_hermes_db(src.path)
    assert again.skip_reasons == {"session: invalid JSON in model_config": 1, "message: its session was skipped": 1}
    assert again.messages_imported == 0  # the bad message rows are behind the mark: not re-read


def test_nul_and_invalid_utf8_are_replaced_alike_on_every_backend(db, state):
    src = state()
    src.session("s", model="m")
    src.message("s", "tool", "bin\x00ary", tool_calls='[{"a": "x\\u0000y", "b": "\\\\u0000"}]')
    src.conn.execute(
        "INSERT INTO messages (session_id, role, content, timestamp) VALUES ('s', 'user', CAST(? AS TEXT), ?)",
        (b"caf\xe9", JAN1),
    )

    result = import_hermes_db(src.path)

    first, second = Message.objects.order_by("id")
    assert first.content == "bin\ufffdary"
    assert first.tool_calls == [{"a": "x\ufffdy", "b": "\\u0000"}]  # an escaped backslash is left alone
    assert second.content == "caf\ufffd"
    assert (result.values_repaired, result.messages_imported) == (3, 2)


def test_escaped_nul_in_extra_json_columns_is_repaired_not_skipped(db, state):
    """Columns without a field of their own (kept in ``extra``) get the repair ``tool_calls`` gets."""
    src = state("new")
    src.session("s", model="m", handoff_state='{"k": "a\\u0000b"}')
    src.message("s", "assistant", "hi", codex_message_items='[{"t": "x\\u0000"}]')

    result = import_hermes_db(src.path)

    session, message = Session.objects.get(), Message.objects.get()
    assert session.extra["handoff_state"] == {"k": "a\ufffdb"}
    assert message.extra["codex_message_items"] == [{"t": "x\ufffd"}]
    assert (result.sessions_imported, result.messages_imported, result.values_repaired) == (1, 1, 2)
    assert not result.skip_reasons


@pytest.mark.parametrize("where", ["content", "tool_calls"])
def test_message_too_large_to_store_is_skipped_and_the_page_goes_on(db, state, settings, where):
    """Under the character limit but over MAX_MESSAGE_BYTES once encoded (4-byte characters in
    text; JSON stores "é" as the 6 bytes of \\u00e9): the save path refuses such a message, and
    MariaDB would drop the connection on it."""
    from sessions_app import validation

    if where == "content":
        huge = {"content": "\N{GRINNING FACE}" * (validation.MAX_MESSAGE_BYTES // 4 + 1)}
    else:
        huge = {
            "content": None,
            "tool_calls": json.dumps([{"arguments": "é" * (validation.MAX_MESSAGE_BYTES // 6)}], ensure_ascii=False),
        }
    assert len(next(v for v in huge.values() if v)) <= hermes_settings.HERMES_MAX_CONTENT_CHARS  # not too long
    src = state()
    src.session("s", model="m")
    src.message("s", "user", "before")
    src.message("s", "assistant", **huge)
    src.message("s", "user", "after")

    result = import_hermes_db(src.path)

    assert result.skip_reasons == {"message: message too large": 1}
    assert list(Message.objects.order_by("id").values_list("content", flat=True)) == ["before", "after"]
    assert Session.objects.get().message_count == 2


def test_message_exactly_at_the_byte_limit_plus_its_extra_is_skipped(db, state):
    """The size bound must count the extra JSON's keys and non-text values too: content of
    exactly MAX_MESSAGE_BYTES plus {"observed": 0} is over the limit, as the save path says."""
    from django.core.exceptions import ValidationError

    from sessions_app import validation

    content = "\N{GRINNING FACE}" * (validation.MAX_MESSAGE_BYTES // 4)
    with pytest.raises(ValidationError):  # the save path's verdict, independently of the importer
        validation.check_message(
            {"role": "user", "content": content, "extra": {"observed": 0}}, now=dt.datetime.now(dt.UTC)
        )
    src = state("new")
    src.session("s", model="m")
    src.message("s", "user", content, observed=0)

    result = import_hermes_db(src.path)

    assert result.skip_reasons == {"message: message too large": 1}
    assert not Message.objects.exists()


def test_id_of_a_session_we_did_not_import_is_left_alone(db, state, legacy_session):
    legacy_session(session_id="taken", model="x/y")
    src = state()
    src.session("taken", model="m")
    src.message("taken", "user", "not ours to add")

    result = import_hermes_db(src.path)

    taken = Session.objects.get()
    assert taken.model.name == "x/y" and taken.extra is None and taken.messages.count() == 0
    assert (result.sessions_skipped, result.messages_skipped) == (1, 1)


# -- bad files ---------------------------------------------------------------------------------------


def _bigger_file(path):
    with StateDB(path) as src:
        src.session("s", model="m")
        src.many_messages([("s", "user", "x" * 500, None, JAN1 + i, 1) for i in range(400)])
    return path


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda p: p / "missing.db", "does not exist"),
        (lambda p: p, "is a directory"),
        (lambda p: (p / "notes.txt").write_text("hello") and p / "notes.txt", "not a SQLite database"),
        (lambda p: (p / "empty.db").write_bytes(b"") or p / "empty.db", "not a SQLite database"),
    ],
    ids=["missing", "directory", "text-file", "empty-file"],
)
def test_paths_that_are_not_a_state_db(db, tmp_path, make, match):
    with pytest.raises(CommandError, match=match):
        run(make(tmp_path))
    assert Session.objects.count() == 0


def test_sqlite_file_without_the_hermes_tables(db, tmp_path):
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE sessions (id TEXT PRIMARY KEY, source TEXT, started_at REAL)")
    with pytest.raises(CommandError, match=r"not a hermes-agent state\.db: no messages table"):
        run(path)
    assert Session.objects.count() == 0


def test_truncated_file(db, tmp_path):
    path = _bigger_file(tmp_path / "state.db")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CommandError, match="truncated"):
        run(path)
    assert Session.objects.count() == 0 and Message.objects.count() == 0


def test_corrupt_pages_stop_the_run_keeping_whole_batches_only(db, tmp_path):
    path = _bigger_file(tmp_path / "state.db")
    with sqlite3.connect(path) as conn:
        leaves = [p for (p,) in conn.execute("SELECT pageno FROM dbstat WHERE name = 'messages' AND pagetype = 'leaf'")]
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    data = bytearray(path.read_bytes())
    page = sorted(leaves)[len(leaves) // 2]  # a leaf of the messages table, half-way through
    data[(page - 1) * page_size : page * page_size] = b"\xa5" * page_size
    path.write_bytes(bytes(data))

    with pytest.raises(CommandError, match=r"corrupt.*messages imported before the error are kept"):
        run(path, "--batch-size", "50")
    assert_counters_match_rows()
    imported = Message.objects.count()
    assert 0 < imported < 400 and imported % 50 == 0  # the sound batches, whole


def test_failure_in_the_second_batch_keeps_the_first_and_a_rerun_finishes(db, state, monkeypatch):
    src = state()
    src.session("s", model="m")
    for i in range(10):
        src.message("s", "assistant", f"m{i}", timestamp=JAN1 + i, tool_calls=[{"id": i}])
    calls = []
    real_run = BatchInsert.run

    def failing(self, rows, **kwargs):
        if self.fields[0].model is Message:
            calls.append(len(rows))
            if len(calls) == 2:
                raise RuntimeError("injected failure in the second message batch")
        return real_run(self, rows, **kwargs)

    monkeypatch.setattr(BatchInsert, "run", failing)
    with pytest.raises(RuntimeError, match="injected"):
        import_hermes_db(src.path, batch_size=4)
    s = Session.objects.get()
    assert [m.content for m in s.messages.order_by("id")] == ["m0", "m1", "m2", "m3"]
    assert (s.message_count, s.tool_call_count, s.extra[LAST_MESSAGE_KEY]) == (4, 4, 4)

    monkeypatch.setattr(BatchInsert, "run", real_run)
    result = import_hermes_db(src.path, batch_size=4)
    assert result.messages_imported == 6
    assert [m.content for m in Session.objects.get().messages.order_by("id")] == [f"m{i}" for i in range(10)]
    assert_counters_match_rows()


# -- the command -------------------------------------------------------------------------------------


def test_command_summary_progress_and_json(db, state):
    src = state()
    _small_history(src)

    out, err = run(src.path, "--dry-run", verbosity=2)
    assert "dry run: nothing written" in out and "Sessions: 3 would import" in out
    assert "Empty sessions: 1 of 3 would import (33.3%)" in out
    assert "messages 4/~4" in err  # plain progress lines: stderr is not a terminal
    assert Session.objects.count() == 0

    out, _ = run(src.path, "--format", "json", "--batch-size", "1")
    data = json.loads(out)
    assert (data["sessions_imported"], data["messages_imported"], data["empty_sessions"]) == (3, 4, 1)
    assert data["by_model"]["a/m1"] == {"sessions": 2, "empty": 1, "rate": 0.5}

    out, err = run(src.path, verbosity=0)
    assert "Sessions: 0 imported" in out and err == ""


def test_command_rejects_bad_options(db, state):
    src = state()
    with pytest.raises(CommandError, match="whole number from 1 to 100,000, got 0"):
        run(src.path, "--batch-size", "0")
    with pytest.raises(CommandError, match="unknown --database"):
        run(src.path, "--database", "nope")


def test_engine_raises_its_own_error_type(tmp_path):
    with pytest.raises(HermesImportError):
        import_hermes_db(tmp_path / "nothing.db")
    assert issubclass(HermesImportError, ValueError)


def test_session_inserted_by_a_concurrent_import_is_found_on_a_redo(transactional_db, state, monkeypatch):
    src = state()
    src.session("s1", model="m")
    src.session("s2", model="m")
    src.message("s2", "user", "hi")
    # Another import committed s1 just after this one looked: the first lookup misses it.
    model = LanguageModel.objects.create(name="m")
    Session.objects.create(id="s1", source="cli", model=model, extra={LAST_MESSAGE_KEY: 0})
    real, misses = session_pages.in_chunks, []

    def stale_once(queryset, ids):
        rows = real(queryset, ids)
        if queryset.model is Session and not misses and "s1" in ids:
            misses.append(1)
            return [row for row in rows if getattr(row, "pk", None) != "s1"]
        return rows

    monkeypatch.setattr(session_pages, "in_chunks", stale_once)
    result = import_hermes_db(src.path)

    assert misses == [1]
    found = result.sessions_unchanged + result.sessions_updated  # found on the redo, not created twice
    assert (result.sessions_imported, found, result.messages_imported) == (1, 1, 1)
    assert sorted(Session.objects.values_list("pk", "message_count")) == [("s1", 0), ("s2", 1)]


@pytest.mark.parametrize(
    ("columns", "reason"),
    [
        ({"timestamp": "yesterday"}, "invalid timestamp"),
        ({"timestamp": None}, "missing timestamp"),
        ({"timestamp": JAN1 + 10 * 365 * 86400}, "invalid timestamp"),  # ten years ahead
        ({"tool_name": "t" * 256}, "tool_name too long"),
        ({"token_count": -1}, "invalid token_count"),
        ({"tool_calls": '"just a string"'}, "tool_calls is not a list"),
        ({"tool_calls": "[1e999]"}, "invalid JSON in tool_calls"),
        ({"tool_calls": '[{"a": "\\ud800"}]'}, "invalid tool_calls"),  # lone surrogate
    ],
    ids=["text-time", "null-time", "future", "long-tool-name", "negative-tokens", "not-a-list", "inf", "surrogate"],
)
def test_message_rows_that_cannot_be_stored_are_skipped(db, tmp_path, columns, reason):
    path = tmp_path / "state.db"
    conn = sqlite3.connect(path)
    conn.executescript(
        "CREATE TABLE sessions (id TEXT PRIMARY KEY, source TEXT, started_at REAL);"
        "CREATE TABLE messages (id INTEGER PRIMARY KEY AUTOINCREMENT, session_id TEXT, role TEXT, content TEXT,"
        " tool_calls TEXT, tool_name TEXT, timestamp REAL, token_count INTEGER);"
    )  # no NOT NULL: a damaged file can hold anything
    conn.execute("INSERT INTO sessions VALUES ('s', 'cli', ?)", (JAN1,))
    row = {"session_id": "s", "role": "user", "content": "bad", "timestamp": JAN1, **columns}
    names, marks = ", ".join(row), ", ".join("?" * len(row))
    conn.execute(f"INSERT INTO messages ({names}) VALUES ({marks})", tuple(row.values()))  # noqa: S608
    conn.execute("INSERT INTO messages (session_id, role, content, timestamp) VALUES ('s', 'user', 'good', ?)", (JAN1,))
    conn.commit()
    conn.close()

    result = import_hermes_db(path)

    assert result.skip_reasons == {f"message: {reason}": 1}
    assert list(Message.objects.values_list("content", flat=True)) == ["good"]
    assert Session.objects.get().message_count == 1


@pytest.mark.parametrize(
    ("columns", "reason"),
    [
        ({"started_at": None}, "missing started_at"),
        ({"title": "t" * 501}, "title too long"),
        ({"source": ""}, "invalid source"),
        ({"estimated_cost_usd": "lots"}, "invalid estimated_cost_usd"),
        ({"input_tokens": 1.5}, "invalid input_tokens"),
        ({"model": "m" * 256}, "invalid model"),
    ],
    ids=["no-start", "long-title", "empty-source", "text-cost", "fractional-tokens", "long-model"],
)
def test_session_rows_that_cannot_be_stored_are_skipped(db, tmp_path, columns, reason):
    path = tmp_path / "state.db"
    with StateDB(path) as src:
        src.conn.executescript(  # a damaged file: no NOT NULL on started_at
            "DROP TABLE sessions; CREATE TABLE sessions (id TEXT PRIMARY KEY, source TEXT, model TEXT,"
            " started_at REAL, title TEXT, estimated_cost_usd REAL, input_tokens INTEGER);"
        )
        src.session_columns = {"id", "source", "model", "started_at", "title", "estimated_cost_usd", "input_tokens"}
        src.session("bad", **columns)
        src.session("good")
        src.message("bad", "user", "lost")

    result = import_hermes_db(path)

    assert list(Session.objects.values_list("pk", flat=True)) == ["good"]
    assert result.skip_reasons == {f"session: {reason}": 1, "message: its session was skipped": 1}


def test_a_live_writer_is_neither_blocked_nor_seen_half_way(db, state):
    src = state()
    src.session("s", model="m")
    src.message("s", "user", "committed")
    src.conn.execute("BEGIN IMMEDIATE")  # the agent is in the middle of a write
    src.message("s", "user", "not yet committed")
    src.session("later")
    progress = []

    result = import_hermes_db(src.path, progress=progress.append)

    assert (result.sessions_imported, result.messages_imported) == (1, 1)
    assert progress[-1].phase == "messages" and (progress[-1].messages_done, progress[-1].sessions_done) == (1, 1)
    src.conn.execute("COMMIT")  # and the agent's write went through untouched
    assert import_hermes_db(src.path).messages_imported == 1
    assert list(Message.objects.order_by("id").values_list("content", flat=True)) == ["committed", "not yet committed"]


@pytest.mark.django_db
def test_the_importer_copies_on_postgresql_and_inserts_elsewhere(vendor):
    # psycopg 3 (requirements.txt) has COPY; the writer asks the connection which driver it has, so
    # that a project on SQLite or MariaDB needs no psycopg installed.
    batch = BatchInsert(Message, ["session_id", "role", "content"], connection)
    assert (batch.copy_sql is not None) is (vendor == "postgresql")
    if vendor == "postgresql":
        assert batch.copy_sql.startswith("COPY ")
    assert batch.sql.startswith("INSERT INTO ")
