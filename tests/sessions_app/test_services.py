import datetime as dt
from unittest import mock

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, OperationalError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from agents_app import db as hermes_db
from agents_app.models import LanguageModel
from sessions_app import _sql, services
from sessions_app.models import Message, Session
from sessions_app.services import append_messages, end_session

INSERT_MESSAGES = "sessions_app._sql.insert_messages"


def _msgs(*contents, role="user"):
    return [{"role": role, "content": c} for c in contents]


def test_first_call_creates_then_appends(db):
    session, created = append_messages("s1", _msgs("a", "b"), model="openai/gpt-5", source="cli")
    assert created is True and isinstance(session, Session)
    assert session.message_count == 2
    session, created = append_messages("s1", _msgs("c"), model="openai/gpt-5", source="telegram")
    assert created is False
    assert session.message_count == 3
    assert session.source == "cli"  # session fields come from the creating call
    stored = Session.objects.get(pk="s1")
    assert stored.message_count == 3 == stored.messages.count()
    assert LanguageModel.objects.get().provider == "openai"


def test_timestamps_and_fields_round_trip(db):
    when = dt.datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=dt.UTC)
    append_messages(
        "s1",
        [
            {
                "role": "assistant",
                "content": "x",
                "tool_calls": [{"id": "t", "args": {"q": "é🙂"}}],
                "timestamp": when,
                "token_count": 12,
                "finish_reason": "tool_calls",
                "reasoning": "because",
                "extra": {"reasoning_details": [{"type": "summary"}]},
            },
            {"role": "tool", "content": "y", "tool_call_id": "t", "tool_name": "search", "timestamp": 1772368216.5},
        ],
        model="m",
        source="cli",
        user_id=123,
    )
    first, second = Message.objects.order_by("id")
    assert first.timestamp == when
    assert first.tool_calls == [{"id": "t", "args": {"q": "é🙂"}}]
    assert (first.token_count, first.finish_reason, first.reasoning) == (12, "tool_calls", "because")
    assert first.extra == {"reasoning_details": [{"type": "summary"}]}
    assert second.timestamp == dt.datetime(2026, 3, 1, 12, 30, 16, 500000, tzinfo=dt.UTC)
    assert (second.tool_call_id, second.tool_name) == ("t", "search")
    session = Session.objects.get()
    assert session.user_id == "123"
    assert session.tool_call_count == 1
    assert session.started_at == when


def test_fault_after_session_insert_leaves_nothing(db):
    def failing_insert(*args, **kwargs):
        assert Session.objects.filter(pk="s1").exists()  # the row was created in this transaction
        raise IntegrityError("injected failure while inserting messages")

    with mock.patch(INSERT_MESSAGES, side_effect=failing_insert), pytest.raises(IntegrityError, match="injected"):
        append_messages("s1", _msgs("a"), model="m", source="cli")
    assert Session.objects.count() == 0
    assert Message.objects.count() == 0
    append_messages("s1", _msgs("a"), model="m", source="cli")
    assert Session.objects.get().message_count == 1


