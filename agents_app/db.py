"""Small database helpers every app may use: retrying a transaction on a transient conflict,
the binary collation that makes key columns exact on MySQL/MariaDB, consistent reads, and
adapting values for raw writers.

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

logger = logging.getLogger(__name__)

T = TypeVar("T")
# A transaction that lost a race runs again, up to this many times in all, and no new run starts
# this many seconds after the first began. The backoff doubles from 0.04 s to a 1 s cap, so twenty
# runs wait about 15 s in all: long enough to ride out a bulk writer that keeps the AUTO-INC lock of
# the message table for seconds (MariaDB, errors 1467 and 1213 beside a foreign INSERT ... SELECT:
# ten runs, about 5 s of waits, once let a flush fail in CI while an 8 s burst went on). The time
# limit keeps a lock wait that itself takes long (SQLite's 20 s busy timeout, InnoDB's 50 s lock
# wait) from being repeated for minutes.
RETRY_ATTEMPTS = 20
RETRY_WITHIN = 30.0

# Every error a backend raises to say "this transaction lost a race; run it again", in one place.
# Each is raised before anything of the transaction commits (or when connecting, before anything is
# sent), so running the whole transaction again writes it exactly once. Not here, on purpose: a lost
# connection (the COMMIT itself may have happened), a statement timeout (it would time out again),
# a full disk, a read-only database, a constraint violation.
TRANSIENT_ERRORS = {
    # PostgreSQL SQLSTATEs.
    "postgresql": {
        "40001": "serialization_failure (also a hot standby's conflict with recovery)",
        "40P01": "deadlock_detected",
        "55P03": "lock_not_available (lock_timeout, NOWAIT)",
        "53300": "too_many_connections (when connecting)",
        "57P03": "cannot_connect_now (the server is starting up)",
    },
    # MySQL/MariaDB error numbers.
    "mysql": {
        1205: "ER_LOCK_WAIT_TIMEOUT",
        1213: "ER_LOCK_DEADLOCK",
        # A deadlock or lock wait on the table's AUTO-INC lock, e.g. beside another client's
        # INSERT ... SELECT into the message table (innodb_autoinc_lock_mode=1, MariaDB's default).
        1467: "ER_AUTOINC_READ_FAILED",
        1020: "ER_CHECKREAD (a row changed since this transaction read it: snapshot isolation)",
        1614: "ER_XA_RBDEADLOCK",
        1637: "ER_TOO_MANY_CONCURRENT_TRXS",
        1689: "ER_LOCK_ABORTED",
        3572: "ER_LOCK_NOWAIT",
        1040: "ER_CON_COUNT_ERROR (too many connections, when connecting)",
    },
    # SQLite primary result codes (extended codes share their low byte: SQLITE_BUSY_SNAPSHOT ...).
    "sqlite": {
        5: "SQLITE_BUSY (database is locked: another connection writes)",
        6: "SQLITE_LOCKED (database table is locked)",
    },
}


def is_transient(exc: OperationalError) -> bool:
    """Whether the database asks us to run the transaction again (``TRANSIENT_ERRORS``)."""
    cause = exc.__cause__
    sqlstate = getattr(cause, "sqlstate", None) or getattr(getattr(cause, "diag", None), "sqlstate", None)
    if sqlstate is not None:
        return sqlstate in TRANSIENT_ERRORS["postgresql"]
    if exc.args and isinstance(exc.args[0], int):  # MySQLdb: (number, message)
        return exc.args[0] in TRANSIENT_ERRORS["mysql"]
    code = getattr(cause, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in TRANSIENT_ERRORS["sqlite"]
    message = str(exc).lower()  # no code to read (an error raised by hand, an older driver)
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
    started = time.monotonic()
    for attempt in range(1, RETRY_ATTEMPTS + 1):
        try:
            return func()
        except (OperationalError, InterfaceError) as exc:
            transient = isinstance(exc, OperationalError) and is_transient(exc)
            delay = min(1.0, 0.02 * 2**attempt) * (0.5 + random.random())
            late = time.monotonic() + delay - started > RETRY_WITHIN
            if attempt == RETRY_ATTEMPTS or late or not transient:
                connection.close_if_unusable_or_obsolete()
                raise
            logger.warning("transient database conflict (%s); retry %d in %.2fs", exc, attempt, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")


def binary_collation(connection) -> str:
    """The byte-for-byte, no-pad collation of MySQL/MariaDB (``"abc"``, ``"ABC"``, ``"abc "`` differ)."""
    return "utf8mb4_nopad_bin" if connection.mysql_is_mariadb else "utf8mb4_0900_bin"


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
