"""Run a few lines of Python in another process, Django set up on the test database, and wait for
them: what another worker, the admin or an operator's shell does to the database meanwhile."""

import subprocess
import sys
import textwrap
from pathlib import Path

from django.db import connection

ROOT = Path(__file__).resolve().parents[1]
_PRELUDE = """
import os, sys
os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
import django
from django.conf import settings
settings.DATABASES["default"]["NAME"] = sys.argv[1]
django.setup()
"""


def run_elsewhere(code: str, *, timeout: float = 120) -> str:
    """Run ``code`` in a new Python process on the test database; its stdout. Fails the test if
    the process fails. Commit before calling: the other process sees only committed rows."""
    proc = subprocess.run(
        [sys.executable, "-c", _PRELUDE + textwrap.dedent(code), connection.settings_dict["NAME"]],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout
