"""``manage.py empty_sessions``: the empty-session rate per model, source, profile or period."""

import io

from django.core.management.base import CommandError
from django.utils import timezone

from sessions_app import reporting
from sessions_app.analytics import (
    GROUPINGS,
    abandoned_agent_rates,
    empty_cause_breakdown,
    empty_session_rates,
    partial_periods,
)
from sessions_app.management.base import HermesCommand, parse_date, parse_rate

# Exit status of --fail-above when a row is over the limit (1 is taken by bad input).
EXIT_ABOVE_LIMIT = 3
# Periods read in time order; other groupings by the highest rate first.
PERIODS = ("day", "week", "month")


class Command(HermesCommand):
    formats = ("table", "json", "csv")
    help = (
        "Report how many sessions have no message rows (empty sessions), per model, source, profile, or UTC "
        "day/week/month, across every profile unless --profile names one. "
        "JSON and CSV go to stdout alone; messages go to stderr."
    )

    def add_arguments(self, parser):
        super().add_arguments(parser)
        # --by and --sort are checked by the service and in handle(), not by argparse choices, so
        # that a bad value is a CommandError with exit status 1, like every other bad input.
        parser.add_argument(
            "--by",
            default="model",
            metavar="{" + ",".join(GROUPINGS) + "}",
            help="Grouping: model (default), source, profile, the UTC day/week (from Monday)/month the session "
            "started, or cause (why the empty sessions are empty: lost_transcript, never_ended, open, ghost).",
        )
        parser.add_argument(
            "--breakdown",
            metavar="{cause}",
            help="Split each row's empty sessions by cause: one more column per cause (table, CSV), a causes "
            "object per row (JSON). Not with --by cause or --include-abandoned.",
        )
        parser.add_argument(
            "--since",
            metavar="DATE",
            help="Only sessions started at or after DATE (YYYY-MM-DD = midnight UTC, or an ISO datetime; UTC "
            "when it has no offset).",
        )
        parser.add_argument(
            "--until",
            metavar="DATE",
            help="Only sessions started before DATE (exclusive; same formats as --since).",
        )
        self.add_scope_arguments(parser)
        parser.add_argument(
            "--profile",
            metavar="NAME",
            help="Only sessions of this hermes profile (exact match; default: every profile). Not with "
            "--include-abandoned: the abandoned-agent tally has no profile.",
        )
        parser.add_argument(
            "--sort",
            metavar="{" + ",".join(reporting.SORTS) + "}",
            help="Row order: rate (highest first; the table's default), sessions (most first), or key "
            "(JSON and CSV default, and the table's with --by day|week|month: in time order).",
        )
        parser.add_argument(
            "--include-abandoned",
            action="store_true",
            help="Add agents that ended without saving a message (the abandoned-agent tally, which replaces "
            "empty sessions since lazy session creation) and their rate, abandoned / (abandoned + sessions). "
            "The table then sorts by that rate; JSON rows gain abandoned, agents, abandoned_rate (with its "
            "interval), silent_rate and the end reasons; a period before the tally's first day is not tracked "
            "(null in JSON, empty in CSV).",
        )
        parser.add_argument(
            "--fail-above",
            metavar="RATE",
            help="Exit with status 3 when any reported row's empty rate is above RATE, a fraction (0.25) or a "
            "percentage (25%%). The report is printed first.",
        )

    def handle(self, *args, **options):
        output_format, sort, database = options["format"], options["sort"], options["database"]
        if sort is not None and sort not in reporting.SORTS:
            raise CommandError(f"unknown --sort {sort!r}; choose one of {', '.join(reporting.SORTS)}.")
        limit = parse_rate(options["fail_above"], "--fail-above") if options["fail_above"] is not None else None
        breakdown = options["breakdown"] is not None
        if breakdown and options["breakdown"] != "cause":
            raise CommandError(f"unknown --breakdown {options['breakdown']!r}; the one breakdown is cause.")
        if breakdown and (options["by"] == "cause" or options["include_abandoned"]):
            raise CommandError(
                "--breakdown cause goes with --by model|source|day|week|month, without --include-abandoned."
            )
        rates = abandoned_agent_rates if options["include_abandoned"] else empty_session_rates
        rates = empty_cause_breakdown if breakdown else rates
        report = self.call(
            rates,
            options["by"],
            since=parse_date(options["since"], "--since"),
            until=parse_date(options["until"], "--until"),
            model=options["model"],
            source=options["source"],
            profile=options["profile"],
            using=database,
        )

        abandoned = options["include_abandoned"]
        table_sort = sort or ("key" if options["by"] in PERIODS else "rate")
        scope = (report.report if breakdown else report).scope
        partial = partial_periods(options["by"], scope, timezone.now())
        if breakdown:
            self.write_breakdown(report, output_format, sort, table_sort, partial)
            report = report.report
        elif output_format == "table":
            table = reporting.format_abandoned_table if abandoned else reporting.format_table
            self.stdout.write(table(report, sort=table_sort, partial=partial))
        else:
            if sort is not None:
                report = reporting.sorted_report(report, sort)
            if output_format == "json":
                self.stdout.write(reporting.report_json(report))
            else:
                buffer = io.StringIO()
                (reporting.write_abandoned_csv if abandoned else reporting.write_csv)(report, buffer)
                self.stdout.write(buffer.getvalue(), ending="")  # records already end with CRLF

        self.summarise(report, options, limit)

    def write_breakdown(self, breakdown, output_format: str, sort: str | None, table_sort: str, partial) -> None:
        if output_format == "table":
            self.stdout.write(reporting.format_breakdown_table(breakdown, sort=table_sort, partial=partial))
            return
        if sort is not None:
            breakdown = reporting.sorted_breakdown(breakdown, sort)
        if output_format == "json":
            self.stdout.write(reporting.breakdown_json(breakdown))
        else:
            buffer = io.StringIO()
            reporting.write_breakdown_csv(breakdown, buffer)
            self.stdout.write(buffer.getvalue(), ending="")

    def summarise(self, report, options, limit) -> None:
        abandoned = options["include_abandoned"]
        if options["verbosity"] >= 2:
            self.stderr.write(
                f"{len(report)} {report.by} group(s), {report.total.sessions:,} session(s), "
                f"{report.total.empty:,} empty ({reporting.format_percent(report.total.rate)})."
            )
            if abandoned:
                self.stderr.write(
                    f"{reporting.format_count(report.total.abandoned)} agent(s) ended without a message "
                    f"({reporting.format_percent(report.total.abandoned_rate)} of "
                    f"{reporting.format_count(report.total.agents)})."
                )

        if limit is not None:
            above = [row for row in report.rows if row.rate > limit]
            if above:
                listed = ", ".join(f"{row.key} ({reporting.format_percent(row.rate)})" for row in above[:10])
                more = f" and {len(above) - 10} more" if len(above) > 10 else ""
                raise CommandError(
                    f"{len(above)} {report.by} row(s) above the empty-session rate limit "
                    f"{reporting.format_percent(limit)}: {listed}{more}.",
                    returncode=EXIT_ABOVE_LIMIT,
                )
            if options["verbosity"] >= 2:
                self.stderr.write(f"No row above {reporting.format_percent(limit)}.")
