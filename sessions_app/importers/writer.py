"""Our side of an import: batched writes into ``Session`` and ``Message``, and the keyed reads a
page locks first. Values reach the driver as the ORM would send them (``agents_app.db.column_adapter``).
"""

from itertools import chain

from django.db import connections

from agents_app.db import column_adapter
from sessions_app.models import Message, Session

# Kept in Session.extra: the highest source message id imported for the session (hermes message ids
# are AUTOINCREMENT), and the parent id of a session imported before its parent.
LAST_MESSAGE_KEY = "hermes_last_message_id"
MISSING_PARENT_KEY = "hermes_missing_parent_id"
# The parent id of a session whose link would have closed a cycle (a -> b -> a): dropped, kept here.
DROPPED_PARENT_KEY = "hermes_dropped_parent_id"
# Keys of ``extra`` that the import writes itself (``content.CONTENT_PARTS_KEY`` on messages).
RESERVED_KEYS = frozenset({LAST_MESSAGE_KEY, MISSING_PARENT_KEY, DROPPED_PARENT_KEY, "content_parts"})
_SOURCE_PREFIX = "source."
# Message fields the import writes, in the order of ``RowConverter.message_values`` (``model`` stays NULL).
MESSAGE_FIELDS = (
    "session", "role", "content", "tool_call_id", "tool_calls", "tool_name", "timestamp", "token_count",
    "finish_reason", "reasoning", "extra",
)  # fmt: skip
# Columns refreshed on sessions imported earlier (hermes updates them while a session runs).
SYNCED_FIELDS = (
    "ended_at", "end_reason", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
    "reasoning_tokens", "api_call_count", "billing_provider", "billing_base_url", "billing_mode",
    "estimated_cost_usd", "actual_cost_usd", "title", "cwd",
)  # fmt: skip


def extra_keys(names) -> dict[str, str]:
    """Where each unknown source column is kept in ``extra``: under its own name, except names our
    bookkeeping uses (``writer.RESERVED_KEYS``, anything ``hermes_...``), which get ``source.`` in
    front, so that a crafted column can never set a mark or a parent link of ours."""
    keys, taken = {}, set(names)
    for name in names:
        key = name
        if name in RESERVED_KEYS or name.startswith("hermes_"):
            key = _SOURCE_PREFIX + name
            while key in taken:
                key = _SOURCE_PREFIX + key
            taken.add(key)
        keys[name] = key
    return keys


def in_chunks(queryset, ids) -> list:
    """``queryset.filter(pk__in=ids)``, in chunks that fit the 999 parameters of older SQLite builds."""
    ids = list(ids)
    return [row for start in range(0, len(ids), 900) for row in queryset.filter(pk__in=ids[start : start + 900])]


