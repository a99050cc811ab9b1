"""The flag pass of a run: messages imported before that hermes changed in place.

hermes-agent (schema 30) never rewrites a message to undo it: an undone or rewound turn gets
``active = 0``, a turn compaction summarized away ``active = 0, compacted = 1``, and a transcript
rewrite deletes rows. The session pages note each session whose file rows no longer add up to what
we last saw (``writer.MESSAGE_FLAGS_KEY``: rows and active rows up to the mark), and the message
pages account for the rows they add; the sessions still differing come here. For each, one read of
its rows' flags in the file, one of ours (by ``Message.hermes_id``), and in one transaction per batch
of sessions: the changed flags saved, the messages hermes deleted deleted, the counters moved by
exactly the active messages gained or lost, and the new signature recorded.

Messages imported by an earlier version carry no hermes id; they are paired with the file's rows
in order (same role and timestamp, skipping rows that were never imported) and given it first.
"""

import datetime as dt

from sessions_app.importers.report import ImportResult
from sessions_app.importers.source import Source
from sessions_app.importers.writer import LAST_MESSAGE_KEY, MESSAGE_FLAGS_KEY, Writer, in_chunks
from sessions_app.models import Message, Session
from sessions_app.validation import tool_call_total


class FlagSync:
    """Follows flag changes (and deletions) of already imported messages, session batch by batch."""

    def __init__(self, source: Source, writer: Writer, *, dry_run: bool):
        self.source, self.writer, self.dry_run = source, writer, dry_run
        self.using = writer.using

    def write(self, page: ImportResult, expected: dict[str, tuple[int, int]]) -> None:
        """Sync the sessions of ``expected`` (session -> the file's (rows, active rows)) whose stored
        signature still differs; the caller's transaction holds their locks."""
        sessions = Session.objects.using(self.using)
        query = (sessions if self.dry_run else sessions.select_for_update()).values_list("pk", "extra")
        stored = {pk: extra for pk, extra in in_chunks(query, expected) if isinstance(extra, dict)}
        todo = sorted(
            sid
            for sid, extra in stored.items()
            if LAST_MESSAGE_KEY in extra and extra.get(MESSAGE_FLAGS_KEY) != list(expected[sid])
        )
        if not todo:
            return
        file_rows: dict[str, dict[int, tuple[bool, bool]]] = {sid: {} for sid in todo}
        for sid, mid, active, compacted in self.source.message_flags(todo):
            if mid <= stored[sid][LAST_MESSAGE_KEY]:
                file_rows[sid][mid] = (active, compacted)
        ours: dict[str, list[Message]] = {sid: [] for sid in todo}
        fields = ("pk", "session_id", "hermes_id", "active", "compacted", "role", "timestamp")
        messages = Message.objects.using(self.using).only(*fields)
        for start in range(0, len(todo), 900):
            for message in messages.filter(session_id__in=todo[start : start + 900]).order_by("pk"):
                ours[message.session_id].append(message)
        legacy = [sid for sid in todo if any(m.hermes_id is None for m in ours[sid])]
        if legacy:
            self._adopt(page, legacy, ours, stored)
        changed, deleted, lost = [], [], {}  # lost: pk -> (session, sign): active rows gained (+1) or lost (-1)
        for sid in todo:
            rows = file_rows[sid]
            for message in ours[sid]:
                if message.hermes_id is None:
                    continue  # saved here, not imported (or not paired): not hermes' to change
                flags = rows.get(message.hermes_id)
                if flags is None:
                    deleted.append(message.pk)
                    if message.active:
                        lost[message.pk] = (sid, -1)
                elif flags != (message.active, message.compacted):
                    if flags[0] != message.active:
                        lost[message.pk] = (sid, 1 if flags[0] else -1)
                    message.active, message.compacted = flags
                    changed.append(message)
        page.messages_flags_changed += len(changed)
        page.messages_removed += len(deleted)
        if self.dry_run:
            return
        increments = {sid: {"message_count": 0, "tool_call_count": 0} for sid in todo}
        calls = Message.objects.using(self.using).filter(tool_calls__isnull=False).values_list("pk", "tool_calls")
        tool_calls = dict(in_chunks(calls, lost))
        for pk, (sid, sign) in lost.items():
            increments[sid]["message_count"] += sign
            increments[sid]["tool_call_count"] += sign * tool_call_total(tool_calls.get(pk))
        self.writer.set_message_flags(changed)
        self.writer.delete_messages(deleted)
        updates = []
        for sid in todo:
            rows = file_rows[sid]
            signature = [len(rows), sum(1 for active, _ in rows.values() if active)]
            updates.append((sid, increments[sid], {**stored[sid], MESSAGE_FLAGS_KEY: signature}))
        self.writer.update_sessions(updates)

    def _adopt(self, page: ImportResult, sids: list[str], ours: dict, stored: dict) -> None:
        """Give messages imported before hermes ids were kept the id of their file row: walk both in
        order, pairing equal role and timestamp; a file row without a partner was skipped then."""
        keys: dict[str, list] = {sid: [] for sid in sids}
        for sid, mid, role, timestamp in self.source.message_keys(sids):
            if mid <= stored[sid][LAST_MESSAGE_KEY]:
                keys[sid].append((mid, role, _moment(timestamp)))
        adopted = []
        for sid in sids:
            waiting = [m for m in ours[sid] if m.hermes_id is None]
            index = 0
            for mid, role, moment in keys[sid]:
                if index < len(waiting) and (waiting[index].role, waiting[index].timestamp) == (role, moment):
                    waiting[index].hermes_id = mid
                    adopted.append(waiting[index])
                    index += 1
            if index < len(waiting):
                page.warn(
                    f"session {sid}: {len(waiting) - index} messages imported by an earlier version match no row "
                    "of the file; their undo/compaction flags are not followed"
                )
        if adopted and not self.dry_run:
            self.writer.set_hermes_ids(adopted)


def _moment(value):
    """A hermes timestamp as the importer stores it (Unix seconds -> aware UTC), or None."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return dt.datetime.fromtimestamp(value, dt.UTC)
        except (OverflowError, OSError, ValueError):
            return None
    return None
