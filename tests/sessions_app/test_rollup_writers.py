"""Every writer that can change a past day keeps the numbers the rows' numbers: right after it
(its marks make the readers count the day live) and after the marks are folded into the rollup
(the rollup's own rows equal the rows). Also after a kill -9 in the middle of a prune or of
``verify_sessions --repair``: the marks were committed with each batch.

Expectations come from the session rows alone, read with the plain ORM and summed here; never
from the rollup or the reports under test.
"""

import datetime as dt
import os
import signal
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest
from django.db import connection, transaction
from django.urls import reverse
from django.utils import timezone

from agents_app.models import LanguageModel
from sessions_app.analytics import Scope, empty_session_rates, read_days
from sessions_app.importers import import_hermes_db
from sessions_app.importers import run as import_run
from sessions_app.integrity import verify_sessions
from sessions_app.models import Message, RollupMark, Session, SessionDay, SessionRollupState
from sessions_app.pruning import delete_empty_sessions, prune_empty_sessions
from sessions_app.querysets import USAGE_COUNTERS, stale_before
from sessions_app.rollup import build_rollup, fold_marks
from sessions_app.services import add_usage, append_messages, compress_session, end_session
from sessions_app.stale import close_stale_sessions
from tests.hermes_fixtures import StateDB

ROOT = Path(__file__).resolve().parents[2]
MODELS = ["openai/gpt-5", "anthropic/claude-opus-4.6", None]
SOURCES = ["cli", "CLI", "telegram"]
PROFILES = ["default", "work"]


def days_ago(days: float) -> dt.datetime:
    return timezone.now() - dt.timedelta(days=days)


