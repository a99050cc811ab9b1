"""A writer process that holds its transaction open: the first message of a session is inserted,
not committed, until the test says so. Lets a test run a sweep (prune, stale closing) against a
row another transaction is writing.

Use ``HoldingWriter(session_id)`` as a context manager: on entry the message is written and the
transaction open; ``commit()`` lets it commit; leaving the block always ends the process.
Run as ``python -m tests.holding_writer DB_NAME SESSION_ID``.
"""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


class HoldingWriter:
    def __init__(self, session_id: str):
        from django.db import connection

        self.args = [sys.executable, "-m", "tests.holding_writer", connection.settings_dict["NAME"], session_id]

    def __enter__(self) -> "HoldingWriter":
        self.process = subprocess.Popen(
            self.args, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        line = self.process.stdout.readline().strip()
        if line != "written":
            self.process.kill()
            raise AssertionError(f"the writer did not start: {line!r} {self.process.stderr.read()}")
        return self

    def commit(self) -> None:
        """Let the writer commit, and wait until it has."""
        self.process.stdin.write("\n")
        self.process.stdin.flush()
        assert self.process.stdout.readline().strip() == "committed", self.process.stderr.read()

    def __exit__(self, *exc) -> None:
        self.process.kill()
        self.process.wait(timeout=30)


def main(db_name: str, session_id: str) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import django
    from django.conf import settings

    settings.DATABASES["default"]["NAME"] = db_name
    django.setup()
    from django.db import transaction

    from sessions_app.services import append_messages

    with transaction.atomic():
        append_messages(session_id, [{"role": "user", "content": "a late first message"}], model="m", source="cli")
        print("written", flush=True)
        sys.stdin.readline()
    print("committed", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
