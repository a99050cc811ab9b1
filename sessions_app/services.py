"""Services that write sessions and messages. Each runs in one transaction.

The invariant they keep: no session row is created without at least one message in the same
transaction. ``append_messages`` creates the session lazily with ``get_or_create`` on the first
batch; ``compress_session`` creates a compression child directly with its summary message.

Retry semantics: every function here either commits all of its writes or none. When the
database reports a transient conflict (a deadlock, a serialization failure, SQLite's "database
is locked") and the call is not nested in the caller's own transaction, the whole transaction is
retried a few times with backoff. Any other error propagates with nothing written, so the caller
can retry the same batch later and it will be written exactly once.

The daily rollup: a write to a session started before today (UTC) may change a day a build has
rolled up, so it marks that day in its own transaction (``rollup.mark_days``). A session started
today, the common case, costs the rollup nothing: no query.
"""

import datetime as dt
from collections.abc import Mapping, Sequence

from django.core.exceptions import ValidationError
from django.db import DEFAULT_DB_ALIAS, transaction
from django.db.models import F
from django.utils import timezone

from agents_app.db import run_with_retry
from agents_app.registry import language_model_id, run_with_model_ids
from sessions_app import _sql, validation
from sessions_app.models import DEFAULT_PROFILE, PROFILE_MAX_LENGTH, ModelUsage, Session
from sessions_app.rollup import mark_days, old_day

# The usage counters of a session (``validation.USAGE_FIELDS``) and their ``ModelUsage`` fields.
MODEL_USAGE_FIELDS = {
    "api_call_count": "api_calls",
    "input_tokens": "input_tokens",
    "output_tokens": "output_tokens",
    "cache_read_tokens": "cache_read_tokens",
    "cache_write_tokens": "cache_write_tokens",
    "reasoning_tokens": "reasoning_tokens",
}


def append_messages(
    session_id: str,
    messages: Sequence[Mapping],
    *,
    model: str,
    source: str,
    user_id: str | None = None,
    parent_session_id: str | None = None,
    system_prompt: str | None = None,
    started_at: dt.datetime | None = None,
    usage: Mapping[str, int] | None = None,
    profile: str = DEFAULT_PROFILE,
    using: str = DEFAULT_DB_ALIAS,
) -> tuple[Session, bool]:
    """Save a batch of messages, creating the session on the first batch; returns ``(session, created)``.

    Everything is validated before anything is written (``ValidationError``). Then, in one
    transaction: the model registry row, the session row (``get_or_create``; two writers racing
    on a new id end with one row), the messages, and exact counter updates. The session fields
    (``model``, ``source``, ``user_id``, ``parent_session_id``, ``system_prompt``, ``started_at``,
    ``profile``) are used only when this call creates the session; every message records
    ``model``. ``usage`` adds to the token counters (``input_tokens``, ``output_tokens``, ...) and
    to the session's ``ModelUsage`` row of ``model``, so a session that switches model keeps each
    model's share. ``message_count``/``tool_call_count`` count the active messages (a message may
    say ``active=False``/``compacted=True``, as hermes-agent v30 keeps undone turns).
    """
    session_id = validation.check_session_id(session_id)
    model = validation.check_identifier(model, "model", max_length=255)
    source = validation.check_identifier(source, "source", max_length=64)
    user_id = validation.check_identifier(user_id, "user_id", max_length=255, required=False)
    profile = validation.check_identifier(profile, "profile", max_length=PROFILE_MAX_LENGTH)
    if parent_session_id is not None:
        parent_session_id = validation.check_session_id(parent_session_id, "parent_session_id")
        if parent_session_id == session_id:
            raise ValidationError({"parent_session_id": "a session cannot be its own parent."})
    system_prompt = validation.check_text(system_prompt, "system_prompt")
    if started_at is not None:
        started_at = validation.check_timestamp(started_at, "started_at")
    batch = validation.check_batch(messages, usage=usage)
    increments = {"message_count": batch.active, "tool_call_count": batch.tool_calls, **batch.usage}

    def write() -> tuple[Session, bool]:
        with transaction.atomic(using=using):
            model_id = language_model_id(model, using=using)
            # Appending to an existing session (the common case) is one UPDATE that also takes
            # the row lock, so concurrent writers to one session queue here and the lock order
            # (session, then messages) is the same for everyone: no deadlock on MariaDB.
            session = _sql.add_to_counters(session_id, increments, using=using)
            created = False
            if session is None:
                if parent_session_id and not Session.objects.using(using).filter(pk=parent_session_id).exists():
                    raise ValidationError(
                        {"parent_session_id": f"session {parent_session_id!r} does not exist."}, code="invalid"
                    )
                defaults = {
                    "model_id": model_id,
                    "source": source,
                    "user_id": user_id,
                    "profile": profile,
                    "system_prompt": system_prompt,
                    "parent_session_id": parent_session_id,
                    "started_at": started_at or batch.messages[0]["timestamp"],
                    **increments,
                }
                # get_or_create handles the race with another writer creating the same id: the
                # loser's INSERT fails inside a savepoint and it reads (and locks) the winner's row.
                # Only the key is read: a found row is read whole by the counter update below.
                sessions = Session.objects.using(using).select_for_update().only("pk")
                session, created = sessions.get_or_create(pk=session_id, defaults=defaults)
                if not created:
                    session = _sql.add_to_counters(session_id, increments, using=using)
                    if session is None:  # the row exists (and is locked): the increments would overflow
                        _raise_overflow(session_id, increments, using=using)
            _sql.insert_messages(session_id, model_id, batch.messages, using=using)
            if batch.usage:
                _credit_model_usage(session_id, model_id, batch.usage, using=using)
            if (day := old_day(session.started_at)) is not None:
                mark_days([day], using=using)  # a past day's messages (or its first one) changed
        return session, created

    return run_with_model_ids(write, using=using)


