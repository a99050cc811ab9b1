"""Named, chainable filters over sessions (``Session.objects.empty().of_model("m").started_between(a,
b)``) and trend markers (``TrendMarker.objects.drawable()``).

Every reader (analytics, admin, prune, metrics) builds its scope from these, so a filter has one
meaning everywhere: model, source and profile match exactly (byte for byte, MariaDB included),
``since`` is inclusive and ``until`` exclusive on ``started_at``.
"""

import datetime as dt

from django.db import models
from django.db.models import Case, Exists, OuterRef, Q, Value, When
from django.utils import timezone

from agents_app.conf import hermes_settings

# The moments every backend and every report can hold, in UTC: MariaDB's DATETIME range (years 1000
# to 9999), far enough from Python's year 1 that the week or period before any of them exists.
# Report bounds, trend markers and the rollup's days are refused outside it.
EARLIEST_MOMENT = dt.datetime(1000, 1, 1, tzinfo=dt.UTC)
LATEST_MOMENT = dt.datetime.max.replace(tzinfo=dt.UTC)

# Why an empty session is empty, in precedence order: a session is given the first cause whose
# condition it meets (only lost_transcript overlaps the others; the last three split the rest).
CAUSES = ("lost_transcript", "never_ended", "open", "ghost")
# Counters that say the agent did work: any of them above 0 means usage was recorded.
USAGE_COUNTERS = (
    "api_call_count",
    "message_count",
    "tool_call_count",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)


def usage_condition() -> Q:
    """Some usage was recorded on the session row: API calls, counted messages or tool calls, or tokens."""
    condition = Q()
    for counter in USAGE_COUNTERS:
        condition |= Q(**{f"{counter}__gt": 0})
    return condition


def cause_condition(cause: str, *, stale_before: dt.datetime) -> Q:
    """The condition that gives an *empty* session ``cause`` (emptiness itself is not part of it:
    combine with ``analytics.empty_condition()`` or ``.empty()``). ``stale_before``: now minus the
    grace period, the start before which an open session no longer counts as "may still speak"."""
    usage = usage_condition()
    open_ = Q(ended_at__isnull=True)
    recent = Q(started_at__gte=stale_before)
    conditions = {
        "lost_transcript": usage,
        "never_ended": ~usage & open_ & ~recent,
        "open": ~usage & open_ & recent,
        "ghost": ~usage & ~open_,
    }
    if cause not in conditions:
        raise ValueError(f"unknown cause {cause!r}; choose one of {', '.join(CAUSES)}.")
    return conditions[cause]


def stale_before(now: dt.datetime | None = None, grace: dt.timedelta | None = None) -> dt.datetime:
    """``now`` (default: the current time) minus ``grace`` (default: the ``HERMES_OPEN_GRACE`` setting)."""
    return (now or timezone.now()) - (hermes_settings.HERMES_OPEN_GRACE if grace is None else grace)


