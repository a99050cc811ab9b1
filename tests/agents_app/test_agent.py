import datetime as dt
import re

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext

from agents_app.agent import Agent, new_session_id
from agents_app.models import AbandonedAgentTally, LanguageModel
from sessions_app.models import Message, Session
from sessions_app.services import append_messages


def test_constructing_an_agent_runs_no_query(django_assert_num_queries, db):
    with django_assert_num_queries(0):
        agent = Agent("anthropic/claude-opus-4.6", "telegram", user_id="42", system_prompt="be brief")
        agent.add_message("user", "hello")
    assert agent.pending_count == 1


def test_session_id_is_readable_and_has_64_random_bits():
    session_id = new_session_id(dt.datetime(2026, 6, 14, 2, 15, 4, tzinfo=dt.UTC))
    assert re.fullmatch(r"20260614_021504_[0-9a-f]{16}", session_id)
    assert len({new_session_id() for _ in range(10_000)}) == 10_000


def test_thousand_silent_agents_leave_no_session(django_assert_num_queries, db, settings):
    settings.HERMES_TRACK_ABANDONED_AGENTS = False
    with django_assert_num_queries(0):
        for _ in range(1000):
            agent = Agent("openai/gpt-5", "cron")
            assert agent.flush() == 0
            agent.end("timeout")
    assert Session.objects.count() == 0
    assert LanguageModel.objects.count() == 0


def test_silent_agents_are_only_tallied(db):
    for _ in range(1000):
        Agent("openai/gpt-5", "cron").end("timeout")
    assert Session.objects.count() == 0
    assert Message.objects.count() == 0
    tally = AbandonedAgentTally.objects.get()
    assert (tally.model.name, tally.source, tally.end_reason, tally.count) == ("openai/gpt-5", "cron", "timeout", 1000)


def test_three_flushes_make_one_session_with_exact_counters(db):
    agent = Agent("openai/gpt-5", "cli", user_id="u1")
    agent.add_message("system", "You are helpful.")
    agent.add_message("user", "What is 2+2?", token_count=7)
    assert agent.flush() == 2
    calls = [{"id": "c1", "function": {"name": "calc"}}, {"id": "c2", "function": {"name": "calc"}}]
    agent.add_message("assistant", None, tool_calls=calls, finish_reason="tool_calls")
    agent.add_message("tool", "4", tool_call_id="c1", tool_name="calc")
    agent.add_message("tool", "4", tool_call_id="c2", tool_name="calc")
    agent.add_usage(input_tokens=100, output_tokens=20)
    assert agent.flush() == 3
    agent.add_message("assistant", "4", finish_reason="stop")
    agent.add_usage(input_tokens=50, output_tokens=5, reasoning_tokens=3)
    assert agent.flush() == 1
    assert agent.flush() == 0

    session = Session.objects.get()
    assert session.id == agent.session_id
    assert session.model.name == "openai/gpt-5"
    assert session.source == "cli" and session.user_id == "u1"
    assert session.message_count == 6 == session.messages.count()
    assert session.tool_call_count == 2
    assert (session.input_tokens, session.output_tokens, session.reasoning_tokens) == (150, 25, 3)
    assert list(session.messages.values_list("role", flat=True)) == [
        "system",
        "user",
        "assistant",
        "tool",
        "tool",
        "assistant",
    ]
    assert session.started_at == agent.started_at


def test_first_flush_and_later_flush_query_counts(db):
    agent = Agent("openai/gpt-5")
    agent.add_message("user", "hi")
    with CaptureQueriesContext(connection) as first:
        agent.flush()
    agent.add_message("assistant", "hello")
    with CaptureQueriesContext(connection) as later:
        agent.flush()
    inserts = [q["sql"] for q in first.captured_queries if q["sql"].startswith("INSERT")]
    assert any("sessions_app_session" in sql for sql in inserts)
    # A later flush only appends: no INSERT into the session table.
    assert not any(
        q["sql"].startswith("INSERT") and "sessions_app_session" in q["sql"].split("(")[0]
        for q in later.captured_queries
    )
    assert Message.objects.count() == 2


