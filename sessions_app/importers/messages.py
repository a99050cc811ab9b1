"""The message pages of a run: each session's messages above its mark, with its counters and mark
moved in the same transaction."""

from sessions_app.importers.report import ImportResult
from sessions_app.importers.rows import RowConverter, RowError
from sessions_app.importers.source import Source
from sessions_app.importers.writer import LAST_MESSAGE_KEY, Writer, in_chunks
from sessions_app.models import Session


class MessagePages:
    """Imports message pages; ``skipped_sessions`` are the session rows the session pages skipped
    (their messages were counted there already)."""

    def __init__(self, source: Source, rows: RowConverter, writer: Writer, *, dry_run: bool, skipped_sessions: set):
        self.source, self.rows, self.writer, self.dry_run = source, rows, writer, dry_run
        self.using = writer.using
        self.skipped_sessions = skipped_sessions

    def write(self, page: ImportResult, rows: list) -> None:
        """Import one page of message rows: those above their session's mark, counters grown by exactly those."""
        sessions = Session.objects.using(self.using)
        ids = {row[1] for row in rows}
        found = (sessions if self.dry_run else sessions.select_for_update()).values_list(
            "pk", "extra", "message_count", "tool_call_count"
        )
        known = {
            pk: (extra, message_count, tool_call_count)
            for pk, extra, message_count, tool_call_count in in_chunks(found, ids)
        }
        if self.dry_run:  # sessions this dry run would have created
            for sid in self.source.existing_sessions(ids - known.keys() - self.skipped_sessions):
                known[sid] = ({LAST_MESSAGE_KEY: 0}, 0, 0)
        new, touched = [], {}
        message_values = self.rows.message_values
        for row in rows:
            mid, sid = row[0], row[1]
            if sid in self.skipped_sessions:  # counted with their session (a conflict: stored, not ours)
                continue
            extra = known.get(sid, (None,))[0]
            if not isinstance(extra, dict) or LAST_MESSAGE_KEY not in extra:
                page.messages_skipped += 1
                page.skip("message: no session row in the file", f"rowid {mid}")
                continue
            state = touched.get(sid)
            if mid <= (state[0] if state else extra[LAST_MESSAGE_KEY]):
                continue  # imported by an earlier run
            if state is None:
                state = touched[sid] = [mid, 0, 0]
            state[0] = mid  # the mark passes skipped bad rows too: they are reported once
            try:
                values, tool_calls = message_values(row)
            except RowError as exc:
                page.messages_skipped += 1
                page.skip(f"message: {exc.reason}", f"rowid {mid}")
                page.warn(f"message {mid} of session {sid}: {exc.reason} ({exc.detail}); skipped")
                continue
            new.append(values)
            state[1] += 1
            state[2] += tool_calls
        page.messages_imported += len(new)
        if self.dry_run or not touched:
            return
        counters = []
        for sid, (mark, added, tool_calls) in touched.items():
            extra, message_count, tool_call_count = known[sid]
            extra = {**extra, LAST_MESSAGE_KEY: mark}
            counters.append((extra, message_count + added, tool_call_count + tool_calls, sid))
        self.writer.append_messages(new, counters)
