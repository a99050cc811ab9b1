"""``manage.py import_hermes``: import a hermes-agent ``state.db``."""

import json
import time
from pathlib import Path

from django.core.management.base import CommandError

from sessions_app.importers import (
    DEFAULT_BATCH_SIZE,
    MISSING_PARENT_KEY,
    HermesImportError,
    ImportProgress,
    ImportResult,
    import_hermes_db,
)
from sessions_app.management.base import HermesCommand, parse_positive

WARNINGS_SHOWN = 20


class Command(HermesCommand):
    formats = ("text", "json")
    help = (
        "Import sessions and messages from a hermes-agent state.db (opened read-only). Idempotent and "
        "incremental: a second run adds nothing; after the file grows, only what is new is imported."
    )

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("path", help="The hermes-agent state.db file, e.g. ~/.hermes/state.db.")
        parser.add_argument(
            "--batch-size",
            type=int,
            default=DEFAULT_BATCH_SIZE,
            help=f"Rows per transaction (default {DEFAULT_BATCH_SIZE}); memory use grows with it, not with the file.",
        )
        parser.add_argument("--dry-run", action="store_true", help="Report what would be imported; write nothing.")

    def handle(self, *args, path, batch_size, dry_run, database, format, verbosity, **options):
        parse_positive(batch_size, "--batch-size")
        progress = _ProgressReporter(self.stderr, verbosity)
        try:
            result = import_hermes_db(
                Path(path).expanduser(), batch_size=batch_size, dry_run=dry_run, using=database, progress=progress
            )
        except HermesImportError as exc:
            raise CommandError(str(exc)) from exc
        finally:
            progress.close()
        if verbosity >= 1:
            for warning in result.warnings[:WARNINGS_SHOWN]:
                self.stderr.write(self.style.WARNING(f"warning: {warning}"))
            if len(result.warnings) > WARNINGS_SHOWN:
                self.stderr.write(self.style.WARNING("... more warnings not shown; the summary counts every skip."))
        if format == "json":
            self.stdout.write(json.dumps(result.as_dict(), indent=2))
        else:
            self.stdout.write(self._summary(result))

    def _summary(self, r: ImportResult) -> str:
        verb = "would import" if r.dry_run else "imported"
        lines = [
            f"{r.path}{' (dry run: nothing written)' if r.dry_run else ''}",
            f"Sessions: {r.sessions_imported:,} {verb}, {r.sessions_updated:,} updated, "
            f"{r.sessions_unchanged:,} unchanged, {r.sessions_skipped:,} skipped ({r.sessions_in_file:,} in the file)",
            f"Messages: {r.messages_imported:,} {verb}, {r.messages_skipped:,} skipped",
        ]
        for reason, count in sorted(r.skip_reasons.items()):
            lines.append(f"  skipped, {reason}: {count:,}")
        rate = r.empty_sessions / r.sessions_imported if r.sessions_imported else 0.0
        lines.append(f"Empty sessions: {r.empty_sessions:,} of {r.sessions_imported:,} {verb} ({rate:.1%})")
        if r.parents_linked or r.parents_missing:
            lines.append(
                f"Parent links: {r.parents_linked:,} set, {r.parents_missing:,} parents not in the file "
                f'(id kept in extra["{MISSING_PARENT_KEY}"])'
            )
        if r.values_repaired:
            lines.append(f"Text values repaired (NUL or invalid UTF-8 replaced by U+FFFD): {r.values_repaired:,}")
        if r.models_created:
            lines.append(f"New language models: {r.models_created:,}")
        if r.by_model:
            width = max(len("model"), *(len(name) for name in r.by_model))
            lines.append(f"{'model':<{width}}  {'sessions':>9}  {'empty':>9}  {'rate':>6}")
            for name, tally in sorted(r.by_model.items()):
                lines.append(f"{name:<{width}}  {tally.sessions:>9,}  {tally.empty:>9,}  {tally.rate:>6.1%}")
        speed = r.messages_imported / r.elapsed if r.elapsed else 0.0
        lines.append(f"Elapsed: {r.elapsed:.1f}s ({speed:,.0f} messages/s)")
        return "\n".join(lines)


class _ProgressReporter:
    """A one-line bar on a terminal (verbosity >= 1); plain lines otherwise (every page at
    verbosity >= 2, every 10 seconds at verbosity 1)."""

    BAR_INTERVAL = 0.2
    LINE_INTERVAL = 10.0

    def __init__(self, stream, verbosity: int):
        self.stream, self.verbosity = stream, verbosity
        self.tty = hasattr(stream, "isatty") and stream.isatty()
        self.last = time.monotonic()  # plain lines: the first after an interval, so short runs stay quiet
        self.drawn = False

    def __call__(self, p: ImportProgress) -> None:
        if self.verbosity < 1:
            return
        now = time.monotonic()
        interval = self.BAR_INTERVAL if self.tty else (0.0 if self.verbosity >= 2 else self.LINE_INTERVAL)
        if now - self.last < interval:
            return
        self.last = now
        rate = p.messages_done / p.elapsed if p.elapsed else 0.0
        text = f"sessions {p.sessions_done:,}/{p.sessions_total:,}  messages {p.messages_done:,}/~{p.messages_total:,}"
        if p.phase == "messages":
            eta = (p.messages_total - p.messages_done) / rate if rate else 0.0
            text += f"  {rate:,.0f} msg/s  ETA {int(eta) // 60}:{int(eta) % 60:02d}"
        if self.tty:
            done, total = (
                (p.messages_done, p.messages_total) if p.phase == "messages" else (p.sessions_done, p.sessions_total)
            )
            filled = min(20, int(20 * done / total)) if total else 20
            bar = f"\r[{'#' * filled}{'.' * (20 - filled)}] {text}\x1b[K"
            self.stream.write(bar, style_func=str, ending="")  # str: no error colouring on stderr
            self.stream.flush()
            self.drawn = True
        else:
            self.stream.write(text, style_func=str)

    def close(self) -> None:
        if self.drawn:
            self.stream.write("", style_func=str)
