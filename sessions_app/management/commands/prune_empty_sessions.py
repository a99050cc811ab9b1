"""``manage.py prune_empty_sessions``: delete old empty sessions (and old abandoned-agent tally days)."""

import contextlib
import datetime as dt
import json
import os
from pathlib import Path

from django.core.management.base import CommandError

from agents_app.models import LanguageModel
from sessions_app.archive import repair_archive_tail
from sessions_app.management.base import HermesCommand, describe_duration, parse_duration
from sessions_app.pruning import (
    DEFAULT_BATCH_SIZE,
    KEPT_REASONS,
    PruneResult,
    prune_empty_sessions,
)
from sessions_app.retention import TallyPruneResult, prune_abandoned_tally


class Command(HermesCommand):
    formats = ("table", "json")
    path_options = ("archive",)
    option_names = {"keep_days": "tally-keep-days"}

    help = (
        "Delete empty sessions (no message rows) older than a grace period, in batches. Sessions that are the "
        "parent of another session, and by default open sessions, are kept. Also deletes abandoned-agent tally "
        "days older than the retention (HERMES_ABANDONED_TALLY_RETENTION_DAYS, or --tally-keep-days). Asks for "
        "confirmation unless --yes or --no-input is given."
    )

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument(
            "--older-than",
            default="24h",
            metavar="DURATION",
            help="Only sessions that started longer ago than this: 30m, 24h, 7d, 2w, 1d12h or seconds (default 24h).",
        )
        self.add_scope_arguments(parser)
        parser.add_argument(
            "--include-open",
            action="store_true",
            help="Also prune sessions that never ended (no ended_at); by default they are kept.",
        )
        self.add_write_arguments(parser, verb="deleted", batch_size=DEFAULT_BATCH_SIZE)
        parser.add_argument(
            "--archive",
            metavar="PATH",
            help="Write every deleted session (all columns, JSON Lines) to PATH, fsynced before its batch's "
            "deletion commits; '-' writes to stdout (the report then goes to stderr). PATH must not exist "
            "unless --archive-append is given; its directory must exist.",
        )
        parser.add_argument(
            "--archive-append",
            action="store_true",
            help="Append to an existing --archive file (e.g. when rerunning after a crash).",
        )
        self.add_whole_number_argument(
            parser,
            "--tally-keep-days",
            default=None,
            metavar="DAYS",
            help="Keep this many days of the abandoned-agent tally before today and delete older days "
            "(default: the HERMES_ABANDONED_TALLY_RETENTION_DAYS setting; 0 keeps the whole tally).",
        )

    def handle(self, *args, **options):
        older_than = parse_duration(options["older_than"], "--older-than")
        using = options["database"]
        query = {
            "older_than": older_than,
            "model": options["model"],
            "source": options["source"],
            "include_open": options["include_open"],
            "batch_size": options["batch_size"],
            "using": using,
        }
        self.verbosity = options["verbosity"]
        self.as_json = options["format"] == "json"
        archive_path = options["archive"]
        if archive_path == "-" and self.as_json:
            raise CommandError("--archive - and --format json both want stdout; archive to a file instead.")
        if archive_path not in (None, "-"):
            check_archive_path(Path(archive_path), append=options["archive_append"])
        # With the archive on stdout, the report goes to stderr: stdout carries the data alone.
        self.out = self.stderr if archive_path == "-" else self.stdout
        if options["model"] and not LanguageModel.objects.using(using).filter(name=options["model"]).exists():
            self.stderr.write(self.style.WARNING(f"No model named {options['model']!r} is registered."))

        tally_query = {
            "keep_days": options["tally_keep_days"],
            "model": options["model"],
            "source": options["source"],
            "using": using,
        }
        plan = self.run(dry_run=True, **query)
        tally_plan = self.prune_tally(dry_run=True, **tally_query)
        if options["dry_run"] or (plan.total_deleted == 0 and tally_plan.rows == 0):
            self.report(plan, older_than, tally_plan)
            return
        if options["interactive"]:
            self.confirm(plan, using, tally_plan)
        self.expected = plan.total_deleted
        self.on_terminal = self.stderr.isatty()
        progress = self.show_progress if self.wants_progress(self.verbosity) else None
        if archive_path is None:
            result = self.run(dry_run=False, progress=progress, **query)
        elif archive_path == "-":
            result = self.run(dry_run=False, progress=progress, archive=self.stdout, **query)
        else:
            with self.open_archive(Path(archive_path), append=options["archive_append"]) as archive:
                result = self.run(dry_run=False, progress=progress, archive=archive, **query)
        if progress and self.on_terminal:
            self.stderr.write("")
        tally = self.prune_tally(dry_run=False, **tally_query)
        self.report(result, older_than, tally)

    def run(self, **kwargs) -> PruneResult:
        try:
            return self.call(prune_empty_sessions, **kwargs)
        except OSError as exc:  # the archive could not be written: a full disk, a closed pipe
            raise CommandError(
                f"--archive: writing failed: {exc.strerror or exc}. The batch being archived was not deleted; "
                "every session deleted before it is in the archive, whole. Make room, then run again with "
                "--archive-append."
            ) from None

    @contextlib.contextmanager
    def open_archive(self, path: Path, *, append: bool):
        """The archive file (see ``open_archive``); appending first cuts a torn last line, and says so."""
        with open_archive(path, append=append) as archive:
            if append:
                try:
                    cut = repair_archive_tail(archive)
                except ValueError as exc:
                    raise CommandError(f"--archive: {str(path)!r}: {exc}; refusing to append to it.") from None
                if cut:
                    self.stderr.write(
                        self.style.WARNING(
                            f"--archive: cut a torn last line ({cut:,} bytes) left by an interrupted run; the "
                            "sessions it was writing were not deleted then, and are archived again now."
                        )
                    )
            yield archive

    def prune_tally(self, **kwargs) -> TallyPruneResult:
        return self.call(prune_abandoned_tally, **kwargs)

    def confirm(self, plan: PruneResult, using: str, tally: TallyPruneResult) -> None:
        what = f"{plan.total_deleted:,} empty sessions started before {plan.cutoff:%Y-%m-%d %H:%M} UTC"
        if tally.rows:
            what += f" and {tally.rows:,} abandoned-agent tally rows from before {tally.before}"
        self.confirm_or_stop(
            f"About to delete {what} from database {using!r}.",
            not_a_terminal="Refusing to delete without confirmation: stdin is not a terminal. "
            "Pass --yes (or --no-input) to prune non-interactively, or --dry-run to only look.",
            cancelled="Prune cancelled; nothing was deleted.",
        )

    def show_progress(self, result: PruneResult) -> None:
        line = f"batch {result.batches}: {result.total_deleted:,} of ~{self.expected:,} deleted"
        if self.on_terminal:
            self.stderr.write(f"\r{line}", ending="")
            self.stderr.flush()
        else:
            self.stderr.write(line)

    def report(self, result: PruneResult, older_than: dt.timedelta, tally: TallyPruneResult) -> None:
        rows = sorted(result.deleted.items(), key=lambda item: (-item[1], item[0] or ""))
        if self.as_json:
            data = {
                "dry_run": result.dry_run,
                "older_than_seconds": int(older_than.total_seconds()),
                "cutoff": result.cutoff.isoformat(),
                "deleted": {
                    "total": result.total_deleted,
                    "rows": [{"model": name, "sessions": count} for name, count in rows],
                },
                "kept": {"total": result.total_kept, "reasons": result.kept},
                "batches": result.batches,
                "abandoned_tally": {
                    "before": tally.before.isoformat() if tally.before else None,
                    "rows": tally.rows,
                    "agents": tally.agents,
                },
            }
            self.out.write(json.dumps(data, indent=2))
            return
        if self.verbosity == 0:
            return
        verb = "Would delete" if result.dry_run else "Deleted"
        cutoff = f"{result.cutoff:%Y-%m-%d %H:%M} UTC"
        if not result.total_deleted:
            self.out.write(f"Nothing to prune: no eligible empty session started before {cutoff}.")
        else:
            self.out.write(
                f"{verb} {result.total_deleted:,} empty sessions started before {cutoff} "
                f"(older than {describe_duration(older_than)}):"
            )
            self.write_per_model(self.out, rows, result.total_deleted)
        if result.total_kept:
            self.out.write(f"Kept {result.total_kept:,} empty sessions:")
            for reason, count in result.kept.items():
                if count:
                    self.out.write(f"  {KEPT_REASONS[reason]}: {count:,}")
        if tally.before is None:
            self.out.write("Abandoned-agent tally: retention is off; every day is kept.")
        elif tally.rows:
            verb = "Would delete" if tally.dry_run else "Deleted"
            self.out.write(
                f"{verb} {tally.rows:,} abandoned-agent tally rows ({tally.agents:,} agents) from days before "
                f"{tally.before}."
            )
        elif self.verbosity >= 2:
            self.out.write(f"Abandoned-agent tally: nothing from before {tally.before}.")


