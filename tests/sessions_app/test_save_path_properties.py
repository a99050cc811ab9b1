"""Property-based test of the save path: any sequence of valid agent operations keeps the invariant.

Hypothesis draws sequences of: new agent, a second agent on an existing agent's session id, add
messages (with tool calls and usage), flush, end, compress, and a silent agent that ends at once.
A plain-Python reference model, written from the documented semantics and not from the code,
says what the database must hold afterwards; the test compares every session row and message.
"""

import itertools

from django.db.models import Sum
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.django import TestCase

from agents_app.agent import Agent
from agents_app.models import AbandonedAgentTally
from sessions_app.models import Session

MODELS = ("openai/gpt-5", "anthropic/claude-opus-4.6")
agent_index = st.integers(min_value=0, max_value=30)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("new"), st.sampled_from(MODELS)),
        st.tuples(st.just("join"), agent_index),
        st.tuples(st.just("add"), agent_index, st.integers(1, 3), st.integers(0, 3), st.integers(0, 50)),
        st.tuples(st.just("flush"), agent_index),
        st.tuples(st.just("end"), agent_index, st.sampled_from(("completed", "timeout"))),
        st.tuples(st.just("compress"), agent_index),
        st.tuples(st.just("silent"), st.sampled_from(MODELS)),
    ),
    max_size=40,
)


class Reference:
    """What the database must hold, from the public contract of Agent and append_messages."""

    def __init__(self):
        self.live: list[dict] = []  # agents that have not ended: {"agent", "pending", "saved", "parent"}
        self.sessions: dict[str, dict] = {}
        self.tally = 0
        self.texts = itertools.count()

    def _new(self, agent, parent=None, saved=0, joined=False):
        self.live.append(
            {"agent": agent, "pending": [], "tokens": 0, "saved": saved, "parent": parent, "joined": joined}
        )

    def _pick(self, index):
        if not self.live:
            self._new(Agent(MODELS[0], "cli"))
        return self.live[index % len(self.live)]

    def _flush(self, entry):
        if not entry["pending"]:
            return
        session = self.sessions.setdefault(
            entry["agent"].session_id,
            {"contents": [], "tool_calls": 0, "input_tokens": 0, "parent": None, "end_reason": None},
        )
        for content, tool_calls in entry["pending"]:
            session["contents"].append(content)
            session["tool_calls"] += tool_calls
        session["input_tokens"] += entry["tokens"]
        entry["saved"] += len(entry["pending"])
        entry["pending"], entry["tokens"] = [], 0

    def apply(self, operation):
        kind, *args = operation
        if kind == "new":
            self._new(Agent(args[0], "cli", user_id="u"))
        elif kind == "join":
            self._new(Agent(MODELS[1], "telegram", session_id=self._pick(args[0])["agent"].session_id), joined=True)
        elif kind == "add":
            entry = self._pick(args[0])
            count, tool_calls, tokens = args[1:]
            for number in range(count):
                content = f"message {next(self.texts)}"
                calls = [{"id": f"{content}/{t}"} for t in range(tool_calls)] if number == 0 else None
                entry["agent"].add_message("assistant" if calls else "user", content, tool_calls=calls)
                entry["pending"].append((content, len(calls or ())))
            entry["agent"].add_usage(input_tokens=tokens)
            entry["tokens"] += tokens
        elif kind == "flush":
            entry = self._pick(args[0])
            assert entry["agent"].flush() == len(entry["pending"])
            self._flush(entry)
        elif kind == "end":
            entry = self._pick(args[0])
            entry["agent"].end(args[1])
            self._flush(entry)
            session_id = entry["agent"].session_id
            if entry["saved"] or (entry["joined"] and session_id in self.sessions):
                # A joining agent ends the session it resumed when that session exists.
                self.sessions[session_id]["end_reason"] = args[1]
            else:
                self.tally += 1  # never spoke and no session to end
            self.live.remove(entry)
        elif kind == "compress":
            entry = self._pick(args[0])
            summary = f"summary {next(self.texts)}"
            child = entry["agent"].compress(summary)
            self._flush(entry)
            session_id = entry["agent"].session_id
            if session_id in self.sessions:
                self.sessions[session_id]["end_reason"] = "compression"
                parent = session_id
            else:
                parent = entry["parent"]  # nothing was saved: the chain skips the unsaved session
            self.sessions[child.session_id] = {
                "contents": [summary],
                "tool_calls": 0,
                "input_tokens": 0,
                "parent": parent,
                "end_reason": None,
            }
            self.live.remove(entry)
            self._new(child, parent=parent, saved=1)
        elif kind == "silent":
            Agent(args[0], "cron").end("timeout")
            self.tally += 1


class SavePathPropertyTests(TestCase):
    @settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(operations)
    def test_any_sequence_of_agent_operations_keeps_the_invariant(self, sequence):
        reference = Reference()
        for operation in sequence:
            reference.apply(operation)

        stored = {
            session.id: session for session in Session.objects.prefetch_related("messages").order_by("started_at")
        }
        assert set(stored) == set(reference.sessions)
        assert not Session.objects.empty().exists()  # no code path created a session without a message
        for session_id, expected in reference.sessions.items():
            session = stored[session_id]
            rows = sorted(session.messages.all(), key=lambda m: m.pk)
            assert [m.content for m in rows] == expected["contents"]  # each once, in order; summary first
            assert session.message_count == len(rows)
            assert session.tool_call_count == expected["tool_calls"] == sum(len(m.tool_calls or ()) for m in rows)
            assert session.input_tokens == expected["input_tokens"]
            assert session.parent_session_id == expected["parent"]
            assert session.end_reason == expected["end_reason"]
        assert (AbandonedAgentTally.objects.aggregate(n=Sum("count"))["n"] or 0) == reference.tally