def add_usage(
    session_id: str, usage: Mapping[str, int], *, model: str | None = None, using: str = DEFAULT_DB_ALIAS
) -> bool:
    """Add token usage (``input_tokens``, ``output_tokens``, ...) to an existing session's counters
    without a message: usage reported after the last flush; with ``model``, to that model's
    ``ModelUsage`` row of the session too. Returns False (and writes nothing) when the session does
    not exist, since usage alone never creates a session. An increment that would take a counter
    past its limit is a ValidationError, nothing written."""
    session_id = validation.check_session_id(session_id)
    increments = validation.check_usage(usage)
    if model is not None:
        model = validation.check_identifier(model, "model", max_length=255)
    if not any(increments.values()):
        return Session.objects.using(using).filter(pk=session_id).exists()

    def write() -> bool:
        with transaction.atomic(using=using):
            session = _sql.add_to_counters(session_id, increments, using=using)
            if session is not None:
                if model is not None:
                    _credit_model_usage(session_id, language_model_id(model, using=using), increments, using=using)
                if not session.has_messages and (day := old_day(session.started_at)) is not None:
                    mark_days([day], using=using)  # usage turns an empty session into a lost transcript
                return True
            _raise_overflow(session_id, increments, using=using)  # unless there is no such session
            return False

    return run_with_model_ids(write, using=using)


def _credit_model_usage(session_id: str, model_id: int, usage: Mapping[str, int], *, using: str) -> None:
    """Add ``usage`` to the session's ``ModelUsage`` row of the model (the main loop's: no billing
    route, no task), created on first use. The caller's transaction holds the session's row lock, so
    no other writer of ours creates the same row meanwhile. An increment that would pass a column's
    limit (``validation.COUNTER_LIMITS``) is a ValidationError, nothing written."""
    increments = {MODEL_USAGE_FIELDS[name]: n for name, n in usage.items() if n}
    if not increments:
        return
    now = timezone.now()
    key = {"session_id": session_id, "model_id": model_id, "billing_provider": "", "billing_base_url": ""}
    rows = ModelUsage.objects.using(using).filter(**key, billing_mode="", task="")
    limits = {MODEL_USAGE_FIELDS[name]: validation.COUNTER_LIMITS[name] for name in MODEL_USAGE_FIELDS}
    within = {f"{field}__lte": limits[field] - n for field, n in increments.items()}
    if rows.filter(**within).update(last_seen=now, **{field: F(field) + n for field, n in increments.items()}):
        return
    stored = rows.values(*increments).first()
    if stored is not None:
        errors = {
            f"usage.{field}": f"adding {n} to this model's stored {stored[field]} would pass {limits[field]}."
            for field, n in increments.items()
            if stored[field] + n > limits[field]
        }
        raise ValidationError(errors or {"usage": "would pass a counter's limit."}, code="overflow")
    ModelUsage.objects.using(using).create(**key, first_seen=now, last_seen=now, **increments)


