"""Check (and repair) what the database keeps about each session against its message rows.

The rows are the truth. ``Session.has_messages`` (any message row) is kept by triggers and the
counters (``message_count``, ``tool_call_count``: the active rows, as hermes-agent counts them) by
the save path and the importer, so in normal operation nothing here
finds drift; it is for databases restored from a backup, loaded with triggers off, or written by
a tool that bypassed the save path.

It also checks the daily rollup: every unmarked day before the watermark must hold what its
sessions add up to (``rollup.check_days``); ``--repair`` recomputes the days that do not.
"""

from dataclasses import dataclass, field

from django.db import DEFAULT_DB_ALIAS, transaction
from django.db.models import Count, Q

from sessions_app.models import Message, Session
from sessions_app.rollup import check_days, fold_marks, mark_days, old_day, rebuild_days
from sessions_app.validation import tool_call_total

DEFAULT_BATCH_SIZE = 2000
MAX_BATCH_SIZE = 50_000
EXAMPLES_PER_KIND = 5

FLAG_WITHOUT_ROWS = "flag_without_rows"
ROWS_WITHOUT_FLAG = "rows_without_flag"
MESSAGE_COUNT_OFF = "message_count_off"
TOOL_CALL_COUNT_OFF = "tool_call_count_off"
DRIFT_KINDS = (FLAG_WITHOUT_ROWS, ROWS_WITHOUT_FLAG, MESSAGE_COUNT_OFF, TOOL_CALL_COUNT_OFF)


@dataclass
class SessionDrift:
    """What ``verify_sessions`` found: sessions checked, drifted sessions per kind, a few example
    ids per kind, and whether the drift was repaired. A session can drift in several kinds."""

    sessions_checked: int = 0
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DRIFT_KINDS, 0))
    examples: dict[str, list[str]] = field(default_factory=lambda: {kind: [] for kind in DRIFT_KINDS})
    repaired: bool = False
    rollup_days_checked: int = 0
    rollup_days_off: list = field(default_factory=list)  # UTC days whose rollup rows were not the rows' sums

    @property
    def total(self) -> int:
        return sum(self.counts.values()) + len(self.rollup_days_off)

    def add(self, kind: str, session_id: str) -> None:
        self.counts[kind] += 1
        if len(self.examples[kind]) < EXAMPLES_PER_KIND:
            self.examples[kind].append(session_id)


@dataclass(frozen=True)
class _Truth:
    """A session's values as its message rows say they should be."""

    has_messages: bool
    message_count: int
    tool_call_count: int


def verify_sessions(
    *, repair: bool = False, batch_size: int = DEFAULT_BATCH_SIZE, using: str = DEFAULT_DB_ALIAS
) -> SessionDrift:
    """Compare every session's flag and counters with its message rows, ``batch_size`` sessions
    at a time (keyset over ids; a few queries per batch, none per session).

    Read-only unless ``repair``: then each batch locks its sessions, recounts and fixes them in
    the same short transaction, marking the daily rollup's days of the sessions it fixed, and the
    marks are folded at the end. A read-only pass re-checks a batch's suspects under a lock before
    reporting them, so a writer committing between two of its queries is not counted as drift.
    Then the rollup itself is checked against the sessions, day by day (and repaired).
    """
    if not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise ValueError(f"batch_size must be between 1 and {MAX_BATCH_SIZE}, got {batch_size}.")
    drift = SessionDrift(repaired=repair)
    try:
        _check_batches(drift, repair=repair, batch_size=batch_size, using=using)
    finally:
        if repair:
            fold_marks(using=using)
    drift.rollup_days_checked, drift.rollup_days_off = check_days(using=using)
    if repair and drift.rollup_days_off:
        rebuild_days(drift.rollup_days_off, using=using)
    return drift


def _check_batches(drift: SessionDrift, *, repair: bool, batch_size: int, using: str) -> None:
    last = None
    while True:
        with transaction.atomic(using=using):
            sessions = Session.objects.using(using).order_by("pk")
            if last is not None:
                sessions = sessions.filter(pk__gt=last)
            if repair:
                sessions = sessions.select_for_update()
            batch = list(sessions.values_list("pk", "has_messages", "message_count", "tool_call_count")[:batch_size])
            if not batch:
                return
            suspects = _drifted(batch, _truth(using, batch[0][0], batch[-1][0]))
            if suspects and not repair:
                # Whatever committed between the queries above is settled once the rows are locked.
                locked = Session.objects.using(using).select_for_update().filter(pk__in=[row[0] for row, _ in suspects])
                rows = list(locked.order_by("pk").values_list("pk", "has_messages", "message_count", "tool_call_count"))
                suspects = _drifted(rows, _truth(using, rows[0][0], rows[-1][0])) if rows else []
            for row, truth in suspects:
                for kind in _kinds(row, truth):
                    drift.add(kind, row[0])
            if repair and suspects:
                _repair(using, suspects)
                repaired = [row[0] for row, _ in suspects]
                started = Session.objects.using(using).filter(pk__in=repaired).values_list("started_at", flat=True)
                mark_days({day for moment in started if (day := old_day(moment)) is not None}, using=using)
        drift.sessions_checked += len(batch)
        last = batch[-1][0]


def _truth(using: str, first: str, last: str) -> dict[str, _Truth]:
    """The flag and counters the message rows give, for the sessions with ids in [first, last]:
    one grouped count, and the tool calls of the messages that have any. The flag is "has any
    row"; the counters count the active rows only (hermes-agent's rule: an undone turn is kept,
    not counted)."""
    messages = Message.objects.using(using).filter(session_id__gte=first, session_id__lte=last).order_by()
    counts = {
        sid: live
        for sid, live in messages.values("session_id")
        .annotate(live=Count("pk", filter=Q(active=True)))
        .values_list("session_id", "live")
    }
    tool_calls = dict.fromkeys(counts, 0)
    # Counted as the save path counts them (validation.tool_call_total), so in Python.
    active_calls = messages.filter(active=True, tool_calls__isnull=False).values_list("session_id", "tool_calls")
    for session_id, calls in active_calls:
        tool_calls[session_id] += tool_call_total(calls)
    return {sid: _Truth(True, n, tool_calls[sid]) for sid, n in counts.items()}


_EMPTY = _Truth(False, 0, 0)


def _drifted(rows, truths: dict[str, _Truth]) -> list:
    """The rows ``(pk, has_messages, message_count, tool_call_count)`` that differ from their truth."""
    return [(row, truth) for row in rows if tuple(row[1:]) != tuple(vars(truth := truths.get(row[0], _EMPTY)).values())]


def _kinds(row, truth: _Truth) -> list[str]:
    _, has_messages, message_count, tool_call_count = row
    kinds = []
    if has_messages and not truth.has_messages:
        kinds.append(FLAG_WITHOUT_ROWS)
    if truth.has_messages and not has_messages:
        kinds.append(ROWS_WITHOUT_FLAG)
    if message_count != truth.message_count:
        kinds.append(MESSAGE_COUNT_OFF)
    if tool_call_count != truth.tool_call_count:
        kinds.append(TOOL_CALL_COUNT_OFF)
    return kinds


def _repair(using: str, drifted: list) -> None:
    """Write the truth into the drifted sessions, locked by the caller's transaction (one UPDATE)."""
    sessions = [
        Session(
            pk=row[0],
            has_messages=truth.has_messages,
            message_count=truth.message_count,
            tool_call_count=truth.tool_call_count,
        )
        for row, truth in drifted
    ]
    Session.objects.using(using).bulk_update(sessions, ["has_messages", "message_count", "tool_call_count"])