def check_archive_path(path: Path, *, append: bool) -> None:
    """``CommandError`` for an archive whose directory does not exist, or an existing file unless
    ``append``, or a path the system refuses (too long, no permission)."""
    try:
        if not path.parent.is_dir():
            raise CommandError(f"--archive: directory {str(path.parent)!r} does not exist.")
        if path.is_dir():
            raise CommandError(f"--archive: {str(path)!r} is a directory.")
        if path.exists() and not append:
            raise CommandError(f"--archive: {str(path)!r} exists; pass --archive-append to add to it.")
    except OSError as exc:
        raise CommandError(f"--archive: {str(path)[:200]!r}: {exc.strerror or exc}.") from None


def open_archive(path: Path, *, append: bool):
    """The archive file, opened for appending or created (never truncated); a new file's directory
    entry is fsynced too, so the file itself survives a crash."""
    try:
        archive = path.open("a+" if append else "x", encoding="utf-8")  # a+: the tail is read first
    except OSError as exc:
        raise CommandError(f"--archive: cannot open {str(path)!r}: {exc.strerror or exc}.") from None
    try:
        descriptor = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
    except OSError as exc:
        archive.close()
        raise CommandError(f"--archive: cannot sync the directory of {str(path)!r}: {exc.strerror or exc}.") from None
    return archive
