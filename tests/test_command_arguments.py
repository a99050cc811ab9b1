"""No argument of any command of ours ends in a traceback (issue 23): every command line below runs
as ``manage.py`` runs it (its ``main()``, real stdout and stderr, undecodable bytes as Python
decodes them) and must exit with a status, a one-line error for bad input, nothing lost."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

from agents_app.agent import Agent
from sessions_app.models import Message, Session
from tests.hermes_fixtures import build_state_db

ROOT = Path(__file__).resolve().parents[1]
UNDECODABLE = "\udcff"  # the byte 0xff on a command line, as Python's sys.argv holds it
HUGE = "9" * 20  # 99999999999999999999: past every C integer
LONG = "x" * 100_000
# Per kind of option: values that must be refused (exit status 1 or 2, an error line), and odd
# values that may be taken or refused; none may end in a traceback.
TEXT = (
    [UNDECODABLE, "a" + UNDECODABLE + "b", ""],
    [LONG, "a\nb", "\x1b[2J", "\u202egnp.exe", "名前 🙂", "' OR 1=1 --"],
)
NAMES = (TEXT[0] + TEXT[1], [])  # a user name: anything but letters, digits and @.+-_ is refused
DATES = (
    [UNDECODABLE, "", "0001-01-01", "0999-12-31T23:00Z", "9999-12-31T23:59:59-05:00", "10000-01-01", HUGE, "now"],
    [],
)
DURATIONS = ([UNDECODABLE, "", "-1", HUGE, "999999999d", "99999999999999w", "1e9"], ["0", "1d" * 5000, "٣d"])
NUMBERS = ([UNDECODABLE, "", HUGE, "-" + HUGE, "1e3", "nan", "0x10"], ["0", "-1", "٣"])
KEEP_DAYS = ([value for value in NUMBERS[0] if value != HUGE], [*NUMBERS[1], HUGE])  # HUGE: keep it all
RATES = ([UNDECODABLE, "nan", "inf", "1e400", "-0.1", "101%", HUGE, "%"], [])
CHOICES = ([UNDECODABLE, LONG, "JSON"], [])
COMMON = [["--database", UNDECODABLE], ["--database", "nope"], ["--database", LONG], ["-v", "9"], ["-v", UNDECODABLE]]


def _option_lines(command: str, options: dict[str, tuple], base: list[str] = ()) -> list[tuple[list[str], bool]]:
    """(command line, whether it must be refused) for each value of each option, and the common ones."""
    lines = [([command, *base, *extra], True) for extra in COMMON]
    for option, (refused, odd) in options.items():
        lines += [([command, *base, option, value], True) for value in refused]
        lines += [([command, *base, option, value], False) for value in odd]
    return lines


def _command_lines(tmp: Path) -> list[tuple[list[str], bool]]:
    archive_dir = tmp / "a-directory"
    archive_dir.mkdir()
    with build_state_db(tmp / "state.db") as state:
        state.session("imported", model="openai/gpt-5")
        state.message("imported")
    (tmp / "existing.jsonl").write_text('{"id": "kept"}\n')
    not_databases = [
        str(tmp / "missing.db"),
        str(archive_dir),
        str(tmp / ("name" + UNDECODABLE + ".db")),
        str(tmp / ("n" * 300)),
        "/dev/null",
        str(tmp / "existing.jsonl"),
    ]
    archives = [str(tmp / "new.jsonl"), str(tmp / ("new" + UNDECODABLE + ".jsonl")), *not_databases]
    scope = {"--model": TEXT, "--source": TEXT}
    lines = []
    lines += _option_lines(
        "empty_sessions",
        {
            "--format": CHOICES,
            **scope,
            "--profile": TEXT,
            "--since": DATES,
            "--until": DATES,
            "--by": CHOICES,
            "--sort": CHOICES,
            "--breakdown": CHOICES,
            "--fail-above": RATES,
        },
    )
    lines += [(["import_hermes", path], True) for path in not_databases]
    lines += _option_lines(
        "import_hermes", {"--format": CHOICES, "--profile": TEXT, "--batch-size": NUMBERS}, base=[str(tmp / "state.db")]
    )
    prune = {"--format": CHOICES, **scope, "--older-than": DURATIONS, "--batch-size": NUMBERS}
    prune |= {"--tally-keep-days": KEEP_DAYS, "--archive": ([], archives)}
    lines += _option_lines("prune_empty_sessions", prune, base=["--yes"])
    lines += [(["prune_empty_sessions", "--yes", "--archive", path, "--archive-append"], False) for path in archives]
    lines += _option_lines(
        "close_stale_sessions",
        {"--format": CHOICES, **scope, "--idle": DURATIONS, "--batch-size": NUMBERS},
        base=["--yes", "--idle", "30d"],
    )
    lines += _option_lines("verify_sessions", {"--batch-size": NUMBERS})
    lines += _option_lines("build_rollup", {"--since": DATES, "--until": DATES, "--chunk-days": NUMBERS})
    lines += _option_lines(
        "load_demo",
        {"--seed": NUMBERS, "--days": NUMBERS, "--cutover-days-ago": NUMBERS, "--sessions-per-day": NUMBERS}
        | {"--username": NAMES},
        base=["--force", "--no-input"],
    )
    return lines


def _run(lines: list[list[str]], tmp: Path) -> list[tuple[list[str], str, str]]:
    argv_file = tmp / "argv.json"
    argv_file.write_text(json.dumps(lines))
    proc = subprocess.run(
        [sys.executable, "-m", "tests.command_driver", connection.settings_dict["NAME"], str(argv_file)],
        cwd=ROOT,
        capture_output=True,
        timeout=1800,
        stdin=subprocess.DEVNULL,
    )
    stderr = proc.stderr.decode("utf-8", "replace")
    runs = []
    rest = stderr
    for index, argv in enumerate(lines):
        marker = f"\n@@@ {index} "
        head, _, rest = rest.partition(marker)
        status, _, rest = rest.partition("\n")
        runs.append((argv, status, head))
    assert proc.returncode == 0, stderr[-3000:]
    return runs


@pytest.fixture
def stored(transactional_db):
    """A few sessions, so that the commands have something to read, prune, close and check."""
    agent = Agent("openai/gpt-5", "cli")
    agent.add_message("user", "kept")
    agent.end()
    return agent.session_id


def test_no_argument_of_any_command_ends_in_a_traceback(stored, tmp_path):
    lines = _command_lines(tmp_path)
    runs = _run([argv for argv, _ in lines], tmp_path)
    problems = []
    for (argv, refused), (_, status, output) in zip(lines, runs, strict=True):
        allowed = {"1", "2"} if refused else {"0", "1", "2", "3"}
        if status not in allowed or "Traceback" in output:
            problems.append(f"{ascii(argv)[:200]}: status {status}: {output.strip()[-300:]}")
    assert not problems, "\n".join(problems)
    assert Message.objects.filter(session_id=stored).count() == 1  # a session with a message is never lost
    assert Session.objects.filter(pk=stored).exists()


def _database_url() -> str:
    settings = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{settings['NAME']}"
    scheme = {"postgresql": "postgres", "mysql": "mysql"}[connection.vendor]
    password = f":{settings['PASSWORD']}" if settings.get("PASSWORD") else ""
    return f"{scheme}://{settings['USER']}{password}@{settings['HOST']}:{settings['PORT']}/{settings['NAME']}"


def _manage(*argv) -> subprocess.CompletedProcess:
    """``manage.py`` itself, in a new process, on the test database (``argv`` may hold raw bytes)."""
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": _database_url(), "DJANGO_SECRET_KEY": "tests-only-" + "x" * 40}
    env["DJANGO_ALLOWED_HOSTS"] = "localhost"
    return subprocess.run(
        [sys.executable, "manage.py", *argv],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        ((b"empty_sessions", b"--source", b"\xff"), b"--source: '\\udcff' is not valid UTF-8 text"),
        ((b"empty_sessions", b"--model", b"gpt\xfe\xff"), b"--model: 'gpt\\udcfe\\udcff' is not valid UTF-8 text"),
        ((b"prune_empty_sessions", b"--yes", b"--source", b"\xc3"), b"--source: '\\udcc3' is not valid UTF-8 text"),
        ((b"import_hermes", b"STATE", b"--batch-size", HUGE.encode()), b"--batch-size must be a whole number from 1"),
        ((b"import_hermes", b"STATE", b"--batch-size", b"-" + HUGE.encode()), b"--batch-size must be a whole number"),
    ],
)
def test_the_issues_command_lines_end_in_one_error_line(stored, tmp_path, argv, error):
    with build_state_db(tmp_path / "state.db") as state:
        state.session("imported")
        state.message("imported")
    argv = [str(tmp_path / "state.db").encode() if arg == b"STATE" else arg for arg in argv]
    result = _manage(*argv)
    assert result.returncode == 1
    assert b"Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [b"CommandError: " + result.stderr.strip()[14:]]
    assert error in result.stderr
    assert not Session.objects.filter(pk="imported").exists()  # nothing imported on refusal