def test_failed_second_flush_keeps_first_and_retry_writes_once(db):
    append_messages("s1", _msgs("a"), model="m", source="cli")
    lost = OperationalError("connection lost")
    with mock.patch(INSERT_MESSAGES, side_effect=lost), pytest.raises(OperationalError):
        append_messages("s1", _msgs("b", "c"), model="m", source="cli")
    session = Session.objects.get()
    assert session.message_count == 1 == session.messages.count()
    append_messages("s1", _msgs("b", "c"), model="m", source="cli")
    session.refresh_from_db()
    assert session.message_count == 3
    assert list(session.messages.values_list("content", flat=True)) == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("messages", "key"),
    [
        ([{"role": "robot", "content": "x"}], "messages[0].role"),
        (
            [{"role": "user", "content": "ok"}, {"role": "assistant", "tool_calls": [object()]}],
            "messages[1].tool_calls",
        ),
        ([{"role": "user", "content": "nul \x00 byte"}], "messages[0].content"),
        ([{"role": "user", "content": "lone \ud800 surrogate"}], "messages[0].content"),
        ([{"role": "user", "content": "x", "timestamp": -5}], "messages[0].timestamp"),
        ([{"role": "user", "content": "x", "timestamp": 4102444800 * 10}], "messages[0].timestamp"),
        ([{"role": "user", "content": "x", "timestamp": dt.datetime(2026, 1, 1)}], "messages[0].timestamp"),
        ([{"role": "user", "content": "x", "tool_call_id": "t" * 256}], "messages[0].tool_call_id"),
        ([{"role": "user", "content": "x", "token_count": -1}], "messages[0].token_count"),
        ([{"role": "user", "content": "x", "colour": "red"}], "messages[0]"),
        ([{"role": "user", "content": 42}], "messages[0].content"),
        ([{"role": "tool", "tool_calls": [{"x": float("nan")}]}], "messages[0].tool_calls"),
        ([{"role": "tool", "tool_calls": [{"x": "nul\x00"}]}], "messages[0].tool_calls"),
        (["not a dict"], "messages[0]"),
        ([], "messages"),
        ("user: hi", "messages"),
    ],
)
def test_invalid_messages_raise_and_write_nothing(db, messages, key):
    append_messages("existing", _msgs("keep"), model="m", source="cli")
    for session_id in ("existing", "new"):
        with pytest.raises(ValidationError) as info:
            append_messages(session_id, messages, model="m", source="cli")
        assert key in info.value.message_dict
    assert list(Session.objects.values_list("id", "message_count")) == [("existing", 1)]
    assert Message.objects.count() == 1


def test_huge_content_is_refused_with_the_setting_named(db, settings):
    settings.HERMES_MAX_CONTENT_CHARS = 1000
    with pytest.raises(ValidationError, match="HERMES_MAX_CONTENT_CHARS"):
        append_messages("s", _msgs("x" * 1001), model="m", source="cli")
    append_messages("s", _msgs("x" * 1000), model="m", source="cli")
    assert Message.objects.get().content == "x" * 1000


def test_ten_megabyte_content_is_refused_by_default(db):
    with pytest.raises(ValidationError, match="limit"):
        append_messages("s", _msgs("x" * 10_000_000), model="m", source="cli")
    assert Session.objects.count() == 0


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"session_id": ""}, "session_id"),
        ({"session_id": "x" * 129}, "session_id"),
        ({"session_id": "bad\nid"}, "session_id"),
        ({"session_id": "tab\tid"}, "session_id"),
        ({"session_id": 12}, "session_id"),
        ({"model": ""}, "model"),
        ({"model": "m" * 256}, "model"),
        ({"source": ""}, "source"),
        ({"source": None}, "source"),
        ({"parent_session_id": "missing"}, "parent_session_id"),
        ({"parent_session_id": "s"}, "parent_session_id"),
        ({"usage": {"bogus_tokens": 1}}, "usage"),
        ({"usage": {"input_tokens": -1}}, "usage.input_tokens"),
        ({"system_prompt": "nul\x00"}, "system_prompt"),
    ],
)
def test_invalid_session_arguments(db, kwargs, key):
    arguments = {"session_id": "s", "model": "m", "source": "cli", **kwargs}
    session_id = arguments.pop("session_id")
    with pytest.raises(ValidationError) as info:
        append_messages(session_id, _msgs("x"), **arguments)
    assert key in info.value.message_dict
    assert Session.objects.count() == 0
    assert LanguageModel.objects.count() == 0


def test_session_ids_differing_in_case_or_trailing_space_are_distinct(db):
    for session_id in ("abc", "ABC", "abc ", "abç"):
        _, created = append_messages(session_id, _msgs(session_id), model="m", source="cli")
        assert created, session_id
    assert Session.objects.count() == 4
    assert Session.objects.get(pk="abc ").messages.get().content == "abc "
    assert Session.objects.get(pk="abc").messages.get().content == "abc"


def test_model_names_differing_in_case_are_distinct(db):
    append_messages("a", _msgs("x"), model="GPT", source="cli")
    append_messages("b", _msgs("x"), model="gpt", source="cli")
    assert sorted(LanguageModel.objects.values_list("name", flat=True)) == ["GPT", "gpt"]


