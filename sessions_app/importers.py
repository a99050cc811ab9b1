"""Import a hermes-agent ``state.db`` into our sessions and messages: the engine of ``import_hermes``.

The source may belong to a running agent: it is opened read-only (SQLite URI ``mode=ro``) and
read in keyset pages (``WHERE id > ? ORDER BY id LIMIT n``), each page its own short read
transaction, so a writer is never held up for long. Nothing is ever written to it.

Idempotent and incremental without a table of its own: each imported session carries
``extra["hermes_last_message_id"]``, the highest source message id already imported for it
(hermes message ids are AUTOINCREMENT, so new messages always get higher ids). A run creates the
sessions we do not have (and refreshes the mutable columns of those we imported: end time,
tokens, cost, title), then imports each session's messages above its mark. Counters grow by
exactly the rows inserted, in the transaction that inserts them and moves the mark; the source's
``message_count``/``tool_call_count`` (often stale) are never copied.

Decisions:
- Parents: a session whose parent is not in our database yet is inserted unlinked, with
  ``extra["hermes_missing_parent_id"]``; after the sessions, every such session whose parent now
  exists (later in the file, or from an earlier/later import) is linked and the key dropped. A
  parent missing from the file stays unlinked with the key kept.
- NUL characters (PostgreSQL cannot store them) in imported text and JSON, and invalid UTF-8, are
  replaced by U+FFFD on every backend alike and counted (``values_repaired``).
- A row we cannot store exactly (invalid JSON, unknown role, a value too long for its column, a
  bad timestamp) is skipped with a warning and counted; the rest of the file still imports.
  Messages of a session that was not imported are skipped too.
- Messages get no ``model``: hermes records a model per session only.
"""

import base64
import datetime as dt
import json
import math
import re
import sqlite3
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable
from contextlib import closing, suppress
from dataclasses import asdict, dataclass, field
from decimal import Decimal, InvalidOperation
from itertools import chain
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import DEFAULT_DB_ALIAS, IntegrityError, connections, transaction
from django.db.backends.base.operations import BaseDatabaseOperations
from django.utils import timezone

from agents_app.models import LanguageModel, provider_for
from hermes_site.db import run_with_retry
from sessions_app import validation
from sessions_app.analytics import NO_MODEL_KEY
from sessions_app.models import Message, Session

LAST_MESSAGE_KEY = "hermes_last_message_id"
MISSING_PARENT_KEY = "hermes_missing_parent_id"
DEFAULT_BATCH_SIZE = 2000
MAX_WARNINGS = 100
NO_MODEL = NO_MODEL_KEY  # sessions without a model, as the analytics name them
# Message fields the import writes, in the order of ``_Run._message_values`` (``model`` stays NULL).
_INSERTED_MESSAGE_FIELDS = (
    "session", "role", "content", "tool_call_id", "tool_calls", "tool_name", "timestamp", "token_count",
    "finish_reason", "reasoning", "extra",
)  # fmt: skip

# Source columns with a field of their own, in the order they are selected (NULL when absent).
SESSION_COLUMNS = (
    "id", "source", "user_id", "model", "model_config", "system_prompt", "parent_session_id", "started_at",
    "ended_at", "end_reason", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
    "reasoning_tokens", "api_call_count", "billing_provider", "billing_base_url", "billing_mode",
    "estimated_cost_usd", "actual_cost_usd", "title", "cwd",
)  # fmt: skip
MESSAGE_COLUMNS = (
    "id", "session_id", "role", "content", "tool_call_id", "tool_calls", "tool_name", "timestamp", "token_count",
    "finish_reason", "reasoning",
)  # fmt: skip
# Recomputed from the message rows, never copied.
RECOMPUTED_COLUMNS = frozenset({"message_count", "tool_call_count"})
REQUIRED = {"sessions": ("id", "source", "started_at"), "messages": ("id", "session_id", "role", "timestamp")}
# Columns refreshed on sessions imported earlier (hermes updates them while a session runs).
SYNCED_FIELDS = (
    "ended_at", "end_reason", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
    "reasoning_tokens", "api_call_count", "billing_provider", "billing_base_url", "billing_mode",
    "estimated_cost_usd", "actual_cost_usd", "title", "cwd",
)  # fmt: skip
_BIGINT = 2**63 - 1
_COST_QUANTUM = Decimal("1e-10")  # Session.*_cost_usd: decimal_places=10, max_digits=20
_ESCAPED_NUL = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")
_SQLITE_MAGIC = b"SQLite format 3\x00"
_ENCODE_JSON = json.JSONEncoder().encode  # what json.dumps(value) runs when given no options


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text} is out of range")
    return value


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


# Strict JSON: no NaN/Infinity (no backend stores them in a JSON column).
_JSON = json.JSONDecoder(parse_float=_finite_float, parse_constant=_no_constant)


class HermesImportError(ValueError):
    """The source cannot be imported: missing, not SQLite, corrupt, truncated, or not a hermes state.db."""


class _RowError(Exception):
    def __init__(self, reason: str, detail: str = ""):
        super().__init__(reason)
        self.reason, self.detail = reason, detail


