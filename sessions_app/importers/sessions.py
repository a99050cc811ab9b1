"""The session pages of a run: create the sessions we lack, refresh the ones imported before (and
their per-model usage), and link each to a parent already stored, or leave the link to the linking
pass (``links``).

A session's profile is its row's ``profile_name`` (schema 30) where the row names one, else the
run's profile (``--profile``, or the file's path). A session id already stored under another
profile is a conflict, not the same session: the stored one stays, the row is skipped with its
messages and named in ``ImportResult.conflicts``."""

import hashlib

from agents_app.models import LanguageModel
from agents_app.registry import language_model
from sessions_app.counts import RateRow, model_key
from sessions_app.importers.report import MAX_NAMED, ImportResult
from sessions_app.importers.rows import RowConverter, RowError
from sessions_app.importers.source import Source
from sessions_app.importers.usage import UsageSync
from sessions_app.importers.writer import (
    BOOKKEEPING_KEYS,
    DROPPED_PARENT_KEY,
    LAST_MESSAGE_KEY,
    MESSAGE_FLAGS_KEY,
    MISSING_PARENT_KEY,
    ROW_KEY,
    SYNCED_FIELDS,
    Writer,
    in_chunks,
)
from sessions_app.models import Session
from sessions_app.validation import shown

# Bumped whenever the conversion of a row changes, so that rows imported before are converted again.
CONVERSION = 1
# Prompts kept in memory by a run (hermes stores each prompt once; most sessions share a few).
PROMPT_CACHE_CHARS = 64 * 1024 * 1024


