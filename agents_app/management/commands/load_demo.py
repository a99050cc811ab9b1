"""``manage.py load_demo``: a realistic demo history before and after lazy session creation."""

import time

from django.core.management.base import CommandError

from agents_app import demo
from sessions_app.management.base import HermesCommand
from sessions_app.models import Message, Session

ADMIN_URL = "http://127.0.0.1:8000/admin/"
RATES_URL = "http://127.0.0.1:8000/admin/sessions_app/session/empty-rates/"


class Command(HermesCommand):
    help = (
        "Load a realistic, deterministic demo history: eager sessions (with empty ones) before a cut-over, "
        "the lazy Agent facade after it. Prints the login of a demo superuser with a fresh random password."
    )

    def add_arguments(self, parser):
        super().add_arguments(parser)
        self.add_whole_number_argument(
            parser, "--seed", default=demo.DEFAULT_SEED, help="Random seed (default %(default)s)."
        )
        self.add_whole_number_argument(
            parser, "--days", default=demo.DEFAULT_DAYS, help="Days of history to generate (default %(default)s)."
        )
        self.add_whole_number_argument(
            parser,
            "--cutover-days-ago",
            default=demo.DEFAULT_CUTOVER_DAYS_AGO,
            help="When the lazy save path went live, in days before now (default %(default)s).",
        )
        self.add_whole_number_argument(
            parser,
            "--sessions-per-day",
            default=demo.DEFAULT_SESSIONS_PER_DAY,
            help="Agents constructed per day on average (default %(default)s).",
        )
        parser.add_argument(
            "--flush", action="store_true", help="Delete all sessions, messages and models first (asks to confirm)."
        )
        parser.add_argument(
            "--force", action="store_true", help="Add the demo to a database that already has sessions."
        )
        parser.add_argument(
            "--no-input",
            "--noinput",
            "--yes",
            dest="interactive",
            action="store_false",
            help="Do not ask before --flush deletes data (needed when stdin is not a terminal).",
        )
        parser.add_argument("--no-user", action="store_true", help="Do not create or reset the demo superuser.")
        parser.add_argument(
            "--username", default=demo.DEFAULT_ADMIN_USERNAME, help="Name of the demo superuser (default %(default)s)."
        )

    def handle(self, *args, **options):
        using = options["database"]
        if not options["no_user"]:
            self.call(demo.check_admin_username, options["username"])  # before anything is written
        if options["flush"] and options["force"]:
            raise CommandError("--flush and --force contradict each other: pick one.")
        sessions = Session.objects.using(using).count()
        if sessions and not (options["flush"] or options["force"]):
            raise CommandError(
                f"Database {using!r} already has {sessions:,} sessions; refusing to mix demo data with them. "
                "Pass --flush to delete them first, or --force to add the demo beside them."
            )
        if sessions and options["flush"] and options["interactive"]:
            self.confirm(sessions, using)
        started = time.monotonic()
        result = self.call(
            demo.load_demo,
            seed=options["seed"],
            days=options["days"],
            cutover_days_ago=options["cutover_days_ago"],
            sessions_per_day=options["sessions_per_day"],
            flush=options["flush"],
            force=options["force"],
            using=using,
        )
        login = None if options["no_user"] else demo.reset_demo_admin(username=options["username"], using=using)
        self.report(result, login, elapsed=time.monotonic() - started, verbosity=options["verbosity"])

    def confirm(self, sessions: int, using: str) -> None:
        messages = Message.objects.using(using).count()
        self.confirm_or_stop(
            f"--flush deletes all {sessions:,} sessions and {messages:,} messages in database {using!r}.",
            not_a_terminal="--flush would delete existing sessions and stdin is not a terminal: pass --no-input.",
            cancelled="Cancelled; nothing was changed.",
        )

    def report(self, result: demo.DemoResult, login: demo.DemoLogin | None, *, elapsed: float, verbosity: int):
        if verbosity >= 1:
            self.stdout.write(
                f"Created {result.sessions:,} sessions with {result.messages:,} messages in {elapsed:.1f}s, from "
                f"{result.since:%Y-%m-%d} to now; cut-over on {result.cutover:%Y-%m-%d}. After it, "
                f"{result.silent_agents_after:,} agents never spoke: no session, only a count in the abandoned-agent "
                "tally."
            )
            rows = [*result.per_model, _total(result.per_model)]
            width = max(len(row.model or "(none)") for row in rows)
            columns = "sessions  empty   rate"
            self.stdout.write(f"  {'':<{width}}  {'before the cut-over':^22}    {'after the cut-over':^22}")
            self.stdout.write(f"  {'model':<{width}}  {columns}    {columns}")
            for row in rows:
                before = f"{row.before:>8,} {row.before_empty:>6,} {row.before_rate:>6.1%}"
                after = f"{row.after:>8,} {row.after_empty:>6,} {row.after_rate:>6.1%}"
                line = f"  {row.model or '(none)':<{width}}  {before}    {after}"
                self.stdout.write(self.style.SUCCESS(line) if row is rows[-1] else line)
        if login:
            action = "Created" if login.created else "Reset the password of"
            self.stdout.write(
                self.style.SUCCESS(f"{action} the demo superuser. Run `.venv/bin/python manage.py runserver`, then")
            )
            self.stdout.write(f"  log in at  {ADMIN_URL}")
            self.stdout.write(f"  username   {login.username}")
            self.stdout.write(f"  password   {login.password}")
            self.stdout.write(f"  and see    {RATES_URL}")


def _total(rows: list[demo.ModelSplit]) -> demo.ModelSplit:
    total = demo.ModelSplit("total")
    for row in rows:
        total.before += row.before
        total.before_empty += row.before_empty
        total.after += row.after
        total.after_empty += row.after_empty
    return total
