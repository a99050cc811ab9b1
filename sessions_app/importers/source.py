"""The hermes-agent ``state.db`` being imported: file checks, column layout, keyset pages.

The source may belong to a running agent: it is opened read-only (SQLite URI ``mode=ro``) and
read in keyset pages (``WHERE id > ? ORDER BY id LIMIT n``), each page its own short read
transaction, so a writer is never held up for long. Nothing is ever written to it.
"""

import sqlite3
import urllib.parse
from pathlib import Path

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
_SQLITE_MAGIC = b"SQLite format 3\x00"


class HermesImportError(ValueError):
    """The source cannot be imported: missing, not SQLite, corrupt, truncated, or not a hermes state.db."""


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


class Source:
    """A read-only connection to a hermes state.db and the few queries the import needs.

    Rows come as tuples: the known columns in ``SESSION_COLUMNS``/``MESSAGE_COLUMNS`` order (NULL
    for a column this release lacks), then the unknown ones named in ``session_extras``/``message_extras``.
    ``repaired`` counts the texts whose invalid UTF-8 was replaced since the caller last reset it."""

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

    def decode(self, data: bytes) -> str:
        """``data`` as text, invalid UTF-8 replaced by U+FFFD (and counted in ``repaired``)."""
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
                self.conn.text_factory = self.decode
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
        """The next ``limit`` session rows by id after ``after``."""
        return self._query(self._sessions_sql, (after, limit))

    def messages(self, after: int, limit: int) -> list:
        """The next ``limit`` message rows by id after ``after``."""
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
        """Which of ``session_ids`` have a row in the file."""
        return {row[0] for row in self._chunks("SELECT id FROM sessions WHERE id IN ({marks})", session_ids)}

    def close(self) -> None:
        if hasattr(self, "conn"):
            self.conn.close()