class SessionQuerySet(models.QuerySet):
    def _message_rows(self) -> Exists:
        """EXISTS (a message row of the outer session), on the indexed ``message(session_id, ...)``."""
        messages = self.model._meta.get_field("messages").related_model._default_manager
        return Exists(messages.filter(session_id=OuterRef("pk")))

    def _children(self) -> Exists:
        """EXISTS (a session continuing the outer one after compression), on the parent index."""
        return Exists(self.model._default_manager.filter(parent_session_id=OuterRef("pk")))

    def empty(self):
        """Sessions without any message row: the ``has_messages`` flag, which the database's
        triggers keep equal to the rows at every commit (``verify_sessions`` checks it)."""
        return self.filter(has_messages=False)

    def non_empty(self):
        """Sessions with at least one message row (the flag, as ``empty()``)."""
        return self.filter(has_messages=True)

    def with_has_children(self):
        """Annotate ``has_children`` (bool) on each session."""
        return self.annotate(has_children=self._children())

    def with_usage(self):
        """Sessions whose row records usage (``usage_condition``), whatever their messages."""
        return self.filter(usage_condition())

    def without_usage(self):
        """Sessions whose row records no API call, counted message, tool call or token."""
        return self.exclude(usage_condition())

    def of_cause(self, cause: str, *, now: dt.datetime | None = None, grace: dt.timedelta | None = None):
        """Empty sessions of one cause (``CAUSES``; ``ValueError`` otherwise), the grace period
        counted back from ``now`` (see ``cause_condition`` and ``stale_before``)."""
        return self.empty().filter(cause_condition(cause, stale_before=stale_before(now, grace)))

    def with_cause(self, *, now: dt.datetime | None = None, grace: dt.timedelta | None = None):
        """Annotate ``cause``: an empty session's cause (``CAUSES``, the first that applies), None
        for a session with messages; the grace period counted back from ``now``."""
        stale = stale_before(now, grace)
        whens = [
            When(Q(has_messages=False) & cause_condition(cause, stale_before=stale), then=Value(cause))
            for cause in CAUSES
        ]
        return self.annotate(cause=Case(*whens, default=None, output_field=models.CharField()))

    def open(self):
        """Sessions that have not ended."""
        return self.filter(ended_at__isnull=True)

    def ended(self):
        """Sessions that have ended."""
        return self.filter(ended_at__isnull=False)

    def with_children(self):
        """Sessions that are the parent of at least one other session."""
        return self.filter(self._children())

    def without_children(self):
        """Sessions that no other session continues."""
        return self.filter(~self._children())

    def started_between(self, since=None, until=None):
        """Sessions started at or after ``since`` and before ``until`` (aware datetimes; None: unbounded)."""
        queryset = self
        if since is not None:
            queryset = queryset.filter(started_at__gte=since)
        if until is not None:
            queryset = queryset.filter(started_at__lt=until)
        return queryset

    def started_before(self, cutoff):
        """Sessions started before ``cutoff``."""
        return self.filter(started_at__lt=cutoff)

    def of_model(self, name: str):
        """Sessions of the model named exactly ``name`` (a binary-collated key on MySQL/MariaDB)."""
        return self.filter(model__name=name)

    def from_source(self, source: str):
        """Sessions from exactly ``source`` ("CLI" is not "cli", on MariaDB too: a ``KeyField``)."""
        return self.filter(source=source)

    def of_profile(self, name: str):
        """Sessions of the hermes profile named exactly ``name`` ("Work" and "work " are not "work").
        ``profile`` is a ``KeyField`` (binary-collated on MySQL/MariaDB), so a plain filter is exact."""
        return self.filter(profile=name)

    def matching(self, *, since=None, until=None, model=None, source=None, profile=None):
        """The scope of a report: every filter given (None leaves it out), each as above."""
        queryset = self.started_between(since, until)
        if model is not None:
            queryset = queryset.of_model(model)
        if source is not None:
            queryset = queryset.from_source(source)
        if profile is not None:
            queryset = queryset.of_profile(profile)
        return queryset

    def prunable(self, cutoff=None, *, include_open: bool = False):
        """Sessions that may be deleted: empty (by the flag), continued by no other session, started
        before ``cutoff`` (None: any time) and ended (unless ``include_open``)."""
        queryset = self.empty().without_children()
        if cutoff is not None:
            queryset = queryset.started_before(cutoff)
        return queryset if include_open else queryset.ended()

    def prunable_condition(self, cutoff=None, *, include_open: bool = False) -> Q:
        """``prunable``'s condition as a ``Q`` for the DELETE itself, which re-checks the message
        rows (the truth) and not only the flag: a deletion never relies on the flag alone."""
        condition = Q(has_messages=False) & ~self._message_rows() & ~self._children()
        if cutoff is not None:
            condition &= Q(started_at__lt=cutoff)
        return condition if include_open else condition & Q(ended_at__isnull=False)


class TrendMarkerQuerySet(models.QuerySet):
    def drawable(self):
        """Markers the reports can draw and count from: at ``EARLIEST_MOMENT`` or later. A row
        another writer stored earlier (raw SQL, code that skips validation) is left out rather
        than break the page for everyone; the admin still lists it, to be corrected."""
        return self.filter(at__gte=EARLIEST_MOMENT)
