"""Import a hermes-agent ``state.db`` into our sessions and messages: the engine of ``import_hermes``.

The source may belong to a running agent: it is opened read-only and read in short keyset pages
(``source``). Each page is one transaction of ours (``run``), its rows converted (``rows``) and
written in batches (``writer``) by the session or message pages (``sessions``, ``messages``).

Idempotent and incremental without a table of its own: each imported session carries
``extra["hermes_last_message_id"]``, the highest source message id already imported for it
(hermes message ids are AUTOINCREMENT, so new messages always get higher ids). A run creates the
sessions we do not have (and refreshes the mutable columns of those we imported: end time,
tokens, cost, title), then imports each session's messages above its mark. Counters grow by
exactly the rows inserted, in the transaction that inserts them and moves the mark; the source's
``message_count``/``tool_call_count`` (often stale) are never copied.

Decisions:
- Parents: a session whose parent is not in our database yet is inserted unlinked, with
  ``extra["hermes_missing_parent_id"]``; after the sessions, every such session whose parent now
  exists (later in the file, or from an earlier/later import) is linked and the key dropped. A
  parent missing from the file stays unlinked with the key kept.
- NUL characters (PostgreSQL cannot store them) in imported text and JSON, and invalid UTF-8, are
  replaced by U+FFFD on every backend alike and counted (``values_repaired``).
- A row we cannot store exactly (invalid JSON, unknown role, a value too long for its column, a
  bad timestamp) is skipped with a warning and counted; the rest of the file still imports.
  Messages of a session that was not imported are skipped too.
- Messages get no ``model``: hermes records a model per session only.
- The daily rollup: each page marks the past days of the sessions it created, refreshed or gave
  messages, in its own transaction; the marks are folded at the end of the run (after an error
  too: the committed pages stay), so every report agrees with the new rows at every commit.
"""

import time
from collections.abc import Callable
from contextlib import closing, suppress
from pathlib import Path

from django.core.exceptions import ValidationError
from django.db import DEFAULT_DB_ALIAS, DatabaseError, IntegrityError, InterfaceError, transaction
from django.utils import timezone

from agents_app.conf import hermes_settings
from agents_app.db import run_with_retry
from sessions_app import validation
from sessions_app.importers.links import ParentLinks
from sessions_app.importers.messages import MessagePages
from sessions_app.importers.report import ImportProgress, ImportResult
from sessions_app.importers.rows import RowConverter
from sessions_app.importers.sessions import SessionPages
from sessions_app.importers.source import HermesImportError, Source
from sessions_app.importers.writer import MISSING_PARENT_KEY, Writer, in_chunks
from sessions_app.models import DEFAULT_PROFILE, PROFILE_MAX_LENGTH, Session
from sessions_app.rollup import fold_marks, mark_days, old_day

DEFAULT_BATCH_SIZE = 2000


def profile_from_path(path) -> str:
    """The hermes profile a ``state.db`` belongs to, by where hermes keeps it:
    ``.../profiles/<name>/state.db`` is ``<name>``; any other path (``~/.hermes/state.db``) is the default."""
    path = Path(path).expanduser().absolute()
    return path.parent.name if path.parent.parent.name == "profiles" and path.parent.name else DEFAULT_PROFILE


def check_profile(profile) -> str:
    """A profile name the save path accepts, or a ``HermesImportError``."""
    try:
        return validation.check_identifier(profile, "profile", max_length=PROFILE_MAX_LENGTH)
    except ValidationError as exc:
        raise HermesImportError(f"Profile {validation.shown(profile)}: {' '.join(exc.messages)}") from None


