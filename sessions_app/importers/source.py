"""The hermes-agent ``state.db`` being imported: file checks, column layout, keyset pages.

The source may belong to a running agent: ``opening`` opens it (or a private snapshot of it)
without writing to it or beside it. It is read in keyset pages (``WHERE id > ? ORDER BY id``),
bounded in rows and in the characters they carry.
"""

import sqlite3
import time
from pathlib import Path

from sessions_app.importers.opening import HermesImportError, Opened, check_file, needs_rollback

# Source columns with a field of their own, in the order they are selected (NULL when absent).
SESSION_COLUMNS = (
    "id", "source", "user_id", "model", "model_config", "system_prompt", "parent_session_id", "started_at",
    "ended_at", "end_reason", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
    "reasoning_tokens", "api_call_count", "billing_provider", "billing_base_url", "billing_mode",
    "estimated_cost_usd", "actual_cost_usd", "title", "cwd", "profile_name",
)  # fmt: skip
MESSAGE_COLUMNS = (
    "id", "session_id", "role", "content", "tool_call_id", "tool_calls", "tool_name", "timestamp", "token_count",
    "finish_reason", "reasoning", "active", "compacted",
)  # fmt: skip
# session_model_usage (schema 30): its key columns, then the figures, in the order they are selected.
USAGE_COLUMNS = (
    "session_id", "model", "billing_provider", "billing_base_url", "billing_mode", "task", "api_call_count",
    "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens",
    "estimated_cost_usd", "actual_cost_usd", "cost_status", "cost_source", "first_seen", "last_seen",
)  # fmt: skip
# The newest schema_version this importer knows column for column (hermes_state_common.SCHEMA_VERSION).
KNOWN_SCHEMA_VERSION = 30
# Recomputed from the message rows, never copied.
RECOMPUTED_COLUMNS = frozenset({"message_count", "tool_call_count"})
REQUIRED = {"sessions": ("id", "source", "started_at"), "messages": ("id", "session_id", "role", "timestamp")}


