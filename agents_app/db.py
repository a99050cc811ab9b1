"""Small database helpers every app may use: retrying a transaction on a transient conflict,
comparing text exactly on every backend, and adapting values for raw writers.

Nothing here knows a model of ours; the apps build on it.
"""

import json
import logging
import random
import time
from collections.abc import Callable
from contextlib import contextmanager
from typing import TypeVar

from django.db import DEFAULT_DB_ALIAS, InterfaceError, OperationalError, connections, transaction
from django.db.backends.base.operations import BaseDatabaseOperations
from django.db.models import F
from django.db.models.functions import Collate

logger = logging.getLogger(__name__)

T = TypeVar("T")
RETRY_ATTEMPTS = 5
_MYSQL_TRANSIENT = {1205, 1213}  # lock wait timeout, deadlock
_PG_TRANSIENT = {"40001", "40P01"}  # serialization failure, deadlock detected


def is_transient(exc: OperationalError) -> bool:
    """Whether the database asks us to retry the transaction."""
    cause = exc.__cause__
    sqlstate = getattr(cause, "sqlstate", None) or getattr(getattr(cause, "diag", None), "sqlstate", None)
    if sqlstate in _PG_TRANSIENT:
        return True
    if exc.args and exc.args[0] in _MYSQL_TRANSIENT:
        return True
    message = str(exc).lower()
    return "database is locked" in message or "deadlock" in message


def run_with_retry(func: Callable[[], T], *, using: str = DEFAULT_DB_ALIAS) -> T:
    """Run ``func`` (one atomic unit); retry it on transient conflicts unless inside an outer transaction.

    A lost connection (server restart, ``wait_timeout``, a killed backend) is not retried: had
    the COMMIT itself been lost, the write may have happened, and only the caller can decide to
    try again. The broken connection is dropped, though, so that the caller's next call connects
    afresh instead of failing with "server has gone away" forever (Django reconnects only
    between requests, and agents run outside requests).
    """
    connection = connections[using]
    if connection.in_atomic_block:
        return func()  # the caller's transaction is broken too; only the caller can retry it
    for attempt in range(1, RETRY_ATTEMPTS + 1):
        try:
            return func()
        except (OperationalError, InterfaceError) as exc:
            transient = isinstance(exc, OperationalError) and is_transient(exc)
            if attempt == RETRY_ATTEMPTS or not transient:
                connection.close_if_unusable_or_obsolete()
                raise
            delay = min(1.0, 0.02 * 2**attempt) * (0.5 + random.random())
            logger.warning("transient database conflict (%s); retry %d in %.2fs", exc, attempt, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")


def binary_collation(connection) -> str:
    """The byte-for-byte, no-pad collation of MySQL/MariaDB (``"abc"``, ``"ABC"``, ``"abc "`` differ)."""
    return "utf8mb4_nopad_bin" if connection.mysql_is_mariadb else "utf8mb4_0900_bin"


def exact_text(field_name: str, connection):
    """An expression comparing or grouping ``field_name`` exactly on every backend: the column as
    it is on SQLite and PostgreSQL, under the binary collation on MySQL/MariaDB, whose default
    collations are case- and trailing-space-insensitive."""
    if connection.vendor == "mysql":
        return Collate(F(field_name), binary_collation(connection))
    return F(field_name)


def filter_exact(queryset, field_name: str, value: str):
    """``queryset`` filtered on ``field_name == value``, exactly. The plain comparison stays, so an
    index on the column is still used; MySQL/MariaDB then keep only the exact matches."""
    queryset = queryset.filter(**{field_name: value})
    connection = connections[queryset.db]
    if connection.vendor == "mysql":
        queryset = queryset.alias(_exact=exact_text(field_name, connection)).filter(_exact=value)
    return queryset


_ENCODE_JSON = json.JSONEncoder().encode  # what json.dumps(value) runs when given no options


def _naive_utc_text(value):
    """SQLite, MySQL: what ``adapt_datetimefield_value`` makes of an aware UTC datetime (naive UTC
    ``str(value.replace(tzinfo=None))``), at a fifth of its cost: ``isoformat(" ")`` of a UTC value
    is exactly that text plus "+00:00"."""
    if value is None:
        return None
    text = value.isoformat(" ")
    if text.endswith("+00:00"):
        return text[:-6]
    return str(value.replace(tzinfo=None))


def column_adapter(field, connection) -> Callable | None:
    """What Django does to an already validated value of ``field`` before it reaches the driver
    (``get_db_prep_save``), as one function; None when the value goes to the driver as it is
    (text, integers, booleans, keys). The one conversion every raw writer of ours uses."""
    ops = connection.ops
    kind = field.get_internal_type()
    if kind == "DateTimeField":
        if not connection.features.supports_timezones and connection.timezone_name == "UTC":
            return _naive_utc_text
        return lambda value: ops.adapt_datetimefield_value(value)
    if kind == "DateField":
        return ops.adapt_datefield_value
    if kind == "JSONField":
        if field.encoder is None and type(ops).adapt_json_value is BaseDatabaseOperations.adapt_json_value:
            # SQLite, MySQL: adapt_json_value is json.dumps(value, cls=None), which with no
            # options is this encoder's encode(); calling it directly skips two Python frames.
            return lambda value: None if value is None else _ENCODE_JSON(value)
        return lambda value: None if value is None else ops.adapt_json_value(value, field.encoder)
    if kind == "DecimalField":
        return lambda value: ops.adapt_decimalfield_value(value, field.max_digits, field.decimal_places)
    if kind == "ForeignKey":
        return column_adapter(field.target_field, connection)
    return None


@contextmanager
def consistent_reads(using: str = DEFAULT_DB_ALIAS):
    """A transaction whose reads all see one snapshot of the database, so figures read by several
    queries add up (e.g. rows still stored + rows retired, never counted twice or not at all).

    PostgreSQL and MySQL/MariaDB: REPEATABLE READ for this transaction (Django's default is READ
    COMMITTED, where each statement sees its own snapshot), set before its first query. SQLite: a
    transaction is a snapshot already. Inside a caller's transaction the caller's snapshot rules.
    """
    connection = connections[using]
    if connection.in_atomic_block:
        yield
        return
    with transaction.atomic(using=using):
        if connection.vendor in ("postgresql", "mysql"):
            with connection.cursor() as cursor:
                # The first statement of the transaction, so it applies to it (and only to it).
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        yield