def test_parent_link_and_end_session(db):
    append_messages("parent", _msgs("x"), model="m", source="cli")
    child, _ = append_messages("child", _msgs("y"), model="m", source="cli", parent_session_id="parent")
    assert child.parent_session_id == "parent"
    assert end_session("child", "done") is True
    assert end_session("nobody", "done") is False
    assert not Session.objects.filter(pk="nobody").exists()
    assert Session.objects.get(pk="child").end_reason == "done"


def test_transient_errors_are_retried_outside_a_transaction(db, monkeypatch):
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise OperationalError("database is locked")
        return "ok"

    monkeypatch.setattr(hermes_db.time, "sleep", lambda s: None)
    # pytest-django's `db` wraps the test in a transaction, so simulate the caller having none.
    monkeypatch.setattr(hermes_db, "connections", {"default": mock.Mock(in_atomic_block=False)})
    assert hermes_db.run_with_retry(flaky) == "ok"
    assert len(calls) == 3

    def broken():
        raise OperationalError("no such table")

    with pytest.raises(OperationalError, match="no such table"):
        hermes_db.run_with_retry(broken)


MESSAGE_COLUMNS = (
    "role",
    "content",
    "tool_call_id",
    "tool_calls",
    "tool_name",
    "timestamp",
    "token_count",
    "finish_reason",
    "reasoning",
    "extra",
)


def _mixed_batches():
    """Batches where optional columns are absent throughout, present in some messages, or shared."""
    when = dt.datetime(2026, 2, 3, 4, 5, 6, 789000, tzinfo=dt.UTC)
    shared = {"details": ["same", "object"]}
    return [
        [{"role": "user", "content": "only the required columns"}],
        [
            {"role": "assistant", "content": None, "tool_calls": [{"id": "t1"}], "extra": shared, "timestamp": when},
            {"role": "tool", "content": "r", "tool_call_id": "t1", "tool_name": "search", "extra": shared},
            {"role": "assistant", "content": "done", "token_count": 7, "finish_reason": "stop", "reasoning": "why"},
        ],
        [{"role": "user", "content": "plain again", "timestamp": when}, {"role": "user", "content": "é🙂"}],
    ]


def _stored(session_id, columns=MESSAGE_COLUMNS):
    return list(Message.objects.filter(session_id=session_id).order_by("id").values(*columns))


def test_optional_columns_present_absent_or_shared_round_trip(db):
    batches = _mixed_batches()
    before = timezone.now()
    for batch in batches:
        append_messages("s1", batch, model="m", source="cli")
    after = timezone.now()
    messages = [message for batch in batches for message in batch]
    columns = [name for name in MESSAGE_COLUMNS if name != "timestamp"]
    assert _stored("s1", columns) == [{name: message.get(name) for name in columns} for message in messages]
    for message, row in zip(messages, _stored("s1", ["timestamp"]), strict=True):
        if "timestamp" in message:
            assert row["timestamp"] == message["timestamp"]
        else:
            assert before <= row["timestamp"] <= after
    session = Session.objects.get(pk="s1")
    assert (session.message_count, session.tool_call_count) == (6, 1)


def test_observed_and_unobserved_writes_store_the_same_rows(db):
    """With an execute wrapper installed (APM, debug toolbar) the statements go through Django's
    cursor and are seen; the rows written are the same as through the driver's cursor."""
    seen = []

    def record(execute, sql, params, many, context):
        seen.append(sql)
        return execute(sql, params, many, context)

    for batch in _mixed_batches():
        append_messages("plain", batch, model="m", source="cli")
        with connection.execute_wrapper(record):
            append_messages("observed", batch, model="m", source="cli")
    columns = [name for name in MESSAGE_COLUMNS if name != "timestamp"]
    assert _stored("plain", columns) == _stored("observed", columns)
    assert Session.objects.get(pk="plain").message_count == Session.objects.get(pk="observed").message_count == 6
    assert any(sql.startswith("INSERT") and Message._meta.db_table in sql for sql in seen)
    assert any(sql.startswith("UPDATE") and Session._meta.db_table in sql for sql in seen)


