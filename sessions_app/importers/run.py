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
- Messages get no ``model``: hermes records a model per session only (and per-model usage in
  ``session_model_usage``, imported as ``ModelUsage``).
- Schema 30: a session's profile is its row's ``profile_name`` where it names one (the run's
  profile applies to rows without one, and a row that disagrees with an explicit ``--profile`` is
  named); ``system_prompt_hash`` is resolved through ``system_prompts``; a message keeps
  ``active``/``compacted``, and the counters count the active ones, as hermes does. What hermes
  changes in place is followed on the next run: session columns (end, tokens, cost, title, ...),
  usage rows, and the flags of messages imported before (the flag pass, ``flags``), without reading
  the messages of sessions that did not change.
- A message is imported only into a session this file holds, of the profile this file gives it;
  any other message row is skipped, counted and named (rowid and session id).
- A file declaring a schema version newer than ``source.KNOWN_SCHEMA_VERSION`` is imported all the
  same (the known columns; unknown ones go to ``extra``), with one warning.
- The daily rollup: each page that changes sessions marks their past days in its own transaction
  (``rollup.mark_days``): a session page that created or refreshed sessions, a message page that
  gave them messages, a flag page that changed flags or removed messages (the counters count
  active messages; a session may lose its last one). Usage rows and parent links are not in the
  rollup. The marks are folded at the end of the run (after an error too: the committed pages
  stay), so every report agrees with the new rows at every commit.
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
from sessions_app.importers.flags import FlagSync
from sessions_app.importers.links import ParentLinks
from sessions_app.importers.messages import MessagePages
from sessions_app.importers.report import ImportProgress, ImportResult
from sessions_app.importers.rows import RowConverter
from sessions_app.importers.sessions import SessionPages
from sessions_app.importers.source import KNOWN_SCHEMA_VERSION, HermesImportError, Source
from sessions_app.importers.writer import MISSING_PARENT_KEY, Writer, in_chunks
from sessions_app.models import DEFAULT_PROFILE, PROFILE_MAX_LENGTH, Session
from sessions_app.rollup import fold_marks, mark_days, old_day

