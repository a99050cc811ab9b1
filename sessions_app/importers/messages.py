"""The message pages of a run: each session's messages above its mark, with its counters and mark
moved in the same transaction.

A message is imported only into a session of this file, of the profile this file gives it: a
message row naming a session the file does not hold (an orphan, or another profile's session) is
skipped, counted and named by rowid and session id, and never moves any mark."""

from sessions_app.importers.report import ImportResult
from sessions_app.importers.rows import RowConverter, RowError
from sessions_app.importers.source import Source
from sessions_app.importers.writer import LAST_MESSAGE_KEY, MESSAGE_FLAGS_KEY, Writer, in_chunks
from sessions_app.models import Session
from sessions_app.validation import shown


class MessagePages:
    """Imports message pages; ``skipped_sessions`` are the session rows the session pages skipped
    (their messages were counted there already); ``profile_of`` gives a session's profile from its
    row's ``profile_name`` (``SessionPages.profile_of``)."""

    def __init__(
        self, source: Source, rows: RowConverter, writer: Writer, *, dry_run: bool, skipped_sessions: set, profile
    ):
        self.source, self.rows, self.writer, self.dry_run = source, rows, writer, dry_run
        self.using = writer.using
        self.skipped_sessions = skipped_sessions
        self.default_profile = profile

    def write(self, page: ImportResult, rows: list) -> None:
        """Import one page of message rows: those above their session's mark, counters grown by exactly
        the active ones, marks moved only by rows of the file's own sessions."""
        sessions = Session.objects.using(self.using)
        ids = {row[1] for row in rows} - self.skipped_sessions
        # The file's own sessions among them, with the profile the file gives each.
        owners = {
            sid: named or self.default_profile
            for sid, named in self.source.session_profiles(sid for sid in ids if isinstance(sid, str)).items()
        }
        found = (sessions if self.dry_run else sessions.select_for_update()).values_list("pk", "extra", "profile")
        known = {pk: extra for pk, extra, profile in in_chunks(found, owners) if owners[pk] == profile}
        if self.dry_run:  # sessions this dry run would have created
            for sid in owners.keys() - known.keys():
                known[sid] = {LAST_MESSAGE_KEY: 0}
        new, touched = [], {}
        message_values, flags = self.rows.message_values, self.source.has_flags
        for row in rows:
            mid, sid = row[0], row[1]
            if sid in self.skipped_sessions:  # counted with their session (a conflict: stored, not ours)
                continue
            extra = known.get(sid)
            if not isinstance(extra, dict) or LAST_MESSAGE_KEY not in extra:
                page.messages_skipped += 1
                if sid in owners:  # the file's session, but not one this run imports (not ours)
                    page.skip("message: its session was not imported", f"rowid {mid} (session {shown(sid)})")
                else:
                    page.skip("message: no session row in the file", f"rowid {mid} (session {shown(sid)})")
                continue
            state = touched.get(sid)
            if mid <= (state[0] if state else extra[LAST_MESSAGE_KEY]):
                continue  # imported by an earlier run
            if state is None:
                state = touched[sid] = [mid, 0, 0, 0, 0]  # mark, active added, tool calls, rows seen, active seen
            state[0] = mid  # the mark passes skipped bad rows too: they are reported once
            state[3] += 1
            try:
                values, tool_calls, active = message_values(row)
            except RowError as exc:
                page.messages_skipped += 1
                page.skip(f"message: {exc.reason}", f"rowid {mid}")
                page.warn(f"message {mid} of session {sid}: {exc.reason} ({exc.detail}); skipped")
                if flags:
                    state[4] += self.source.active_of(row)
                continue
            new.append(values)
            if active:
                state[1] += 1
                state[2] += tool_calls
                state[4] += 1
        page.messages_imported += len(new)
        if self.dry_run or not touched:
            return
        changes = []
        for sid, (mark, active, tool_calls, seen, seen_active) in touched.items():
            extra = {**known[sid], LAST_MESSAGE_KEY: mark}
            if flags and isinstance(extra.get(MESSAGE_FLAGS_KEY), list):
                rows_seen, active_seen = extra[MESSAGE_FLAGS_KEY]
                extra[MESSAGE_FLAGS_KEY] = [rows_seen + seen, active_seen + seen_active]
            changes.append((sid, {"message_count": active, "tool_call_count": tool_calls}, extra))
        self.writer.append_messages(new, changes)