# Characters (and BLOB bytes) of the row values one page reads at most: a page ends early rather
# than pass it (a single row may pass it alone). Bounds memory for files of a few huge rows.
PAGE_CHARS = 64 * 1024 * 1024
NAMED = 20  # rows named per kind of problem found in the file's layout


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class Source:
    """A read-only connection to a hermes state.db (``opening``) and the few queries the import needs.

    Rows come as tuples: the known columns in ``SESSION_COLUMNS``/``MESSAGE_COLUMNS`` order (NULL
    for a column this release lacks), then the unknown ones named in ``session_extras``/``message_extras``.
    ``repaired`` counts the texts whose invalid UTF-8 was replaced since the caller last reset it.

    Rows the keyset pages cannot reach are found up front (``layout_skips``): message ids that are
    not integers, session ids that are not text, and the extra copies of a session id (a crafted
    table without a primary key; the copy with the lowest rowid is imported)."""

    def __init__(self, path):
        self.path = Path(path)
        check_file(self.path)
        self.repaired = 0
        self.columns: dict[str, list[str]] = {}
        self.layout_skips: list[tuple[str, str, int, list]] = []  # (kind, reason, rows, names)
        self.duplicate_ids: dict[str, int] = {}
        self._opened = Opened(self.path)
        self.conn = self._opened.conn
        try:
            self._inspect()
        except BaseException:
            self.close()
            raise

    def _inspect(self) -> None:
        tables = {
            row[0]: row[1] or "" for row in self._query("SELECT name, sql FROM sqlite_master WHERE type = 'table'")
        }
        missing = [t for t in ("sessions", "messages") if t not in tables]
        if missing:
            raise HermesImportError(f"{self.path} is not a hermes-agent state.db: no {' or '.join(missing)} table.")
        self.schema_version = self._schema_version(tables)
        self.has_prompts = "system_prompts" in tables
        self.has_usage = "session_model_usage" in tables
        self.session_extras = self._layout("sessions", SESSION_COLUMNS)
        self.message_extras = self._layout("messages", MESSAGE_COLUMNS)
        self.session_names = SESSION_COLUMNS + self.session_extras
        # Message ids other than integers (a crafted table: no INTEGER PRIMARY KEY) are left out of
        # every query, and counted here once.
        info = {row[1]: row for row in self._query("PRAGMA table_info(messages)")}
        rowid_alias = (
            info["id"][2].upper() == "INTEGER"
            and info["id"][5] == 1
            and sum(1 for row in info.values() if row[5]) == 1
            and "without rowid" not in tables["messages"].lower()
        )
        self._ids = "" if rowid_alias else " AND typeof(id) = 'integer'"
        if not rowid_alias:
            self._layout_skip("message", "id is not an integer", "messages", "typeof(id) != 'integer'")
        self._layout_skip("session", "id is not text", "sessions", "typeof(id) != 'text'")
        unique = any(row[1] == "id" and row[5] == 1 for row in self._query("PRAGMA table_info(sessions)")) and (
            sum(1 for row in self._query("PRAGMA table_info(sessions)") if row[5]) == 1
        )
        order = "id"
        if not unique:
            sql = "SELECT id, COUNT(*) FROM sessions WHERE typeof(id) = 'text' GROUP BY id HAVING COUNT(*) > 1"
            self.duplicate_ids = dict(self._query(sql))
            if self.duplicate_ids and "without rowid" not in tables["sessions"].lower():
                order = "id, rowid"  # the first copy written is the one imported
        self._sessions_sql = self._select("sessions", SESSION_COLUMNS, self.session_extras, order)
        self._messages_sql = self._select("messages", MESSAGE_COLUMNS, self.message_extras, "id")
        # hermes v30 marks undone and compacted messages; older files have every row live.
        self.has_flags = "active" in self.columns["messages"]
        # As the row converter reads them: NULL is the default (active, not compacted).
        self._active = 'ifnull("active", 1) != 0' if self.has_flags else "1"
        self._compacted = 'ifnull("compacted", 0) != 0' if "compacted" in self.columns["messages"] else "0"
        if self.has_usage:
            present = {row[1] for row in self._query("PRAGMA table_info(session_model_usage)")}
            columns = ", ".join(_quote(n) if n in present else "NULL" for n in USAGE_COLUMNS)
            self._usage_sql = f"SELECT {columns} FROM session_model_usage WHERE session_id IN ({{marks}})"  # noqa: S608
        big = {"sessions": ("model_config", "system_prompt"), "messages": ("content", "tool_calls", "reasoning")}
        self._sizes_sql = {
            table: self._sizes(table, big[table] + extras)
            for table, extras in (("sessions", self.session_extras), ("messages", self.message_extras))
        }

    def _schema_version(self, tables: dict) -> int | None:
        """The version the file's ``schema_version`` table declares (its highest row), or None."""
        if "schema_version" not in tables:
            return None
        try:
            version = self._query("SELECT MAX(version) FROM schema_version")[0][0]
        except HermesImportError:
            return None
        return version if isinstance(version, int) and not isinstance(version, bool) else None

    def _layout(self, table: str, known: tuple) -> tuple:
        self.columns[table] = names = [row[1] for row in self._query(f"PRAGMA table_info({table})")]
        absent = [name for name in REQUIRED[table] if name not in names]
        if absent:
            raise HermesImportError(f"{self.path}: table {table} has no {', '.join(absent)} column.")
        return tuple(n for n in names if n not in known and n not in RECOMPUTED_COLUMNS)

    def _layout_skip(self, kind: str, reason: str, table: str, where: str) -> None:
        count = self._query(f"SELECT COUNT(*) FROM {table} WHERE {where}")[0][0]  # noqa: S608
        if count:
            try:
                name = "'rowid ' || rowid || ' (id ' || quote(id) || ')'"
                names = self._query(f"SELECT {name} FROM {table} WHERE {where} LIMIT {NAMED}")  # noqa: S608
            except HermesImportError:  # WITHOUT ROWID
                names = self._query(f"SELECT 'id ' || quote(id) FROM {table} WHERE {where} LIMIT {NAMED}")  # noqa: S608
            self.layout_skips.append((kind, reason, count, [name for (name,) in names]))

    def _select(self, table: str, known: tuple, extras: tuple, order: str) -> str:
        present = set(self.columns[table])
        columns = [_quote(n) if n in present else "NULL" for n in known] + [_quote(n) for n in extras]
        ids = self._ids if table == "messages" else ""
        return f"SELECT {', '.join(columns)} FROM {table} WHERE id > ? AND id <= ?{ids} ORDER BY {order}"  # noqa: S608

    def _sizes(self, table: str, columns) -> str:
        present = set(self.columns[table])
        size = " + ".join(f"ifnull(length({_quote(n)}), 0)" for n in columns if n in present) or "0"
        ids = self._ids if table == "messages" else " AND typeof(id) = 'text'"
        return f"SELECT id, {size} FROM {table} WHERE id > ?{ids} ORDER BY id LIMIT ?"  # noqa: S608

    def decode(self, data: bytes) -> str:
        """``data`` as text, invalid UTF-8 replaced by U+FFFD (and counted in ``repaired``)."""
        try:
            return data.decode()
        except UnicodeDecodeError:
            self.repaired += 1
            return data.decode(errors="replace")

    def _query(self, sql: str, params=()) -> list:
        """One statement, fully fetched."""
        return self._fresh(lambda: self._fetch(sql, params))

    def _fresh(self, read):
        """``read()``, from a file that did not change during it: a file read immutably that a writer
        changed meanwhile (``Opened.changed``), or a rollback-journal file whose writer was killed
        (a hot journal), is opened again (from a snapshot where needed) and read again."""
        for attempt in range(10):
            if attempt:
                time.sleep(min(1.0, 0.05 * attempt))  # let the writer finish its checkpoint
            try:
                result = read()
            except sqlite3.DatabaseError as exc:
                hot = isinstance(exc, sqlite3.OperationalError) and needs_rollback(exc)
                if not hot and not self._opened.changed():
                    raise HermesImportError(f"{self.path} cannot be read ({exc}); is it corrupt or truncated?") from exc
            else:
                if not self._opened.changed():
                    return result
            self._reopen()
        raise HermesImportError(f"{self.path} kept changing while it was read; try again when hermes is idle.")

    def _reopen(self) -> None:
        self._opened.close()
        self._opened = Opened(self.path)
        self.conn = self._opened.conn

    def _fetch(self, sql: str, params) -> list:
        try:
            return self.conn.execute(sql, params).fetchall()
        except sqlite3.OperationalError as exc:
            if "decode" not in str(exc):
                raise
            # Invalid UTF-8 somewhere in this page: read it again with the repairing decoder
            # (only then: a Python text factory slows every page down).
            self.conn.text_factory = self.decode
            try:
                return self.conn.execute(sql, params).fetchall()
            finally:
                self.conn.text_factory = str

    def _page(self, table: str, after, limit: int, sessions: list | None = None) -> list:
        """The next rows of ``table`` by id after ``after``: at most ``limit`` rows, and no more than
        ``PAGE_CHARS`` of their values unless the first row alone is bigger. Their sizes are read
        first (SQLite's ``length()``; no value reaches Python), only as far as the budget goes,
        then the rows up to the last that fits. ``sessions``: only the messages of these sessions
        (at most 900 ids), read through the (session_id, id) index."""
        sizes_sql, rows_sql = self._sizes_sql[table], self._sessions_sql if table == "sessions" else self._messages_sql
        ids: tuple = ()
        if sessions is not None:
            where = f"WHERE session_id IN ({', '.join('?' * len(sessions))}) AND id > ?"
            sizes_sql, rows_sql = sizes_sql.replace("WHERE id > ?", where), rows_sql.replace("WHERE id > ?", where)
            ids = tuple(sessions)

        def last_that_fits():
            last, total = None, 0
            cursor = self.conn.execute(sizes_sql, (*ids, after, limit))
            for row_id, size in cursor:
                if last is not None and total + size > PAGE_CHARS:
                    break
                last, total = row_id, total + size
            cursor.close()
            return last

        last = self._fresh(last_that_fits)
        if last is None:
            return []
        return self._query(rows_sql, (*ids, after, last))

    def count_sessions(self) -> int:
        return self._query("SELECT COUNT(*) FROM sessions")[0][0]

    def messages_after(self, after: int) -> int:
        """About how many messages follow ``after``: exact unless rows were deleted. MAX(id) reads a
        few pages where COUNT(*) would read the whole table."""
        return max(0, (self._query(f"SELECT MAX(id) FROM messages WHERE 1{self._ids}")[0][0] or 0) - after)  # noqa: S608

    def sessions(self, after: str, limit: int) -> list:
        """The next session rows by id after ``after`` (``limit`` at most, see ``_page``)."""
        return self._page("sessions", after, limit)

    def messages(self, after: int, limit: int, sessions: list | None = None) -> list:
        """The next message rows by id after ``after`` (``limit`` at most, see ``_page``), of all
        sessions or only of ``sessions`` (at most 900 ids)."""
        return self._page("messages", after, limit, sessions)

    def _chunks(self, sql: str, ids) -> list:
        ids, rows = list(ids), []
        for start in range(0, len(ids), 900):  # below the 999 host parameters of old SQLite builds
            chunk = ids[start : start + 900]
            rows += self._query(sql.format(marks=", ".join("?" * len(chunk))), chunk)
        return rows

    def message_bounds(self, session_ids) -> dict[str, tuple[int, int, int, int]]:
        """``{session_id: (first message id, last message id, messages, active messages)}`` for the
        sessions that have any (every message is active in a file without the ``active`` flag). On
        schema 30 the index on (session_id, active, timestamp) answers it without reading a row."""
        sql = f"SELECT session_id, MIN(id), MAX(id), COUNT(*), SUM({self._active}) FROM messages"  # noqa: S608
        sql += " WHERE session_id IN ({marks})" + self._ids + " GROUP BY session_id"
        return {sid: (low, high, count, live) for sid, low, high, count, live in self._chunks(sql, session_ids)}

    def existing_sessions(self, session_ids) -> set[str]:
        """Which of ``session_ids`` have a row in the file."""
        return {row[0] for row in self._chunks("SELECT id FROM sessions WHERE id IN ({marks})", session_ids)}

    def session_profiles(self, session_ids) -> dict[str, str | None]:
        """``{session id: its profile_name}`` for those of ``session_ids`` the file holds (None where
        the row names no profile, or the file has no such column)."""
        column = '"profile_name"' if "profile_name" in self.columns["sessions"] else "NULL"
        sql = f"SELECT id, {column} FROM sessions WHERE id IN ({{marks}})"  # noqa: S608
        return dict(self._chunks(sql, session_ids))

    def message_flags(self, session_ids) -> list[tuple[str, int, bool, bool]]:
        """``(session id, message id, active, compacted)`` of every message of ``session_ids``, by id."""
        sql = f"SELECT session_id, id, {self._active}, {self._compacted} FROM messages"  # noqa: S608
        sql += " WHERE session_id IN ({marks})" + self._ids
        rows = self._chunks(sql, session_ids)
        rows.sort(key=lambda row: row[1])
        return [(sid, mid, bool(active), bool(compacted)) for sid, mid, active, compacted in rows]

    def message_keys(self, session_ids) -> list[tuple[str, int, object, object]]:
        """``(session id, message id, role, timestamp)`` of every message of ``session_ids``, by id: what
        pairs the rows with messages imported before they carried their hermes id."""
        sql = "SELECT session_id, id, role, timestamp FROM messages WHERE session_id IN ({marks})" + self._ids  # noqa: S608
        return sorted(self._chunks(sql, session_ids), key=lambda row: row[1])

    @staticmethod
    def active_of(row) -> int:
        """Whether a message row (``MESSAGE_COLUMNS`` order) counts as active the way ``message_bounds``
        counts it in SQL (NULL: active; a number: not 0; text or a BLOB sorts after 0: active)."""
        value = row[11]
        if value is None:
            return 1
        return int(value != 0) if isinstance(value, int | float) else 1

    def prompts(self, hashes) -> dict[str, str]:
        """``{hash: prompt}`` from ``system_prompts`` (schema 30 stores each prompt once)."""
        if not self.has_prompts:
            return {}
        return dict(self._chunks("SELECT hash, prompt FROM system_prompts WHERE hash IN ({marks})", hashes))

    def usage(self, session_ids) -> list[tuple]:
        """The ``session_model_usage`` rows of ``session_ids`` (``USAGE_COLUMNS``; NULL for absent ones)."""
        return self._chunks(self._usage_sql, session_ids) if self.has_usage else []

    def close(self) -> None:
        if hasattr(self, "_opened"):
            self._opened.close()
