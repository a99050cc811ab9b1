"""``manage.py verify_sessions``: compare each session's has-messages flag and counters with its rows."""

import json

from django.core.management.base import CommandError

from sessions_app.integrity import DEFAULT_BATCH_SIZE, DRIFT_KINDS, MAX_BATCH_SIZE, verify_sessions
from sessions_app.management.base import HermesCommand, parse_positive

# Exit status when drift was found (repaired or not); 1 is taken by bad input.
EXIT_DRIFT = 3


class Command(HermesCommand):
    help = (
        "Compare every session's has_messages flag, message_count and tool_call_count with its message rows, "
        "in batches, and the daily rollup's days with their sessions. Read-only unless --repair. "
        f"Exit status {EXIT_DRIFT} when any drift is found (also when it was repaired), 0 when clean."
    )

    def add_arguments(self, parser):
        super().add_arguments(parser)  # --database, checked
        parser.add_argument("--repair", action="store_true", help="Fix the drift found, batch by batch.")
        self.add_whole_number_argument(
            parser,
            "--batch-size",
            default=DEFAULT_BATCH_SIZE,
            help=f"Sessions per batch (1-{MAX_BATCH_SIZE}, default %(default)s).",
        )
        parser.add_argument("--json", action="store_true", dest="as_json", help="Print one JSON document.")

    def handle(self, *args, repair, batch_size, database, as_json, **options):
        parse_positive(batch_size, "--batch-size", maximum=MAX_BATCH_SIZE)
        drift = verify_sessions(repair=repair, batch_size=batch_size, using=database)
        if as_json:
            self.stdout.write(self._json(drift))
        else:
            self._table(drift, options["verbosity"])
        if drift.total:
            raise CommandError(
                f"{drift.total} drifted value(s) {'repaired' if drift.repaired else 'found'}.", returncode=EXIT_DRIFT
            )

    @staticmethod
    def _json(drift) -> str:
        return json.dumps(
            {
                "sessions_checked": drift.sessions_checked,
                "repaired": drift.repaired,
                "drift": {
                    kind: {"sessions": drift.counts[kind], "examples": drift.examples[kind]} for kind in DRIFT_KINDS
                },
                "rollup": {
                    "days_checked": drift.rollup_days_checked,
                    "days_off": [day.isoformat() for day in drift.rollup_days_off],
                },
            }
        )

    def _table(self, drift, verbosity: int) -> None:
        width = max(map(len, DRIFT_KINDS))
        for kind in DRIFT_KINDS:
            line = f"{kind:<{width}}  {drift.counts[kind]}"
            if drift.examples[kind] and verbosity >= 1:
                line += "  e.g. " + ", ".join(drift.examples[kind])
            self.stdout.write(line, self.style.ERROR if drift.counts[kind] else None)
        off = drift.rollup_days_off
        line = f"{'rollup_days_off':<{width}}  {len(off)}"
        if off and verbosity >= 1:
            line += "  e.g. " + ", ".join(day.isoformat() for day in off[:5])
        self.stdout.write(line, self.style.ERROR if off else None)
        status = "repaired" if drift.repaired and drift.total else ("drift found" if drift.total else "clean")
        self.stdout.write(
            f"{drift.sessions_checked} sessions and {drift.rollup_days_checked} rollup days checked: {status}."
        )