@dataclass
class ModelTally:
    sessions: int = 0
    empty: int = 0

    @property
    def rate(self) -> float:
        return self.empty / self.sessions if self.sessions else 0.0


@dataclass
class ImportProgress:
    """Passed to the ``progress`` callback after every page."""

    phase: str  # "sessions" or "messages"
    sessions_done: int
    sessions_total: int
    messages_done: int
    messages_total: int
    elapsed: float


@dataclass
class ImportResult:
    """What a run imported (or, in a dry run, would import)."""

    path: str
    dry_run: bool = False
    sessions_in_file: int = 0
    sessions_imported: int = 0
    sessions_updated: int = 0
    sessions_unchanged: int = 0
    sessions_skipped: int = 0
    messages_imported: int = 0
    messages_skipped: int = 0
    empty_sessions: int = 0
    parents_linked: int = 0
    parents_missing: int = 0
    models_created: int = 0
    values_repaired: int = 0
    skip_reasons: Counter = field(default_factory=Counter)
    warnings: list[str] = field(default_factory=list)
    by_model: dict[str, ModelTally] = field(default_factory=dict)
    elapsed: float = 0.0

    def warn(self, message: str) -> None:
        if len(self.warnings) < MAX_WARNINGS:
            self.warnings.append(message)

    def add(self, other: "ImportResult") -> None:
        for name, value in vars(other).items():
            if isinstance(value, int) and not isinstance(value, bool):
                setattr(self, name, getattr(self, name) + value)
        self.skip_reasons.update(other.skip_reasons)
        for message in other.warnings:
            self.warn(message)
        for name, tally in other.by_model.items():
            mine = self.by_model.setdefault(name, ModelTally())
            mine.sessions += tally.sessions
            mine.empty += tally.empty

    def as_dict(self) -> dict:
        data = asdict(self)
        data["skip_reasons"] = dict(self.skip_reasons)
        data["by_model"] = {name: {**asdict(t), "rate": t.rate} for name, t in sorted(self.by_model.items())}
        return data


