"""Plumbing shared by the project's management commands (in the way django-extensions keeps its own).

``HermesCommand`` adds ``--database`` (checked against the configured aliases) and, when a command
declares ``formats``, ``--format``; it turns a service's ``ValidationError`` into a ``CommandError``
that names the options at fault; it asks before deleting; and it says when a progress display is
wanted (a terminal at verbosity >= 1, or verbosity >= 2).

Exit statuses: a usage error (an unknown option, a missing argument or option value) is argparse's,
status 2, as for every Django command. A bad value is a ``CommandError``, status 1: values are
taken as text and checked by the command (the parsers below, ``add_whole_number_argument``), never
by argparse ``choices`` or ``type``, which would make them usage errors.
"""

import datetime as dt
import re
import sys

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS, connections

from agents_app.conf import DURATION_UNITS, duration_from_text
from sessions_app.counts import model_key
from sessions_app.scope import parse_date_bound

_RATE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(%?)\s*")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


class HermesCommand(BaseCommand):
    """A command that reads or writes the project's data."""

    formats: tuple[str, ...] = ()  # output formats; the first is the default
    option_names: dict[str, str] = {}  # a service's argument name -> the option, where they differ
    whole_numbers: dict[str, str] = {}  # options of add_whole_number_argument: dest -> option string
    # Options holding file paths: these may hold bytes that are not UTF-8 (a file name is bytes).
    path_options: tuple[str, ...] = ()

    def add_arguments(self, parser):
        if self.formats:
            parser.add_argument(
                "--format",
                default=self.formats[0],
                metavar="{" + ",".join(self.formats) + "}",
                help=f"Output format (default {self.formats[0]}).",
            )
        parser.add_argument(
            "--database", default=DEFAULT_DB_ALIAS, help=f'Database alias to use (default "{DEFAULT_DB_ALIAS}").'
        )

    def add_whole_number_argument(self, parser, option: str, **kwargs) -> None:
        """An integer option, given as text and turned into an ``int`` by ``execute()``: ``--batch-size
        abc`` is then a ``CommandError`` (exit status 1), like every other bad value, where argparse's
        ``type=int`` would make it a usage error (exit status 2). The range is the service's to check."""
        action = parser.add_argument(option, metavar=kwargs.pop("metavar", "N"), **kwargs)
        self.whole_numbers = {**self.whole_numbers, action.dest: option}

    def add_scope_arguments(self, parser) -> None:
        """``--model`` and ``--source``: exact names, as the reports match them."""
        parser.add_argument("--model", help="Only sessions of this model (exact name, e.g. openai/gpt-5).")
        parser.add_argument("--source", help="Only sessions from this source (exact, e.g. cli, telegram).")

    def add_write_arguments(self, parser, *, verb: str, batch_size: int) -> None:
        """``--dry-run``, ``--yes``/``--no-input`` and ``--batch-size`` of a command that changes sessions."""
        parser.add_argument(
            "--dry-run", action="store_true", help=f"Show what would be {verb}, per model; change nothing."
        )
        parser.add_argument(
            "--yes",
            "--no-input",
            "--noinput",
            dest="interactive",
            action="store_false",
            help="Do not ask for confirmation (needed when stdin is not a terminal).",
        )
        self.add_whole_number_argument(
            parser, "--batch-size", default=batch_size, help=f"Sessions {verb} per transaction (default {batch_size})."
        )

    def execute(self, *args, **options):
        for name, value in options.items():
            for text in value if isinstance(value, list) else [value]:
                if isinstance(text, str) and (problem := _argument_problem(text, path=name in self.path_options)):
                    raise CommandError(f"{_option(name)}: {problem}")
        # Checked here rather than by argparse choices, so that a bad value is a CommandError with
        # exit status 1 (and a one-line message) under call_command too.
        if options.get("database", DEFAULT_DB_ALIAS) not in connections:
            configured = ", ".join(connections)
            raise CommandError(f"unknown --database {options['database']!r}; configured: {configured}.")
        if self.formats and options.get("format", self.formats[0]) not in self.formats:
            raise CommandError(f"unknown --format {options['format']!r}; choose one of {', '.join(self.formats)}.")
        for dest, option in self.whole_numbers.items():
            if isinstance(options.get(dest), str):  # from the command line; call_command may give an int
                options[dest] = parse_whole_number(options[dest], option)
        return super().execute(*args, **options)

    def call(self, service, *args, **kwargs):
        """``service(*args, **kwargs)``, its ``ValidationError`` given as a ``CommandError`` naming the options."""
        try:
            return service(*args, **kwargs)
        except ValidationError as exc:
            raise CommandError(self.describe(exc)) from None

    def describe(self, exc: ValidationError) -> str:
        if not hasattr(exc, "error_dict"):
            return " ".join(exc.messages)
        return "; ".join(
            f"--{self.option_names.get(name, name.replace('_', '-'))}: {' '.join(errors)}"
            for name, errors in exc.message_dict.items()
        )

    def write_per_model(self, stream, rows, total: int) -> None:
        """``rows`` of ``(model name or None, sessions)`` as an aligned two-column table, then the total."""
        width = max(len("total"), *(len(model_key(name)) for name, _ in rows))
        stream.write(f"  {'model':<{width}}  {'sessions':>10}")
        for name, count in rows:
            stream.write(f"  {model_key(name):<{width}}  {count:>10,}")
        stream.write(self.style.SUCCESS(f"  {'total':<{width}}  {total:>10,}"))

    def wants_progress(self, verbosity: int) -> bool:
        """A progress display on stderr: on a terminal at verbosity >= 1, as plain lines at >= 2."""
        return verbosity >= 2 or (verbosity >= 1 and self.stderr.isatty())

    def confirm_or_stop(self, question: str, *, not_a_terminal: str, cancelled: str) -> None:
        """Ask ``question`` on stderr and go on only on "y"/"yes"; otherwise raise ``CommandError``.

        Without a terminal on stdin there is nobody to ask: ``CommandError(not_a_terminal)``, which
        should name the flag that skips the question.
        """
        if not sys.stdin or not sys.stdin.isatty():
            raise CommandError(not_a_terminal)
        self.stderr.write(f"{question} Type 'yes' to continue: ", ending="")
        self.stderr.flush()
        try:
            answer = input()
        except EOFError:
            answer = ""
        if answer.strip().lower() not in {"y", "yes"}:
            raise CommandError(cancelled)


