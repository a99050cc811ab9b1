"""Builders for hermes-agent ``state.db`` files, from the schema facts in ARCHITECTURE.md.

Three schema generations, so the importer is tested against drift:

- ``old``: an early release, without the cache/reasoning token counters, the billing and cost
  columns, ``title``, and the message ``reasoning`` columns.
- ``current``: the columns ARCHITECTURE.md lists, plus a ``schema_version`` table.
- ``new``: a later release with extra session columns (``cwd``, ``api_call_count``,
  ``archived``, ``cost_status``, ...), extra message columns, an FTS5 index kept by triggers,
  and more tables (``schema_version``, ``state_meta``).
- ``v30``: schema version 30 as hermes-agent's session store writes it today (``SCHEMA_SQL`` of
  ``hermes_state_common.py``): ~60 session columns (``profile_name``, ``system_prompt_hash``,
  ``last_activity_at``, ``rewind_count``, ``archived``, ``hidden``, ...), message flags ``active``
  and ``compacted`` with display columns, ``system_prompts`` (prompts stored once, by hash) and
  ``session_model_usage`` (per model, billing route and task).
- ``v31``: a newer release than the importer knows: v30 plus columns it has never seen.

``StateDB`` writes rows exactly as given (raw text for the JSON columns when a string is
passed), so tests can plant bad rows on purpose.
"""

import hashlib
import json
import sqlite3
from pathlib import Path

_OLD_SESSIONS = """
CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    user_id TEXT,
    model TEXT,
    model_config TEXT,
    system_prompt TEXT,
    parent_session_id TEXT,
    started_at REAL NOT NULL,
    ended_at REAL,
    end_reason TEXT,
    message_count INTEGER DEFAULT 0,
    tool_call_count INTEGER DEFAULT 0,
    input_tokens INTEGER DEFAULT 0,
    output_tokens INTEGER DEFAULT 0,
    FOREIGN KEY (parent_session_id) REFERENCES sessions(id)
)"""
_CURRENT_SESSION_COLUMNS = """,
    cache_read_tokens INTEGER DEFAULT 0,
    cache_write_tokens INTEGER DEFAULT 0,
    reasoning_tokens INTEGER DEFAULT 0,
    billing_provider TEXT,
    billing_base_url TEXT,
    billing_mode TEXT,
    estimated_cost_usd REAL,
    actual_cost_usd REAL,
    title TEXT"""
_NEW_SESSION_COLUMNS = """,
    cost_status TEXT,
    cost_source TEXT,
    pricing_version TEXT,
    api_call_count INTEGER DEFAULT 0,
    cwd TEXT,
    archived INTEGER NOT NULL DEFAULT 0,
    handoff_state TEXT"""

_OLD_MESSAGES = """
CREATE TABLE messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id TEXT NOT NULL REFERENCES sessions(id),
    role TEXT NOT NULL,
    content TEXT,
    tool_call_id TEXT,
    tool_calls TEXT,
    tool_name TEXT,
    timestamp REAL NOT NULL,
    token_count INTEGER,
    finish_reason TEXT
)"""
_CURRENT_MESSAGE_COLUMNS = """,
    reasoning TEXT,
    reasoning_details TEXT,
    codex_reasoning_items TEXT"""
_NEW_MESSAGE_COLUMNS = """,
    reasoning_content TEXT,
    codex_message_items TEXT,
    platform_message_id TEXT,
    observed INTEGER DEFAULT 0"""

_INDEXES = """
CREATE INDEX idx_sessions_source ON sessions(source);
CREATE INDEX idx_sessions_parent ON sessions(parent_session_id);
CREATE INDEX idx_sessions_started ON sessions(started_at DESC);
CREATE INDEX idx_messages_session ON messages(session_id, timestamp);
"""
_SCHEMA_VERSION = "CREATE TABLE schema_version (version INTEGER NOT NULL); INSERT INTO schema_version VALUES ({v});"
_NEW_EXTRAS = """
CREATE TABLE state_meta (key TEXT PRIMARY KEY, value TEXT);
INSERT INTO state_meta VALUES ('fts_storage_version', '2');
CREATE VIRTUAL TABLE messages_fts USING fts5(content, content=messages, content_rowid=id);
CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts(rowid, content) VALUES (new.id, new.content);
END;
"""


# Schema version 30, column for column and in hermes' order (hermes_state_common.SCHEMA_SQL).
_V30 = """
CREATE TABLE schema_version (version INTEGER NOT NULL);
CREATE TABLE system_prompts (hash TEXT PRIMARY KEY, prompt TEXT NOT NULL);
CREATE TABLE sessions (
    id TEXT PRIMARY KEY, source TEXT NOT NULL, created_source TEXT, user_id TEXT, session_key TEXT,
    chat_id TEXT, chat_type TEXT, thread_id TEXT, display_name TEXT, origin_json TEXT,
    expiry_finalized INTEGER DEFAULT 0, model TEXT, model_config TEXT, system_prompt TEXT,
    system_prompt_hash TEXT, parent_session_id TEXT, started_at REAL NOT NULL, ended_at REAL, end_reason TEXT,
    message_count INTEGER DEFAULT 0, tool_call_count INTEGER DEFAULT 0, input_tokens INTEGER DEFAULT 0,
    output_tokens INTEGER DEFAULT 0, cache_read_tokens INTEGER DEFAULT 0, cache_write_tokens INTEGER DEFAULT 0,
    reasoning_tokens INTEGER DEFAULT 0, cwd TEXT, git_branch TEXT, git_repo_root TEXT,
    git_metadata_generation INTEGER NOT NULL DEFAULT 0, billing_provider TEXT, billing_base_url TEXT,
    billing_mode TEXT, estimated_cost_usd REAL, actual_cost_usd REAL, cost_status TEXT, cost_source TEXT,
    pricing_version TEXT, title TEXT, title_source TEXT, last_activity_at REAL, last_activity_description TEXT,
    last_activity_provenance TEXT, api_call_count INTEGER DEFAULT 0, handoff_state TEXT, handoff_platform TEXT,
    handoff_error TEXT, compression_failure_cooldown_until REAL, compression_failure_error TEXT,
    compression_fallback_streak INTEGER NOT NULL DEFAULT 0, compression_ineffective_count INTEGER NOT NULL DEFAULT 0,
    compression_recovery_deadline REAL, compression_overload_streak INTEGER NOT NULL DEFAULT 0, profile_name TEXT,
    transport_profile TEXT, rewind_count INTEGER NOT NULL DEFAULT 0, archived INTEGER NOT NULL DEFAULT 0,
    pinned INTEGER NOT NULL DEFAULT 0, hidden INTEGER NOT NULL DEFAULT 0, last_read_at REAL, tool_names TEXT,
    FOREIGN KEY (parent_session_id) REFERENCES sessions(id),
    FOREIGN KEY (system_prompt_hash) REFERENCES system_prompts(hash)
);
CREATE TABLE messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT, session_id TEXT NOT NULL REFERENCES sessions(id), role TEXT NOT NULL,
    content TEXT, tool_call_id TEXT, tool_calls TEXT, tool_name TEXT, effect_disposition TEXT,
    timestamp REAL NOT NULL, token_count INTEGER, finish_reason TEXT, reasoning TEXT, reasoning_content TEXT,
    reasoning_details TEXT, codex_reasoning_items TEXT, codex_message_items TEXT, platform_message_id TEXT,
    observed INTEGER DEFAULT 0, _compressed_summary INTEGER NOT NULL DEFAULT 0, active INTEGER NOT NULL DEFAULT 1,
    compacted INTEGER NOT NULL DEFAULT 0, api_content TEXT, display_kind TEXT, display_metadata TEXT,
    display_identity BLOB, display_order INTEGER{message_more}
);
CREATE TABLE session_model_usage (
    session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE, model TEXT NOT NULL,
    billing_provider TEXT NOT NULL DEFAULT '', billing_base_url TEXT NOT NULL DEFAULT '',
    billing_mode TEXT NOT NULL DEFAULT '', task TEXT NOT NULL DEFAULT '', api_call_count INTEGER NOT NULL DEFAULT 0,
    input_tokens INTEGER NOT NULL DEFAULT 0, output_tokens INTEGER NOT NULL DEFAULT 0,
    cache_read_tokens INTEGER NOT NULL DEFAULT 0, cache_write_tokens INTEGER NOT NULL DEFAULT 0,
    reasoning_tokens INTEGER NOT NULL DEFAULT 0, estimated_cost_usd REAL NOT NULL DEFAULT 0,
    actual_cost_usd REAL NOT NULL DEFAULT 0, cost_status TEXT, cost_source TEXT, first_seen REAL, last_seen REAL,
    PRIMARY KEY (session_id, model, billing_provider, billing_base_url, billing_mode, task)
);
CREATE TABLE state_meta (key TEXT PRIMARY KEY, value TEXT);
CREATE INDEX idx_sessions_source ON sessions(source);
CREATE INDEX idx_sessions_parent ON sessions(parent_session_id);
CREATE INDEX idx_sessions_started ON sessions(started_at DESC);
CREATE INDEX idx_messages_session ON messages(session_id, timestamp);
CREATE INDEX idx_messages_session_id ON messages(session_id, id);
CREATE INDEX idx_session_model_usage_session ON session_model_usage(session_id);
CREATE INDEX idx_messages_session_active ON messages(session_id, active, timestamp);
INSERT INTO schema_version VALUES ({version});
"""


