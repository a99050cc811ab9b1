"""``manage.py close_stale_sessions``: end open sessions idle longer than a duration (end reason "stale")."""

import json

from sessions_app.counts import model_key
from sessions_app.management.base import HermesCommand, describe_duration, parse_duration
from sessions_app.stale import DEFAULT_BATCH_SIZE, StaleResult, close_stale_sessions


class Command(HermesCommand):
    formats = ("table", "json")
    help = (
        "End open sessions whose last activity (newest message, or start when there is none) is older than "
        "--idle, with end reason 'stale' and ended_at = that last activity. Batched; a session that gets a "
        "message while this runs is left open. Asks for confirmation unless --yes or --no-input is given."
    )

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument(
            "--idle", required=True, metavar="DURATION", help="Idle time: 30m, 24h, 7d, 2w, 1d12h or seconds."
        )
        self.add_scope_arguments(parser)
        self.add_write_arguments(parser, verb="ended", batch_size=DEFAULT_BATCH_SIZE)

    def handle(self, *args, **options):
        idle = parse_duration(options["idle"], "--idle")
        self.verbosity, self.as_json = options["verbosity"], options["format"] == "json"
        query = {
            "idle": idle,
            "model": options["model"],
            "source": options["source"],
            "batch_size": options["batch_size"],
            "using": options["database"],
        }
        plan = self.call(close_stale_sessions, dry_run=True, **query)
        if options["dry_run"] or not plan.total_closed:
            self.report(plan, idle)
            return
        if options["interactive"]:
            self.confirm_or_stop(
                f"About to end {plan.total_closed:,} sessions idle since before {plan.cutoff:%Y-%m-%d %H:%M} UTC "
                f"in database {options['database']!r}.",
                not_a_terminal="Refusing to end sessions without confirmation: stdin is not a terminal. "
                "Pass --yes (or --no-input), or --dry-run to only look.",
                cancelled="Cancelled; no session was ended.",
            )
        progress = self.show_progress if self.wants_progress(self.verbosity) else None
        self.report(self.call(close_stale_sessions, progress=progress, **query), idle)

    def show_progress(self, result: StaleResult) -> None:
        self.stderr.write(f"batch {result.batches}: {result.total_closed:,} ended, {result.skipped:,} skipped")

    def report(self, result: StaleResult, idle) -> None:
        rows = sorted(result.closed.items(), key=lambda item: (-item[1], item[0] or ""))
        if self.as_json:
            data = {
                "dry_run": result.dry_run,
                "idle_seconds": int(idle.total_seconds()),
                "cutoff": result.cutoff.isoformat(),
                "total": result.total_closed,
                "rows": [{"model": model_key(name), "sessions": n} for name, n in rows],
                "skipped": result.skipped,
                "batches": result.batches,
            }
            self.stdout.write(json.dumps(data, indent=2))
            return
        if self.verbosity == 0:
            return
        cutoff = f"{result.cutoff:%Y-%m-%d %H:%M} UTC"
        if not result.total_closed:
            self.stdout.write(f"No open session idle since before {cutoff}.")
        else:
            verb = "Would end" if result.dry_run else "Ended"
            self.stdout.write(
                f"{verb} {result.total_closed:,} sessions idle since before {cutoff} "
                f"(longer than {describe_duration(idle)}):"
            )
            self.write_per_model(self.stdout, rows, result.total_closed)
        if result.skipped:
            self.stdout.write(f"Left open {result.skipped:,} sessions that got a message or were being written.")
