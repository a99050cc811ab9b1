"""Admin pagination for tables too large to count on every page load."""

from django.core.paginator import Paginator
from django.db import connections
from django.utils.functional import cached_property

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
