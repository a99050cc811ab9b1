"""The statements every flush runs, prepared once from the models' metadata.

Building a QuerySet, compiling it and instantiating a model per message cost several times more
than the database work of a flush (profiled: ~85% of ``append_messages`` time on SQLite). The
statements below are generated from ``Message``/``Session`` ``_meta`` (so they follow the models and
their migrations) and use each field's own ``get_db_prep_save`` and the backend's converters, so the
values written and read are exactly what the ORM would write and read. Session creation still goes
through ``get_or_create``: ``SessionQuerySet.get_or_create`` runs Django's algorithm (read; else
insert in a savepoint; on an IntegrityError read the winner's row) with the read and the insert
below (``session_exists``, ``insert_session``) instead of compiling a query for each; it falls back
to Django's own whenever anything could tell the difference (see ``can_get_or_create``).

They also skip Django's cursor wrapper when nobody is watching queries: its per-statement layers
(execute wrappers, SQLite's ``%s`` -> ``?`` regex on every call, the ``tee`` of ``executemany``)
cost as much as the statements themselves. Errors are still translated by the connection's
``wrap_database_errors`` (so retries and rollbacks see Django's exception classes). When queries
are being logged (``DEBUG``, ``CaptureQueriesContext``, ``django_assert_num_queries``) or an
``execute_wrapper`` is installed (APM, fault injection), the statements go through Django's cursor
so that they are seen like any other query.
"""

from contextlib import nullcontext
from dataclasses import dataclass
from functools import cache, lru_cache
from itertools import repeat

from django.db import connections
from django.db.backends.base.operations import BaseDatabaseOperations
from django.db.models import (
    BigIntegerField,
    CharField,
    IntegerField,
    Model,
    PositiveBigIntegerField,
    PositiveIntegerField,
    PositiveSmallIntegerField,
    SmallIntegerField,
    TextField,
)
from django.db.models.signals import post_save, pre_save

from agents_app.fields import KeyField
from sessions_app.models import Message, Session
from sessions_app.validation import USAGE_FIELDS

# The counters a flush adds to: the ones it counts itself, then the caller's usage increments.
_COUNTERS = ("message_count", "tool_call_count", *sorted(USAGE_FIELDS))
_PER_BATCH = ("session_id", "model_id")
MESSAGE_FIELDS = tuple(f for f in Message._meta.concrete_fields if not f.primary_key)
# Written first, in this order: the values shared by the whole batch, then the message's own.
_COLUMN_FIELDS = tuple(Message._meta.get_field(n) for n in ("session", "model")) + tuple(
    f for f in MESSAGE_FIELDS if f.attname not in _PER_BATCH
)
_MISSING = object()
_INTEGER_FIELDS = (
    IntegerField,
    BigIntegerField,
    SmallIntegerField,
    PositiveIntegerField,
    PositiveBigIntegerField,
    PositiveSmallIntegerField,
)


@dataclass(frozen=True)
class _Statement:
    sql: str  # Django's "format" paramstyle, for Django's cursor
    native: str  # the driver's paramstyle, for the driver's cursor


@dataclass(frozen=True)
class _Plan:
    update: _Statement
    # Per message column: (attname, get_db_prep_save, types whose values it returns unchanged,
    # whether the column may be left out of the INSERT when the whole batch has None for it).
    columns: tuple
    returning: bool
    select: _Statement  # the row after the update, where UPDATE ... RETURNING is not available
    converters: list  # (position, converter functions, expression) of the session columns read back
    attnames: list


def _statement(connection, sql: str) -> _Statement:
    # Only SQLite's driver differs from Django's "%s" style; the statements hold no literal "%".
    return _Statement(sql, sql.replace("%s", "?") if connection.vendor == "sqlite" else sql)


def _unchanged_types(field, connection) -> frozenset:
    """Types whose values ``field.get_db_prep_save`` returns as they are (so they are not converted)."""
    types = set()
    if field.get_db_prep_save(None, connection) is None:
        types.add(type(None))
    if type(field) in (CharField, TextField, KeyField):  # to_python/get_prep_value return a str unchanged
        types.add(str)
    # get_prep_value is int(value); the backend may then wrap it (PostgreSQL binds typed ints).
    if type(field) in _INTEGER_FIELDS and (
        type(connection.ops).adapt_integerfield_value is BaseDatabaseOperations.adapt_integerfield_value
    ):
        types.add(int)
    return frozenset(types)