def import_hermes_db(
    path,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    dry_run: bool = False,
    using: str = DEFAULT_DB_ALIAS,
    progress: Callable[[ImportProgress], None] | None = None,
) -> ImportResult:
    """Import sessions and messages from a hermes-agent ``state.db``; safe to run again and again.

    Each page of ``batch_size`` rows is one transaction: a run that stops (``HermesImportError``
    for a source that turns out corrupt, or any database error) keeps every page it committed and
    nothing half-written, and the next run carries on. ``dry_run`` reads and counts, writes nothing.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1.")
    with closing(_Source(path)) as source:
        run = _Run(source, batch_size=batch_size, dry_run=dry_run, using=using, progress=progress)
        try:
            run.import_sessions()
            if dry_run:
                run.count_links_ahead()
            else:
                run.link_parents()
            run.import_messages()
        except HermesImportError as exc:
            r = run.result
            if dry_run or not (r.sessions_imported or r.messages_imported):
                raise
            raise HermesImportError(
                f"{exc} The {r.sessions_imported:,} sessions and {r.messages_imported:,} messages imported before"
                " the error are kept (whole batches only); a later run carries on from there."
            ) from exc
    run.result.elapsed = time.monotonic() - run.started
    return run.result


def _in_chunks(queryset, ids) -> list:
    """``queryset.filter(pk__in=ids)``, in chunks that fit the 999 parameters of older SQLite builds."""
    ids = list(ids)
    return [row for start in range(0, len(ids), 900) for row in queryset.filter(pk__in=ids[start : start + 900])]


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _check_file(path: Path) -> None:
    """Cheap checks before SQLite sees the file, for clear messages (and truncation, which SQLite
    would only notice when it reaches a missing page)."""
    if not path.exists():
        raise HermesImportError(f"{path} does not exist.")
    if path.is_dir():
        raise HermesImportError(f"{path} is a directory; give the state.db file (e.g. ~/.hermes/state.db).")
    try:
        with path.open("rb") as file:
            header = file.read(100)
        size = path.stat().st_size
    except OSError as exc:
        raise HermesImportError(f"{path} cannot be read: {exc.strerror}.") from exc
    if len(header) < 100 or not header.startswith(_SQLITE_MAGIC):
        raise HermesImportError(f"{path} is not a SQLite database (no SQLite header).")
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    header_size_valid = header[24:28] == header[92:96]  # SQLite's own validity rule for the page count
    if header_size_valid and pages and size < pages * page_size:
        raise HermesImportError(
            f"{path} is truncated: its header says {pages * page_size:,} bytes, the file has {size:,}."
        )


def _naive_utc_text(value: dt.datetime | None) -> str | None:
    """SQLite, MySQL: what adapt_datetimefield_value makes of our aware UTC datetimes, the naive
    UTC ``str(value.replace(tzinfo=None))``, at a fifth of its cost (it is the largest single cost of
    a message row otherwise). For a UTC value, ``isoformat(" ")`` is exactly that text plus
    "+00:00"; ``replace`` and ``str`` each cost twice the whole ``isoformat`` (keyword parsing,
    a method call by name)."""
    if value is None:
        return None
    text = value.isoformat(" ")
    if text.endswith("+00:00"):
        return text[:-6]
    return str(value.replace(tzinfo=None))  # not UTC (the import makes none): as before


def _column_adapter(field, connection) -> Callable | None:
    """What Django does to a (validated) value of ``field`` before it reaches the driver, or None
    when the value goes as it is (text, integers, keys)."""
    ops = connection.ops
    kind = field.get_internal_type()
    if kind == "DateTimeField":
        if not connection.features.supports_timezones and connection.timezone_name == "UTC":
            return _naive_utc_text
        return ops.adapt_datetimefield_value
    if kind == "JSONField":
        if field.encoder is None and type(ops).adapt_json_value is BaseDatabaseOperations.adapt_json_value:
            # SQLite, MySQL: adapt_json_value is json.dumps(value, cls=None), which with no
            # options is this encoder's encode(); calling it directly skips two Python frames.
            return lambda value: None if value is None else _ENCODE_JSON(value)
        return lambda value: None if value is None else ops.adapt_json_value(value, field.encoder)
    if kind == "DecimalField":
        return lambda value: ops.adapt_decimalfield_value(value, field.max_digits, field.decimal_places)
    return None


class _Insert:
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
        adapters = [_column_adapter(f, connection) for f in self.fields]
        self.adapters = [(index, adapt) for index, adapt in enumerate(adapters) if adapt is not None]
        self.connection = connection
        table, columns = quote(model._meta.db_table), ", ".join(quote(f.column) for f in self.fields)
        self.copy = False
        if connection.vendor == "postgresql":  # COPY via psycopg 3's API; psycopg2 takes executemany
            from django.db.backends.postgresql.psycopg_any import is_psycopg3

            self.copy = is_psycopg3
        if self.copy:
            self.sql = f"COPY {table} ({columns}) FROM STDIN"
        else:
            row = "(" + ", ".join(["%s"] * len(self.fields)) + ")"
            self.sql = f"INSERT INTO {table} ({columns}) VALUES {row}"  # noqa: S608 (quoted model names)
        self.rows_per_statement = self.SQLITE_ROWS_PER_STATEMENT if connection.vendor == "sqlite" else 1
        if self.rows_per_statement > 1:
            self.many_sql = f"INSERT INTO {table} ({columns}) VALUES {', '.join([row] * self.rows_per_statement)}"  # noqa: S608

    def adapt(self, values) -> list:
        values = list(values)
        for index, adapt in self.adapters:
            values[index] = adapt(values[index])
        return values

    def run(self, rows: list) -> None:
        """Insert rows whose values are adapted already (``adapt``)."""
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


class _Source:
    """A read-only connection to a hermes state.db and the few queries the import needs."""

    def __init__(self, path):
        self.path = Path(path)
        _check_file(self.path)
        self.repaired = 0
        self.columns: dict[str, list[str]] = {}
        uri = "file:" + urllib.parse.quote(str(self.path.resolve())) + "?mode=ro"
        try:
            self.conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=10)
        except sqlite3.Error as exc:
            raise HermesImportError(f"{self.path} cannot be opened read-only: {exc}.") from exc
        try:
            self._inspect()
        except BaseException:
            self.conn.close()
            raise

    def _inspect(self) -> None:
        tables = {row[0] for row in self._query("SELECT name FROM sqlite_master WHERE type = 'table'")}
        missing = [t for t in ("sessions", "messages") if t not in tables]
        if missing:
            raise HermesImportError(f"{self.path} is not a hermes-agent state.db: no {' or '.join(missing)} table.")
        self.session_extras = self._layout("sessions", SESSION_COLUMNS)
        self.message_extras = self._layout("messages", MESSAGE_COLUMNS)
        self.session_names = SESSION_COLUMNS + self.session_extras
        self._sessions_sql = self._select("sessions", SESSION_COLUMNS, self.session_extras)
        self._messages_sql = self._select("messages", MESSAGE_COLUMNS, self.message_extras)

    def _layout(self, table: str, known: tuple) -> tuple:
        self.columns[table] = names = [row[1] for row in self._query(f"PRAGMA table_info({table})")]
        absent = [name for name in REQUIRED[table] if name not in names]
        if absent:
            raise HermesImportError(f"{self.path}: table {table} has no {', '.join(absent)} column.")
        return tuple(n for n in names if n not in known and n not in RECOMPUTED_COLUMNS)

    def _select(self, table: str, known: tuple, extras: tuple) -> str:
        present = set(self.columns[table])
        columns = [_quote(n) if n in present else "NULL" for n in known] + [_quote(n) for n in extras]
        return f"SELECT {', '.join(columns)} FROM {table} WHERE id > ? ORDER BY id LIMIT ?"  # noqa: S608

    def _decode(self, data: bytes) -> str:
        try:
            return data.decode()
        except UnicodeDecodeError:
            self.repaired += 1
            return data.decode(errors="replace")

    def _query(self, sql: str, params=()) -> list:
        """One statement, fully fetched: its read transaction ends before this returns."""
        try:
            try:
                return self.conn.execute(sql, params).fetchall()
            except sqlite3.OperationalError as exc:
                if "decode" not in str(exc):
                    raise
                # Invalid UTF-8 somewhere in this page: read it again with the repairing decoder
                # (only then: a Python text factory slows every page down).
                self.conn.text_factory = self._decode
                try:
                    return self.conn.execute(sql, params).fetchall()
                finally:
                    self.conn.text_factory = str
        except sqlite3.DatabaseError as exc:
            raise HermesImportError(f"{self.path} cannot be read ({exc}); is it corrupt or truncated?") from exc

    def count_sessions(self) -> int:
        return self._query("SELECT COUNT(*) FROM sessions")[0][0]

    def messages_after(self, after: int) -> int:
        """About how many messages follow ``after``: exact unless rows were deleted. MAX(id) reads a
        few pages where COUNT(*) would read the whole table in one long read transaction."""
        return max(0, (self._query("SELECT MAX(id) FROM messages")[0][0] or 0) - after)

    def sessions(self, after: str, limit: int) -> list:
        return self._query(self._sessions_sql, (after, limit))

    def messages(self, after: int, limit: int) -> list:
        return self._query(self._messages_sql, (after, limit))

    def _chunks(self, sql: str, ids) -> list:
        ids, rows = list(ids), []
        for start in range(0, len(ids), 900):  # below the 999 host parameters of old SQLite builds
            chunk = ids[start : start + 900]
            rows += self._query(sql.format(marks=", ".join("?" * len(chunk))), chunk)
        return rows

    def message_bounds(self, session_ids) -> dict[str, tuple[int, int, int]]:
        """``{session_id: (first message id, last message id, messages)}`` for the sessions that have any."""
        sql = (
            "SELECT session_id, MIN(id), MAX(id), COUNT(*) FROM messages WHERE session_id IN ({marks})"
            " GROUP BY session_id"
        )
        return {sid: (low, high, count) for sid, low, high, count in self._chunks(sql, session_ids)}

    def existing_sessions(self, session_ids) -> set[str]:
        return {row[0] for row in self._chunks("SELECT id FROM sessions WHERE id IN ({marks})", session_ids)}

    def close(self) -> None:
        if hasattr(self, "conn"):
            self.conn.close()


class _Run:
    """One import run: the pages, the conversions, and what the run has counted so far."""

    def __init__(self, source: _Source, *, batch_size: int, dry_run: bool, using: str, progress):
        self.source, self.batch_size, self.dry_run, self.using = source, batch_size, dry_run, using
        self.progress = progress
        self.result = ImportResult(path=str(source.path), dry_run=dry_run)
        self.started = time.monotonic()
        self.now = timezone.now()
        self.latest = (self.now + validation.MAX_CLOCK_SKEW).timestamp()
        self.max_chars = settings.HERMES_MAX_CONTENT_CHARS
        self.models: dict[str, int | None] = {}
        self.skipped_sessions: set[str] = set()
        # Sessions of this run imported without their parent, which is in the file further on:
        # child -> parent. The linking pass links them unless that parent row is skipped.
        self.links_ahead: dict[str, str] = {}
        self.first_message_after: int | None = None  # where the message pages start; None: nothing to do
        self.messages_total = 0
        self.page = self.result  # counters of the page being written (merged once it commits)
        self._page_models: dict[str, int] = {}
        self._prepare_statements()

    def _prepare_statements(self) -> None:
        connection = self._connection = connections[self.using]
        self._insert_sessions = _Insert(Session, [f.name for f in Session._meta.concrete_fields], connection)
        self._insert_messages = _Insert(Message, _INSERTED_MESSAGE_FIELDS, connection)
        quote = connection.ops.quote_name
        # The message row's adapters, called inline: this is the hot loop of the import.
        self._db_json = _column_adapter(Message._meta.get_field("tool_calls"), connection)
        self._db_time = _column_adapter(Message._meta.get_field("timestamp"), connection)
        self._db_extra = _column_adapter(Session._meta.get_field("extra"), connection)
        self._update_counters_sql = (
            f"UPDATE {quote(Session._meta.db_table)} SET {quote('extra')} = %s, {quote('message_count')} = %s,"  # noqa: S608
            f" {quote('tool_call_count')} = %s WHERE {quote('id')} = %s"
        )

    # -- pages ------------------------------------------------------------------------------

    def _write_page(self, func, *args) -> None:
        """Run one page in one transaction (retried on transient conflicts), then merge its counts."""

        def attempt():
            self.page = ImportResult(path=self.result.path, dry_run=self.dry_run)
            self._page_models = {}
            if self.dry_run:
                return func(*args)
            with transaction.atomic(using=self.using):
                return func(*args)

        try:
            run_with_retry(attempt, using=self.using)
        except IntegrityError:
            if self.dry_run or connections[self.using].in_atomic_block:
                raise
            # Another import inserted some of these sessions meanwhile: redo the page once; it
            # now finds them (and their marks) and adds only the rest.
            run_with_retry(attempt, using=self.using)
        self.models.update(self._page_models)  # only once committed: no ids of rolled-back rows
        self.page.values_repaired += self.source.repaired
        self.source.repaired = 0
        self.result.add(self.page)
        self.page = self.result

    def _report(self, phase: str, messages_done: int) -> None:
        if self.progress:
            r = self.result
            self.progress(
                ImportProgress(
                    phase, r.sessions_imported + r.sessions_updated + r.sessions_skipped + r.sessions_unchanged,
                    r.sessions_in_file, messages_done, self.messages_total, time.monotonic() - self.started,
                )
            )  # fmt: skip

    def import_sessions(self) -> None:
        self.result.sessions_in_file = self.source.count_sessions()
        after = ""
        while rows := self.source.sessions(after, self.batch_size):
            after = rows[-1][0]
            bounds = self.source.message_bounds(row[0] for row in rows)
            self._write_page(self._session_page, rows, bounds)
            self._report("sessions", 0)

    def import_messages(self) -> None:
        if self.first_message_after is None:
            return
        after = self.first_message_after
        self.messages_total = self.source.messages_after(after)
        done = 0
        while rows := self.source.messages(after, self.batch_size):
            after = rows[-1][0]
            self._write_page(self._message_page, rows)
            done += len(rows)
            self._report("messages", done)

    def count_links_ahead(self) -> None:
        """Dry run: count the links the linking pass would make, now that every skipped session row
        is known (a parent further on in the file may be one of them)."""
        for child, parent in self.links_ahead.items():
            if parent in self.skipped_sessions:
                self._parent_skipped(self.result, child, parent)
            else:
                self.result.parents_linked += 1

    @staticmethod
    def _parent_skipped(result: ImportResult, child: str, parent: str) -> None:
        result.parents_missing += 1
        result.warn(f"session {child}: parent {parent!r} was skipped; imported unlinked")

    def link_parents(self) -> None:
        """Link sessions imported without their parent to the parent, where it exists now."""
        pending = Session.objects.using(self.using).filter(extra__has_key=MISSING_PARENT_KEY).order_by("pk")
        after = ""
        while page := list(pending.filter(pk__gt=after).values_list("pk", flat=True)[: self.batch_size]):
            after = page[-1]
            self._write_page(self._link_page, page)

    def _link_page(self, ids: list[str]) -> None:
        sessions = _in_chunks(Session.objects.using(self.using).select_for_update().only("pk", "extra"), ids)
        wanted = {s.extra.get(MISSING_PARENT_KEY) for s in sessions if isinstance(s.extra, dict)} - {None}
        found = set(_in_chunks(Session.objects.using(self.using).values_list("pk", flat=True), wanted))
        linked = []
        for session in sessions:
            parent = (session.extra or {}).get(MISSING_PARENT_KEY)
            if parent in found and parent != session.pk:
                session.parent_session_id = parent
                session.extra = {k: v for k, v in session.extra.items() if k != MISSING_PARENT_KEY}
                linked.append(session)
            elif self.links_ahead.get(session.pk) == parent and parent in self.skipped_sessions:
                self._parent_skipped(self.page, session.pk, parent)
        Session.objects.using(self.using).bulk_update(linked, ["parent_session", "extra"])
        self.page.parents_linked += len(linked)

    # -- sessions -----------------------------------------------------------------------------

    def _session_page(self, rows: list, bounds: dict) -> None:
        sessions = Session.objects.using(self.using)
        ids = [row[0] for row in rows]
        existing = {s.pk: s for s in _in_chunks(sessions if self.dry_run else sessions.select_for_update(), ids)}
        new, changed, parents = [], [], {}
        for row in rows:
            values = dict(zip(self.source.session_names, row, strict=True))
            sid = values["id"]
            try:
                self._check(validation.check_session_id, sid, column="id")
                fields, model, parent, extra = self._session_fields(values)
            except _RowError as exc:
                self._skip_session(sid, exc, bounds.get(sid))
                continue
            if sid in existing:
                self._refresh(existing[sid], fields, extra, bounds.get(sid), changed)
                continue
            extra[LAST_MESSAGE_KEY] = 0
            session = {"id": sid, "model_id": self._model_id(model), "parent_session_id": None, "extra": extra}
            session.update(fields, message_count=0, tool_call_count=0, has_messages=False)
            if parent == sid:
                self.page.warn(f"session {sid}: is its own parent; link dropped")
            elif parent:
                parents[sid] = parent
            new.append(session)
            tally = self.page.by_model.setdefault(model or NO_MODEL, ModelTally())
            tally.sessions += 1
            if sid in bounds:
                self._start_messages_after(bounds[sid][0] - 1)
            else:
                tally.empty += 1
                self.page.empty_sessions += 1
        self._resolve_parents(new, parents)
        self.page.sessions_imported += len(new)
        self.page.sessions_updated += len(changed)
        if not self.dry_run:
            columns = [f.attname for f in self._insert_sessions.fields]
            self._insert_sessions.run([self._insert_sessions.adapt(s[c] for c in columns) for s in new])
            if changed:
                sessions.bulk_update(changed, [*SYNCED_FIELDS, "extra"])

    def _skip_session(self, sid, exc: _RowError, bounds) -> None:
        """Skip a session row and, counted here once, its messages (the message pages pass over them)."""
        if isinstance(sid, str):
            self.skipped_sessions.add(sid)
        self.page.sessions_skipped += 1
        self.page.skip_reasons[f"session: {exc.reason}"] += 1
        if bounds:
            self.page.messages_skipped += bounds[2]
            self.page.skip_reasons["message: its session was skipped"] += bounds[2]
        self.page.warn(f"session {sid!r}: {exc.reason} ({exc.detail}); skipped with its messages")

    def _refresh(self, session: Session, fields: dict, extra: dict, bounds, changed: list) -> None:
        """A session already in our database: refresh what hermes updates, find new messages."""
        current = session.extra if isinstance(session.extra, dict) else {}
        if LAST_MESSAGE_KEY not in current:
            self._skip_session(
                session.pk,
                _RowError("id already used by a session not imported from hermes", "left unchanged"),
                bounds,
            )
            return
        ours = {k: v for k, v in current.items() if k in (LAST_MESSAGE_KEY, MISSING_PARENT_KEY)}
        updates = {name: fields[name] for name in SYNCED_FIELDS if getattr(session, name) != fields[name]}
        if {**extra, **ours} != current:
            updates["extra"] = {**extra, **ours}
        if updates:
            for name, value in updates.items():
                setattr(session, name, value)
            changed.append(session)
        else:
            self.page.sessions_unchanged += 1
        if bounds and bounds[1] > current[LAST_MESSAGE_KEY]:
            self._start_messages_after(max(current[LAST_MESSAGE_KEY], bounds[0] - 1))

    def _start_messages_after(self, message_id: int) -> None:
        if self.first_message_after is None or message_id < self.first_message_after:
            self.first_message_after = message_id

    def _resolve_parents(self, new: list[dict], parents: dict[str, str]) -> None:
        """Link to parents already in our database; mark the others for the linking pass."""
        if not parents:
            return
        in_db = set(_in_chunks(Session.objects.using(self.using).values_list("pk", flat=True), set(parents.values())))
        in_file = self.source.existing_sessions(set(parents.values()) - in_db)
        for session in new:
            parent = parents.get(session["id"])
            if parent is None:
                continue
            if parent in in_db:
                session["parent_session_id"] = parent
                self.page.parents_linked += 1
                continue
            session["extra"][MISSING_PARENT_KEY] = parent
            if parent in in_file and parent not in self.skipped_sessions:
                self.links_ahead[session["id"]] = parent
            elif parent in self.skipped_sessions:
                self._parent_skipped(self.page, session["id"], parent)
            else:
                self.page.parents_missing += 1
                self.page.warn(f"session {session['id']}: parent {parent!r} is not in the file; imported unlinked")

    def _model_id(self, name: str | None) -> int | None:
        if not name:
            return None
        if name in self.models:
            return self.models[name]
        if name not in self._page_models:
            models = LanguageModel.objects.using(self.using)
            if self.dry_run:
                self.models[name] = models.filter(name=name).values_list("pk", flat=True).first()
                self.page.models_created += self.models[name] is None
                return self.models[name]
            model, created = models.get_or_create(name=name, defaults={"provider": provider_for(name)})
            self.page.models_created += created
            self._page_models[name] = model.pk
        return self._page_models[name]

    def _session_fields(self, v: dict) -> tuple[dict, str | None, str | None, dict]:
        text, count = self._text, self._count
        model = v["model"] or None
        if model is not None:
            model = self._check(validation.check_identifier, model, "model", max_length=255, column="model")
        parent = v["parent_session_id"] or None
        if parent is not None:
            parent = self._check(validation.check_session_id, parent, column="parent_session_id")
        fields = {
            "source": self._check(validation.check_identifier, v["source"], "source", max_length=64, column="source"),
            "user_id": text(v["user_id"], "user_id", 255),
            "model_config": self._json(v["model_config"], "model_config"),
            "system_prompt": text(v["system_prompt"], "system_prompt", self.max_chars),
            "started_at": self._time(v["started_at"], "started_at", required=True),
            "ended_at": self._time(v["ended_at"], "ended_at"),
            "end_reason": text(v["end_reason"], "end_reason", 64),
            "api_call_count": count(v["api_call_count"], "api_call_count", 0, validation.MAX_TOKEN_COUNT),
            "billing_provider": text(v["billing_provider"], "billing_provider", 100),
            "billing_base_url": text(v["billing_base_url"], "billing_base_url", 500),
            "billing_mode": text(v["billing_mode"], "billing_mode", 64),
            "estimated_cost_usd": self._cost(v["estimated_cost_usd"], "estimated_cost_usd"),
            "actual_cost_usd": self._cost(v["actual_cost_usd"], "actual_cost_usd"),
            "title": text(v["title"], "title", 500),
            "cwd": text(v["cwd"], "cwd", self.max_chars),
        }
        for name in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens"):
            fields[name] = count(v[name], name, -_BIGINT, _BIGINT)
        extra = self._extra({name: v[name] for name in self.source.session_extras})
        return fields, model, parent, extra

    # -- messages -----------------------------------------------------------------------------

    def _message_page(self, rows: list) -> None:
        sessions = Session.objects.using(self.using)
        ids = {row[1] for row in rows}
        found = (sessions if self.dry_run else sessions.select_for_update()).values_list(
            "pk", "extra", "message_count", "tool_call_count"
        )
        known = {
            pk: (extra, message_count, tool_call_count)
            for pk, extra, message_count, tool_call_count in _in_chunks(found, ids)
        }
        if self.dry_run:  # sessions this dry run would have created
            for sid in self.source.existing_sessions(ids - known.keys() - self.skipped_sessions):
                known[sid] = ({LAST_MESSAGE_KEY: 0}, 0, 0)
        new, touched = [], {}
        for row in rows:
            mid, sid = row[0], row[1]
            extra = known.get(sid, (None,))[0]
            if not isinstance(extra, dict) or LAST_MESSAGE_KEY not in extra:
                if sid not in self.skipped_sessions:  # those were counted with their session
                    self.page.messages_skipped += 1
                    self.page.skip_reasons["message: no session row in the file"] += 1
                continue
            state = touched.get(sid)
            if mid <= (state[0] if state else extra[LAST_MESSAGE_KEY]):
                continue  # imported by an earlier run
            if state is None:
                state = touched[sid] = [mid, 0, 0]
            state[0] = mid  # the mark passes skipped bad rows too: they are reported once
            try:
                values, tool_calls = self._message_values(row)
            except _RowError as exc:
                self.page.messages_skipped += 1
                self.page.skip_reasons[f"message: {exc.reason}"] += 1
                self.page.warn(f"message {mid} of session {sid}: {exc.reason} ({exc.detail}); skipped")
                continue
            new.append(values)
            state[1] += 1
            state[2] += tool_calls
        self.page.messages_imported += len(new)
        if self.dry_run or not touched:
            return
        counters = []
        for sid, (mark, added, tool_calls) in touched.items():
            extra, message_count, tool_call_count = known[sid]
            extra = self._db_extra({**extra, LAST_MESSAGE_KEY: mark})
            counters.append((extra, message_count + added, tool_call_count + tool_calls, sid))
        self._insert_messages.run(new)
        with self._connection.cursor() as cursor:
            cursor.executemany(self._update_counters_sql, counters)

    def _message_values(self, row) -> tuple[tuple, int]:
        """The row's values for ``_INSERTED_MESSAGE_FIELDS``, adapted for the database, and its tool-call count.

        The hot loop of the import. Most columns of most rows are NULL, so a NULL skips its
        helper (each would return None at once); a float timestamp in range takes ``_time``'s
        fast path inline. The helpers still run in column order, so the first problem found
        (the skip reason reported) and the repairs counted are what they always were: keep
        that order when changing this."""
        _, sid, role, content, tool_call_id, tool_calls, tool_name, timestamp, tokens, finish, reasoning, *rest = row
        if role not in validation.ROLES:
            raise _RowError("unknown role", repr(role))
        calls = 0
        if tool_calls is not None:
            tool_calls = self._json(tool_calls, "tool_calls")
            if tool_calls is not None:
                if not isinstance(tool_calls, (list, dict)):
                    raise _RowError("tool_calls is not a list", type(tool_calls).__name__)
                calls = validation.tool_call_total(tool_calls)
        extra = None
        if rest and rest.count(None) != len(rest):
            extra = self._extra(dict(zip(self.source.message_extras, rest, strict=True))) or None
        text, limit, db_json = self._text, self.max_chars, self._db_json
        values = (
            sid,
            role,
            None if content is None else text(content, "content", limit),
            None if tool_call_id is None else text(tool_call_id, "tool_call_id", 255),
            None if tool_calls is None else db_json(tool_calls),
            None if tool_name is None else text(tool_name, "tool_name", 255),
            self._db_time(
                dt.datetime.fromtimestamp(timestamp, dt.UTC)
                if timestamp.__class__ is float and 0.0 <= timestamp <= self.latest
                else self._time(timestamp, "timestamp", required=True)
            ),
            tokens
            if tokens is None or (tokens.__class__ is int and 0 <= tokens <= validation.MAX_TOKEN_COUNT)
            else self._count(tokens, "token_count", 0, validation.MAX_TOKEN_COUNT),
            None if finish is None else text(finish, "finish_reason", 64),
            None if reasoning is None else text(reasoning, "reasoning", limit),
            None if extra is None else db_json(extra),
        )
        content, reasoning, calls_text = values[2], values[9], row[5]
        chars = (len(content) if content else 0) + (len(reasoning) if reasoning else 0)
        if extra is not None or 4 * chars + (12 * len(calls_text) if calls_text else 0) > validation.MAX_MESSAGE_BYTES:
            self._check_message_size(row, content, reasoning, tool_calls, extra)
        return values, calls

    def _check_message_size(self, row, content, reasoning, tool_calls, extra) -> None:
        """Skip a message the save path would refuse for its size (``validation.MAX_MESSAGE_BYTES``
        once encoded): MariaDB/MySQL drop the connection on a row over ``max_allowed_packet``,
        which would fail the whole page. The bound below is cheap and exact sizes are computed
        only past it: a character takes at most 4 bytes as UTF-8 text, and at most 12 as JSON
        (``\\ud83d\\ude00``), against the length of the source text it was decoded from; in
        ``extra``, each other value takes at most 32 bytes and each key its name, quoted, 12 more."""
        texts = sum(len(value) for value in (content, reasoning) if value)
        documents = len(row[5]) if isinstance(row[5], str) else 0
        for name, value in zip(self.source.message_extras, row[11:], strict=True):
            if value is not None:
                documents += len(value) if isinstance(value, str | bytes) else 3
                documents += len(name) + 1
        bound = 4 * texts + 12 * documents + 2
        if bound <= validation.MAX_MESSAGE_BYTES:
            return
        fields = {"content": content, "reasoning": reasoning, "tool_calls": tool_calls, "extra": extra}
        try:
            validation.check_stored_size(fields, bound)
        except ValidationError as exc:
            raise _RowError("message too large", "; ".join(exc.messages)) from None

    # -- values -------------------------------------------------------------------------------

    @staticmethod
    def _check(check, *args, column: str, **kwargs):
        try:
            return check(*args, **kwargs)
        except ValidationError as exc:
            raise _RowError(f"invalid {column}", "; ".join(exc.messages)) from None

    def _text(self, value, column: str, limit: int) -> str | None:
        if value is None:
            return None
        if value.__class__ is not str:
            if isinstance(value, bytes):
                value = self.source._decode(value)
            elif isinstance(value, (int, float)):
                value = str(value)  # e.g. numeric chat user ids
            else:
                raise _RowError(f"invalid {column}", type(value).__name__)
        if "\x00" in value:
            value = value.replace("\x00", "\ufffd")
            self.page.values_repaired += 1
        if len(value) > limit:
            raise _RowError(f"{column} too long", f"{len(value):,} characters; the limit is {limit:,}")
        return value

    def _json(self, value, column: str):
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise _RowError(f"invalid JSON in {column}", f"a {type(value).__name__}, not JSON text")
        value = self._repair_escaped_nul(self._text(value, column, self.max_chars))
        try:
            parsed = _JSON.decode(value)
        except (ValueError, RecursionError) as exc:
            raise _RowError(f"invalid JSON in {column}", str(exc) or type(exc).__name__) from None
        if "\\u" in value:  # only an escape can bring in what no backend stores (a lone surrogate)
            parsed = self._check(validation.check_json, parsed, column, column=column)
        return parsed

    def _repair_escaped_nul(self, text: str) -> str:
        """JSON text with ``\\u0000`` escapes (a NUL once decoded) turned into ``\\ufffd``, counted
        as a repair, as raw NULs in text are."""
        if "\\u0000" not in text:
            return text
        repaired = _ESCAPED_NUL.sub(r"\1\\ufffd", text)
        self.page.values_repaired += repaired != text
        return repaired

    def _extra(self, values: dict) -> dict:
        """Unknown columns, kept as given: JSON text decoded, BLOBs base64-encoded, NULLs left out."""
        extra = {}
        for name, value in values.items():
            if value is None:
                continue
            if isinstance(value, bytes):
                value = base64.b64encode(value).decode()
            elif isinstance(value, str):
                value = self._text(value, name, self.max_chars)
                if value[:1] in ("{", "["):
                    with suppress(ValueError, RecursionError):  # not JSON after all: keep the text
                        value = _JSON.decode(self._repair_escaped_nul(value))
            extra[name] = value
        return self._check(validation.check_json, extra, "extra", column="extra") if extra else extra

    def _time(self, value, column: str, *, required: bool = False):
        if value is None:
            if required:
                raise _RowError(f"missing {column}", "NULL")
            return None
        if value.__class__ is float and 0.0 <= value <= self.latest:
            return dt.datetime.fromtimestamp(value, dt.UTC)  # check_timestamp's rules, fast path (_message_values too)
        return self._check(validation.check_timestamp, value, column, now=self.now, column=column)

    @staticmethod
    def _count(value, column: str, low: int, high: int) -> int:
        if value is None:
            return 0
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or not low <= value <= high:
            raise _RowError(f"invalid {column}", repr(value))
        return value

    @staticmethod
    def _cost(value, column: str) -> Decimal | None:
        if value is None:
            return None
        try:
            cost = Decimal(repr(value) if isinstance(value, float) else value).quantize(_COST_QUANTUM)
        except (InvalidOperation, TypeError, ValueError):
            raise _RowError(f"invalid {column}", repr(value)) from None
        if not cost.is_finite() or abs(cost) >= 10**10:
            raise _RowError(f"invalid {column}", repr(value))
        return cost
