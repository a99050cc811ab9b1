"""Commands in any shell: after the README's Run command, every ``manage.py`` command (and its
``--help``) works in a new shell with nothing exported, because the settings read ``.env``; exit
statuses are argparse's 2 for usage errors and 1 (``CommandError``) for bad values.

The end-to-end tests run a copy of the project (manage.py and its packages) in a temporary
directory, with an empty environment, after running the part of the README's Run command that
writes ``.env``: the checkout's own ``.env`` and database are never touched.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from hermes_site.envfile import read_env_file

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = sorted(
    path.stem
    for app in ("agents_app", "sessions_app")
    for path in (ROOT / app / "management" / "commands").glob("*.py")
    if path.stem != "__init__"
)


def readme_run_command() -> str:
    """The README's Run command: the shell block after "**Run it**"."""
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"\*\*Run it\*\*.*?```sh\n(.+?)\n```", readme, flags=re.DOTALL)
    assert block, "README.md has no Run command"
    return block[1]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A copy of the project where the README's Run command has written ``.env`` and ``migrate`` ran."""
    copy = tmp_path_factory.mktemp("any-shell")
    shutil.copy2(ROOT / "manage.py", copy)
    for package in ("hermes_site", "agents_app", "sessions_app"):
        shutil.copytree(ROOT / package, copy / package, ignore=shutil.ignore_patterns("__pycache__"))
    # Everything before the virtualenv is made: the part that writes the local settings.
    steps = readme_run_command().split(" && ")
    setup = " && ".join(steps[: next(i for i, step in enumerate(steps) if "venv" in step)])
    assert ".env" in setup, f"the README's Run command no longer writes .env: {setup!r}"
    subprocess.run(["bash", "-c", setup], cwd=copy, env={}, check=True, timeout=30)
    migrated = manage(copy, "migrate", "--verbosity", "0")
    assert migrated.returncode == 0, migrated.stderr
    return copy


def manage(directory: Path, *args, **env) -> subprocess.CompletedProcess:
    """``python manage.py ARGS`` in ``directory`` in a new shell: nothing in the environment but ``env``."""
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=directory, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_helps_in_a_new_shell(project, command):
    result = manage(project, command, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: manage.py {command}")


def test_commands_run_in_a_new_shell(project):
    table = manage(project, "empty_sessions")
    assert table.returncode == 0, table.stderr
    assert table.stdout == "No sessions recorded.\n"
    report = manage(project, "empty_sessions", "--format", "json")
    assert report.returncode == 0, report.stderr
    total = json.loads(report.stdout)["total"]
    assert (total["sessions"], total["empty"], total["rate"]) == (0, 0, 0)
    verified = manage(project, "verify_sessions")
    assert verified.returncode == 0, verified.stderr


def test_the_process_environment_wins_over_env(project):
    # .env says DJANGO_DEBUG=1; the shell says 0 and gives no key: production's refusal, one line.
    result = manage(project, "empty_sessions", DJANGO_DEBUG="0")
    assert result.returncode == 1
    assert result.stderr.startswith("Error: DJANGO_SECRET_KEY is not set.")
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_without_env_production_refuses_to_start(project):
    result = manage(project, "empty_sessions", DJANGO_ENV_FILE="")
    assert result.returncode == 1
    assert result.stderr.startswith("Error: DJANGO_SECRET_KEY is not set.")
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["empty_sessions", "--bogus"], "unrecognized arguments: --bogus"),
        (["empty_sessions", "--by"], "argument --by: expected one argument"),
        (["import_hermes"], "the following arguments are required: PATH"),
        (["close_stale_sessions"], "the following arguments are required: --idle"),
    ],
)
def test_a_usage_error_exits_2(project, args, message):
    result = manage(project, *args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert result.stderr.startswith(f"usage: manage.py {args[0]}")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["empty_sessions", "--by", "year"], "--by: unknown grouping 'year'"),
        (["empty_sessions", "--format", "xml"], "unknown --format 'xml'"),
        (["verify_sessions", "--batch-size", "abc"], "--batch-size: 'abc' is not a whole number."),
        (["load_demo", "--seed", "x"], "--seed: 'x' is not a whole number."),
        (["prune_empty_sessions", "--older-than", "soon"], "--older-than: 'soon' is not a duration"),
        (["import_hermes", "no-such-state.db"], "no-such-state.db"),
    ],
)
def test_a_bad_value_exits_1(project, args, message):
    result = manage(project, *args)
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith("CommandError: ")
    assert message in result.stderr
    assert result.stdout == ""


def test_a_bad_env_file_is_one_line_naming_the_line(tmp_path):
    env_file = tmp_path / "local.env"
    env_file.write_text("DJANGO_DEBUG=1\nnot an assignment\n")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "HERMES_"))}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env={**clean, "DJANGO_ENV_FILE": str(env_file)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr == f"Error: {env_file}, line 2: expected KEY=VALUE, got 'not an assignment'.\n"


# --- the dotenv format ---------------------------------------------------------------------------


def test_the_dotenv_format(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text(
        "# local settings\n"
        "\n"
        "DJANGO_DEBUG=1\n"
        "export DATABASE_URL = sqlite:////tmp/x.sqlite3   # a comment\n"
        "HASH=a#b\n"
        "EMPTY=\n"
        "SINGLE='  kept as written \\n # too '\n"
        'DOUBLE="line\\none \\"quoted\\" \\\\ \\t" # comment\n'
        "  INDENTED=yes\n"
        "DJANGO_DEBUG=0\n"
    )
    assert read_env_file(env_file) == {
        "DJANGO_DEBUG": "0",  # a later line wins
        "DATABASE_URL": "sqlite:////tmp/x.sqlite3",
        "HASH": "a#b",
        "EMPTY": "",
        "SINGLE": "  kept as written \\n # too ",
        "DOUBLE": 'line\none "quoted" \\ \t',
        "INDENTED": "yes",
    }


@pytest.mark.parametrize(
    "line", ["no assignment", "1KEY=x", "KEY", "KEY='open", 'KEY="open', 'KEY="a" b', "KEY-NAME=x", "${X}=1"]
)
def test_a_line_that_is_not_an_assignment_is_refused(tmp_path, line):
    env_file = tmp_path / ".env"
    env_file.write_text(f"OK=1\n{line}\n")
    with pytest.raises(ImproperlyConfigured, match=rf"^{re.escape(str(env_file))}, line 2: expected KEY=VALUE"):
        read_env_file(env_file)