class SessionPages:
    """What the session pages of one run decided: the sessions skipped (their messages are skipped
    too), the links left for the linking pass, the model ids, where the message pages start, and the
    sessions whose imported messages hermes changed in place (``flag_checks``)."""

    def __init__(
        self, source: Source, rows: RowConverter, writer: Writer, *, dry_run: bool, profile: str, explicit: bool
    ):
        self.source, self.rows, self.writer, self.dry_run = source, rows, writer, dry_run
        self.profile, self.explicit = profile, explicit
        self.using = writer.using
        self.skipped: set[str] = set()
        # Sessions of this run imported without their parent, which is in the file further on:
        # child -> parent. The linking pass links them unless that parent row is skipped.
        self.links_ahead: dict[str, str] = {}
        self.first_message_after: int | None = None  # where the message pages start; None: nothing to do
        # Sessions with messages to import: session -> (its mark, about how many rows follow it).
        self.pending: dict[str, tuple[int, int]] = {}
        # Sessions imported earlier whose messages in the file are not what we last saw: session ->
        # the file's (rows, active rows). The flag pass follows them after the message pages.
        self.flag_checks: dict[str, tuple[int, int]] = {}
        self.models: dict[str, int | None] = {}
        self._page_models: dict[str, int | None] = {}
        self._prompts: dict[str, str] = {}
        self._prompt_chars = 0
        self.usage = UsageSync(source, rows, writer, model_id=self._model_id, dry_run=dry_run)

    def page_committed(self) -> None:
        """Keep the model ids the page found: only once committed, so no id of a rolled-back row."""
        self.models.update(self._page_models)
        self._page_models = {}

    def profile_of(self, fields: dict) -> str:
        """The session's profile: its row's ``profile_name``, else the run's."""
        return fields["profile"] or self.profile

    def write(self, page: ImportResult, rows: list, bounds: dict) -> None:
        """Import one page of session rows (``bounds``: ``Source.message_bounds`` of their messages).

        A session imported before whose row, usage rows and messages are all as the last run saw
        them (``ROW_KEY``, the mark, ``MESSAGE_FLAGS_KEY``) is counted unchanged and not converted,
        compared or even loaded: a re-import with nothing new reads each session row once."""
        self._page_models = {}
        sessions = Session.objects.using(self.using)
        locked = sessions if self.dry_run else sessions.select_for_update()
        ids = [row[0] for row in rows]
        # Read without a lock: a session found unchanged is not written, so it need not be locked
        # (on PostgreSQL a row lock is a write); the ones to refresh are locked and read again below.
        found = in_chunks(sessions.values_list("pk", "profile", "extra"), ids)
        stored = {pk: (profile, extra) for pk, profile, extra in found}
        usage = self.usage.read(ids)
        todo = []
        named_at = self.source.session_names.index("profile_name")
        for row in rows:
            sid = row[0]
            digest = row_digest(row, usage.get(sid, ()), self.profile)
            if sid not in self.source.duplicate_ids and self._unchanged(sid, digest, stored.get(sid), bounds.get(sid)):
                page.sessions_unchanged += 1
                named = row[named_at]
                self._count_profile(page, sid, named, named or self.profile)
            else:
                todo.append((row, digest))
        rows = [row for row, _ in todo]
        digests = {row[0]: digest for row, digest in todo}
        existing = {s.pk: s for s in in_chunks(locked, [row[0] for row in rows if row[0] in stored])}
        prompts = self._page_prompts(rows)
        new, changed, parents, kept = [], [], {}, []
        # Per page, not per run: a page retried after a transient conflict must see the first copy
        # again. The copies of an id are never split: the next page starts after the id.
        duplicates_seen: set[str] = set()
        for row in rows:
            values = dict(zip(self.source.session_names, row, strict=True))
            sid = values["id"]
            if sid in self.source.duplicate_ids:  # a crafted file: the first copy is imported
                if sid in duplicates_seen:
                    continue  # counted with the first copy
                duplicates_seen.add(sid)
                page.skip("session: duplicate id in the file", shown(sid), self.source.duplicate_ids[sid] - 1)
            try:
                self.rows.check_session_id(sid)
                fields, model, parent, extra = self.rows.session_fields(values, prompts)
            except RowError as exc:
                self._skip(page, sid, exc, bounds.get(sid))
                continue
            profile = fields["profile"] = self.profile_of(fields)
            self._count_profile(page, sid, values["profile_name"], profile)
            if sid in existing and existing[sid].profile != profile:
                self._conflict(page, existing[sid], profile, bounds.get(sid))
                continue
            extra[ROW_KEY] = digests[sid]
            if sid in existing:
                if self._refresh(page, existing[sid], fields, model, extra, bounds.get(sid), changed):
                    kept.append(sid)
                continue
            extra[LAST_MESSAGE_KEY] = 0
            if self.source.has_flags:
                extra[MESSAGE_FLAGS_KEY] = [0, 0]  # nothing of the file's messages seen yet
            session = {"id": sid, "model_id": self._model_id(page, model), "parent_session_id": None, "extra": extra}
            session.update(fields, message_count=0, tool_call_count=0, has_messages=False)
            if parent == sid:
                extra[DROPPED_PARENT_KEY] = sid
                page.parent_cycles_broken += 1
                page.warn(f"session {sid}: is its own parent (a cycle); link dropped")
            elif parent:
                parents[sid] = parent
            new.append(session)
            kept.append(sid)
            key = model_key(model)  # as the reports key it: "(none)" for no model
            empty = sid not in bounds
            page.by_model[key] = page.by_model.get(key, RateRow(key)) + RateRow(key, 1, int(empty))
            if empty:
                page.empty_sessions += 1
            else:
                self._start_messages_after(sid, bounds[sid][0] - 1, bounds[sid][2])
        self._resolve_parents(page, new, parents)
        page.sessions_imported += len(new)
        page.sessions_updated += len(changed)
        if not self.dry_run:
            self.writer.create_sessions(new)
            self.writer.refresh_sessions(changed)
        self.usage.write(page, kept, {s["id"] for s in new}, usage)

    def _unchanged(self, sid: str, digest: str, stored, bounds) -> bool:
        """Whether the session was imported from this very row and usage, with every message of the
        file up to the last one, flags as they are now."""
        if stored is None or not isinstance(stored[1], dict):
            return False
        extra = stored[1]
        if extra.get(ROW_KEY) != digest or LAST_MESSAGE_KEY not in extra:
            return False
        if bounds and bounds[1] > extra[LAST_MESSAGE_KEY]:
            return False  # new messages
        seen = [bounds[2], bounds[3]] if bounds else [0, 0]
        return not self.source.has_flags or extra.get(MESSAGE_FLAGS_KEY) == seen

    def _page_prompts(self, rows: list) -> dict[str, str]:
        """The prompts of the page's rows that name one by hash (schema 30), from a bounded cache."""
        if not self.source.has_prompts:
            return {}
        names = self.source.session_names
        text, digest = names.index("system_prompt"), names.index("system_prompt_hash")
        wanted = {row[digest] for row in rows if not row[text] and isinstance(row[digest], str)}
        missing = wanted - self._prompts.keys()
        if missing:
            found = self.source.prompts(missing)
            if self._prompt_chars > PROMPT_CACHE_CHARS:
                self._prompts, self._prompt_chars = {}, 0
            for key, prompt in found.items():
                self._prompts[key] = prompt
                self._prompt_chars += len(prompt) if isinstance(prompt, str) else 0
        return {key: self._prompts[key] for key in wanted if key in self._prompts}

    def _count_profile(self, page: ImportResult, sid: str, named, profile: str) -> None:
        """Count the session's profile; name a row whose profile_name overrides an explicit --profile."""
        page.sessions_by_profile[profile] += 1
        if named and profile != self.profile and self.explicit:
            page.profile_disagreements += 1
            if len(page.disagreeing_sessions) < MAX_NAMED:
                page.disagreeing_sessions.append({"session": sid, "profile_name": profile})

    def _skip(self, page: ImportResult, sid, exc: RowError, bounds) -> None:
        """Skip a session row and, counted here once, its messages (the message pages pass over them)."""
        if isinstance(sid, str):
            self.skipped.add(sid)
        page.sessions_skipped += 1
        page.skip(f"session: {exc.reason}", shown(sid))
        if bounds:
            page.messages_skipped += bounds[2]
            page.skip("message: its session was skipped", f"{bounds[2]:,} of session {shown(sid)}", bounds[2])
        page.warn(f"session {shown(sid)}: {exc.reason} ({exc.detail}); skipped with its messages")

    def _conflict(self, page: ImportResult, session: Session, profile: str, bounds) -> None:
        """The id is stored from another profile: a different conversation; the stored one stays."""
        page.conflicts.append({"session": session.pk, "stored_profile": session.profile, "profile": profile})
        reason = RowError("id already imported from another profile", f"stored from profile {session.profile!r}")
        self._skip(page, session.pk, reason, bounds)

    def _refresh(self, page, session: Session, fields: dict, model, extra: dict, bounds, changed: list) -> bool:
        """A session already in our database: refresh what hermes updates in place, find new
        messages, and note whether hermes changed the messages imported before. False when the
        stored session is not one of ours to refresh (skipped)."""
        current = session.extra if isinstance(session.extra, dict) else {}
        if LAST_MESSAGE_KEY not in current:
            reason = RowError("id already used by a session not imported from hermes", "left unchanged")
            self._skip(page, session.pk, reason, bounds)
            return False
        ours = {k: current[k] for k in BOOKKEEPING_KEYS if k in current and k != ROW_KEY}
        updates = {name: fields[name] for name in SYNCED_FIELDS if getattr(session, name) != fields[name]}
        if session.model_id is None and model:  # hermes fills in a model it did not know at first
            updates["model_id"] = self._model_id(page, model)
        if {**extra, **ours} != current:
            updates["extra"] = {**extra, **ours}
        if updates:
            for name, value in updates.items():
                setattr(session, name, value)
            changed.append((session, tuple("model" if name == "model_id" else name for name in updates)))
        else:
            page.sessions_unchanged += 1
        mark = current[LAST_MESSAGE_KEY]
        if bounds and bounds[1] > mark:
            self._start_messages_after(session.pk, max(mark, bounds[0] - 1), bounds[2])
        if self.source.has_flags:
            seen = (bounds[2], bounds[3]) if bounds else (0, 0)
            if current.get(MESSAGE_FLAGS_KEY) != list(seen):
                self.flag_checks[session.pk] = seen
        return True

    def _start_messages_after(self, sid: str, message_id: int, rows: int) -> None:
        self.pending[sid] = (message_id, rows)
        if self.first_message_after is None or message_id < self.first_message_after:
            self.first_message_after = message_id

    def _resolve_parents(self, page: ImportResult, new: list[dict], parents: dict[str, str]) -> None:
        """Link to parents already stored (same profile) and not in the file; leave the links to
        parents in the file to the linking pass, which makes them in id order, whatever the pages,
        and breaks cycles there."""
        if not parents:
            return
        wanted = set(parents.values())
        in_file = self.source.existing_sessions(wanted)
        stored = Session.objects.using(self.using).values_list("pk", "profile")
        in_db = dict(in_chunks(stored, wanted - in_file))
        for session in new:
            parent = parents.get(session["id"])
            if parent is None:
                continue
            if in_db.get(parent) == session["profile"]:
                session["parent_session_id"] = parent
                page.parents_linked += 1
                continue
            session["extra"][MISSING_PARENT_KEY] = parent
            if parent in in_file and parent not in self.skipped:
                self.links_ahead[session["id"]] = parent
            elif parent in self.skipped:
                parent_skipped(page, session["id"], parent)
            else:
                page.parents_missing += 1
                page.warn(f"session {session['id']}: parent {parent!r} is not in the file; imported unlinked")

    def _model_id(self, page: ImportResult, name: str | None) -> int | None:
        """The model's id; the registry creates it unless this is a dry run, which counts it only."""
        if not name:
            return None
        if name in self.models:
            return self.models[name]
        if name not in self._page_models:
            # Looked up first, so that the run can count the models it creates (the registry
            # does not say); a dry run stops there.
            model_id = LanguageModel.objects.using(self.using).filter(name=name).values_list("pk", flat=True).first()
            if model_id is None:
                page.models_created += 1
                if not self.dry_run:
                    model_id = language_model(name, using=self.using).pk
            self._page_models[name] = model_id
        return self._page_models[name]


def parent_skipped(page: ImportResult, child: str, parent: str) -> None:
    page.parents_missing += 1
    page.warn(f"session {child}: parent {parent!r} was skipped; imported unlinked")


def row_digest(row: tuple, usage: list, profile: str) -> str:
    """A fingerprint of a session row as read from the file, its usage rows and the run's profile
    (for rows without one): equal digests mean the same values to import (``ROW_KEY``)."""
    text = repr((CONVERSION, profile, row, sorted(usage, key=repr)))
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=12).hexdigest()
