"""Bad input through the Agent facade and on an existing session: a ValidationError, the agent's
buffer kept, and the database unchanged (a full snapshot of every row, compared before and after).

tests/sessions_app/test_services.py covers append_messages on its own; these add the Agent paths
(first flush, later flush, end, compress), more kinds of bad value, and sizes per backend.
"""

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from agents_app.agent import Agent
from agents_app.conf import hermes_settings
from agents_app.models import AbandonedAgentTally, LanguageModel
from sessions_app.models import Message, Session
from sessions_app.services import append_messages

EXISTING = "20260101_000000_existing"
NOW = timezone.now()


class Unserialisable:
    pass


# A builder of (role, content, fields) of one bad message (built when used: some are 10 MB),
# and the error key below messages[i].
BAD_MESSAGES = {
    "unknown role": (lambda: ("robot", "x", {}), "role"),
    "role in capitals": (lambda: ("USER", "x", {}), "role"),
    "no role": (lambda: (None, "x", {}), "role"),
    "tool call object": (lambda: ("assistant", None, {"tool_calls": [Unserialisable()]}), "tool_calls"),
    "tool call set": (lambda: ("assistant", None, {"tool_calls": [{"ids": {1, 2}}]}), "tool_calls"),
    "tool call bytes": (lambda: ("assistant", None, {"tool_calls": [{"raw": b"\x00\x01"}]}), "tool_calls"),
    "tool call datetime": (lambda: ("assistant", None, {"tool_calls": [{"at": NOW}]}), "tool_calls"),
    "tool call int key": (lambda: ("assistant", None, {"tool_calls": [{1: "x"}]}), "tool_calls"),
    "tool call infinity": (lambda: ("assistant", None, {"tool_calls": [{"x": float("inf")}]}), "tool_calls"),
    "tool calls a string": (lambda: ("assistant", None, {"tool_calls": "search(q)"}), "tool_calls"),
    "tool call lone surrogate": (lambda: ("assistant", None, {"tool_calls": [{"q": "\udc80"}]}), "tool_calls"),
    "NUL in content": (lambda: ("user", "before\x00after", {}), "content"),
    "NUL only": (lambda: ("user", "\x00", {}), "content"),
    "NUL in reasoning": (lambda: ("assistant", "x", {"reasoning": "think\x00"}), "reasoning"),
    "NUL in tool name": (lambda: ("tool", "x", {"tool_name": "se\x00arch"}), "tool_name"),
    "NUL in extra": (lambda: ("user", "x", {"extra": {"k": ["\x00"]}}), "extra"),
    "lone high surrogate": (lambda: ("user", "a\ud83db", {}), "content"),
    "lone low surrogate": (lambda: ("user", "\ude00", {}), "content"),
    "10 MB content": (lambda: ("user", "x" * 10_000_000, {}), "content"),
    "10 MB reasoning": (lambda: ("assistant", "x", {"reasoning": "r" * 10_000_000}), "reasoning"),
    "far future datetime": (lambda: ("user", "x", {"timestamp": dt.datetime(3000, 1, 1, tzinfo=dt.UTC)}), "timestamp"),
    "two days ahead": (lambda: ("user", "x", {"timestamp": NOW + dt.timedelta(days=2)}), "timestamp"),
    "far future seconds": (lambda: ("user", "x", {"timestamp": 1e11}), "timestamp"),
    "overflowing seconds": (lambda: ("user", "x", {"timestamp": 1e20}), "timestamp"),
    "before 1970": (
        lambda: ("user", "x", {"timestamp": dt.datetime(1969, 12, 31, 23, 59, 59, tzinfo=dt.UTC)}),
        "timestamp",
    ),
    "negative seconds": (lambda: ("user", "x", {"timestamp": -1}), "timestamp"),
    "NaN seconds": (lambda: ("user", "x", {"timestamp": float("nan")}), "timestamp"),
    "naive datetime": (lambda: ("user", "x", {"timestamp": dt.datetime(2026, 1, 1)}), "timestamp"),
    "timestamp as text": (lambda: ("user", "x", {"timestamp": "2026-01-01T00:00:00Z"}), "timestamp"),
}
BAD_SESSION_IDS = {
    "empty": "",
    "too long": "s" * 129,
    "newline": "a\nb",
    "NUL": "a\x00b",
    "DEL": "a\x7fb",
    "C1 control": "a\x85b",
    "escape": "\x1b[31mred",
    "lone surrogate": "a\ud800b",
}


def snapshot() -> dict:
    """Every row of every table the save path writes, in primary-key order."""
    return {
        model.__name__: list(model.objects.order_by("pk").values())
        for model in (LanguageModel, Session, Message, AbandonedAgentTally)
    }


@pytest.fixture
def existing(db):
    """One saved session and one tally row, so 'unchanged' covers updates, not only inserts."""
    agent = Agent("openai/gpt-5", "cli", session_id=EXISTING)
    agent.add_message("user", "kept", tool_calls=[{"id": "t"}])
    agent.flush()
    Agent("openai/gpt-5", "cron").end("timeout")
    return agent


def _add(agent, bad, key):
    """A good message, the bad one (refused at once, buffering nothing), and another good one."""
    role, content, fields = bad
    agent.add_message("user", "a valid message before the bad one")
    with pytest.raises(ValidationError) as info:
        agent.add_message(role, content, **fields)
    assert key in info.value.message_dict, info.value.message_dict
    agent.add_message("user", "a valid message after the bad one")
    assert agent.pending_count == 2


def _assert_refused(call, key, before):
    with pytest.raises(ValidationError) as info:
        call()
    assert any(key in k for k in info.value.message_dict), info.value.message_dict
    assert snapshot() == before


@pytest.mark.parametrize("case", BAD_MESSAGES)
def test_bad_message_on_a_new_and_an_existing_session(existing, case):
    build, key = BAD_MESSAGES[case]
    bad = build()
    before = snapshot()
    for agent in (Agent("openai/gpt-5", "cli"), Agent("anthropic/claude-opus-4.6", "cli", session_id=EXISTING)):
        _add(agent, bad, key)
        assert snapshot() == before  # nothing written yet
        assert agent.flush() == 2  # the good messages around the bad one are saved
        contents = list(Message.objects.filter(session_id=agent.session_id).values_list("content", flat=True))
        assert contents[-2:] == ["a valid message before the bad one", "a valid message after the bad one"]
        before = snapshot()
    _assert_refused(
        lambda: append_messages(EXISTING, [{"role": bad[0], "content": bad[1], **bad[2]}], model="x", source="cli"),
        key,
        before,
    )


@pytest.mark.parametrize("case", ["unknown role", "NUL in content", "10 MB content", "far future seconds"])
def test_a_refused_message_never_stops_end_or_compress(existing, case):
    build, key = BAD_MESSAGES[case]
    ending, compressing = Agent("openai/gpt-5", "cli"), Agent("openai/gpt-5", "cli", session_id=EXISTING)
    for agent in (ending, compressing):
        _add(agent, build(), key)
    ending.end()
    assert ending.ended and Session.objects.get(pk=ending.session_id).message_count == 2
    child = compressing.compress("summary")
    assert Session.objects.get(pk=EXISTING).end_reason == "compression"
    assert Message.objects.filter(session_id=EXISTING).count() == 1 + 2
    assert Session.objects.get(pk=child.session_id).parent_session_id == EXISTING


@pytest.mark.parametrize(
    "build",
    [lambda: "", lambda: "   ", lambda: "nul\x00", lambda: "\udfff", lambda: "s" * 10_000_000, lambda: None],
    ids=["empty", "blank", "NUL", "surrogate", "10-MB", "None"],
)
def test_bad_compression_summary(existing, build):
    agent = Agent("openai/gpt-5", "cli", session_id=EXISTING)
    agent.add_message("user", "pending")
    before = snapshot()
    with pytest.raises(ValidationError):
        agent.compress(build())
    assert snapshot() == before
    assert agent.pending_count == 1 and not agent.ended


@pytest.mark.parametrize("case", BAD_SESSION_IDS)
def test_bad_session_id(existing, case):
    before = snapshot()
    agent = Agent("openai/gpt-5", "cli", session_id=BAD_SESSION_IDS[case])
    agent.add_message("user", "hello")
    _assert_refused(agent.flush, "session_id", before)
    assert agent.pending_count == 1
    messages = [{"role": "user", "content": "hello"}]
    _assert_refused(
        lambda: append_messages(BAD_SESSION_IDS[case], messages, model="m", source="cli"), "session_id", before
    )
    _assert_refused(
        lambda: append_messages(EXISTING, messages, model="m", source="cli", parent_session_id=BAD_SESSION_IDS[case]),
        "parent_session_id",
        before,
    )