def test_captured_queries_include_the_fast_statements(db):
    append_messages("s1", _msgs("a"), model="m", source="cli")
    with CaptureQueriesContext(connection) as later:
        append_messages("s1", _msgs("b", "c"), model="m", source="cli")
    statements = [q["sql"] for q in later.captured_queries]
    assert any(sql.startswith("UPDATE") and Session._meta.db_table in sql for sql in statements)
    # executemany is logged as "<n> times: INSERT ..."
    assert any("INSERT INTO" in sql and Message._meta.db_table in sql for sql in statements)


def test_database_errors_of_the_flush_statements_are_djangos(db):
    """The hand-written flush statements run on Django's cursor: errors come as Django's classes."""
    append_messages("s1", _msgs("a"), model="m", source="cli")
    bad = {name: None for name in MESSAGE_COLUMNS} | {"timestamp": dt.datetime(2026, 1, 1, tzinfo=dt.UTC)}
    with pytest.raises(IntegrityError), transaction.atomic():
        _sql.insert_messages("s1", None, [bad], using="default")  # role is NOT NULL
    assert Message.objects.filter(session_id="s1").count() == 1


def test_flush_returns_the_session_as_django_reads_it(db):
    """The later flush builds its Session from the row its UPDATE returned, with the converters
    Django's compiler would use (see ``_sql._session_converters``): every field must equal
    what ``Session.objects.get()`` reads, for every kind of column (JSON, decimal, datetime, FK)."""
    append_messages("s1", _msgs("a"), model="m", source="cli", user_id="u1", system_prompt="be brief")
    Session.objects.filter(pk="s1").update(
        model_config={"temperature": 0.2, "tools": ["a", "b"]},
        estimated_cost_usd="0.0123456789",
        ended_at=dt.datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=dt.UTC),
        end_reason="completed",
        title="naïve café ☕",
        extra={"k": [1, None, True]},
    )
    returned, created = append_messages("s1", _msgs("b"), model="m", source="cli", usage={"input_tokens": 7})
    assert not created
    stored = Session.objects.get(pk="s1")
    for field in Session._meta.concrete_fields:
        got, want = getattr(returned, field.attname), getattr(stored, field.attname)
        assert got == want and type(got) is type(want), field.attname
    assert returned.message_count == 2 and returned.input_tokens == 7
    assert returned._state.db == "default" and not returned._state.adding


@pytest.mark.parametrize("value", ["yes", 1, 0, None, [True]])
def test_message_flags_must_be_booleans(db, value):
    """active/compacted are True or False on every backend alike: 1 or "yes" is refused, nothing written."""
    with pytest.raises(ValidationError) as info:
        append_messages("s1", [{"role": "user", "content": "x", "active": value}], model="m", source="cli")
    assert "messages[0].active" in info.value.message_dict
    assert not Session.objects.exists() and not Message.objects.exists()


def test_usage_with_its_model_is_kept_per_model_and_refused_past_a_limit(db):
    from sessions_app.models import ModelUsage

    append_messages("s1", _msgs("a"), model="m1", source="cli", usage={"input_tokens": 5, "api_call_count": 1})
    append_messages("s1", _msgs("b"), model="m2", source="cli", usage={"input_tokens": 7})
    services.add_usage("s1", {"output_tokens": 3}, model="m2")
    services.add_usage("s1", {"output_tokens": 4})  # no model: the session's counters only
    rows = {u.model.name: (u.api_calls, u.input_tokens, u.output_tokens) for u in ModelUsage.objects.all()}
    assert rows == {"m1": (1, 5, 0), "m2": (0, 7, 3)}
    session = Session.objects.get()
    assert (session.input_tokens, session.output_tokens, session.api_call_count) == (12, 7, 1)
    ModelUsage.objects.filter(model__name="m1").update(api_calls=2**31 - 2)
    with pytest.raises(ValidationError) as info:
        append_messages("s1", _msgs("c"), model="m1", source="cli", usage={"api_call_count": 5})
    assert "usage.api_calls" in info.value.message_dict
    assert Session.objects.get().message_count == 2 and Message.objects.count() == 2  # nothing written