def test_end_sets_reason_only_when_session_exists(db, django_assert_num_queries, settings):
    settings.HERMES_TRACK_ABANDONED_AGENTS = False
    silent = Agent("m")
    with django_assert_num_queries(0):
        silent.end()
    agent = Agent("m")
    agent.add_message("user", "hi")
    agent.end("max_turns")  # flushes first, then ends
    session = Session.objects.get()
    assert session.end_reason == "max_turns"
    assert session.ended_at is not None
    assert session.message_count == 1


def test_context_manager_completed_and_error(db):
    with Agent("m") as agent:
        agent.add_message("user", "hi")
    assert Session.objects.get(pk=agent.session_id).end_reason == "completed"

    with pytest.raises(RuntimeError, match="api down"), Agent("m") as failing:
        failing.add_message("user", "hi")
        raise RuntimeError("api down")
    session = Session.objects.get(pk=failing.session_id)
    assert session.end_reason == "error"
    assert session.message_count == 1

    with pytest.raises(RuntimeError), Agent("m") as never_spoke:
        raise RuntimeError("timeout before the first message")
    assert not Session.objects.filter(pk=never_spoke.session_id).exists()


def test_failed_flush_keeps_messages_for_retry(db):
    agent = Agent("m", parent_session_id="not-yet")  # the parent is saved later, by another agent
    agent.add_message("user", "fine")
    with pytest.raises(ValidationError, match="does not exist"):
        agent.flush()
    assert agent.pending_count == 1
    assert Session.objects.count() == 0
    parent = Agent("m", session_id="not-yet")
    parent.add_message("user", "the parent")
    parent.flush()
    assert agent.flush() == 1  # the retry writes the kept message once
    assert Message.objects.filter(session_id=agent.session_id).count() == 1


@pytest.mark.parametrize(
    ("role", "fields", "key"),
    [
        ("user", {"timestamp": "yesterday"}, "timestamp"),
        ("robot", {}, "role"),
        ("user", {"content": "nul\x00"}, "content"),
        ("user", {"timestamp": 1e20}, "timestamp"),
        ("tool", {"tool_calls": [{"x": float("nan")}]}, "tool_calls"),
        ("user", {"token_count": -1}, "token_count"),
    ],
)
def test_a_bad_message_is_refused_when_added_and_never_poisons_the_agent(db, role, fields, key):
    agent = Agent("m")
    agent.add_message("user", "before")
    with pytest.raises(ValidationError) as info:
        agent.add_message(role, **{"content": "x", **fields})
    assert key in info.value.message_dict
    assert agent.pending_count == 1  # nothing of the bad call is buffered
    agent.add_message("user", "after")
    assert agent.flush() == 2
    agent.add_message("user", "later")
    agent.end()
    contents = list(Message.objects.filter(session_id=agent.session_id).values_list("content", flat=True))
    assert contents == ["before", "after", "later"]
    assert Session.objects.get(pk=agent.session_id).end_reason == "completed"


def test_an_unknown_field_is_refused_when_added(db):
    agent = Agent("m")
    with pytest.raises(ValidationError, match="unknown field"):
        agent.add_message("user", "x", colour="blue")
    assert agent.pending_count == 0 and agent.flush() == 0


def test_switching_to_a_model_the_save_path_refuses_keeps_the_model(db):
    agent = Agent("m")
    with pytest.raises(ValidationError):
        agent.switch_model("bad\nname")
    agent.add_message("user", "x")
    assert agent.flush() == 1 and agent.model == "m"


def test_compress_builds_a_chain(db):
    agent = Agent("anthropic/claude-opus-4.6", "discord", user_id="7")
    agent.add_message("user", "long conversation")
    agent.add_message("assistant", "long answer")
    child = agent.compress("Summary of the first part")
    child.add_message("user", "and then?")
    grandchild = child.compress("Summary of the second part")
    grandchild.end()

    parent = Session.objects.get(pk=agent.session_id)
    middle = Session.objects.get(pk=child.session_id)
    last = Session.objects.get(pk=grandchild.session_id)
    assert parent.parent_session_id is None
    assert middle.parent_session_id == parent.id
    assert last.parent_session_id == middle.id
    assert (parent.end_reason, middle.end_reason, last.end_reason) == ("compression", "compression", "completed")
    assert (parent.message_count, middle.message_count, last.message_count) == (2, 2, 1)
    assert [m.content for m in last.messages.all()] == ["Summary of the second part"]
    assert middle.messages.first().content == "Summary of the first part"
    assert (middle.source, middle.user_id, middle.model_id) == ("discord", "7", parent.model_id)
    for session in (parent, middle, last):
        assert session.message_count == session.messages.count()