DEFAULT_BATCH_SIZE = 2000
MAX_BATCH_SIZE = 100_000  # rows a transaction; past it a page holds its locks too long to be useful


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
    stop: Callable[[], bool] | None = None,
) -> ImportResult:
    """Import sessions and messages from a hermes-agent ``state.db``; safe to run again and again.

    Sessions get their row's ``profile_name`` (schema 30), else ``profile`` (default:
    ``profile_from_path(path)``). Each page of ``batch_size`` rows is one transaction: a run that
    stops (``HermesImportError`` for a source that turns out corrupt, or for a database error: a lost
    connection, a full disk) keeps every page it committed and nothing half-written, and the next
    run carries on. ``dry_run`` reads and counts, writes nothing. ``stop`` is asked after every
    page; once it returns True the run ends there (``result.stopped``), as a later run carries on.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise ValueError(f"batch_size must be a whole number from 1 to {MAX_BATCH_SIZE:,}.")
    explicit = profile is not None
    profile = check_profile(profile_from_path(path) if profile is None else profile)
    with closing(Source(path)) as source:
        run = _Run(
            source, batch_size=batch_size, dry_run=dry_run, using=using, progress=progress, profile=profile,
            explicit=explicit, stop=stop,
        )  # fmt: skip
        try:
            run.count_layout_skips()
            for step in run.steps():
                step()
                if run.stopping():
                    break
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

    def __init__(
        self, source: Source, *, batch_size: int, dry_run: bool, using: str, progress, profile: str, explicit, stop
    ):
        self.source, self.batch_size, self.dry_run, self.using = source, batch_size, dry_run, using
        self.progress, self.profile, self.stop = progress, profile, stop
        self.result = ImportResult(
            path=str(source.path), dry_run=dry_run, profile=profile, schema_version=source.schema_version
        )
        if (source.schema_version or 0) > KNOWN_SCHEMA_VERSION:
            self.result.warn(
                f"{source.path} declares schema version {source.schema_version}, newer than {KNOWN_SCHEMA_VERSION}, "
                "the newest this importer knows: the known columns were imported, the others kept in extra."
            )
        self.started = time.monotonic()
        self.messages_total = self.messages_done = 0
        self.writer = Writer(using)
        self.rows = RowConverter(
            source,
            now=timezone.now(),
            max_chars=hermes_settings.HERMES_MAX_CONTENT_CHARS,
            db_json=self.writer.db_json,
            db_time=self.writer.db_time,
        )
        self.sessions = SessionPages(
            source, self.rows, self.writer, dry_run=dry_run, profile=profile, explicit=explicit
        )
        self.links = ParentLinks(self.sessions)
        self.messages = MessagePages(
            source, self.rows, self.writer, dry_run=dry_run, skipped_sessions=self.sessions.skipped, profile=profile
        )
        self.flags = FlagSync(source, self.writer, dry_run=dry_run)

    def steps(self) -> list:
        """The passes of a run, in order."""
        linking = self.link_parents if not self.dry_run else lambda: self.links.count_links_ahead(self.result)
        return [self.import_sessions, linking, self.import_messages, self.sync_flags]

    def stopping(self) -> bool:
        """Whether the caller asked the run to stop (``stop``); noted in the result once it has."""
        if self.stop is not None and self.stop():
            self.result.stopped = True
        return self.result.stopped

    def _write_page(self, func, *args, touched=()) -> None:
        """Run ``func(page, *args)`` in one transaction (retried on transient conflicts), marking the
        rollup's past days of the ``touched`` session ids when it changed sessions (``_changed``);
        then merge its counts."""
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
                if touched and _changed(page):
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
        self.links.page_committed()
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
            if self.stopping():
                return

    def link_parents(self) -> None:
        """Link sessions imported without their parent to the parent, where it exists now."""
        # Only this file's profiles: a parent is always of its child's profile, so the children
        # waiting in other profiles wait for their own files.
        profiles = sorted(self.result.sessions_by_profile) or [self.profile]
        pending = Session.objects.using(self.using).filter(profile__in=profiles, extra__has_key=MISSING_PARENT_KEY)
        pending = pending.order_by("pk")
        after = ""
        while page := list(pending.filter(pk__gt=after).values_list("pk", flat=True)[: self.batch_size]):
            after = page[-1]
            self._write_page(self.links.link, page)
            if self.stopping():
                return

    def import_messages(self) -> None:
        """The message rows of the sessions the session pages found new messages in, page by page:
        one pass over the file's messages from the lowest mark on, or, when few sessions changed
        (``--follow`` on a live file), their messages alone, through the (session_id, id) index."""
        if self.sessions.first_message_after is None:
            return
        after = self.sessions.first_message_after
        self.messages_total = self.source.messages_after(after)
        pending = self.sessions.pending
        if 2 * sum(rows for _, rows in pending.values()) < self.messages_total:
            self.messages_total = sum(rows for _, rows in pending.values())
            ids = sorted(pending)
            for start in range(0, len(ids), 900):
                group = ids[start : start + 900]
                self._message_pages(min(pending[sid][0] for sid in group), group)
                if self.result.stopped:
                    return
            return
        self._message_pages(after, None)

    def _message_pages(self, after: int, sessions: list | None) -> None:
        while rows := self.source.messages(after, self.batch_size, sessions):
            after = rows[-1][0]
            self._write_page(self.messages.write, rows, touched={row[1] for row in rows})
            self.messages_done += len(rows)
            self._report("messages", self.messages_done)
            if self.stopping():
                return

    def sync_flags(self) -> None:
        """The flag pass (``flags``): sessions whose imported messages hermes changed in place."""
        checks = sorted(self.sessions.flag_checks.items())
        for start in range(0, len(checks), self.batch_size):
            batch = dict(checks[start : start + self.batch_size])
            self._write_page(self.flags.write, batch, touched=list(batch))
            if self.stopping():
                return


def _changed(page: ImportResult) -> bool:
    """Whether a page changed what the daily rollup counts of its sessions: their rows (created, or
    refreshed: end, counters), their messages (new ones, flags, removals)."""
    return bool(
        page.sessions_imported
        or page.sessions_updated
        or page.messages_imported
        or page.messages_flags_changed
        or page.messages_removed
    )
