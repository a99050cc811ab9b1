"""Private: the hand-written statements of the save path and of the importer, in one place.

- ``RowInsert``: a batch INSERT of model rows (messages, imported sessions) on Django's cursor.
- ``insert_messages``: the save path's message INSERT (one ``executemany`` per flush).
- ``add_to_counters`` / ``add_to_counters_many``: the counter UPDATE, ``counter = counter + n`` with
  the overflow guard in the statement; the save path reads the updated row back, the importer
  moves its marks (``extra``) in the same statement.

Why raw SQL here and nowhere else: ``bulk_create`` and ``QuerySet.update(F() + n)`` compile their
statements on every call, which cost several times the database work of a small flush (profiled on
SQLite) and five times the rest of an import. The statements below are generated once per database
from the models' ``_meta`` (so they follow the models and their migrations), take their values
through ``agents_app.db.column_adapter`` (the one conversion every raw writer of ours uses, equal to
the fields' ``get_db_prep_save``), and run on Django's own cursor (``connection.cursor()``): they are
logged, wrapped and seen by ``execute_wrapper`` like any other query, whether or not anyone watches.

Session creation by the save path is not here: it calls Django's own ``get_or_create``.
"""

from functools import cache
from itertools import chain

from django.db import connections

from agents_app.db import column_adapter
from sessions_app.models import Message, Session
from sessions_app.validation import COUNTER_LIMITS

# The counters a flush adds to: the ones it counts itself, then the caller's usage increments.
COUNTERS = tuple(COUNTER_LIMITS)  # message_count, tool_call_count, then the usage counters
_LIMITS = tuple(COUNTER_LIMITS[name] for name in COUNTERS)
# The message columns a flush writes: the session and model (one value for the whole batch),
# then the fields of ``validation.check_message``'s dicts.
_BATCH_FIELDS = ("session_id", "model_id")
_MESSAGE_FIELDS = tuple(
    f
    for f in Message._meta.concrete_fields
    if not f.primary_key and f.attname not in _BATCH_FIELDS and f.attname != "hermes_id"
)


class RowInsert:
    """A multi-row INSERT of ``model`` rows into the columns of ``names``, on Django's cursor (same
    transaction, same error wrapping), values adapted per field as the ORM would (``adapt``).

    SQLite gets ``executemany`` of multi-row INSERTs (below); MySQL gets ``executemany`` (mysqlclient
    rewrites it into multi-row INSERTs itself); PostgreSQL gets ``COPY ... FROM STDIN`` for batches
    of ``COPY_MIN_ROWS`` rows or more, several times faster than a statement per row, and
    ``executemany`` below that, where starting a COPY costs more than it saves.
    """

    # SQLite: rows per INSERT statement. Run once per row, a statement pays SQLite's per-statement
    # work (reset, binding, the AUTOINCREMENT sqlite_sequence update) every time; 20 rows a
    # statement take about a third less CPU than one (measured; more rows gain nothing). The rows
    # are inserted in the same order, so they get the same ids. 20 rows of a session (26 columns)
    # stay below the 999 host parameters of old SQLite builds.
    SQLITE_ROWS_PER_STATEMENT = 20
    COPY_MIN_ROWS = 64

    def __init__(self, model, names, connection):
        quote = connection.ops.quote_name
        self.fields = [model._meta.get_field(name) for name in names]
        adapters = [column_adapter(f, connection) for f in self.fields]
        self.adapters = [(index, adapt) for index, adapt in enumerate(adapters) if adapt is not None]
        # The alias, not the connection: connections are per thread (and an alias may be
        # redefined), so each run takes the current one.
        self.alias = connection.alias
        table, columns = quote(model._meta.db_table), ", ".join(quote(f.column) for f in self.fields)
        # COPY through psycopg 3's API; psycopg2 takes executemany. The driver is asked of the
        # connection (its DB-API module), not imported: a project on SQLite has no psycopg at all.
        copy = connection.vendor == "postgresql" and connection.Database.__name__ == "psycopg"
        self.copy_sql = f"COPY {table} ({columns}) FROM STDIN" if copy else None
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
        connection = connections[self.alias]
        with connection.cursor() as cursor:
            if self.copy_sql is None or len(rows) < self.COPY_MIN_ROWS:
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
            with connection.wrap_database_errors, cursor.cursor.copy(self.copy_sql) as copy:
                for row in rows:
                    copy.write_row(row)


