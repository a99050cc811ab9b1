"""The ``Agent`` runtime facade: what an agent platform holds while a conversation runs.

Constructing an agent touches no database. Messages are buffered and written by ``flush()``
through ``sessions_app.services.append_messages``, which creates the session row together with
the first batch, so an agent that never speaks leaves nothing behind.
"""

import contextlib
import datetime as dt
import logging
import secrets

from django.core.exceptions import ValidationError
from django.db import DEFAULT_DB_ALIAS
from django.utils import timezone

from agents_app import services as agent_services
from sessions_app import services, validation
from sessions_app.models import DEFAULT_PROFILE

logger = logging.getLogger(__name__)


def new_session_id(now: dt.datetime | None = None) -> str:
    """A readable, practically unique session id: ``YYYYMMDD_HHMMSS_<16 hex digits>``.

    hermes-agent's shape, but with 64 random bits instead of 24: at thousands of agents a second,
    24 bits collide often enough to merge two conversations into one session.
    """
    now = now or timezone.now()
    return f"{now:%Y%m%d_%H%M%S}_{secrets.token_hex(8)}"


class Agent:
    """One conversation worker's view of its session.

    ``add_message`` buffers; ``flush`` writes the buffer in one transaction and creates the
    session on the first write; ``end`` flushes and marks the session ended (writing nothing for
    an agent that never spoke); ``compress`` continues the conversation on a child session. As a
    context manager it ends the agent on exit: reason ``completed``, or ``error`` when the block
    raised (after saving what was buffered).

    Each message is validated when it is added (``add_message`` raises ``ValidationError`` and
    buffers nothing), so what is buffered is what the save path accepts.

    Retry semantics: if a flush fails (database down, a parent session that does not exist, a
    counter that would overflow), the buffered messages stay in the agent and the next ``flush``
    retries them; a failed flush writes nothing, so a
    successful retry writes each message exactly once. A lost connection raises Django's
    ``OperationalError``/``InterfaceError`` at once (it is not retried automatically) and the broken
    connection is dropped, so the next ``flush`` connects again. One case is ambiguous: a
    connection lost during the COMMIT itself, which the server may have completed. Not
    thread-safe: one agent per thread.
    """

    def __init__(
        self,
        model: str,
        source: str = "cli",
        *,
        user_id: str | None = None,
        session_id: str | None = None,
        parent_session_id: str | None = None,
        system_prompt: str | None = None,
        profile: str = DEFAULT_PROFILE,
        using: str = DEFAULT_DB_ALIAS,
    ):
        self.model = model
        self.profile = profile
        self.source = source
        self.user_id = user_id
        # Only None means "a new conversation": an empty id is a caller's bug (a missing config
        # value, say) and must fail at flush, not silently start a new session.
        self.session_id = new_session_id() if session_id is None else session_id
        self._resumed = session_id is not None  # the session may exist already (one UPDATE at end)
        self.parent_session_id = parent_session_id
        self.system_prompt = system_prompt
        self.using = using
        self.started_at = timezone.now()
        self.saved_count = 0
        self.ended = False
        self._pending: list[dict] = []
        self._usage: dict[str, int] = {}

    def __repr__(self):
        return f"<Agent {self.session_id} model={self.model!r} pending={len(self._pending)} saved={self.saved_count}>"

    @property
    def pending_count(self) -> int:
        """Messages buffered and not yet saved."""
        return len(self._pending)

    def add_message(self, role: str, content: str | None = None, **fields) -> None:
        """Buffer a message (no query). ``fields``: tool_calls, tool_call_id, tool_name,
        timestamp (default: now), token_count, finish_reason, reasoning, extra.

        Validated at once, as the save path validates it: a message it would refuse (an unknown
        role, a timestamp that is not a time, NUL characters, ...) raises ``ValidationError``
        keyed by field and is not buffered. So one bad message can never block the flushes of
        the messages before and after it; the caller sees the error where the message was made."""
        now = timezone.now()
        fields.setdefault("timestamp", now)
        message = validation.check_message({"role": role, "content": content, **fields}, now=now)
        self._pending.append(message)

    def add_usage(self, **counters: int) -> None:
        """Buffer token usage (input_tokens, output_tokens, ...), saved with the next flush.

        Validated at once: an unknown counter, a value that is not a whole number >= 0, or a
        buffered total past the largest increment is a ValidationError, and nothing of this call
        is buffered, so one bad report cannot block the agent's later flushes.

        Usage reported after the last message still reaches the session: ``flush()``, ``end()``
        and ``compress()`` add it to the session's counters when there is a session. An agent
        that never saved a message has no session to add it to, so its usage is not stored."""
        added = validation.check_usage(counters)
        total = dict(self._usage)
        for name, value in added.items():
            total[name] = total.get(name, 0) + value
        self._usage = validation.check_usage(total)

    def switch_model(self, model: str) -> None:
        """Use another model from now on; the session keeps the model of its first message. A name
        the save path would refuse raises ``ValidationError`` here and the agent keeps its model."""
        self.model = validation.check_identifier(model, "model", max_length=255)

    def flush(self) -> int:
        """Save the buffered messages; returns how many were written (0, with no query, if none
        and no usage is waiting for an existing session).

        On an error nothing is written and the messages stay buffered: calling ``flush()`` again
        retries them exactly once. Called inside a transaction of your own, the write joins it:
        the agent lets the messages go when ``flush()`` returns, so rolling your transaction back
        later discards them with it.
        """
        if not self._pending:
            if self._usage and (self.saved_count or self._resumed):
                usage = dict(self._usage)
                with self._dropping_refused_usage():
                    if services.add_usage(self.session_id, usage, model=self.model, using=self.using):
                        self._usage = {}
            return 0
        batch = list(self._pending)
        with self._dropping_refused_usage():
            services.append_messages(self.session_id, batch, **self._session_fields())
        # Only now, after the commit: a failed flush keeps everything for the retry.
        del self._pending[: len(batch)]
        self._usage = {}
        self.saved_count += len(batch)
        return len(batch)

    @contextlib.contextmanager
    def _dropping_refused_usage(self):
        """Let a ValidationError through, but first forget buffered usage it refuses: usage that
        would overflow the session's stored counters can never be saved, and kept it would fail
        every later flush. The messages stay buffered; the next flush saves them."""
        try:
            yield
        except ValidationError as exc:
            keys = exc.message_dict.keys() if hasattr(exc, "error_dict") else ()
            if keys and all(key.startswith("usage") for key in keys):
                logger.warning("agent %s: dropping usage %s: %s", self.session_id, self._usage, exc.messages)
                self._usage = {}
            raise

    def _session_fields(self) -> dict:
        """What the save path needs to know of this agent, besides the messages."""
        return {
            "model": self.model,
            "source": self.source,
            "user_id": self.user_id,
            "parent_session_id": self.parent_session_id,
            "system_prompt": self.system_prompt,
            "started_at": self.started_at,
            "usage": self._usage,
            "profile": self.profile,
            "using": self.using,
        }

    def end(self, reason: str = "completed") -> None:
        """Flush, then set ``ended_at``/``end_reason`` of this agent's session.

        An agent that never saved a message creates no session; it is only counted in the
        abandoned-agent tally (one upsert; ``HERMES_TRACK_ABANDONED_AGENTS = False`` turns that
        off). An agent given a ``session_id`` (resuming a conversation) that saved nothing ends
        that session if it exists, and is counted in the tally only if it does not. Agents that
        are dropped without ``end()`` (or the context manager) are not counted.
        """
        self.flush()
        if self.ended:
            return  # ending twice must not count an abandoned agent twice
        if self.saved_count:
            services.end_session(self.session_id, reason, using=self.using)
        elif self._resumed and services.end_session(self.session_id, reason, using=self.using):
            pass  # a resumed session that exists is ended; its agent did not leave an empty session
        elif agent_services.abandoned_tracking_enabled():
            agent_services.record_abandoned_agent(self.model, self.source, reason, using=self.using)
        self.ended = True

    def compress(self, summary: str) -> "Agent":
        """Continue on a child session: this session is flushed and ended with reason
        ``compression``; the returned agent's session is created at once with ``summary``."""
        child = Agent(
            self.model,
            self.source,
            user_id=self.user_id,
            system_prompt=self.system_prompt,
            profile=self.profile,
            using=self.using,
        )
        with self._dropping_refused_usage():
            session = services.compress_session(
                self.session_id,
                child_session_id=child.session_id,
                summary=summary,
                pending_messages=self._pending,
                **self._session_fields(),
            )
        self.saved_count += len(self._pending)
        self._pending = []
        self._usage = {}
        self.ended = True
        child.parent_session_id = session.parent_session_id
        child.saved_count = 1
        return child

    def __enter__(self) -> "Agent":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.end("completed")
            return
        try:
            self.end("error")
        except Exception:
            # Keep the original exception; the unsaved messages stay buffered for a retry.
            logger.exception("could not save agent %s while handling %s", self.session_id, exc_type.__name__)