@cache
def _plan(alias: str, vendor: str) -> _Plan:
    connection = connections[alias]
    quote = connection.ops.quote_name
    session_meta = Session._meta
    sets = ", ".join(f"{quote(c)} = {quote(c)} + %s" for c in (session_meta.get_field(n).column for n in _COUNTERS))
    # Only quoted names from the models' metadata are interpolated; values are parameters.
    update = f"UPDATE {quote(session_meta.db_table)} SET {sets} WHERE {quote(session_meta.pk.column)} = %s"  # noqa: S608
    # UPDATE ... RETURNING hands back the updated row in the same statement (SQLite 3.35+,
    # PostgreSQL); MariaDB has no UPDATE ... RETURNING, so the row is read after the update.
    returning = vendor in {"postgresql", "sqlite"} and connection.features.can_return_columns_from_insert
    fields = session_meta.concrete_fields
    columns = ", ".join(quote(f.column) for f in fields)
    if returning:
        update += " RETURNING " + columns
    select = f"SELECT {columns} FROM {quote(session_meta.db_table)} WHERE {quote(session_meta.pk.column)} = %s"  # noqa: S608
    compiler = Session.objects.using(alias).query.get_compiler(alias)
    converters = [
        (position, functions, expression)
        for position, (functions, expression) in compiler.get_converters(
            [f.get_col(session_meta.db_table) for f in fields]
        ).items()
    ]
    message_columns = tuple(
        # A nullable column without a database default gets NULL when it is not listed, exactly
        # what listing it with None writes; leaving it out saves binding it for every row.
        (f.attname, f.get_db_prep_save, _unchanged_types(f, connection), f.null and not f.has_db_default())
        for f in _COLUMN_FIELDS
        if f.attname not in _PER_BATCH
    )
    return _Plan(
        update=_statement(connection, update),
        columns=message_columns,
        returning=returning,
        select=_statement(connection, select),
        converters=converters,
        attnames=[f.attname for f in fields],
    )


@lru_cache(maxsize=256)
def _insert(alias: str, vendor: str, attnames: tuple[str, ...]) -> _Statement:
    """The INSERT of the batch values and the message columns ``attnames``, in that order."""
    connection = connections[alias]
    quote = connection.ops.quote_name
    by_attname = {f.attname: f for f in _COLUMN_FIELDS}
    columns = ", ".join(quote(by_attname[name].column) for name in (*_PER_BATCH, *attnames))
    placeholders = ", ".join(["%s"] * (len(_PER_BATCH) + len(attnames)))
    return _statement(connection, f"INSERT INTO {quote(Message._meta.db_table)} ({columns}) VALUES ({placeholders})")  # noqa: S608


def _run(connection, statement: _Statement, params, *, many: bool = False, fetch: bool = False):
    """Execute ``statement`` (``executemany`` if ``many``); returns ``(first row or None, rowcount)``.
    Driver errors come out as Django's exception classes either way."""
    cursor, sql, driver = _cursor(connection, statement)
    try:
        with connection.wrap_database_errors if driver else nullcontext():
            if many:
                cursor.executemany(sql, params)
            else:
                cursor.execute(sql, params)
            row = cursor.fetchone() if fetch else None
        return row, cursor.rowcount
    finally:
        cursor.close()


def _cursor(connection, statement: _Statement):
    """A cursor and the SQL to give it: Django's when queries are observed, else the driver's."""
    if connection.queries_logged or connection.execute_wrappers:
        return connection.cursor(), statement.sql, False
    connection.validate_no_broken_transaction()
    connection.ensure_connection()  # Django's cursor() would connect; the driver's needs a connection
    if connection.vendor == "sqlite":
        return connection.connection.cursor(), statement.native, True
    # The backend's own cursor: PostgreSQL's time-zone loader, MySQL's error-code translation.
    return connection.create_cursor(), statement.native, True


@cache
def _session_insert(alias: str, vendor: str) -> tuple[_Statement, tuple]:
    """The INSERT of every concrete Session column, and per column (pre_save, get_db_prep_save,
    types whose values it returns unchanged) -- what ``Model.save(force_insert=True)`` computes."""
    connection = connections[alias]
    quote = connection.ops.quote_name
    fields = Session._meta.local_concrete_fields
    columns = ", ".join(quote(f.column) for f in fields)
    placeholders = ", ".join(["%s"] * len(fields))
    statement = _statement(
        connection,
        f"INSERT INTO {quote(Session._meta.db_table)} ({columns}) VALUES ({placeholders})",  # noqa: S608
    )
    return statement, tuple((f.pre_save, f.get_db_prep_save, _unchanged_types(f, connection)) for f in fields)


@cache
def _session_select(alias: str, vendor: str, for_update: bool) -> _Statement:
    connection = connections[alias]
    quote = connection.ops.quote_name
    meta = Session._meta
    sql = f"SELECT 1 FROM {quote(meta.db_table)} WHERE {quote(meta.pk.column)} = %s"  # noqa: S608
    if for_update:
        sql += " " + connection.ops.for_update_sql()
    return _statement(connection, sql)