def test_compress_of_an_agent_that_never_spoke_keeps_the_chain(db):
    agent = Agent("m", parent_session_id=None)
    child = agent.compress("summary only")
    assert not Session.objects.filter(pk=agent.session_id).exists()
    child_row = Session.objects.get(pk=child.session_id)
    assert child_row.parent_session_id is None
    assert child_row.message_count == 1


def test_model_switch_is_recorded_per_message(db):
    agent = Agent("openai/gpt-5")
    agent.add_message("user", "a")
    agent.flush()
    agent.switch_model("anthropic/claude-opus-4.6")
    agent.add_message("assistant", "b")
    agent.flush()
    session = Session.objects.get()
    assert session.model.name == "openai/gpt-5"
    assert [m.model.name for m in session.messages.select_related("model")] == [
        "openai/gpt-5",
        "anthropic/claude-opus-4.6",
    ]
    assert LanguageModel.objects.get(name="anthropic/claude-opus-4.6").provider == "anthropic"


def test_resumed_agent_that_saves_nothing_ends_the_existing_session(db):
    first = Agent("openai/gpt-5", "cli")
    first.add_message("user", "hello")
    first.flush()
    Agent("openai/gpt-5", "cli", session_id=first.session_id).end("timeout")  # resumed, said nothing
    session = Session.objects.get(pk=first.session_id)
    assert session.end_reason == "timeout" and session.ended_at is not None
    assert not AbandonedAgentTally.objects.exists()  # it left no empty session: nothing to count
    Agent("openai/gpt-5", "cli", session_id="20260101_000000_0123456789abcdef").end("timeout")
    assert AbandonedAgentTally.objects.get().count == 1  # no such session: an abandoned agent
    assert Session.objects.count() == 1


def test_returned_session_times_are_utc_and_api_calls_fit_their_column(db):
    paris = dt.timezone(dt.timedelta(hours=1))
    when = dt.datetime(2026, 3, 1, 12, 0, tzinfo=paris)
    session, _ = append_messages(
        "s", [{"role": "user", "content": "hi", "timestamp": when}], model="m", source="cli", started_at=when
    )
    assert session.started_at == when and session.started_at.utcoffset() == dt.timedelta(0)
    with pytest.raises(ValidationError, match="api_call_count"):
        append_messages(
            "s", [{"role": "user", "content": "x"}], model="m", source="cli", usage={"api_call_count": 2**31}
        )
    assert Session.objects.get(pk="s").message_count == 1


def test_usage_reported_after_the_last_flush_reaches_the_session(db):
    agent = Agent("openai/gpt-5")
    agent.add_message("user", "hi")
    agent.add_usage(input_tokens=3)
    agent.flush()
    agent.add_usage(input_tokens=100, output_tokens=7)
    assert agent.flush() == 0  # no message written, but the usage is
    agent.add_usage(reasoning_tokens=5)
    agent.end()
    session = Session.objects.get(pk=agent.session_id)
    assert (session.input_tokens, session.output_tokens, session.reasoning_tokens) == (103, 7, 5)
    assert session.message_count == 1 == Message.objects.count()
    assert session.end_reason == "completed"


def test_usage_after_the_last_flush_goes_to_the_parent_on_compress(db):
    agent = Agent("openai/gpt-5")
    agent.add_message("user", "hi")
    agent.flush()
    agent.add_usage(input_tokens=50)
    child = agent.compress("summary so far")
    assert Session.objects.get(pk=agent.session_id).input_tokens == 50
    assert Session.objects.get(pk=child.session_id).input_tokens == 0