def _raise_overflow(session_id: str, increments: Mapping[str, int], *, using: str) -> None:
    """After ``add_to_counters`` changed nothing: raise the ValidationError naming the counters the
    increments would overflow, or return when the session does not exist."""
    stored = _sql.stored_counters(session_id, using=using)
    if stored is not None:
        raise validation.counter_overflow(stored, increments)


def end_session(
    session_id: str, reason: str = "completed", *, ended_at: dt.datetime | None = None, using: str = DEFAULT_DB_ALIAS
) -> bool:
    """Mark a session ended; returns False (and writes nothing) when the session does not exist."""
    session_id = validation.check_session_id(session_id)
    reason = validation.check_identifier(reason, "reason", max_length=64)
    ended_at = validation.check_timestamp(ended_at, "ended_at") if ended_at is not None else timezone.now()

    today = timezone.now().astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)

    def write() -> bool:
        sessions = Session.objects.using(using).filter(pk=session_id)
        # A session started today (the common case) is one UPDATE; an older one may be an empty
        # session of a past day whose cause changes (never_ended -> ghost): its day is marked.
        if sessions.filter(started_at__gte=today).update(ended_at=ended_at, end_reason=reason):
            return True
        with transaction.atomic(using=using):
            started = sessions.select_for_update().values_list("started_at", flat=True).first()
            if started is None:
                return False
            sessions.update(ended_at=ended_at, end_reason=reason)
            if (day := old_day(started)) is not None:
                mark_days([day], using=using)
            return True

    return run_with_retry(write, using=using)


def compress_session(
    session_id: str,
    *,
    child_session_id: str,
    summary: str,
    model: str,
    source: str,
    pending_messages: Sequence[Mapping] = (),
    user_id: str | None = None,
    parent_session_id: str | None = None,
    system_prompt: str | None = None,
    started_at: dt.datetime | None = None,
    summary_role: str = "user",
    usage: Mapping[str, int] | None = None,
    profile: str = DEFAULT_PROFILE,
    using: str = DEFAULT_DB_ALIAS,
) -> Session:
    """Split a conversation: flush ``pending_messages`` to ``session_id``, end it with reason
    ``compression``, and create ``child_session_id`` directly, linked to it, carrying the summary.

    All in one transaction. If ``session_id`` has no row (nothing was ever saved), the child links
    to ``parent_session_id`` instead (the grandparent of a chain, or nothing).
    """
    child_session_id = validation.check_session_id(child_session_id, "child_session_id")
    if not isinstance(summary, str) or not summary.strip():
        raise ValidationError({"summary": "a compression summary must be non-empty text."}, code="required")
    summary_messages = [{"role": summary_role, "content": summary}]
    validation.check_batch(summary_messages)  # before the transaction: a bad summary writes nothing

    def write() -> Session:
        with transaction.atomic(using=using):
            if pending_messages:
                append_messages(
                    session_id,
                    pending_messages,
                    model=model,
                    source=source,
                    user_id=user_id,
                    parent_session_id=parent_session_id,
                    system_prompt=system_prompt,
                    started_at=started_at,
                    usage=usage,
                    profile=profile,
                    using=using,
                )
            elif usage:
                add_usage(session_id, usage, model=model, using=using)  # reported after the parent's last flush
            parent_exists = end_session(session_id, "compression", using=using)
            child, created = append_messages(
                child_session_id,
                summary_messages,
                model=model,
                source=source,
                user_id=user_id,
                parent_session_id=session_id if parent_exists else parent_session_id,
                system_prompt=system_prompt,
                profile=profile,
                using=using,
            )
            if not created:
                raise ValidationError(
                    {"child_session_id": f"session {child_session_id!r} already exists."}, code="unique"
                )
            return child

    return run_with_model_ids(write, using=using)
