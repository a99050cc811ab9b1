"""``import_hermes --follow``: a real follower process keeps our database in sync with a state.db that
hermes grows in place through SQLite, reports a file that goes missing without stopping the others,
and exits 0 on SIGTERM."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from sessions_app.importers.follow import Followed, file_signature, follow_files
from sessions_app.models import Message, ModelUsage, Session
from tests.hermes_fixtures import StateDB
from tests.sessions_app.test_import_v30 import DAY, JAN1, FileTruth, assert_matches_file, build_v30

ROOT = Path(__file__).resolve().parents[2]


def database_url() -> str:
    """The URL of the test database, for a process of our own."""
    settings = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{settings['NAME']}"
    scheme = {"postgresql": "postgres", "mysql": "mysql"}[connection.vendor]
    user = settings["USER"] or ""
    password = f":{settings['PASSWORD']}" if settings["PASSWORD"] else ""
    host = settings["HOST"] or "127.0.0.1"
    port = f":{settings['PORT']}" if settings["PORT"] else ""
    return f"{scheme}://{user}{password}@{host}{port}/{settings['NAME']}"


def start_follower(*paths, interval="0.2"):
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "HERMES_", "DATABASE_URL"))},
        "DATABASE_URL": database_url(),
        "DJANGO_DEBUG": "1",
        "DJANGO_ENV_FILE": "",
    }
    return subprocess.Popen(
        [sys.executable, "manage.py", "import_hermes", "--follow", interval, *map(str, paths)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def eventually(check, timeout=60.0):
    """Wait until ``check()`` stops raising AssertionError (the follower works on its own clock)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def stop(follower) -> tuple[int, str, str]:
    follower.send_signal(signal.SIGTERM)
    out, err = follower.communicate(timeout=60)
    return follower.returncode, out, err


@pytest.mark.django_db(transaction=True)
def test_follow_catches_a_file_growing_in_place_and_exits_0_on_sigterm(tmp_path):
    path = tmp_path / "state.db"
    build_v30(path).close()
    missing = tmp_path / "gone" / "state.db"
    follower = start_follower(missing, path)
    try:
        eventually(lambda: assert_matches_file(path))
        with StateDB.reopen(path) as src:  # hermes goes on writing, through SQLite, in place
            src.session("d1", model="openai/gpt-5", source="discord", started_at=JAN1 + 3 * DAY, profile_name="home")
            src.message("d1", "user", "new session", timestamp=JAN1 + 3 * DAY + 1)
            src.message("a1", "user", "a new turn", timestamp=JAN1 + 100)
            src.update("messages", "session_id = 'b1'", active=0, compacted=1)
            src.update("sessions", "id = 'b2'", ended_at=JAN1 + DAY + 60, end_reason="timeout")
            src.usage("d1", "openai/gpt-5", api_call_count=1, input_tokens=5)
        eventually(lambda: assert_matches_file(path))
        assert Session.objects.get(pk="b2").end_reason == "timeout"
        time.sleep(1.5)  # quiet cycles: they must add no line
    finally:
        returncode, out, err = stop(follower)
    assert returncode == 0, err
    cycle_lines = [line for line in out.splitlines() if line.strip()]
    assert 2 <= len(cycle_lines) <= 4, out  # the first import, the growth (maybe over two cycles); quiet after
    assert "+5 sessions" in cycle_lines[0] and "+7 messages" in cycle_lines[0]
    assert any("+1 sessions" in line for line in cycle_lines)
    assert any("undone/compacted" in line for line in cycle_lines)
    assert f"{missing}: " in err and err.count(f"{missing}: ") == 1  # reported once, retried quietly
    assert "Stopped." in err and "Traceback" not in err


@pytest.mark.django_db(transaction=True)
def test_a_file_that_turns_bad_is_reported_retried_and_picked_up_again(tmp_path):
    good, flaky = tmp_path / "good.db", tmp_path / "flaky.db"
    build_v30(good).close()
    flaky.write_bytes(b"not a database, yet")
    follower = start_follower(flaky, good)
    try:
        eventually(lambda: assert_matches_file(good))
        flaky.unlink()
        with StateDB(flaky, "v30") as src:
            src.session("f1", model="m", started_at=JAN1, profile_name="flaky")
            src.message("f1", "user", "hello", timestamp=JAN1 + 1)

        def flaky_imported():
            assert Session.objects.filter(pk="f1", message_count=1).exists()

        eventually(flaky_imported)
    finally:
        returncode, _, err = stop(follower)
    assert returncode == 0, err
    assert "not a SQLite database" in err and f"{flaky}: readable again" in err
    assert Session.objects.get(pk="f1").profile == "flaky"


def test_an_unchanged_file_is_not_opened(db, tmp_path, monkeypatch):
    path = tmp_path / "state.db"
    build_v30(path).close()
    files = [Followed(path)]
    cycles, opened = [], []

    import threading

    from sessions_app.importers import follow

    real = follow.import_hermes_db

    def counting(*args, **kwargs):
        opened.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(follow, "import_hermes_db", counting)
    done = threading.Event()

    def on_cycle(cycle):
        cycles.append(cycle)
        if len(cycles) == 3:
            done.set()

    follow_files(files, interval=0, stop=done, on_cycle=on_cycle, import_options={})
    assert opened == [path]  # the first cycle only: the file did not change after
    assert len(cycles[0].results) == 1 and not cycles[1].results and not cycles[2].results
    assert files[0].signature == file_signature(path)
    assert FileTruth(path).sessions().keys() == set(Session.objects.values_list("pk", flat=True))
    assert Message.objects.count() == 7 and ModelUsage.objects.count() == 4


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--follow", "0"], "--follow must be a number of seconds"),
        (["--follow", "soon"], "--follow must be a number of seconds"),
        (["--follow", "nan"], "--follow must be a number of seconds"),
        (["--follow", "5", "--dry-run"], "cannot be a --dry-run"),
    ],
)
def test_bad_follow_options_are_one_clear_error(db, tmp_path, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("import_hermes", str(tmp_path / "state.db"), *args)
