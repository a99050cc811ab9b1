"""Our side of an import: batched writes into ``Session``, ``Message`` and ``ModelUsage``, and the
keyed reads a page locks first. The hand-written statements are the save path's own
(``sessions_app._sql``): one INSERT builder, one counter UPDATE, one conversion of values
(``agents_app.db.column_adapter``).
"""

from django.db import connections

from agents_app.db import column_adapter
from sessions_app import _sql
from sessions_app.models import Message, ModelUsage, Session

# Kept in Session.extra: the highest source message id imported for the session (hermes message ids
# are AUTOINCREMENT), and the parent id of a session imported before its parent.
LAST_MESSAGE_KEY = "hermes_last_message_id"
# Kept in Session.extra for files with message flags (schema 30): ``[rows, active rows]`` of the
# file's messages of the session up to its mark, as last seen; a change means hermes undid,
# rewound or compacted messages already imported (or deleted some), which the run then follows.
MESSAGE_FLAGS_KEY = "hermes_message_flags"
# Kept in Session.extra: a fingerprint of the source row and its usage rows as last imported
# (``sessions.row_digest``); a row that did not change is not converted again.
ROW_KEY = "hermes_row"
MISSING_PARENT_KEY = "hermes_missing_parent_id"
# The parent id of a session whose link would have closed a cycle (a -> b -> a): dropped, kept here.
DROPPED_PARENT_KEY = "hermes_dropped_parent_id"
# Keys of ``extra`` that the import writes itself (``content.CONTENT_PARTS_KEY`` on messages).
RESERVED_KEYS = frozenset(
    {LAST_MESSAGE_KEY, MESSAGE_FLAGS_KEY, ROW_KEY, MISSING_PARENT_KEY, DROPPED_PARENT_KEY, "content_parts"}
)
# The keys of ``Session.extra`` that are the import's own bookkeeping (kept when hermes' columns change).
BOOKKEEPING_KEYS = (LAST_MESSAGE_KEY, MESSAGE_FLAGS_KEY, ROW_KEY, MISSING_PARENT_KEY, DROPPED_PARENT_KEY)
_SOURCE_PREFIX = "source."
# Message fields the import writes, in the order of ``RowConverter.message_values`` (``model`` stays NULL).
MESSAGE_FIELDS = (
    "hermes_id", "session", "role", "content", "tool_call_id", "tool_calls", "tool_name", "timestamp", "token_count",
    "finish_reason", "reasoning", "extra", "active", "compacted",
)  # fmt: skip
USAGE_FIELDS = tuple(f.attname for f in ModelUsage._meta.concrete_fields if not f.primary_key)
# Columns refreshed on sessions imported earlier (hermes updates them while a session runs).
SYNCED_FIELDS = (
    "ended_at", "end_reason", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
    "reasoning_tokens", "api_call_count", "billing_provider", "billing_base_url", "billing_mode",
    "estimated_cost_usd", "actual_cost_usd", "title", "cwd", "system_prompt", "model_config", "user_id",
)  # fmt: skip


def extra_keys(names) -> dict[str, str]:
    """Where each unknown source column is kept in ``extra``: under its own name, except names our
    bookkeeping uses (``writer.RESERVED_KEYS``, anything ``hermes_...``), which get ``source.`` in
    front, so that a crafted column can never set a mark or a parent link of ours."""
    keys, taken = {}, set(names)
    for name in names:
        key = name
        if name in RESERVED_KEYS or name.startswith("hermes_"):
            key = _SOURCE_PREFIX + name
            while key in taken:
                key = _SOURCE_PREFIX + key
            taken.add(key)
        keys[name] = key
    return keys


def in_chunks(queryset, ids) -> list:
    """``queryset.filter(pk__in=ids)``, in chunks that fit the 999 parameters of older SQLite builds."""
    ids = list(ids)
    return [row for start in range(0, len(ids), 900) for row in queryset.filter(pk__in=ids[start : start + 900])]