def make_history(count: int = 120) -> None:
    """Sessions over the last ten days: with messages, empty and ended, empty and open, empty
    with usage; a few models (and none), sources differing only in case, two profiles."""
    models = {name: LanguageModel.objects.get_or_create(name=name)[0] for name in MODELS if name}
    sessions, messages = [], []
    for i in range(count):
        started = days_ago(1.2 + (i % 10) + (i % 7) / 10)
        kind = i % 4  # 0 spoke, 1 empty ended, 2 empty open, 3 empty with usage
        session = Session(
            id=f"w{i:04d}",
            model=models.get(MODELS[i % 3]),
            source=SOURCES[i % 3],
            profile=PROFILES[(i // 3) % 2],
            started_at=started,
            ended_at=None if kind == 2 else started + dt.timedelta(minutes=5),
            message_count=2 if kind == 0 else 0,
            input_tokens=50 if kind == 3 else 0,
        )
        sessions.append(session)
        if kind == 0:
            messages.append(Message(session_id=session.id, role="user", content="hi", timestamp=started))
            messages.append(Message(session_id=session.id, role="assistant", content="hello", timestamp=started))
    # Open empty sessions late yesterday: within the grace period (open) for most of today, on a
    # day the rollup holds, so the readers must split the rollup's unended count by the time.
    midnight = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    for i in range(5):
        sessions.append(
            Session(
                id=f"late{i}", model=models[MODELS[0]], source="cli", started_at=midnight - dt.timedelta(hours=2 + i)
            )
        )
    Session.objects.bulk_create(sessions)
    Message.objects.bulk_create(messages)


def cause_of(row: dict, stale: dt.datetime) -> str | None:
    if row["has_messages"]:
        return None
    if any(row[counter] > 0 for counter in USAGE_COUNTERS):
        return "lost_transcript"
    if row["ended_at"] is None:
        return "never_ended" if row["started_at"] < stale else "open"
    return "ghost"


def truth(now: dt.datetime) -> dict:
    """``{(day, model key, source, profile): {...}}`` from the session rows alone."""
    stale = stale_before(now)
    figures = defaultdict(lambda: defaultdict(int))
    fields = ["started_at", "model__name", "source", "profile", "has_messages", "ended_at", *USAGE_COUNTERS]
    for row in Session.objects.values(*fields):
        key = (
            row["started_at"].astimezone(dt.UTC).date(),
            row["model__name"] or "(none)",
            row["source"],
            row["profile"],
        )
        group = figures[key]
        group["sessions"] += 1
        group["empty"] += not row["has_messages"]
        group["messages"] += row["message_count"]
        if (cause := cause_of(row, stale)) is not None:
            group[cause] += 1
        group["newest"] = max(group.get("newest", row["started_at"]), row["started_at"])
    return {key: dict(group) for key, group in figures.items()}


def assert_reads_are_the_rows() -> None:
    now = timezone.now()
    expected = truth(now)
    read = read_days(Scope(), dims=("model", "source", "profile"), causes=True, activity=True, now=now)
    got = defaultdict(lambda: defaultdict(int))
    for row in read.rows:
        group = got[row.day, row.model, row.source, row.profile]
        for name in ("sessions", "empty", "messages", "lost_transcript", "never_ended", "open", "ghost"):
            group[name] += getattr(row, name)
        if row.newest is not None:
            group["newest"] = max(group.get("newest", row.newest), row.newest)
    want = {key: {k: v for k, v in group.items() if k != "newest" and v} for key, group in expected.items()}
    have = {key: {k: v for k, v in group.items() if k != "newest" and v} for key, group in got.items()}
    assert have == want
    # Every grouping of the public report: the same sums.
    for by, key in (("model", 1), ("source", 2), ("profile", 3), ("day", 0)):
        report = empty_session_rates(by, now=now)
        sums = defaultdict(lambda: [0, 0])
        for group_key, group in expected.items():
            name = group_key[key].isoformat() if by == "day" else group_key[key]
            sums[name][0] += group["sessions"]
            sums[name][1] += group["empty"]
        assert {row.key: [row.sessions, row.empty] for row in report.rows} == dict(sums), by
    # Cuts inside a rollup day (a marker three days ago, early or late in the day, or both): the
    # segments split the day exactly, whichever side of it is counted live.
    day = timezone.now().replace(minute=0, second=0, microsecond=0) - dt.timedelta(days=3)
    rows = list(Session.objects.values_list("started_at", "has_messages"))
    for hours in ((7,), (20,), (7, 20)):
        cuts = [day.replace(hour=hour) for hour in hours]
        split = read_days(Scope(), dims=("model", "source"), cuts=cuts, now=now, days=False)
        sides = defaultdict(lambda: [0, 0])
        for row in split.rows:
            sides[row.segment][0] += row.sessions
            sides[row.segment][1] += row.empty
        bounds = [None, *cuts, None]
        want = {}
        for segment in range(len(cuts) + 1):
            lower, upper = bounds[segment], bounds[segment + 1]
            inside = [spoke for at, spoke in rows if (lower is None or at >= lower) and (upper is None or at < upper)]
            want[segment] = [len(inside), sum(1 for spoke in inside if not spoke)]
        assert {k: v for k, v in sides.items() if v != [0, 0]} == {k: v for k, v in want.items() if v != [0, 0]}, hours
    causes = empty_session_rates("cause", now=now)
    assert {row.key: row.empty for row in causes.rows} == {
        cause: sum(group.get(cause, 0) for group in expected.values())
        for cause in ("ghost", "lost_transcript", "never_ended", "open")
    }


def assert_rollup_is_the_rows() -> None:
    """After folding: every day before the watermark is in the rollup exactly as its rows are."""
    fold_marks()
    assert not RollupMark.objects.exists()
    expected = defaultdict(lambda: defaultdict(int))
    stale_free = truth(dt.datetime.max.replace(tzinfo=dt.UTC))  # open ones all "open": unended
    mark = SessionRollupState.objects.get(pk=1).watermark
    for (day, model, source, profile), group in stale_free.items():
        if day < mark:
            target = expected[day, model, source, profile]
            target["sessions"] += group["sessions"]
            target["empty"] += group["empty"]
            target["lost_transcript"] += group.get("lost_transcript", 0)
            target["ghost"] += group.get("ghost", 0)
            target["unended"] += group.get("open", 0) + group.get("never_ended", 0)
            target["messages"] += group["messages"]
    stored = defaultdict(lambda: defaultdict(int))
    for row in SessionDay.objects.select_related("model"):
        target = stored[row.day, row.model.name if row.model and row.model.name else "(none)", row.source, row.profile]
        for name in ("sessions", "empty", "lost_transcript", "ghost", "unended", "messages"):
            target[name] += getattr(row, name)
    assert {k: dict(v) for k, v in stored.items()} == {k: dict(v) for k, v in expected.items()}


@pytest.fixture
def history(db):
    make_history()
    build_rollup()
    assert_rollup_is_the_rows()


def old_session(kind: str) -> Session:
    """An old session of the history: ``spoke``, ``ended`` (empty, ended, no usage) or ``open``."""
    sessions = Session.objects.filter(started_at__lt=days_ago(1.5)).order_by("pk")
    if kind == "spoke":
        return sessions.filter(has_messages=True).first()
    if kind == "open":
        return sessions.filter(has_messages=False, ended_at__isnull=True, input_tokens=0).first()
    return sessions.filter(has_messages=False, ended_at__isnull=False, input_tokens=0).first()


WRITERS = {
    "append to an old session": lambda: append_messages(
        old_session("spoke").pk, [{"role": "user", "content": "more"}], model="m", source="cli"
    ),
    "first message into an old empty session": lambda: append_messages(
        old_session("ended").pk, [{"role": "user", "content": "late"}], model="m", source="cli"
    ),
    "a session created today that started yesterday": lambda: append_messages(
        "born_late", [{"role": "user", "content": "hi"}], model="m", source="cli", started_at=days_ago(1.5)
    ),
    "usage on an old empty session": lambda: add_usage(old_session("ended").pk, {"input_tokens": 5}),
    "end of an old open session": lambda: end_session(old_session("open").pk, "timeout"),
    "compression of an old session": lambda: compress_session(
        old_session("spoke").pk, child_session_id="child_x", summary="s", model="m", source="cli"
    ),
    "close_stale_sessions": lambda: close_stale_sessions(idle=dt.timedelta(hours=1)),
    "prune_empty_sessions": lambda: prune_empty_sessions(older_than=dt.timedelta(days=3)),
    "the admin action": lambda: delete_empty_sessions(Session.objects.filter(started_at__lt=days_ago(6))),
    "verify_sessions --repair": lambda: (
        Session.objects.filter(pk__in=list(Session.objects.filter(has_messages=True).values("pk")[:3])).update(
            message_count=99
        ),
        verify_sessions(repair=True),
    ),
}


@pytest.mark.parametrize("writer", WRITERS, ids=list(WRITERS))
def test_every_writer_keeps_the_numbers_the_rows_numbers(history, writer):
    WRITERS[writer]()
    assert_reads_are_the_rows()
    assert_rollup_is_the_rows()


def test_an_import_and_what_hermes_changes_in_place_keep_them_too(history, tmp_path, monkeypatch):
    """Each import page marks the past days it changes, in its own transaction: the sessions it
    creates or refreshes, the messages it adds, and (the flag pass) the messages hermes undid,
    compacted or deleted, which move the counters (active messages) and may leave a session empty.
    The run's closing fold is switched off, so only the pages' marks can make the reads right."""
    monkeypatch.setattr(import_run, "fold_marks", lambda **kwargs: 0)
    path, started = tmp_path / "state.db", days_ago(4).timestamp()
    with StateDB(path, "v30") as src:
        src.session("imp_a", model="openai/gpt-5", started_at=started)
        src.session("imp_b", model="openai/gpt-5", started_at=started - 86400)  # empty and open, a day earlier
        for i in range(4):
            src.message("imp_a", "user", f"m{i}", timestamp=started + 1 + i)
        src.message("imp_a", "assistant", "undone", timestamp=started + 9, active=0)
    import_hermes_db(path)
    assert Session.objects.get(pk="imp_a").message_count == 4
    assert_reads_are_the_rows()
    assert_rollup_is_the_rows()
    with StateDB.reopen(path) as src:
        src.update("messages", "session_id = 'imp_a' AND content IN ('m2', 'm3')", active=0)  # a rewind
    result = import_hermes_db(path)
    assert result.messages_flags_changed == 2
    assert Session.objects.get(pk="imp_a").message_count == 2
    assert_reads_are_the_rows()
    assert_rollup_is_the_rows()
    with StateDB.reopen(path) as src:
        src.conn.execute("DELETE FROM messages WHERE session_id = 'imp_a'")  # hermes deleted them all
        src.update("sessions", "id = 'imp_b'", ended_at=started, end_reason="timeout")  # never_ended -> ghost
    result = import_hermes_db(path)
    assert result.messages_removed == 5 and result.sessions_updated >= 1
    assert not Session.objects.get(pk="imp_a").has_messages
    assert_reads_are_the_rows()
    assert_rollup_is_the_rows()


def test_the_admin_deletions_keep_them_too(admin_client, history):
    session = old_session("spoke")
    url = reverse("admin:sessions_app_session_delete", args=[session.pk])
    assert admin_client.post(url, {"post": "yes"}).status_code == 302
    assert not Session.objects.filter(pk=session.pk).exists()
    assert_reads_are_the_rows()
    assert_rollup_is_the_rows()
    other = old_session("spoke")
    messages = Message.objects.filter(session=other)
    url = reverse("admin:sessions_app_message_changelist")
    data = {"action": "delete_selected", "_selected_action": list(messages.values_list("pk", flat=True)), "post": "yes"}
    assert admin_client.post(url, data).status_code == 302
    other.refresh_from_db()
    assert not other.has_messages  # its last messages went: it is empty now, on its old day
    assert_reads_are_the_rows()
    assert_rollup_is_the_rows()


def test_a_write_to_a_session_of_today_leaves_the_rollup_alone(db):
    append_messages("today_1", [{"role": "user", "content": "hi"}], model="m", source="cli")
    build_rollup()
    append_messages("today_1", [{"role": "user", "content": "again"}], model="m", source="cli")
    end_session("today_1")
    assert not RollupMark.objects.exists()


# --- kill -9 in the middle of a run ------------------------------------------------------------------

RUNNER = """
import os, sys, time
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
import django
from django.conf import settings
settings.DATABASES["default"]["NAME"] = sys.argv[1]
django.setup()
from django.db import transaction
from sessions_app import integrity
marking = integrity.mark_days

def mark_then_say(days, **kwargs):
    marking(days, **kwargs)
    say = lambda: (print("committed", flush=True), time.sleep(0.3))
    transaction.on_commit(say, using=kwargs.get("using", "default"))

integrity.mark_days = mark_then_say
from django.core.management import CommandError, call_command
try:
    call_command(*sys.argv[2:])
except CommandError as exc:
    sys.exit(exc.returncode)
"""


def run(*args) -> subprocess.Popen:
    command = [sys.executable, "-c", RUNNER, connection.settings_dict["NAME"], *args]
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def kill_after(process: subprocess.Popen, stream: str, marker: str) -> None:
    try:
        for line in getattr(process, stream):
            if line.startswith(marker):
                os.kill(process.pid, signal.SIGKILL)
                break
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == -signal.SIGKILL, process.stderr.read()


@pytest.mark.django_db(transaction=True)
def test_a_prune_killed_midway_leaves_every_read_right_and_the_rerun_folds(db):
    make_history(200)
    build_rollup()
    before = Session.objects.count()
    pruner = run("prune_empty_sessions", "--older-than", "2d", "--batch-size", "1", "--yes", "-v", "2")
    kill_after(pruner, "stderr", "batch 3:")
    assert before - Session.objects.count() >= 3 and Session.objects.filter(has_messages=False).exists()
    assert RollupMark.objects.exists()  # the deleted sessions' days, marked in their batches' transactions
    assert_reads_are_the_rows()
    rerun = run("prune_empty_sessions", "--older-than", "2d", "--yes")
    _, err = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, err
    assert_reads_are_the_rows()
    assert_rollup_is_the_rows()


@pytest.mark.django_db(transaction=True)
def test_a_repair_killed_midway_leaves_every_read_right_and_the_rerun_folds(db):
    make_history(200)
    with transaction.atomic():
        # Drift on old days, as after a restore: counters and flags that disagree with the rows.
        spoke = list(Session.objects.filter(has_messages=True).order_by("pk").values_list("pk", flat=True)[:20])
        Session.objects.filter(pk__in=spoke).update(message_count=7)
    build_rollup()  # the rollup holds the drifted counters
    repair = run("verify_sessions", "--repair", "--batch-size", "1")
    kill_after(repair, "stdout", "committed")
    assert RollupMark.objects.exists()
    assert_reads_are_the_rows()
    rerun = run("verify_sessions", "--repair")
    rerun.communicate(timeout=120)
    assert rerun.returncode in (0, 3)  # 3: drift found (and repaired)
    assert_reads_are_the_rows()
    assert_rollup_is_the_rows()
    assert set(Session.objects.filter(pk__in=spoke).values_list("message_count", flat=True)) == {2}
