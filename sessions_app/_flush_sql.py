"""Private: the two hand-written statements of every flush, the message INSERT and the counter UPDATE.

Why raw SQL here and nowhere else in the save path: a flush of B messages through
``bulk_create`` and ``QuerySet.update(F() + n)`` compiles both statements on every call, which cost
several times the database work of a small flush (profiled on SQLite). The statements below are
generated once per database from the models' ``_meta`` (so they follow the models and their
migrations), take their values through ``agents_app.db.column_adapter`` (the conversion every raw
writer of ours shares, equal to the fields' ``get_db_prep_save``), and run on Django's own cursor
(``connection.cursor()``): they are logged, wrapped and seen by ``execute_wrapper`` like any other
query, whether or not anyone is watching.

Session creation is not here: the save path calls Django's own ``get_or_create``.
"""

from functools import cache

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
    f for f in Message._meta.concrete_fields if not f.primary_key and f.attname not in _BATCH_FIELDS
)


@cache
def _counter_update(alias: str, vendor: str) -> tuple[str, str | None]:
    """``UPDATE session SET counter = counter + %s, ... WHERE id = %s AND counter <= %s AND ...``
    returning the whole row, and, where the backend has no ``UPDATE ... RETURNING``, the SELECT
    that reads the row after it.

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
    bounds = " AND ".join(f"{c} <= %s" for c in columns)
    returned = ", ".join(quote(f.column) for f in meta.concrete_fields)
    # Only quoted names from the models' metadata are interpolated; values are parameters.
    update = f"UPDATE {table} SET {sets} WHERE {key} = %s AND {bounds}"  # noqa: S608
    # SQLite 3.35+ and PostgreSQL hand the updated row back in the same statement; MariaDB has no
    # UPDATE ... RETURNING, so there the row is read after the update, under the lock it took.
    if vendor in {"postgresql", "sqlite"} and connection.features.can_return_columns_from_insert:
        return f"{update} RETURNING {returned}", None
    return update, f"SELECT {returned} FROM {table} WHERE {key} = %s"  # noqa: S608


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


@cache
def _adapters(alias: str, vendor: str) -> tuple:
    """Per message field: (attname, adapter or None, whether the column may be left out when the
    whole batch has None for it: nullable and without a database default, so NULL is what the
    database writes anyway)."""
    connection = connections[alias]
    return tuple((f.attname, column_adapter(f, connection), f.null and not f.has_db_default()) for f in _MESSAGE_FIELDS)


@cache
def _message_insert(alias: str, vendor: str, attnames: tuple[str, ...]) -> str:
    """The INSERT of the batch columns and the message columns ``attnames``, in that order."""
    quote = connections[alias].ops.quote_name
    meta = Message._meta
    columns = ", ".join(quote(meta.get_field(name).column) for name in (*_BATCH_FIELDS, *attnames))
    placeholders = ", ".join(["%s"] * (len(_BATCH_FIELDS) + len(attnames)))
    return f"INSERT INTO {quote(meta.db_table)} ({columns}) VALUES ({placeholders})"  # noqa: S608


def insert_messages(session_id: str, model_id: int | None, messages: list[dict], *, using: str) -> None:
    """Insert validated message field dicts (``validation.check_message``) in one ``executemany``."""
    connection = connections[using]
    count = len(messages)
    attnames, columns = [], [[session_id] * count, [model_id] * count]
    for attname, adapt, optional in _adapters(using, connection.vendor):
        column = [message.get(attname) for message in messages]
        if optional and column.count(None) == count:
            continue  # NULL throughout: leave the column out rather than bind it for every row
        if adapt is not None:
            column = [None if value is None else adapt(value) for value in column]
        attnames.append(attname)
        columns.append(column)
    sql = _message_insert(using, connection.vendor, tuple(attnames))
    with connection.cursor() as cursor:
        cursor.executemany(sql, list(zip(*columns, strict=True)))


def add_to_counters(session_id: str, increments: dict[str, int], *, using: str) -> Session | None:
    """Add ``increments`` to an existing session's counters; returns the updated session, or None
    (and changes nothing) when there is no such session or when an increment would take a counter
    past its limit (``validation.COUNTER_LIMITS``; see ``stored_counters``). The UPDATE
    also locks the row."""
    connection = connections[using]
    update, select = _counter_update(using, connection.vendor)
    added = [increments.get(name, 0) for name in COUNTERS]
    params = [*added, session_id, *(limit - increment for limit, increment in zip(_LIMITS, added, strict=True))]
    with connection.cursor() as cursor:
        cursor.execute(update, params)
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


def stored_counters(session_id: str, *, using: str) -> dict[str, int] | None:
    """The session's counters, locked until the transaction ends, or None when it does not exist:
    read only after ``add_to_counters`` refused, to say which counter would overflow."""
    return Session.objects.using(using).select_for_update().filter(pk=session_id).values(*COUNTERS).first()