class Writer:
    """The writes of one run on database ``using``; each runs inside the caller's page transaction.

    ``db_json`` and ``db_time`` adapt message JSON and times for the driver: the row converter
    calls them in its hot loop, so message rows arrive adapted."""

    def __init__(self, using: str):
        connection = self.connection = connections[using]
        self.using = using
        vendor = connection.vendor
        self._sessions = _sql.row_insert(using, vendor, Session, tuple(f.name for f in Session._meta.concrete_fields))
        self._session_columns = [f.attname for f in self._sessions.fields]
        self._messages = _sql.row_insert(using, vendor, Message, MESSAGE_FIELDS)
        self._usage = _sql.row_insert(using, vendor, ModelUsage, USAGE_FIELDS)
        self.db_json = column_adapter(Message._meta.get_field("tool_calls"), connection)
        self.db_time = column_adapter(Message._meta.get_field("timestamp"), connection)

    def create_sessions(self, sessions: list[dict]) -> None:
        """Insert new sessions, each a dict of every concrete field's attname."""
        insert = self._sessions
        insert.run([insert.adapt(s[c] for c in self._session_columns) for s in sessions])

    def refresh_sessions(self, changed: list[tuple[Session, tuple[str, ...]]]) -> None:
        """Save what changed of sessions imported earlier: ``(session, names of the fields that changed)``."""
        self._update(Session, [(session, names) for session, names in changed])

    def _update(self, model, changed: list[tuple]) -> None:
        """Save ``(object, field names)`` pairs, one statement per set of field names."""
        groups: dict[tuple[str, ...], list] = {}
        for obj, names in changed:
            groups.setdefault(tuple(sorted(names)), []).append(obj)
        for names, objects in groups.items():
            attnames = [model._meta.get_field(name).attname for name in names]
            rows = [(obj.pk, *(getattr(obj, attname) for attname in attnames)) for obj in objects]
            _sql.update_rows(model, names, rows, using=self.using)

    def append_messages(self, rows: list, changes: list[tuple[str, dict, dict]]) -> None:
        """Insert message rows (``MESSAGE_FIELDS`` values, adapted) and apply their sessions'
        ``(session id, counter increments, extra)`` in the same transaction."""
        self._messages.run(rows)
        self.update_sessions(changes)

    def update_sessions(self, changes: list[tuple[str, dict, dict]]) -> None:
        """Add counter increments and set ``extra`` (the marks) of sessions, in one statement."""
        if _sql.add_to_counters_many(changes, using=self.using) != len(changes):
            # Each session was locked by the page; only a counter past its limit leaves it unchanged.
            raise OverflowError("a session's message counters would pass their limit")

    def set_message_flags(self, messages: list[Message]) -> None:
        """Save ``active`` and ``compacted`` of messages imported earlier."""
        self._update(Message, [(message, ("active", "compacted")) for message in messages])

    def set_hermes_ids(self, messages: list[Message]) -> None:
        """Save the ``hermes_id`` of messages imported before it was kept."""
        self._update(Message, [(message, ("hermes_id",)) for message in messages])

    def delete_messages(self, pks: list[int]) -> None:
        """Delete messages (nothing refers to a message: one DELETE per chunk, triggers keep the flag)."""
        for start in range(0, len(pks), 900):
            Message.objects.using(self.using).filter(pk__in=pks[start : start + 900]).delete()

    def link_parents(self, linked: list[Session]) -> None:
        """Save the parent link and the ``extra`` (its missing-parent key dropped) of ``linked``."""
        self._update(Session, [(session, ("parent_session", "extra")) for session in linked])

    def create_usage(self, rows: list[dict]) -> None:
        """Insert ``ModelUsage`` rows, each a dict of ``USAGE_FIELDS``."""
        insert = self._usage
        insert.run([insert.adapt(row[name] for name in USAGE_FIELDS) for row in rows])

    def update_usage(self, rows: list[tuple[ModelUsage, tuple[str, ...]]]) -> None:
        """Save what changed of usage rows: ``(row, names of the fields that changed)``."""
        self._update(ModelUsage, rows)

    def delete_usage(self, pks: list[int]) -> None:
        for start in range(0, len(pks), 900):
            ModelUsage.objects.using(self.using).filter(pk__in=pks[start : start + 900]).delete()
