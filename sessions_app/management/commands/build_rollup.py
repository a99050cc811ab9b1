"""``manage.py build_rollup``: bring the daily session rollup up to yesterday (UTC), from cron."""

import datetime as dt
import time

from django.core.management.base import CommandError

from sessions_app.management.base import HermesCommand
from sessions_app.rollup import DEFAULT_CHUNK_DAYS, build_rollup


def _day(text: str, option: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        raise CommandError(f"{option}: invalid day {text!r}; expected YYYY-MM-DD (UTC).") from None


class Command(HermesCommand):
    option_names = {"chunk_days": "chunk-days"}
    help = (
        "Build the per-(UTC day, model, source, profile) session rollup that the analytics trend reads for "
        "days before its watermark (by default the day an hour ago: today stays live). Rechecks every day "
        "and rewrites the ones that changed; --since limits the recheck, --full starts from an empty rollup. "
        "Run it nightly, after 01:00 UTC (see docs/rollup.md)."
    )

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--since", metavar="DATE", help="Recheck only the days from DATE (YYYY-MM-DD) on.")
        parser.add_argument("--until", metavar="DATE", help="Watermark: the first day left live (default: today).")
        parser.add_argument("--full", action="store_true", help="Empty the rollup first and build it again.")
        self.add_whole_number_argument(
            parser,
            "--chunk-days",
            default=DEFAULT_CHUNK_DAYS,
            help="Days per query and transaction (default %(default)s).",
        )

    def handle(self, *args, since, until, full, chunk_days, database, verbosity, **options):
        since = _day(since, "--since") if since is not None else None
        until = _day(until, "--until") if until is not None else None
        if full and since:
            raise CommandError("--full rebuilds every day; leave out --since.")
        progress = None
        if self.wants_progress(verbosity):

            def progress(result):
                self.stderr.write(f"  {result.days_checked} days checked, {result.days_changed} changed")

        started = time.monotonic()
        result = self.call(
            build_rollup, since=since, until=until, full=full, chunk_days=chunk_days, using=database, progress=progress
        )
        if verbosity >= 1:
            self.stdout.write(
                self.style.SUCCESS(f"Rollup holds the days before {result.watermark} (later days live): ")
                + f"{result.days_checked} days checked, {result.days_changed} changed, "
                f"in {time.monotonic() - started:.1f}s."
            )