@pytest.mark.parametrize(
    ("arguments", "key"),
    [
        ({"model": ""}, "model"),
        ({"model": "a\nb"}, "model"),
        ({"model": "m\x00"}, "model"),
        ({"source": "cli\x00"}, "source"),
        ({"source": "s" * 65}, "source"),
        ({"user_id": "u\x00"}, "user_id"),
        ({"user_id": 1.5}, "user_id"),
        ({"system_prompt": "p" * 5_000_000}, "system_prompt"),
        ({"parent_session_id": "does-not-exist"}, "parent_session_id"),
    ],
)
def test_bad_agent_arguments(existing, arguments, key):
    before = snapshot()
    agent = Agent(**{"model": "openai/gpt-5", "source": "cli", **arguments})
    agent.add_message("user", "hello")
    _assert_refused(agent.flush, key, before)
    assert agent.pending_count == 1


@pytest.mark.parametrize(
    "usage", [{"input_tokens": -1}, {"input_tokens": 2**63}, {"input_tokens": 1.5}, {"bogus_tokens": 3}]
)
def test_bad_usage_on_an_existing_session(existing, usage):
    # Refused when added (issue 17, item 4), so it never reaches a flush.
    before = snapshot()
    agent = Agent("openai/gpt-5", "cli", session_id=EXISTING)
    agent.add_message("user", "hello")
    _assert_refused(lambda: agent.add_usage(**usage), "usage", before)
    assert agent.flush() == 1


def test_boundary_values_are_accepted(existing, settings):
    """The other side of each limit is stored as given, so the refusals above are not over-eager."""
    agent = Agent("openai/gpt-5", "cli", session_id="s" * 128)
    agent.add_message("user", "at the epoch", timestamp=0)
    agent.add_message("user", "an hour ahead", timestamp=NOW + dt.timedelta(hours=1))
    agent.add_message("user", "\u2028 separators, emoji 🙂, escapes \\x00 as text", tool_calls=[{"q": "\\u0000"}])
    agent.add_message("user", "x" * hermes_settings.HERMES_MAX_CONTENT_CHARS)
    assert agent.flush() == 4
    rows = list(Message.objects.filter(session_id="s" * 128).order_by("id").values_list("content", "timestamp"))
    assert rows[0] == ("at the epoch", dt.datetime(1970, 1, 1, tzinfo=dt.UTC))
    assert rows[2][0] == "\u2028 separators, emoji 🙂, escapes \\x00 as text"
    assert len(rows[3][0]) == hermes_settings.HERMES_MAX_CONTENT_CHARS
    assert Session.objects.get(pk="s" * 128).message_count == 4


@pytest.mark.parametrize(
    "build",
    [
        lambda: {"content": "🙂" * 4_194_304},  # 4 Mi characters (within the limit) but 16 MiB of UTF-8
        lambda: {"content": "é" * 4_000_000, "reasoning": "é" * 4_000_000},  # 8 MB each, 16 MB together
        lambda: {"content": "x", "tool_calls": [{"arguments": "a" * 13_000_000}]},
        lambda: {"content": "x", "extra": {"blob": "b" * 13_000_000}},
    ],
    ids=["16-MiB-content", "two-8-MB-fields", "13-MB-tool-calls", "13-MB-extra"],
)
def test_a_message_too_big_for_any_backend_is_refused_everywhere(existing, build):
    # MariaDB refuses any statement over max_allowed_packet (16 MiB by default) with an
    # OperationalError, so an Agent would retry the batch forever; PostgreSQL and SQLite would
    # store it. The save path refuses such a message on every backend alike, before writing.
    before = snapshot()
    agent = Agent("openai/gpt-5", "cli", session_id=EXISTING)
    with pytest.raises(ValidationError):
        agent.add_message("assistant", **build())  # refused when added: never buffered
    assert agent.pending_count == 0 and snapshot() == before
    _assert_refused(
        lambda: append_messages(EXISTING, [{"role": "assistant", **build()}], model="m", source="cli"),
        "messages[0]",
        before,
    )