def _with_columns(table_sql: str, *extra: str) -> str:
    body = table_sql.rstrip().removesuffix(")")
    if "FOREIGN KEY" in body:
        head, fk = body.rsplit(",\n    FOREIGN KEY", 1)
        return head + "".join(extra) + ",\n    FOREIGN KEY" + fk + "\n)"
    return body + "".join(extra) + "\n)"


SCHEMAS = {
    "old": _OLD_SESSIONS + ";" + _OLD_MESSAGES + ";" + _INDEXES,
    "current": (
        _with_columns(_OLD_SESSIONS, _CURRENT_SESSION_COLUMNS)
        + ";"
        + _with_columns(_OLD_MESSAGES, _CURRENT_MESSAGE_COLUMNS)
        + ";"
        + _INDEXES
        + _SCHEMA_VERSION.format(v=6)
    ),
    "new": (
        _with_columns(_OLD_SESSIONS, _CURRENT_SESSION_COLUMNS, _NEW_SESSION_COLUMNS)
        + ";"
        + _with_columns(_OLD_MESSAGES, _CURRENT_MESSAGE_COLUMNS, _NEW_MESSAGE_COLUMNS)
        + ";"
        + _INDEXES
        + _SCHEMA_VERSION.format(v=11)
        + _NEW_EXTRAS
    ),
    "v30": _V30.format(version=30, message_more=""),
    "v31": _V30.format(version=31, message_more=", message_uid TEXT, tool_call_uid TEXT").replace(
        "tool_names TEXT,", "tool_names TEXT, auto_archived INTEGER NOT NULL DEFAULT 0,"
    ),
}


def _raw(value):
    """JSON columns: dicts/lists are serialised; strings are written as given (possibly invalid)."""
    return json.dumps(value) if isinstance(value, (dict, list)) else value


