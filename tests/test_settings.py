import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.test import RequestFactory
from django.views.debug import technical_500_response

from hermes_site.settings import database_config, env_bool, env_int

ROOT = Path(__file__).resolve().parents[1]


def run_check(*args, **env):
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "HERMES_"))}
    clean.update(DJANGO_ENV_FILE="", **env)  # whatever a developer's .env holds
    return subprocess.run(
        [sys.executable, "manage.py", *(args or ["check"])],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_missing_secret_key_refuses_to_start_without_debug():
    result = run_check(DJANGO_DEBUG="0")
    assert result.returncode == 1
    assert "DJANGO_SECRET_KEY is not set" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_help_works_without_a_secret_key():
    result = run_check("--help", DJANGO_DEBUG="0")
    assert result.returncode == 0, result.stderr
    assert "check" in result.stdout


def test_debug_runs_without_secret_key():
    result = run_check(DJANGO_DEBUG="1")
    assert result.returncode == 0, result.stderr


def test_env_bool_rejects_nonsense(monkeypatch):
    monkeypatch.setenv("X_FLAG", "maybe")
    with pytest.raises(ImproperlyConfigured, match="X_FLAG"):
        env_bool("X_FLAG")
    monkeypatch.setenv("X_FLAG", "On")
    assert env_bool("X_FLAG") is True


def test_sqlite_gets_wal_busy_timeout_and_immediate_transactions(tmp_path):
    config = database_config(f"sqlite:///{tmp_path / 'x.sqlite3'}")
    assert config["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
    assert config["OPTIONS"]["timeout"] >= 5
    assert "journal_mode=WAL" in config["OPTIONS"]["init_command"]
    assert "synchronous=NORMAL" in config["OPTIONS"]["init_command"]


def test_mysql_keeps_read_committed_and_utf8mb4():
    config = database_config("mysql://root@127.0.0.1:3306/hermes")
    assert config["OPTIONS"]["isolation_level"] == "read committed"
    assert config["OPTIONS"]["charset"] == "utf8mb4"


def test_bad_database_url_is_a_clear_error():
    with pytest.raises(ImproperlyConfigured, match="DATABASE_URL"):
        database_config("nosuchdb://x")


@pytest.mark.django_db
def test_live_sqlite_connection_uses_wal():
    if connection.vendor != "sqlite":
        pytest.skip("SQLite pragmas apply to the SQLite backend only")
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA journal_mode")
        assert cursor.fetchone()[0] == "wal"
        cursor.execute("PRAGMA busy_timeout")
        assert cursor.fetchone()[0] >= 5000


# -- issue 17, item 17: integer settings ----------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "accepts"),
    [
        ("DJANGO_SECURE_HSTS_SECONDS", "abc", "of at least 0"),
        ("DJANGO_CONN_MAX_AGE", "abc", "of at least 0"),
        ("DJANGO_CONN_MAX_AGE", "-1", "of at least 0"),
        ("HERMES_MAX_CONTENT_CHARS", "-5", "from 1 to 12582912"),
        ("HERMES_MAX_CONTENT_CHARS", "1e6", "from 1 to 12582912"),
        ("HERMES_ABANDONED_TALLY_RETENTION_DAYS", "x", "from 0 to 100000"),
        ("HERMES_ABANDONED_TALLY_RETENTION_DAYS", "9" * 40, "from 0 to 100000"),
    ],
)
def test_a_bad_integer_setting_is_one_clear_line(name, value, accepts):
    # Without debug, so that the HSTS setting is read; a key so that nothing else is missing.
    result = run_check(DJANGO_SECRET_KEY="k" * 50, **{name: value})
    assert result.returncode == 1
    assert result.stderr.strip() == f"Error: {name} must be a whole number {accepts}, got {value!r}."
    assert "DATABASE_URL" not in result.stderr  # DJANGO_CONN_MAX_AGE used to be blamed on it


def test_env_int(monkeypatch):
    monkeypatch.delenv("X_INT", raising=False)
    assert env_int("X_INT", 7) == 7
    monkeypatch.setenv("X_INT", " ")
    assert env_int("X_INT", 7) == 7
    monkeypatch.setenv("X_INT", " 42 ")
    assert env_int("X_INT", 7, minimum=1, maximum=42) == 42
    for bad in ("43", "0", "4.2", "0x10", "1_000", "abc"):
        monkeypatch.setenv("X_INT", bad)
        with pytest.raises(ImproperlyConfigured, match=r"^X_INT must be a whole number from 1 to 42, got"):
            env_int("X_INT", 7, minimum=1, maximum=42)


# -- issue 17, item 18: the debug page hides DATABASE_URL ------------------------------------------


def _error_page():
    """The technical 500 page of a request whose META carries the environment, as under runserver.
    (The exception is caught here, so the page shows this frame only: no test's local variables.)"""
    request = RequestFactory().get("/boom", **os.environ)
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        return technical_500_response(request, *sys.exc_info()).content.decode()


def test_debug_error_page_does_not_show_the_database_password(settings, monkeypatch):
    settings.DEBUG = True
    settings.HERMES_TEST_CACHE_LOCATION = "redis://cache:an0ther-pw@cache.example:6379/0"
    monkeypatch.setenv("DATABASE_URL", "postgres://hermes:s3cret-pw@db.example:5432/hermes")
    monkeypatch.setenv("SENTRY_DSN", "https://key:dsn-pw@sentry.example/1")
    page = _error_page()
    assert "RuntimeError" in page and "DATABASE_URL" in page  # the page is there, the name too
    for secret in ("s3cret-pw", "an0ther-pw", "dsn-pw"):
        assert secret not in page
    assert "redis://cache:" in page  # only the password of a URL is hidden, not the whole setting


@pytest.mark.parametrize("level", ["NOPE", "", "  ", "10", "warn ing", "\udcff"])
def test_a_bad_or_blank_log_level_is_one_line_naming_the_variable(level):
    result = run_check(DJANGO_DEBUG="1", DJANGO_LOG_LEVEL=level)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("Error: DJANGO_LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.parametrize("level", ["info", " Error ", "DEBUG"])
def test_a_log_level_in_any_case_is_taken(level):
    result = run_check(DJANGO_DEBUG="1", DJANGO_LOG_LEVEL=level)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("DJANGO_SECRET_KEY", "\udcffkey", "DJANGO_SECRET_KEY must be text"),
        ("HERMES_METRICS_TOKEN", "\udcff", "HERMES_METRICS_TOKEN must be a string of visible ASCII characters"),
        ("HERMES_METRICS_TOKEN", "café", "HERMES_METRICS_TOKEN must be a string of visible ASCII characters"),
    ],
)
def test_secrets_no_request_could_use_stop_start_up_with_one_line(name, value, message):
    # Such a secret key failed every signed cookie, such a token every /metrics scrape, with a 500.
    result = run_check(DJANGO_DEBUG="1", **{name: value})
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"Error: {message}")
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
