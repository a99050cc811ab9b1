"""Changelist plumbing every admin list of ours shares: counts that stay cheap on tables with
millions of rows, exact-value list filters (and emptiness and its cause), and links into the
session and message lists with the admin's own quoting. (The bound on search terms, and the rest
of the hardening every changelist of the site gets, is ``sessions_app.admin_site``.)
"""

from urllib.parse import quote, urlencode

from django.contrib import admin
from django.contrib.admin.utils import quote as admin_quote
from django.core.paginator import Paginator
from django.db import connections
from django.urls import reverse
from django.utils.functional import cached_property

from sessions_app.aggregates import exact_values
from sessions_app.analytics import scope_choices
from sessions_app.querysets import CAUSES

# Below this many estimated rows an exact COUNT(*) is cheap, and an exact figure reads better.
EXACT_COUNT_BELOW = 100_000
# Filtered lists count at most this many rows, plus one (a list of 10,001+ rows has 100+ pages).
FILTERED_COUNT_CAP = 10_000


class EstimatedCountPaginator(Paginator):
    """A paginator that never counts a large table on every changelist load.

    An *unfiltered* queryset on PostgreSQL takes its row count from the planner's statistics
    (``pg_class.reltuples``) instead of ``COUNT(*)`` over the whole table; the estimate is
    refreshed by (auto)vacuum/analyze and can be off by a few percent. Small tables, tables never
    analysed and the other backends get the exact count, which there is read from the smallest
    index.

    A *filtered* queryset is counted only up to ``FILTERED_COUNT_CAP + 1`` rows: an exact count
    of e.g. the empty sessions probes the message index for every session of the table (1.5 s at
    a million sessions on SQLite), while the capped count stops after the first matches. Such a
    list then shows 10,001 rows and 101 pages however many more match; its actions still apply
    to every matching row.
    """

    @cached_property
    def count(self):
        query = getattr(self.object_list, "query", None)
        if query is not None and query.where and not query.is_sliced and not query.combinator:
            return self.object_list.order_by().values("pk")[: FILTERED_COUNT_CAP + 1].count()
        estimate = self._planner_estimate()
        if estimate is not None and estimate >= EXACT_COUNT_BELOW:
            return estimate
        return super().count

    def _planner_estimate(self) -> int | None:
        queryset = self.object_list
        query = getattr(queryset, "query", None)
        if query is None or query.where or query.distinct or query.is_sliced or query.combinator:
            return None
        connection = connections[queryset.db]
        if connection.vendor != "postgresql":
            return None
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)",
                [connection.ops.quote_name(queryset.model._meta.db_table)],
            )
            row = cursor.fetchone()
        # reltuples is -1 for a table never vacuumed or analysed (PostgreSQL 14+).
        if row is None or row[0] is None or row[0] < 0:
            return None
        return int(row[0])


CAUSE_LABELS = {
    "lost_transcript": "Lost transcript (usage, no message)",
    "never_ended": "Never ended (open past the grace period)",
    "open": "Open (may still speak)",
    "ghost": "Ghost (ended without usage)",
}


class EmptyFilter(admin.SimpleListFilter):
    """Empty = no message row, as ``Session.objects.empty()`` decides it, not the counter."""

    title = "messages"
    parameter_name = "empty"

    def lookups(self, request, model_admin):
        return [("yes", "Empty (no messages)"), ("no", "With messages")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.empty()
        if self.value() == "no":
            return queryset.non_empty()
        return queryset


class CauseFilter(admin.SimpleListFilter):
    """Empty sessions of one cause (``analytics.causes``), as ``Session.objects.of_cause`` decides it."""

    title = "why empty"
    parameter_name = "cause"

    def lookups(self, request, model_admin):
        return [(cause, CAUSE_LABELS[cause]) for cause in CAUSES]

    def queryset(self, request, queryset):
        if self.value() in CAUSES:
            return queryset.of_cause(self.value())
        return queryset


class ExactValueFilter(admin.SimpleListFilter):
    """One choice per distinct value of a key column (a ``KeyField``), matched byte for byte on
    every backend: "CLI" and "cli" are two choices, as the reports count them apart."""

    field_name = ""

    def lookups(self, request, model_admin):
        values = exact_values(model_admin.model._default_manager.all(), self.field_name)
        return [(value, value) for value in values]

    def queryset(self, request, queryset):
        if self.value() is None:
            return queryset
        return queryset.filter(**{self.field_name: self.value()})


class RollupValueFilter(ExactValueFilter):
    """An exact-value filter whose choices come from the daily rollup and the live days
    (``analytics.scope_choices``), not from a DISTINCT over every session (a full scan on
    PostgreSQL, which has no skip scan: 0.4 s at 1M sessions, 2.8 s at 10M)."""

    def lookups(self, request, model_admin):
        if not hasattr(request, "_scope_choices"):
            request._scope_choices = scope_choices(using=model_admin.model._default_manager.db)
        return [(value, value) for value in request._scope_choices[self.field_name]]


class SourceFilter(RollupValueFilter):
    title = parameter_name = field_name = "source"


class ProfileFilter(RollupValueFilter):
    """The hermes profile; "work" and "Work" are two choices (and two profiles) on every backend."""

    title = parameter_name = field_name = "profile"


class EndReasonFilter(ExactValueFilter):
    title = "end reason"
    parameter_name = field_name = "end_reason"


def message_changelist_url(session_id: str) -> str:
    """The message list of one session, in order."""
    return reverse("admin:sessions_app_message_changelist") + "?session__exact=" + quote(session_id, safe="")


def session_change_url(session_id: str) -> str:
    """The change page of a session. The admin escapes "_XX" sequences in primary keys, which our
    ids (``20261130_2215...``) contain, so the id is quoted the way the admin's own links are."""
    return reverse("admin:sessions_app_session_change", args=[admin_quote(session_id)])


def session_changelist_url(**params) -> str:
    """The session list with the given changelist filters (e.g. ``model__id__exact=3, empty="yes"``)."""
    return reverse("admin:sessions_app_session_changelist") + ("?" + urlencode(params) if params else "")
