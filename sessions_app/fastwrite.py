"""The two statements every flush runs, prepared once from the models' metadata.

Building a QuerySet, compiling it and instantiating a model per message cost several times more
than the database work of a flush (profiled: ~85% of ``append_messages`` time on SQLite). The
statements below are generated from ``Message``/``Session`` ``_meta`` (so they follow the models and
their migrations) and use each field's own ``get_db_prep_save`` and the backend's converters, so the
values written and read are exactly what the ORM would write and read. Session creation still goes
through ``get_or_create``; only appending to an existing session and inserting messages skip the
query compiler.
"""

from functools import cache

from django.db import connections

from sessions_app.models import Message, Session

_COUNTERS = (
    "message_count",
    "tool_call_count",
    "api_call_count",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)
MESSAGE_FIELDS = tuple(f for f in Message._meta.concrete_fields if not f.primary_key)


@cache
def _statements(alias: str, vendor: str):
    connection = connections[alias]
    quote = connection.ops.quote_name
    message_table = quote(Message._meta.db_table)
    columns = ", ".join(quote(f.column) for f in MESSAGE_FIELDS)
    placeholders = ", ".join(["%s"] * len(MESSAGE_FIELDS))
    # Only quoted names from the models' metadata are interpolated; values are parameters.
    insert = f"INSERT INTO {message_table} ({columns}) VALUES ({placeholders})"  # noqa: S608
    session_meta = Session._meta
    sets = ", ".join(f"{quote(c)} = {quote(c)} + %s" for c in (session_meta.get_field(n).column for n in _COUNTERS))
    update = f"UPDATE {quote(session_meta.db_table)} SET {sets} WHERE {quote(session_meta.pk.column)} = %s"  # noqa: S608
    # UPDATE ... RETURNING hands back the updated row in the same statement (SQLite 3.35+,
    # PostgreSQL); MariaDB has no UPDATE ... RETURNING, so the row is read after the update.
    returning = vendor in {"postgresql", "sqlite"} and connection.features.can_return_columns_from_insert
    fields = session_meta.concrete_fields
    if returning:
        update += " RETURNING " + ", ".join(quote(f.column) for f in fields)
        compiler = Session.objects.using(alias).query.get_compiler(alias)
        converters = compiler.get_converters([f.get_col(session_meta.db_table) for f in fields])
    else:
        compiler = converters = None
    return insert, update, compiler, converters, [f.attname for f in fields]


def insert_messages(alias: str, session_id: str, model_id: int | None, messages: list[dict]) -> None:
    """Insert validated message field dicts (from ``validation.check_message``) in one executemany."""
    connection = connections[alias]
    insert, *_ = _statements(alias, connection.vendor)
    rows = []
    for message in messages:
        row = []
        for field in MESSAGE_FIELDS:
            if field.attname == "session_id":
                value = session_id
            elif field.attname == "model_id":
                value = model_id
            else:
                value = message.get(field.attname)
            row.append(field.get_db_prep_save(value, connection))
        rows.append(row)
    with connection.cursor() as cursor:
        cursor.executemany(insert, rows)


def add_to_counters(alias: str, session_id: str, increments: dict[str, int]) -> Session | None:
    """Add ``increments`` to an existing session's counters; returns the updated session, or None
    (and changes nothing) when there is no such session. The UPDATE also locks the row."""
    connection = connections[alias]
    _, update, compiler, converters, attnames = _statements(alias, connection.vendor)
    params = [increments.get(name, 0) for name in _COUNTERS] + [session_id]
    with connection.cursor() as cursor:
        cursor.execute(update, params)
        if compiler is None:
            if cursor.rowcount == 0:
                return None
            return Session.objects.using(alias).get(pk=session_id)
        row = cursor.fetchone()
    if row is None:
        return None
    (values,) = compiler.apply_converters([row], converters) if converters else [row]
    return Session.from_db(alias, attnames, values)
