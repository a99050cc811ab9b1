"""Admin pagination for tables too large to count on every page load."""

from django.core.paginator import Paginator
from django.db import connections
from django.utils.functional import cached_property

# Below this many estimated rows an exact COUNT(*) is cheap, and an exact figure reads better.
EXACT_COUNT_BELOW = 100_000


class EstimatedCountPaginator(Paginator):
    """A paginator that, on PostgreSQL, takes the row count of an *unfiltered* queryset from the
    planner's statistics (``pg_class.reltuples``) instead of running ``COUNT(*)`` over the whole
    table on every changelist load.

    The estimate is refreshed by (auto)vacuum/analyze and can be off by a few percent; the admin
    only uses it for the page count. Filtered querysets, small tables, tables never analysed and
    the other backends get the exact count.
    """

    @cached_property
    def count(self):
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