class BatchInsert:
    """A multi-row INSERT on Django's cursor (same transaction, same error wrapping), values adapted
    per field as the ORM would.

    Not ``bulk_create``: compiling its INSERT costs ~80 µs a row on this machine, five times the
    rest of the import together (bench/bench_import.py measures both). SQLite gets ``executemany``
    of multi-row INSERTs (below); MySQL gets ``executemany`` (mysqlclient rewrites it into
    multi-row INSERTs itself); PostgreSQL gets ``COPY ... FROM STDIN``, several times faster than
    a statement per row.
    """

    # SQLite: rows per INSERT statement. Run once per row, a statement pays SQLite's per-statement
    # work (reset, binding, the AUTOINCREMENT sqlite_sequence update) every time; 20 rows a
    # statement take about a third less CPU than one (measured; more rows gain nothing). The rows
    # are inserted in the same order, so they get the same ids. 20 rows of a session (26 columns)
    # stay below the 999 host parameters of old SQLite builds.
    SQLITE_ROWS_PER_STATEMENT = 20

    def __init__(self, model, names, connection):
        quote = connection.ops.quote_name
        self.fields = [model._meta.get_field(name) for name in names]
        adapters = [column_adapter(f, connection) for f in self.fields]
        self.adapters = [(index, adapt) for index, adapt in enumerate(adapters) if adapt is not None]
        self.connection = connection
        table, columns = quote(model._meta.db_table), ", ".join(quote(f.column) for f in self.fields)
        # COPY through psycopg 3's API; psycopg2 takes executemany. The driver is asked of the
        # connection (its DB-API module), not imported: a project on SQLite has no psycopg at all.
        self.copy = connection.vendor == "postgresql" and connection.Database.__name__ == "psycopg"
        if self.copy:
            self.sql = f"COPY {table} ({columns}) FROM STDIN"
        else:
            row = "(" + ", ".join(["%s"] * len(self.fields)) + ")"
            self.sql = f"INSERT INTO {table} ({columns}) VALUES {row}"  # noqa: S608 (quoted model names)
        self.rows_per_statement = self.SQLITE_ROWS_PER_STATEMENT if connection.vendor == "sqlite" else 1
        if self.rows_per_statement > 1:
            self.many_sql = f"INSERT INTO {table} ({columns}) VALUES {', '.join([row] * self.rows_per_statement)}"  # noqa: S608

    def adapt(self, values) -> list:
        """``values`` (one per field, in order) as the driver takes them."""
        values = list(values)
        for index, adapt in self.adapters:
            values[index] = adapt(values[index])
        return values

    def run(self, rows: list) -> None:
        """Insert rows whose values are adapted already (``adapt``), in order."""
        if not rows:
            return
        with self.connection.cursor() as cursor:
            if not self.copy:
                per = self.rows_per_statement
                grouped = len(rows) // per * per
                if grouped and per > 1:
                    # The values of ``per`` rows after one another, for one multi-row INSERT.
                    flat, step = list(chain.from_iterable(rows[:grouped])), per * len(self.fields)
                    cursor.executemany(self.many_sql, [flat[i : i + step] for i in range(0, len(flat), step)])
                    rows = rows[grouped:]
                if rows:  # what is left (or every row on MySQL): a statement per row
                    cursor.executemany(self.sql, rows)
                return
            with self.connection.wrap_database_errors, cursor.cursor.copy(self.sql) as copy:
                for row in rows:
                    copy.write_row(row)


class Writer:
    """The writes of one run on database ``using``; each runs inside the caller's page transaction.

    ``db_json`` and ``db_time`` adapt message JSON and times for the driver: the row converter
    calls them in its hot loop, so message rows arrive adapted."""

    def __init__(self, using: str):
        connection = self.connection = connections[using]
        self.using = using
        self._sessions = BatchInsert(Session, [f.name for f in Session._meta.concrete_fields], connection)
        self._session_columns = [f.attname for f in self._sessions.fields]
        self._messages = BatchInsert(Message, MESSAGE_FIELDS, connection)
        self.db_json = column_adapter(Message._meta.get_field("tool_calls"), connection)
        self.db_time = column_adapter(Message._meta.get_field("timestamp"), connection)
        self._db_extra = column_adapter(Session._meta.get_field("extra"), connection)
        quote = connection.ops.quote_name
        self._update_counters_sql = (
            f"UPDATE {quote(Session._meta.db_table)} SET {quote('extra')} = %s, {quote('message_count')} = %s,"  # noqa: S608
            f" {quote('tool_call_count')} = %s WHERE {quote('id')} = %s"
        )

    def create_sessions(self, sessions: list[dict]) -> None:
        """Insert new sessions, each a dict of every concrete field's attname."""
        insert = self._sessions
        insert.run([insert.adapt(s[c] for c in self._session_columns) for s in sessions])

    def refresh_sessions(self, changed: list[Session]) -> None:
        """Save the synced columns and ``extra`` of sessions imported earlier."""
        if changed:
            Session.objects.using(self.using).bulk_update(changed, [*SYNCED_FIELDS, "extra"])

    def append_messages(self, rows: list, counters: list[tuple[dict, int, int, str]]) -> None:
        """Insert message rows (``MESSAGE_FIELDS`` values, adapted) and set their sessions'
        ``(extra, message_count, tool_call_count, session id)`` in the same transaction."""
        self._messages.run(rows)
        db_extra = self._db_extra
        with self.connection.cursor() as cursor:
            cursor.executemany(self._update_counters_sql, [(db_extra(extra), *rest) for extra, *rest in counters])

    def link_parents(self, linked: list[Session]) -> None:
        """Save the parent link and the ``extra`` (its missing-parent key dropped) of ``linked``."""
        Session.objects.using(self.using).bulk_update(linked, ["parent_session", "extra"])