def import_hermes_db(
    path,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    dry_run: bool = False,
    using: str = DEFAULT_DB_ALIAS,
    progress: Callable[[ImportProgress], None] | None = None,
    profile: str | None = None,
) -> ImportResult:
    """Import sessions and messages from a hermes-agent ``state.db``; safe to run again and again.

    Sessions get ``profile`` (default: ``profile_from_path(path)``). Each page of ``batch_size``
    rows is one transaction: a run that stops (``HermesImportError`` for a source that turns out
    corrupt, or for a database error: a lost connection, a full disk) keeps every page it committed
    and nothing half-written, and the next run carries on. ``dry_run`` reads and counts, writes nothing.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1.")
    profile = check_profile(profile_from_path(path) if profile is None else profile)
    with closing(Source(path)) as source:
        run = _Run(source, batch_size=batch_size, dry_run=dry_run, using=using, progress=progress, profile=profile)
        try:
            run.count_layout_skips()
            run.import_sessions()
            if dry_run:
                run.links.count_links_ahead(run.result)
            else:
                run.link_parents()
            run.import_messages()
        except (HermesImportError, DatabaseError, InterfaceError) as exc:
            # The pages committed before the error marked their days: fold them if the database
            # still answers (else the next run, read or build_rollup does).
            with suppress(DatabaseError, InterfaceError):
                fold_marks(using=using)
            r = run.result
            written = not dry_run and (r.sessions_imported or r.sessions_updated or r.messages_imported)
            if isinstance(exc, HermesImportError):
                if not written:
                    raise
                what = str(exc)
            else:
                what = f"The database failed during the import ({type(exc).__name__}: {exc})."
            if written:
                kept = (
                    f"The {r.sessions_imported:,} sessions and {r.messages_imported:,} messages imported before the"
                    " error are kept (whole batches only); run the import again to carry on from there."
                )
            else:
                kept = "Nothing was written from this file; run the import again once the database is back."
            raise HermesImportError(f"{what} {kept}") from exc
        fold_marks(using=using)
    run.result.elapsed = time.monotonic() - run.started
    return run.result


class _Run:
    """One import run: the pages, their transactions and retries, and what it has counted so far."""

    def __init__(self, source: Source, *, batch_size: int, dry_run: bool, using: str, progress, profile: str):
        self.source, self.batch_size, self.dry_run, self.using = source, batch_size, dry_run, using
        self.progress, self.profile = progress, profile
        self.result = ImportResult(path=str(source.path), dry_run=dry_run, profile=profile)
        self.started = time.monotonic()
        self.messages_total = 0
        self.writer = Writer(using)
        self.rows = RowConverter(
            source,
            now=timezone.now(),
            max_chars=hermes_settings.HERMES_MAX_CONTENT_CHARS,
            db_json=self.writer.db_json,
            db_time=self.writer.db_time,
        )
        self.sessions = SessionPages(source, self.rows, self.writer, dry_run=dry_run, profile=profile)
        self.links = ParentLinks(self.sessions)
        self.messages = MessagePages(
            source, self.rows, self.writer, dry_run=dry_run, skipped_sessions=self.sessions.skipped
        )

    def _write_page(self, func, *args, touched=()) -> None:
        """Run ``func(page, *args)`` in one transaction (retried on transient conflicts), marking the
        rollup's past days of the ``touched`` session ids when it wrote something; then merge its counts."""
        page = None

        def attempt():
            nonlocal page
            # Counts of this attempt only: a retried page is counted once.
            page = ImportResult(path=self.result.path, dry_run=self.dry_run, profile=self.profile)
            self.rows.repaired = 0
            if self.dry_run:
                return func(page, *args)
            with transaction.atomic(using=self.using):
                result = func(page, *args)
                if touched and (page.sessions_imported or page.sessions_updated or page.messages_imported):
                    self._mark(touched)
                return result

        try:
            run_with_retry(attempt, using=self.using)
        except IntegrityError:
            if self.dry_run or self.writer.connection.in_atomic_block:
                raise
            # Another import inserted some of these sessions meanwhile: redo the page once; it
            # now finds them (and their marks) and adds only the rest.
            run_with_retry(attempt, using=self.using)
        self.sessions.page_committed()
        page.values_repaired += self.rows.repaired + self.source.repaired
        self.source.repaired = 0
        self.result.add(page)
        return page

    def _mark(self, session_ids) -> None:
        """Mark the past UTC days of these sessions for the rollup (one query per 900 ids, and one INSERT)."""
        started = in_chunks(Session.objects.using(self.using).values_list("started_at", flat=True), session_ids)
        mark_days({day for moment in started if (day := old_day(moment)) is not None}, using=self.using)

    def _report(self, phase: str, messages_done: int) -> None:
        if self.progress:
            r = self.result
            self.progress(
                ImportProgress(
                    phase, r.sessions_imported + r.sessions_updated + r.sessions_skipped + r.sessions_unchanged,
                    r.sessions_in_file, messages_done, self.messages_total, time.monotonic() - self.started,
                )
            )  # fmt: skip

    def count_layout_skips(self) -> None:
        """Rows no page reaches (``Source.layout_skips``): counted and named once, before the pages."""
        for kind, reason, count, names in self.source.layout_skips:
            setattr(self.result, f"{kind}s_skipped", getattr(self.result, f"{kind}s_skipped") + count)
            for name in names:
                self.result.skip(f"{kind}: {reason}", name, 0)
            self.result.skip_reasons[f"{kind}: {reason}"] += count
            self.result.warn(f"{count:,} {kind} rows skipped: {reason} (e.g. {', '.join(names[:3])})")

    def import_sessions(self) -> None:
        """Every session row of the source, page by page."""
        self.result.sessions_in_file = self.source.count_sessions()
        after = ""
        while rows := self.source.sessions(after, self.batch_size):
            after = rows[-1][0]
            bounds = self.source.message_bounds(row[0] for row in rows)
            self._write_page(self.sessions.write, rows, bounds, touched=[row[0] for row in rows])
            self._report("sessions", 0)

    def link_parents(self) -> None:
        """Link sessions imported without their parent to the parent, where it exists now."""
        pending = Session.objects.using(self.using).filter(extra__has_key=MISSING_PARENT_KEY).order_by("pk")
        after = ""
        while page := list(pending.filter(pk__gt=after).values_list("pk", flat=True)[: self.batch_size]):
            after = page[-1]
            self._write_page(self.links.link, page)

    def import_messages(self) -> None:
        """The message rows from the first one a session page found new, page by page."""
        if self.sessions.first_message_after is None:
            return
        after = self.sessions.first_message_after
        self.messages_total = self.source.messages_after(after)
        done = 0
        while rows := self.source.messages(after, self.batch_size):
            after = rows[-1][0]
            self._write_page(self.messages.write, rows, touched={row[1] for row in rows})
            done += len(rows)
            self._report("messages", done)
