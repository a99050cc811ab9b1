import datetime as dt
import json
import re

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS, connections

from agents_app.models import LanguageModel
from sessions_app.analytics import NO_MODEL_KEY
from sessions_app.management.prompts import confirm_or_stop
from sessions_app.pruning import (
    DEFAULT_BATCH_SIZE,
    KEPT_REASONS,
    PruneResult,
    TallyPruneResult,
    prune_abandoned_tally,
    prune_empty_sessions,
)

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"(?:(\d+)([smhdw]))+")
_PART = re.compile(r"(\d+)([smhdw])")


def parse_duration(text: str) -> dt.timedelta:
    """``30m``, ``24h``, ``7d``, ``2w``, combinations such as ``1d12h``, or plain seconds."""
    value = text.strip().lower()
    if value.isdigit():
        seconds = int(value)
    elif _DURATION.fullmatch(value):
        seconds = sum(int(n) * _UNITS[unit] for n, unit in _PART.findall(value))
    else:
        raise ValueError(f"{text!r} is not a duration; use e.g. 30m, 24h, 7d, 2w or seconds.")
    try:
        return dt.timedelta(seconds=seconds)
    except OverflowError:
        raise ValueError(f"{text!r} is longer than any date range there is.") from None


def describe(delta: dt.timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("w", _UNITS["w"]), ("d", _UNITS["d"]), ("h", _UNITS["h"]), ("m", _UNITS["m"])):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


class Command(BaseCommand):
    help = (
        "Delete empty sessions (no message rows) older than a grace period, in batches. Sessions that are the "
        "parent of another session, and by default open sessions, are kept. Also deletes abandoned-agent tally "
        "days older than the retention (HERMES_ABANDONED_TALLY_RETENTION_DAYS, or --tally-keep-days). Asks for "
        "confirmation unless --yes or --no-input is given."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--older-than",
            default="24h",
            metavar="DURATION",
            help="Only sessions that started longer ago than this: 30m, 24h, 7d, 2w, 1d12h or seconds (default 24h).",
        )
        parser.add_argument("--model", help="Only sessions of this model (exact name, e.g. openai/gpt-5).")
        parser.add_argument("--source", help="Only sessions from this source (exact, e.g. cli, telegram).")
        parser.add_argument(
            "--include-open",
            action="store_true",
            help="Also prune sessions that never ended (no ended_at); by default they are kept.",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Show what would be deleted, per model; delete nothing."
        )
        parser.add_argument(
            "--yes",
            "--no-input",
            "--noinput",
            dest="interactive",
            action="store_false",
            help="Do not ask for confirmation (needed when stdin is not a terminal).",
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=DEFAULT_BATCH_SIZE,
            help=f"Sessions deleted per transaction (default {DEFAULT_BATCH_SIZE}).",
        )
        parser.add_argument(
            "--tally-keep-days",
            type=int,
            default=None,
            metavar="DAYS",
            help="Keep this many days of the abandoned-agent tally before today and delete older days "
            "(default: the HERMES_ABANDONED_TALLY_RETENTION_DAYS setting; 0 keeps the whole tally).",
        )
        parser.add_argument(
            "--format", choices=["table", "json"], default="table", help="Output format (default table)."
        )
        parser.add_argument(
            "--database", default=DEFAULT_DB_ALIAS, choices=tuple(connections), help="Database alias to prune."
        )

    def handle(self, *args, **options):
        try:
            older_than = parse_duration(options["older_than"])
        except ValueError as exc:
            raise CommandError(f"--older-than {exc}") from None
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
        progress = self.show_progress if self.verbosity >= 2 or (self.on_terminal and self.verbosity >= 1) else None
        result = self.run(dry_run=False, progress=progress, **query)
        if progress and self.on_terminal:
            self.stderr.write("")
        tally = self.prune_tally(dry_run=False, **tally_query)
        self.report(result, older_than, tally)

    def run(self, **kwargs) -> PruneResult:
        return _as_command_error(prune_empty_sessions, **kwargs)

    def prune_tally(self, **kwargs) -> TallyPruneResult:
        return _as_command_error(prune_abandoned_tally, **kwargs)

    def confirm(self, plan: PruneResult, using: str, tally: TallyPruneResult) -> None:
        what = f"{plan.total_deleted:,} empty sessions started before {plan.cutoff:%Y-%m-%d %H:%M} UTC"
        if tally.rows:
            what += f" and {tally.rows:,} abandoned-agent tally rows from before {tally.before}"
        confirm_or_stop(
            self.stderr,
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
            self.stdout.write(json.dumps(data, indent=2))
            return
        if self.verbosity == 0:
            return
        verb = "Would delete" if result.dry_run else "Deleted"
        cutoff = f"{result.cutoff:%Y-%m-%d %H:%M} UTC"
        if not result.total_deleted:
            self.stdout.write(f"Nothing to prune: no eligible empty session started before {cutoff}.")
        else:
            self.stdout.write(
                f"{verb} {result.total_deleted:,} empty sessions started before {cutoff} "
                f"(older than {describe(older_than)}):"
            )
            width = max(len("total"), *(len(name or NO_MODEL_KEY) for name, _ in rows))
            self.stdout.write(f"  {'model':<{width}}  {'sessions':>10}")
            for name, count in rows:
                self.stdout.write(f"  {name or NO_MODEL_KEY:<{width}}  {count:>10,}")
            self.stdout.write(self.style.SUCCESS(f"  {'total':<{width}}  {result.total_deleted:>10,}"))
        if result.total_kept:
            self.stdout.write(f"Kept {result.total_kept:,} empty sessions:")
            for reason, count in result.kept.items():
                if count:
                    self.stdout.write(f"  {KEPT_REASONS[reason]}: {count:,}")
        if tally.before is None:
            self.stdout.write("Abandoned-agent tally: retention is off; every day is kept.")
        elif tally.rows:
            verb = "Would delete" if tally.dry_run else "Deleted"
            self.stdout.write(
                f"{verb} {tally.rows:,} abandoned-agent tally rows ({tally.agents:,} agents) from days before "
                f"{tally.before}."
            )
        elif self.verbosity >= 2:
            self.stdout.write(f"Abandoned-agent tally: nothing from before {tally.before}.")


_OPTIONS = {"keep_days": "tally-keep-days"}  # argument name -> option, where they differ


def _as_command_error(function, **kwargs):
    """``function(**kwargs)``, its ValidationError given as a CommandError naming the options."""
    try:
        return function(**kwargs)
    except ValidationError as exc:
        problems = (
            f"--{_OPTIONS.get(name, name.replace('_', '-'))}: {' '.join(errors)}"
            for name, errors in exc.message_dict.items()
        )
        raise CommandError("; ".join(problems)) from None
