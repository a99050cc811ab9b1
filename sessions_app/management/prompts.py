"""The confirmation prompt of the commands that delete data."""

import sys

from django.core.management.base import CommandError


def confirm_or_stop(stderr, question: str, *, not_a_terminal: str, cancelled: str) -> None:
    """Ask ``question`` on ``stderr`` and go on only on "y"/"yes"; otherwise raise ``CommandError``.

    Without a terminal on stdin there is nobody to ask: ``CommandError(not_a_terminal)``, which
    should name the flag that skips the question.
    """
    if not sys.stdin or not sys.stdin.isatty():
        raise CommandError(not_a_terminal)
    stderr.write(f"{question} Type 'yes' to continue: ", ending="")
    stderr.flush()
    try:
        answer = input()
    except EOFError:
        answer = ""
    if answer.strip().lower() not in {"y", "yes"}:
        raise CommandError(cancelled)
