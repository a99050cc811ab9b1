"""The session pages of a run: create the sessions we lack, refresh the ones imported before, and
link each to its parent, now or in the linking pass once the parent exists."""

from agents_app.models import LanguageModel
from agents_app.registry import language_model
from sessions_app.importers.report import NO_MODEL, ImportResult, ModelTally
from sessions_app.importers.rows import RowConverter, RowError
from sessions_app.importers.source import Source
from sessions_app.importers.writer import LAST_MESSAGE_KEY, MISSING_PARENT_KEY, SYNCED_FIELDS, Writer, in_chunks
from sessions_app.models import DEFAULT_PROFILE, Session


class SessionPages:
    """What the session pages of one run decided: the sessions skipped (their messages are skipped
    too), the links left for the linking pass, the model ids, and where the message pages start."""

    def __init__(self, source: Source, rows: RowConverter, writer: Writer, *, dry_run: bool):
        self.source, self.rows, self.writer, self.dry_run = source, rows, writer, dry_run
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
        for row in rows:
            values = dict(zip(self.source.session_names, row, strict=True))
            sid = values["id"]
            try:
                self.rows.check_session_id(sid)
                fields, model, parent, extra = self.rows.session_fields(values)
            except RowError as exc:
                self._skip(page, sid, exc, bounds.get(sid))
                continue
            if sid in existing:
                self._refresh(page, existing[sid], fields, extra, bounds.get(sid), changed)
                continue
            extra[LAST_MESSAGE_KEY] = 0
            session = {"id": sid, "model_id": self._model_id(page, model), "parent_session_id": None, "extra": extra}
            session.update(fields, message_count=0, tool_call_count=0, has_messages=False, profile=DEFAULT_PROFILE)
            if parent == sid:
                page.warn(f"session {sid}: is its own parent; link dropped")
            elif parent:
                parents[sid] = parent
            new.append(session)
            tally = page.by_model.setdefault(model or NO_MODEL, ModelTally())
            tally.sessions += 1
            if sid in bounds:
                self._start_messages_after(bounds[sid][0] - 1)
            else:
                tally.empty += 1
                page.empty_sessions += 1
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
        page.skip_reasons[f"session: {exc.reason}"] += 1
        if bounds:
            page.messages_skipped += bounds[2]
            page.skip_reasons["message: its session was skipped"] += bounds[2]
        page.warn(f"session {sid!r}: {exc.reason} ({exc.detail}); skipped with its messages")

    def _refresh(self, page: ImportResult, session: Session, fields: dict, extra: dict, bounds, changed: list) -> None:
        """A session already in our database: refresh what hermes updates, find new messages."""
        current = session.extra if isinstance(session.extra, dict) else {}
        if LAST_MESSAGE_KEY not in current:
            reason = RowError("id already used by a session not imported from hermes", "left unchanged")
            self._skip(page, session.pk, reason, bounds)
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
            page.sessions_unchanged += 1
        if bounds and bounds[1] > current[LAST_MESSAGE_KEY]:
            self._start_messages_after(max(current[LAST_MESSAGE_KEY], bounds[0] - 1))

    def _start_messages_after(self, message_id: int) -> None:
        if self.first_message_after is None or message_id < self.first_message_after:
            self.first_message_after = message_id

    def _resolve_parents(self, page: ImportResult, new: list[dict], parents: dict[str, str]) -> None:
        """Link to parents already in our database; mark the others for the linking pass."""
        if not parents:
            return
        in_db = set(in_chunks(Session.objects.using(self.using).values_list("pk", flat=True), set(parents.values())))
        in_file = self.source.existing_sessions(set(parents.values()) - in_db)
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
                self._parent_skipped(page, session["id"], parent)
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

    # -- the linking pass ---------------------------------------------------------------------

    @staticmethod
    def _parent_skipped(page: ImportResult, child: str, parent: str) -> None:
        page.parents_missing += 1
        page.warn(f"session {child}: parent {parent!r} was skipped; imported unlinked")

    def count_links_ahead(self, result: ImportResult) -> None:
        """Dry run: count the links the linking pass would make, now that every skipped session row
        is known (a parent further on in the file may be one of them)."""
        for child, parent in self.links_ahead.items():
            if parent in self.skipped:
                self._parent_skipped(result, child, parent)
            else:
                result.parents_linked += 1

    def link(self, page: ImportResult, ids: list[str]) -> None:
        """Link the sessions ``ids`` (imported without their parent) to the parent, where it exists now."""
        sessions = in_chunks(Session.objects.using(self.using).select_for_update().only("pk", "extra"), ids)
        wanted = {s.extra.get(MISSING_PARENT_KEY) for s in sessions if isinstance(s.extra, dict)} - {None}
        found = set(in_chunks(Session.objects.using(self.using).values_list("pk", flat=True), wanted))
        linked = []
        for session in sessions:
            parent = (session.extra or {}).get(MISSING_PARENT_KEY)
            if parent in found and parent != session.pk:
                session.parent_session_id = parent
                session.extra = {k: v for k, v in session.extra.items() if k != MISSING_PARENT_KEY}
                linked.append(session)
            elif self.links_ahead.get(session.pk) == parent and parent in self.skipped:
                self._parent_skipped(page, session.pk, parent)
        self.writer.link_parents(linked)
        page.parents_linked += len(linked)
