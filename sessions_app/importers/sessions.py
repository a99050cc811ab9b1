"""The session pages of a run: create the sessions we lack, refresh the ones imported before, and
link each to a parent already stored, or leave the link to the linking pass (``links``).

A session id already stored under another profile is a conflict, not the same session: the stored
one stays, the row is skipped with its messages and named in ``ImportResult.conflicts``."""

from agents_app.models import LanguageModel
from agents_app.registry import language_model
from sessions_app.counts import RateRow
from sessions_app.importers.report import NO_MODEL, ImportResult
from sessions_app.importers.rows import RowConverter, RowError
from sessions_app.importers.source import Source
from sessions_app.importers.writer import (
    DROPPED_PARENT_KEY,
    LAST_MESSAGE_KEY,
    MISSING_PARENT_KEY,
    SYNCED_FIELDS,
    Writer,
    in_chunks,
)
from sessions_app.models import Session
from sessions_app.validation import shown


class SessionPages:
    """What the session pages of one run decided: the sessions skipped (their messages are skipped
    too), the links left for the linking pass, the model ids, and where the message pages start."""

    def __init__(self, source: Source, rows: RowConverter, writer: Writer, *, dry_run: bool, profile: str):
        self.source, self.rows, self.writer, self.dry_run = source, rows, writer, dry_run
        self.profile = profile
        self.using = writer.using
        self.skipped: set[str] = set()
        # Sessions of this run imported without their parent, which is in the file further on:
        # child -> parent. The linking pass links them unless that parent row is skipped.
        self.links_ahead: dict[str, str] = {}
        self.first_message_after: int | None = None  # where the message pages start; None: nothing to do
        self.models: dict[str, int | None] = {}
        self._page_models: dict[str, int | None] = {}

    def page_committed(self) -> None:
        """Keep the model ids the page found: only once committed, so no id of a rolled-back row."""
        self.models.update(self._page_models)
        self._page_models = {}

    def write(self, page: ImportResult, rows: list, bounds: dict) -> None:
        """Import one page of session rows (``bounds``: ``Source.message_bounds`` of their messages)."""
        self._page_models = {}
        sessions = Session.objects.using(self.using)
        ids = [row[0] for row in rows]
        existing = {s.pk: s for s in in_chunks(sessions if self.dry_run else sessions.select_for_update(), ids)}
        new, changed, parents = [], [], {}
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
                fields, model, parent, extra = self.rows.session_fields(values)
            except RowError as exc:
                self._skip(page, sid, exc, bounds.get(sid))
                continue
            if sid in existing and existing[sid].profile != self.profile:
                self._conflict(page, existing[sid], bounds.get(sid))
                continue
            if sid in existing:
                self._refresh(page, existing[sid], fields, extra, bounds.get(sid), changed)
                continue
            extra[LAST_MESSAGE_KEY] = 0
            session = {"id": sid, "model_id": self._model_id(page, model), "parent_session_id": None, "extra": extra}
            session.update(fields, message_count=0, tool_call_count=0, has_messages=False, profile=self.profile)
            if parent == sid:
                extra[DROPPED_PARENT_KEY] = sid
                page.parent_cycles_broken += 1
                page.warn(f"session {sid}: is its own parent (a cycle); link dropped")
            elif parent:
                parents[sid] = parent
            new.append(session)
            key = model or NO_MODEL
            empty = sid not in bounds
            page.by_model[key] = page.by_model.get(key, RateRow(key)) + RateRow(key, 1, int(empty))
            if empty:
                page.empty_sessions += 1
            else:
                self._start_messages_after(bounds[sid][0] - 1)
        self._resolve_parents(page, new, parents)
        page.sessions_imported += len(new)
        page.sessions_updated += len(changed)
        if not self.dry_run:
            self.writer.create_sessions(new)
            self.writer.refresh_sessions(changed)

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

    def _conflict(self, page: ImportResult, session: Session, bounds) -> None:
        """The id is stored from another profile: a different conversation; the stored one stays."""
        page.conflicts.append({"session": session.pk, "stored_profile": session.profile, "profile": self.profile})
        reason = RowError("id already imported from another profile", f"stored from profile {session.profile!r}")
        self._skip(page, session.pk, reason, bounds)

    def _refresh(self, page: ImportResult, session: Session, fields: dict, extra: dict, bounds, changed: list) -> None:
        """A session already in our database: refresh what hermes updates, find new messages."""
        current = session.extra if isinstance(session.extra, dict) else {}
        if LAST_MESSAGE_KEY not in current:
            reason = RowError("id already used by a session not imported from hermes", "left unchanged")
            self._skip(page, session.pk, reason, bounds)
            return
        ours = {k: v for k, v in current.items() if k in (LAST_MESSAGE_KEY, MISSING_PARENT_KEY, DROPPED_PARENT_KEY)}
        updates = {name: fields[name] for name in SYNCED_FIELDS if getattr(session, name) != fields[name]}
        if {**extra, **ours} != current:
            updates["extra"] = {**extra, **ours}
        if updates:
            for name, value in updates.items():
                setattr(session, name, value)
            changed.append(session)
        else:
            page.sessions_unchanged += 1
        if bounds and bounds[1] > current[LAST_MESSAGE_KEY]:
            self._start_messages_after(max(current[LAST_MESSAGE_KEY], bounds[0] - 1))

    def _start_messages_after(self, message_id: int) -> None:
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
        stored = Session.objects.using(self.using).filter(profile=self.profile).values_list("pk", flat=True)
        in_db = set(in_chunks(stored, wanted - in_file))
        for session in new:
            parent = parents.get(session["id"])
            if parent is None:
                continue
            if parent in in_db:
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