def test_usage_of_an_agent_that_never_spoke_creates_nothing(db, settings, django_assert_num_queries):
    settings.HERMES_TRACK_ABANDONED_AGENTS = False
    agent = Agent("openai/gpt-5")
    agent.add_usage(input_tokens=10)
    with django_assert_num_queries(0):
        assert agent.flush() == 0
        agent.end("timeout")
    assert not Session.objects.exists()
    # The usage waits for a first message, and then goes with it.
    later = Agent("openai/gpt-5")
    later.add_usage(input_tokens=10)
    later.add_message("user", "hello")
    later.flush()
    assert Session.objects.get(pk=later.session_id).input_tokens == 10


def test_add_usage_service(db):
    from sessions_app.services import add_usage

    assert add_usage("missing", {"input_tokens": 5}) is False
    assert not Session.objects.exists()
    append_messages("s1", [{"role": "user", "content": "hi"}], model="m", source="cli")
    assert add_usage("s1", {"input_tokens": 5, "cache_read_tokens": 2}) is True
    with pytest.raises(ValidationError):
        add_usage("s1", {"input_tokens": -1})
    with pytest.raises(ValidationError):
        add_usage("s1", {"bogus": 1})
    session = Session.objects.get(pk="s1")
    assert (session.input_tokens, session.cache_read_tokens, session.message_count) == (5, 2, 1)


# -- issue 17, item 4: usage is validated when added and cannot poison later flushes ------------


@pytest.mark.parametrize(
    ("counters", "key"),
    [
        ({"input_tokens": -1}, "usage.input_tokens"),
        ({"input_tokens": 1.5}, "usage.input_tokens"),
        ({"input_tokens": "12"}, "usage.input_tokens"),
        ({"input_tokens": 10**5000}, "usage.input_tokens"),
        ({"api_call_count": 2**31}, "usage.api_call_count"),
        ({"bogus_tokens": 3}, "usage"),
    ],
    ids=["negative", "float", "text", "huge", "api-calls-past-32-bits", "unknown"],
)
def test_bad_usage_is_refused_at_once_and_later_flushes_work(db, counters, key):
    agent = Agent("openai/gpt-5", "cli")
    agent.add_message("user", "first")
    agent.add_usage(input_tokens=7)
    assert agent.flush() == 1
    with pytest.raises(ValidationError) as info:
        agent.add_usage(**counters)
    assert key in info.value.message_dict
    agent.add_usage(output_tokens=3)
    agent.add_message("assistant", "saved after the refused usage")
    assert agent.flush() == 1
    agent.end()
    session = Session.objects.get(pk=agent.session_id)
    assert (session.message_count, session.input_tokens, session.output_tokens) == (2, 7, 3)
    assert session.end_reason == "completed"
    assert list(session.messages.order_by("id").values_list("content", flat=True))[-1] == (
        "saved after the refused usage"
    )


def test_buffered_usage_past_the_increment_limit_is_refused_and_the_rest_kept(db):
    agent = Agent("openai/gpt-5", "cli")
    agent.add_usage(input_tokens=2**62)
    with pytest.raises(ValidationError):
        agent.add_usage(input_tokens=1, output_tokens=1)  # nothing of this call is buffered
    agent.add_message("user", "hi")
    agent.flush()
    session = Session.objects.get(pk=agent.session_id)
    assert (session.input_tokens, session.output_tokens) == (2**62, 0)


@pytest.mark.parametrize("pending", [True, False], ids=["with-a-message", "usage-only"])
def test_usage_the_stored_counter_cannot_take_is_dropped_and_the_agent_goes_on(db, pending):
    agent = Agent("openai/gpt-5", "cli")
    agent.add_message("user", "first")
    agent.flush()
    Session.objects.filter(pk=agent.session_id).update(input_tokens=2**63 - 5)
    agent.add_usage(input_tokens=10)
    if pending:
        agent.add_message("assistant", "kept for the next flush")
    with pytest.raises(ValidationError) as info:
        agent.flush()
    assert "usage.input_tokens" in info.value.message_dict
    assert agent.pending_count == (1 if pending else 0)
    assert agent.flush() == (1 if pending else 0)  # the overflowing usage was dropped
    agent.end()
    session = Session.objects.get(pk=agent.session_id)
    assert (session.message_count, session.input_tokens, session.end_reason) == (
        2 if pending else 1,
        2**63 - 5,
        "completed",
    )