def can_get_or_create(queryset, lookup: dict) -> bool:
    """Whether ``queryset.get_or_create(**lookup)`` may take the prepared read and insert.

    Only for a lookup by primary key alone on an unfiltered, unsliced Session queryset (plain or
    ``select_for_update()`` inside a transaction), and only while no ``pre_save``/``post_save``
    receiver listens for Session and ``save()`` is Django's own: then the prepared statements
    are exactly what Django's ``get_or_create`` would run, minus compiling them.
    """
    if queryset.model is not Session or len(lookup) != 1 or next(iter(lookup)) not in ("pk", Session._meta.pk.name):
        return False
    query = queryset.query
    if query.where or query.combinator or query.low_mark or query.high_mark is not None:
        return False
    if query.select_for_update and (
        query.select_for_update_nowait
        or query.select_for_update_skip_locked
        or query.select_for_update_of
        or query.select_for_no_key_update
        or connections[queryset.db].get_autocommit()  # Django raises for this; let it
    ):
        return False
    return Session.save is Model.save and not (pre_save.has_listeners(Session) or post_save.has_listeners(Session))


def session_exists(alias: str, pk, *, for_update: bool = False) -> bool:
    """Whether the session row ``pk`` exists (and, ``for_update`` where supported, lock it)."""
    connection = connections[alias]
    for_update = for_update and connection.features.has_select_for_update
    statement = _session_select(alias, connection.vendor, for_update)
    value = Session._meta.pk.get_db_prep_save(pk, connection)
    row, _ = _run(connection, statement, (value,), fetch=True)
    return row is not None


def insert_session(alias: str, session: Session) -> None:
    """INSERT ``session`` as ``session.save(force_insert=True, using=alias)`` would (same values,
    same checks of related objects), and mark it saved."""
    connection = connections[alias]
    statement, columns = _session_insert(alias, connection.vendor)
    session._prepare_related_fields_for_save(operation_name="save")
    params = []
    for pre_save_value, prep, unchanged in columns:
        value = pre_save_value(session, True)
        params.append(value if type(value) in unchanged else prep(value, connection))
    _run(connection, statement, params)
    session._state.db = alias
    session._state.adding = False


def insert_messages(alias: str, session_id: str, model_id: int | None, messages: list[dict]) -> None:
    """Insert validated message field dicts (from ``validation.check_message``) in one executemany."""
    connection = connections[alias]
    plan = _plan(alias, connection.vendor)
    count = len(messages)
    attnames = []
    values = [
        repeat(field.get_db_prep_save(value, connection), count)
        for field, value in zip(_COLUMN_FIELDS, (session_id, model_id), strict=False)
    ]
    # Column by column, so that the common cases run in C: a column that is None throughout is
    # left out, and one whose values all pass through get_db_prep_save unchanged is not converted.
    for attname, prep, unchanged, optional in plan.columns:
        column = [message.get(attname) for message in messages]
        if optional and column.count(None) == count:
            continue
        if not unchanged.issuperset(map(type, column)):
            converted, previous, last = [], _MISSING, None
            for value in column:
                if type(value) in unchanged:
                    converted.append(value)
                    continue
                # A value repeated from the previous message (the batch's default timestamp,
                # say) is converted once: get_db_prep_save depends only on the value.
                if value is not previous:
                    previous, last = value, prep(value, connection)
                converted.append(last)
            column = converted
        attnames.append(attname)
        values.append(column)
    statement = _insert(alias, connection.vendor, tuple(attnames))
    _run(connection, statement, list(zip(*values, strict=True)), many=True)


def add_to_counters(alias: str, session_id: str, increments: dict[str, int]) -> Session | None:
    """Add ``increments`` to an existing session's counters; returns the updated session, or None
    (and changes nothing) when there is no such session. The UPDATE also locks the row."""
    connection = connections[alias]
    plan = _plan(alias, connection.vendor)
    params = [increments.get(name, 0) for name in _COUNTERS]
    params.append(session_id)
    row, updated = _run(connection, plan.update, params, fetch=plan.returning)
    if not plan.returning and updated:
        # MariaDB/MySQL: no UPDATE ... RETURNING; the row is read back under the lock just taken.
        row, _ = _run(connection, plan.select, (session_id,), fetch=True)
    if row is None:
        return None
    values = list(row)
    for position, functions, expression in plan.converters:
        value = values[position]
        for function in functions:
            value = function(value, expression, connection)
        values[position] = value
    return Session.from_db(alias, plan.attnames, values)
