"""Log lines are printed once, in debug (runserver) as in production (hermes_site.settings.LOGGING)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = """
import logging
import django
django.setup()
logging.getLogger("django.request").warning("Not Found: /favicon.ico")
logging.getLogger("django.server").info('"GET / HTTP/1.1" 200')
logging.getLogger("sessions_app").warning("app warning")
"""


@pytest.mark.parametrize("debug", ["1", "0"])
def test_each_log_line_is_printed_once(debug):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "hermes_site.settings",
        "DJANGO_DEBUG": debug,
        "DJANGO_SECRET_KEY": "test-only-" + "x" * 50,
    }
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True
    )
    lines = result.stderr.splitlines()
    assert lines.count("Not Found: /favicon.ico") == 1
    assert lines.count("app warning") == 1
    assert sum('"GET / HTTP/1.1" 200' in line for line in lines) == 1  # runserver's request log stays