@cache
def row_insert(alias: str, vendor: str, model, names: tuple[str, ...]) -> RowInsert:
    """The ``RowInsert`` of ``model``'s ``names`` on database ``alias`` (built once per process)."""
    return RowInsert(model, names, connections[alias])


@cache
def _message_adapters(alias: str, vendor: str) -> tuple:
    """Per message field: (attname, adapter or None, whether the column may be left out when the
    whole batch has None for it: nullable and without a database default, so NULL is what the
    database writes anyway)."""
    connection = connections[alias]
    return tuple((f.attname, column_adapter(f, connection), f.null and not f.has_db_default()) for f in _MESSAGE_FIELDS)


def insert_messages(session_id: str, model_id: int | None, messages: list[dict], *, using: str) -> None:
    """Insert validated message field dicts (``validation.check_message``) of one session."""
    connection = connections[using]
    count = len(messages)
    attnames, columns = [], [[session_id] * count, [model_id] * count]
    for attname, adapt, optional in _message_adapters(using, connection.vendor):
        column = [message.get(attname) for message in messages]
        if optional and column.count(None) == count:
            continue  # NULL throughout: leave the column out rather than bind it for every row
        if adapt is not None:
            column = [None if value is None else adapt(value) for value in column]
        attnames.append(attname)
        columns.append(column)
    insert = row_insert(using, connection.vendor, Message, (*_BATCH_FIELDS, *attnames))
    insert.run(list(zip(*columns, strict=True)))


@cache
def _counter_update(alias: str, vendor: str, *, with_extra: bool, returning: bool) -> tuple[str, str | None]:
    """``UPDATE session SET [extra = %s,] counter = counter + %s, ... WHERE id = %s AND counter <= %s
    AND ...``, with, when ``returning``, what reads the whole row back: ``RETURNING`` where the
    backend has it, else a SELECT to run after the update.

    The overflow guard is in the statement itself: each counter must be at most its limit minus
    the increment (computed here, so no arithmetic in SQL can overflow), or the row is not
    updated at all. Checking in the same statement, rather than reading the counters first under
    a lock, keeps the common flush at one statement and is atomic by construction; the rare
    refusal is told apart from a missing session, and explained, with ``stored_counters``."""
    connection = connections[alias]
    quote = connection.ops.quote_name
    meta = Session._meta
    table, key = quote(meta.db_table), quote(meta.pk.column)
    columns = [quote(meta.get_field(name).column) for name in COUNTERS]
    sets = ", ".join(f"{c} = {c} + %s" for c in columns)
    if with_extra:
        sets = f"{quote(meta.get_field('extra').column)} = %s, {sets}"
    bounds = " AND ".join(f"{c} <= %s" for c in columns)
    # Only quoted names from the models' metadata are interpolated; values are parameters.
    update = f"UPDATE {table} SET {sets} WHERE {key} = %s AND {bounds}"  # noqa: S608
    if not returning:
        return update, None
    returned = ", ".join(quote(f.column) for f in meta.concrete_fields)
    # SQLite 3.35+ and PostgreSQL hand the updated row back in the same statement; MariaDB has no
    # UPDATE ... RETURNING, so there the row is read after the update, under the lock it took.
    if vendor in {"postgresql", "sqlite"} and connection.features.can_return_columns_from_insert:
        return f"{update} RETURNING {returned}", None
    return update, f"SELECT {returned} FROM {table} WHERE {key} = %s"  # noqa: S608


def _counter_params(session_id: str, increments: dict[str, int]) -> list:
    added = [increments.get(name, 0) for name in COUNTERS]
    # A decrease (an imported message deactivated) cannot overflow; its bound stays the limit.
    return [*added, session_id, *(limit - max(0, n) for limit, n in zip(_LIMITS, added, strict=True))]


@cache
def _session_converters(alias: str, vendor: str) -> tuple[list[str], list]:
    """The Session attnames in column order, and per column the functions that turn a value the
    driver returns into the field's Python value.

    Private Django API, on purpose: this is what ``SQLCompiler.get_converters`` collects for a
    query (the backend's ``ops.get_db_converters`` and the field's ``get_db_converters``), done once
    here instead of compiling a query on every flush (two thirds of a flush's time on SQLite).
    ``tests/sessions_app/test_services.py::test_flush_returns_the_session_as_django_reads_it``
    compares every field with ``Session.objects.get()`` and fails if Django changes these hooks.
    """
    connection = connections[alias]
    fields = Session._meta.concrete_fields
    converters = []
    for field in fields:
        column = field.get_col(Session._meta.db_table)
        functions = connection.ops.get_db_converters(column) + column.get_db_converters(connection)
        converters.append((column, functions))
    return [f.attname for f in fields], converters


def add_to_counters(session_id: str, increments: dict[str, int], *, using: str) -> Session | None:
    """Add ``increments`` to an existing session's counters; returns the updated session, or None
    (and changes nothing) when there is no such session or when an increment would take a counter
    past its limit (``validation.COUNTER_LIMITS``; see ``stored_counters``). The UPDATE
    also locks the row."""
    connection = connections[using]
    update, select = _counter_update(using, connection.vendor, with_extra=False, returning=True)
    with connection.cursor() as cursor:
        cursor.execute(update, _counter_params(session_id, increments))
        if select is None:
            row = cursor.fetchone()
        elif cursor.rowcount:  # MariaDB/MySQL: read the row under the lock the UPDATE just took
            cursor.execute(select, [session_id])
            row = cursor.fetchone()
        else:
            row = None
    if row is None:
        return None
    attnames, converters = _session_converters(using, connection.vendor)
    values = []
    for value, (column, functions) in zip(row, converters, strict=True):
        for function in functions:
            value = function(value, column, connection)
        values.append(value)
    return Session.from_db(using, attnames, values)


def add_to_counters_many(changes: list[tuple[str, dict[str, int], dict]], *, using: str) -> int:
    """For each ``(session id, increments, extra)``: add the increments to the session's counters and
    set its ``extra``, in one ``executemany`` (the importer: the messages a page inserted, the flags
    it changed, and the marks that record them). Returns how many sessions were updated: fewer than
    given when a session is gone or an increment would pass a counter's limit (nothing changed for
    those)."""
    if not changes:
        return 0
    connection = connections[using]
    update, _ = _counter_update(using, connection.vendor, with_extra=True, returning=False)
    db_extra = column_adapter(Session._meta.get_field("extra"), connection)
    params = [[db_extra(extra), *_counter_params(sid, increments)] for sid, increments, extra in changes]
    with connection.cursor() as cursor:
        cursor.executemany(update, params)
        return cursor.rowcount


def stored_counters(session_id: str, *, using: str) -> dict[str, int] | None:
    """The session's counters, locked until the transaction ends, or None when it does not exist:
    read only after ``add_to_counters`` refused, to say which counter would overflow."""
    return Session.objects.using(using).select_for_update().filter(pk=session_id).values(*COUNTERS).first()


@cache
def _row_update(alias: str, vendor: str, model, names: tuple[str, ...]) -> tuple[str, list]:
    """``UPDATE table SET f1 = %s, ... WHERE pk = %s`` for ``model``'s fields ``names``, and their adapters."""
    connection = connections[alias]
    quote = connection.ops.quote_name
    meta = model._meta
    fields = [meta.get_field(name) for name in names]
    sets = ", ".join(f"{quote(f.column)} = %s" for f in fields)
    sql = f"UPDATE {quote(meta.db_table)} SET {sets} WHERE {quote(meta.pk.column)} = %s"  # noqa: S608
    return sql, [column_adapter(f, connection) for f in fields]


def update_rows(model, names: tuple[str, ...], rows: list[tuple], *, using: str) -> None:
    """Set the fields ``names`` of ``model`` rows: each of ``rows`` is ``(pk, value, ...)`` in that order,
    values as the model holds them, adapted here as the ORM would. One ``executemany``: what
    ``bulk_update`` does without compiling a ``CASE`` per row and field (several milliseconds a row
    on a page of sessions)."""
    if not rows:
        return
    connection = connections[using]
    sql, adapters = _row_update(using, connection.vendor, model, names)
    params = [
        [
            value if adapt is None or value is None else adapt(value)
            for value, adapt in zip(values, adapters, strict=True)
        ]
        + [pk]
        for pk, *values in rows
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)