class StateDB:
    """A hermes-agent state.db being built: ``session(...)`` and ``message(...)`` insert rows.

    Use as a context manager or call ``close()``; the file is in WAL mode like hermes's own.
    """

    def __init__(self, path, schema: str = "current"):
        self.path = Path(path)
        self.schema = schema
        self.conn = sqlite3.connect(self.path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.executescript(SCHEMAS[schema])
        self._columns()

    def _columns(self) -> None:
        self.session_columns = {row[1] for row in self.conn.execute("PRAGMA table_info(sessions)")}
        self.message_columns = {row[1] for row in self.conn.execute("PRAGMA table_info(messages)")}
        self.usage_columns = {row[1] for row in self.conn.execute("PRAGMA table_info(session_model_usage)")}

    @classmethod
    def reopen(cls, path, schema: str = "current") -> "StateDB":
        """Open an existing file to add rows (the source "grows")."""
        self = cls.__new__(cls)
        self.path, self.schema = Path(path), schema
        self.conn = sqlite3.connect(self.path, isolation_level=None)
        self._columns()
        return self

    def _insert(self, table: str, columns: set, values: dict) -> int:
        unknown = values.keys() - columns
        if unknown:
            raise ValueError(f"schema {self.schema!r} has no {table} column(s) {sorted(unknown)}")
        names = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        cursor = self.conn.execute(f"INSERT INTO {table} ({names}) VALUES ({marks})", tuple(values.values()))  # noqa: S608
        return cursor.lastrowid

    def session(self, session_id: str, *, source="cli", started_at=1772368200.0, **columns) -> str:
        if "model_config" in columns:
            columns["model_config"] = _raw(columns["model_config"])
        self._insert(
            "sessions", self.session_columns, {"id": session_id, "source": source, "started_at": started_at, **columns}
        )
        return session_id

    def message(self, session_id: str, role="user", content="hello", *, timestamp=1772368201.0, **columns) -> int:
        for name in ("tool_calls", "reasoning_details", "codex_reasoning_items", "codex_message_items"):
            if name in columns:
                columns[name] = _raw(columns[name])
        values = {"session_id": session_id, "role": role, "content": content, "timestamp": timestamp, **columns}
        return self._insert("messages", self.message_columns, values)

    def prompt(self, text: str) -> str:
        """Store a system prompt once, as hermes v30 does; returns its hash (sha256 of the text)."""
        digest = hashlib.sha256(text.encode()).hexdigest()
        self.conn.execute("INSERT OR IGNORE INTO system_prompts (hash, prompt) VALUES (?, ?)", (digest, text))
        return digest

    def usage(self, session_id: str, model: str, **columns) -> None:
        """A ``session_model_usage`` row (hermes v30), columns as given (the key's text columns default to '')."""
        self._insert("session_model_usage", self.usage_columns, {"session_id": session_id, "model": model, **columns})

    def update(self, table: str, where: str, params=(), **values) -> int:
        """``UPDATE table SET ... WHERE where``, as hermes changes rows in place (undo, end, tokens)."""
        sets = ", ".join(f"{name} = ?" for name in values)
        cursor = self.conn.execute(f"UPDATE {table} SET {sets} WHERE {where}", (*values.values(), *params))  # noqa: S608
        return cursor.rowcount

    def many_messages(self, rows) -> None:
        """Insert ``(session_id, role, content, tool_calls_json, timestamp, token_count)`` tuples in one go."""
        self.conn.execute("BEGIN")
        self.conn.executemany(
            "INSERT INTO messages (session_id, role, content, tool_calls, timestamp, token_count)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )
        self.conn.execute("COMMIT")

    def close(self) -> None:
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def build_state_db(path, schema: str = "current") -> StateDB:
    return StateDB(path, schema)


def without_digest(extra: dict) -> dict:
    """An imported session's ``extra`` without the fingerprint of its source row (``hermes_row``, a
    hex digest every imported session has), for comparing the rest exactly."""
    assert isinstance(extra.get("hermes_row"), str) and len(extra["hermes_row"]) == 24
    return {key: value for key, value in extra.items() if key != "hermes_row"}