def _argument_problem(text: str, *, path: bool) -> str | None:
    """Why a command-line value cannot be used, or None. Bytes that are not UTF-8 reach Python as
    lone surrogates (``$'\\xff'``): no database, and no UTF-8 terminal, can take them, except as a
    file name; a NUL (possible from ``call_command``) no database or file name takes."""
    if "\x00" in text:
        return "contains a NUL character, which no database or file name takes."
    if not path and not text.isascii() and _SURROGATE.search(text):
        return f"{text[:60]!a} is not valid UTF-8 text (bytes the terminal could not decode)."
    return None


def _option(name: str) -> str:
    return "PATH" if name == "paths" else "--" + name.replace("_", "-")


def parse_duration(text: str, option: str) -> dt.timedelta:
    """``30m``, ``24h``, ``7d``, ``2w``, combinations such as ``1d12h``, or plain seconds (the rule of
    the ``HERMES_*`` duration settings, ``agents_app.conf.duration_from_text``)."""
    try:
        return duration_from_text(text)
    except ValueError as exc:
        raise CommandError(f"{option}: {exc}.") from None


def describe_duration(delta: dt.timedelta) -> str:
    """The shortest of ``2w``, ``7d``, ``24h``, ``30m`` or ``90s`` that says ``delta`` exactly."""
    seconds = int(delta.total_seconds())
    for unit in ("w", "d", "h", "m"):
        if seconds % DURATION_UNITS[unit] == 0:
            return f"{seconds // DURATION_UNITS[unit]}{unit}"
    return f"{seconds}s"


def parse_date(text: str | None, option: str) -> dt.date | dt.datetime | None:
    """``scope.parse_date_bound`` (the admin page's parser too), its error as a ``CommandError``."""
    if text is None:
        return None
    try:
        return parse_date_bound(text)
    except ValueError as exc:
        raise CommandError(f"{option}: {exc}") from None


def parse_seconds(text: str, option: str, *, minimum: float = 0.01, maximum: float = 86400.0) -> float:
    """A number of seconds (``10``, ``0.5``) from ``minimum`` to ``maximum``."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        value = None
    if value is None or not minimum <= value <= maximum:  # also refuses nan and inf
        raise CommandError(f"{option} must be a number of seconds from {minimum:g} to {maximum:g}, got {text!r}.")
    return value


def parse_rate(text: str, option: str) -> float:
    """A rate as a fraction in [0, 1]: ``0.25`` or ``25%``."""
    match = _RATE.fullmatch(text)
    if match is None:
        raise CommandError(f"{option}: invalid rate {text!r}; give a fraction such as 0.25 or a percentage (25%).")
    value = float(match.group(1)) / (100 if match.group(2) else 1)
    if not 0 <= value <= 1:
        raise CommandError(f"{option}: rate {text!r} is outside 0..1 (0%..100%).")
    return value


def parse_whole_number(text: str, option: str) -> int:
    """A whole number in decimal digits, with an optional sign."""
    if not re.fullmatch(r"\s*[+-]?[0-9]{1,100}\s*", text):
        raise CommandError(f"{option}: {text!r} is not a whole number.")
    return int(text)


def parse_positive(value: int, option: str, *, maximum: int | None = None) -> int:
    """A whole number from 1 (to ``maximum``)."""
    if maximum is not None and not 1 <= value <= maximum:
        raise CommandError(f"{option} must be a whole number from 1 to {maximum:,}, got {value}.")
    if value < 1:
        raise CommandError(f"{option} must be at least 1, got {value}.")
    return value
