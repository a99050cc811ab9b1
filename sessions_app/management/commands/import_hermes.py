"""``manage.py import_hermes``: import hermes-agent ``state.db`` files, one per profile.

Files are imported one after another with one progress display; the summary has one block per
profile (and the total across them). A file that fails stops only itself: the others still import,
and the command then fails (exit status 1) naming each failed file and why.
"""

import json
import time
from pathlib import Path

from django.core.management.base import CommandError

from sessions_app.importers import (
    DEFAULT_BATCH_SIZE,
    DROPPED_PARENT_KEY,
    MAX_BATCH_SIZE,
    MISSING_PARENT_KEY,
    HermesImportError,
    ImportProgress,
    ImportResult,
    import_hermes_db,
    profile_from_path,
)
from sessions_app.importers.follow import Followed
from sessions_app.management.base import HermesCommand, parse_positive, parse_seconds
from sessions_app.management.follow_output import FollowOutput

WARNINGS_SHOWN = 20


class Command(HermesCommand):
    formats = ("text", "json")
    path_options = ("paths",)
    help = (
        "Import sessions and messages from hermes-agent state.db files (opened read-only, never written). "
        "Idempotent and incremental: a second run adds nothing; after a file grows, only what is new is "
        "imported, and what hermes changed in place (ended sessions, tokens, undone or compacted messages, "
        "per-model usage) is updated. A session's profile is its row's profile_name (hermes schema 30); rows "
        "without one get the file's profile: --profile, or from the path (~/.hermes/profiles/NAME/state.db is "
        "NAME, any other path 'default')."
    )

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument(
            "paths", nargs="+", metavar="PATH", help="hermes-agent state.db files, e.g. ~/.hermes/state.db."
        )
        parser.add_argument(
            "--profile",
            help="The profile of the sessions whose row names none (default: from the path); a row's "
            "profile_name always decides, and a disagreement with --profile is reported. Only with one PATH: two "
            "files given one profile would merge what they hold under the same ids.",
        )
        self.add_whole_number_argument(
            parser,
            "--batch-size",
            default=DEFAULT_BATCH_SIZE,
            help=f"Rows per transaction (default {DEFAULT_BATCH_SIZE}, at most {MAX_BATCH_SIZE:,}); memory use grows "
            "with it, not with the file.",
        )
        parser.add_argument("--dry-run", action="store_true", help="Report what would be imported; write nothing.")
        parser.add_argument(
            "--follow",
            metavar="SECONDS",
            help="Keep the database in sync: import what changed in each file every SECONDS (a file that did "
            "not change is not opened), one line per cycle that changed something. SIGTERM or SIGINT stops it "
            "after the current page, with exit status 0.",
        )

    def handle(self, *args, paths, profile, batch_size, dry_run, database, format, verbosity, follow, **options):
        parse_positive(batch_size, "--batch-size", maximum=MAX_BATCH_SIZE)
        if profile is not None and len(paths) > 1:
            raise CommandError("--profile applies to one PATH only; each file's profile otherwise comes from its path.")
        if follow is not None:
            interval = parse_seconds(follow, "--follow")
            if dry_run:
                raise CommandError("--follow imports what changes; it cannot be a --dry-run.")
            files = [Followed(Path(path).expanduser(), profile) for path in paths]
            FollowOutput(self, format).run(files, interval, batch_size=batch_size, using=database)
            return
        progress = _ProgressReporter(self.stderr, verbosity)
        results: dict[str, ImportResult] = {}
        failed: list[tuple[str, str]] = []
        try:
            for index, path in enumerate(paths, 1):
                path = Path(path).expanduser()
                name = profile if profile is not None else profile_from_path(path)
                progress.label = f"[{index}/{len(paths)} {name}] " if len(paths) > 1 else ""
                try:
                    result = import_hermes_db(
                        path, batch_size=batch_size, dry_run=dry_run, using=database, progress=progress, profile=profile
                    )
                except HermesImportError as exc:
                    progress.close()
                    failed.append((str(path), str(exc)))
                    if len(paths) > 1:
                        self.stderr.write(self.style.ERROR(f"{path}: {exc}"))
                    continue
                if name in results:
                    results[name].add(result)
                    results[name].path += f", {result.path}"
                else:
                    results[name] = result
        finally:
            progress.close()
        self._report(results, failed, format, verbosity)
        if failed:
            if len(paths) == 1:
                raise CommandError(failed[0][1])
            raise CommandError(
                f"{len(failed)} of {len(paths)} files failed (the others were imported): "
                + "; ".join(f"{path}: {error}" for path, error in failed)
            )

    def _report(self, results: dict[str, ImportResult], failed: list, format: str, verbosity: int) -> None:
        if verbosity >= 1:
            warnings = [w for r in results.values() for w in r.warnings]
            for warning in warnings[:WARNINGS_SHOWN]:
                self.stderr.write(self.style.WARNING(f"warning: {warning}"))
            if len(warnings) > WARNINGS_SHOWN:
                self.stderr.write(self.style.WARNING("... more warnings not shown; the summary counts every skip."))
        if not results:
            return
        total = ImportResult(path=", ".join(r.path for r in results.values()), profile="(all)")
        for result in results.values():
            total.add(result)
            total.elapsed += result.elapsed
        if format == "json":
            data = {
                **total.as_dict(),
                "profiles": {name: r.as_dict() for name, r in results.items()},
                "failed": [{"path": path, "error": error} for path, error in failed],
            }
            self.stdout.write(json.dumps(data, indent=2))
        else:
            blocks = [self._summary(r) for r in results.values()]
            if len(results) > 1:
                blocks.append(self._summary(total))
            self.stdout.write("\n\n".join(blocks))

    def _summary(self, r: ImportResult) -> str:
        verb = "would import" if r.dry_run else "imported"
        version = f", schema version {r.schema_version}" if r.schema_version is not None else ""
        lines = [
            f"Profile {r.profile}: {r.path}{version}{' (dry run: nothing written)' if r.dry_run else ''}",
            f"Sessions: {r.sessions_imported:,} {verb}, {r.sessions_updated:,} updated, "
            f"{r.sessions_unchanged:,} unchanged, {r.sessions_skipped:,} skipped ({r.sessions_in_file:,} in the file)",
            f"Messages: {r.messages_imported:,} {verb}, {r.messages_skipped:,} skipped",
        ]
        if r.messages_flags_changed or r.messages_removed:
            lines.append(
                f"Messages changed in place by hermes: {r.messages_flags_changed:,} undone/compacted (or back), "
                f"{r.messages_removed:,} deleted"
            )
        if r.usage_imported or r.usage_updated or r.usage_removed or r.usage_skipped:
            lines.append(
                f"Model usage rows: {r.usage_imported:,} {verb}, {r.usage_updated:,} updated, "
                f"{r.usage_removed:,} removed, {r.usage_skipped:,} skipped"
            )
        if len(r.sessions_by_profile) > 1 or (r.sessions_by_profile and r.profile not in r.sessions_by_profile):
            shown = ", ".join(f"{name} {count:,}" for name, count in sorted(r.sessions_by_profile.items()))
            lines.append(f"Sessions by profile (the row's profile_name, else {r.profile!r}): {shown}")
        if r.profile_disagreements:
            named = ", ".join(f"{d['session']} ({d['profile_name']})" for d in r.disagreeing_sessions)
            lines.append(
                f"  --profile {r.profile!r} disagrees with profile_name on {r.profile_disagreements:,} sessions; "
                f"the column decides: {named}{', ...' if len(r.disagreeing_sessions) < r.profile_disagreements else ''}"
            )
        for reason, count in sorted(r.skip_reasons.items()):
            named = r.skipped_rows.get(reason, [])
            more = ", ..." if len(named) < count else ""
            lines.append(f"  skipped, {reason}: {count:,}" + (f" ({', '.join(named)}{more})" if named else ""))
        for conflict in r.conflicts[:WARNINGS_SHOWN]:
            lines.append(
                f"  conflict: session {conflict['session']} is stored from profile {conflict['stored_profile']!r};"
                f" the one of profile {conflict['profile']!r} was skipped with its messages"
            )
        if r.parent_cycles_broken:
            lines.append(
                f"Parent cycles broken: {r.parent_cycles_broken:,} (link dropped, parent id kept in"
                f' extra["{DROPPED_PARENT_KEY}"])'
            )
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
        self.label = ""  # which file of several: "[2/3 work] "

    def __call__(self, p: ImportProgress) -> None:
        if self.verbosity < 1:
            return
        now = time.monotonic()
        interval = self.BAR_INTERVAL if self.tty else (0.0 if self.verbosity >= 2 else self.LINE_INTERVAL)
        if now - self.last < interval:
            return
        self.last = now
        rate = p.messages_done / p.elapsed if p.elapsed else 0.0
        text = f"{self.label}sessions {p.sessions_done:,}/{p.sessions_total:,}"
        text += f"  messages {p.messages_done:,}/~{p.messages_total:,}"
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
            self.drawn = False
