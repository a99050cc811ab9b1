"""close_stale_sessions: which sessions end and when, the command, and writers racing the sweep."""

import datetime as dt
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from sessions_app import stale
from sessions_app.models import Message, Session
from sessions_app.stale import close_stale_sessions
from tests.holding_writer import HoldingWriter

ROOT = Path(__file__).resolve().parents[2]
IDLE = dt.timedelta(hours=6)


@pytest.fixture
def now():
    return timezone.now()


@pytest.fixture
def sessions(legacy_session, now):
    old = now - dt.timedelta(days=2)
    legacy_session(session_id="silent", model="openai/gpt-5", started_at=old)
    talked = legacy_session(session_id="talked", model="google/gemini-3-pro", started_at=old)
    Message.objects.create(session=talked, role="user", content="a", timestamp=old + dt.timedelta(hours=1))
    legacy_session(session_id="young", started_at=now - dt.timedelta(hours=1))
    busy = legacy_session(session_id="busy", started_at=old)
    Message.objects.create(session=busy, role="user", content="b", timestamp=now - dt.timedelta(minutes=5))
    legacy_session(session_id="done", started_at=old, ended_at=old, end_reason="completed")
    legacy_session(session_id="nomodel", model=None, started_at=old)
    return old


def test_ends_idle_sessions_at_their_last_activity(sessions, now):
    old = sessions
    result = close_stale_sessions(idle=IDLE, now=now, batch_size=2)
    assert result.closed == {"openai/gpt-5": 1, "google/gemini-3-pro": 1, None: 1}
    assert result.batches == 2 and result.skipped == 0
    ended = {s.pk: s for s in Session.objects.filter(end_reason="stale")}
    assert set(ended) == {"silent", "talked", "nomodel"}
    assert ended["silent"].ended_at == old  # no message: its start
    assert ended["talked"].ended_at == old + dt.timedelta(hours=1)  # its newest message
    assert Session.objects.get(pk="done").end_reason == "completed"
    assert set(Session.objects.open().values_list("pk", flat=True)) == {"young", "busy"}


def test_dry_run_writes_nothing_and_filters_apply(sessions, now):
    result = close_stale_sessions(idle=IDLE, now=now, dry_run=True, model="openai/gpt-5")
    assert result.closed == {"openai/gpt-5": 1}
    assert not Session.objects.filter(end_reason="stale").exists()


def test_command(sessions):
    with pytest.raises(CommandError, match="--yes"):
        call_command("close_stale_sessions", "--idle", "6h")
    out = io.StringIO()
    call_command("close_stale_sessions", "--idle", "6h", "--dry-run", stdout=out)
    assert "Would end 3 sessions" in out.getvalue() and "(none)" in out.getvalue()
    out = io.StringIO()
    call_command("close_stale_sessions", "--idle", "6h", "--yes", "--format", "json", stdout=out)
    data = json.loads(out.getvalue())
    assert data["total"] == 3 and not data["dry_run"]
    assert Session.objects.filter(end_reason="stale").count() == 3
    with pytest.raises(CommandError, match="duration"):
        call_command("close_stale_sessions", "--idle", "soon", "--yes")


def append_in_subprocess(session_id: str) -> None:
    """A first message from another process, through the real save path, committed before returning."""
    args = [connection.settings_dict["NAME"], 0, session_id, 1, 1, 0]
    proc = subprocess.run(
        [sys.executable, "-m", "tests.concurrent_worker", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr


@pytest.mark.django_db(transaction=True)
def test_message_committed_after_the_scan_keeps_the_session_open(legacy_session, monkeypatch):
    old = timezone.now() - dt.timedelta(days=2)
    for session_id in ("target", "other"):
        legacy_session(session_id=session_id, started_at=old)
    real = stale._close_batch

    def writer_wins(batch, cutoff, **kwargs):
        assert set(batch) == {"target", "other"}  # both were selected
        append_in_subprocess("target")  # another process commits a message now
        return real(batch, cutoff, **kwargs)

    monkeypatch.setattr(stale, "_close_batch", writer_wins)
    result = close_stale_sessions(idle=IDLE)
    assert result.closed == {"openai/gpt-5": 1} and result.skipped == 1
    assert Session.objects.get(pk="target").ended_at is None
    assert Session.objects.get(pk="other").end_reason == "stale"


@pytest.mark.django_db(transaction=True)
def test_session_being_written_is_skipped(legacy_session, vendor):
    if vendor == "sqlite":
        pytest.skip("SQLite serializes write transactions: the sweep waits for the writer instead.")
    old = timezone.now() - dt.timedelta(days=2)
    legacy_session(session_id="target", started_at=old)
    legacy_session(session_id="other", started_at=old)
    with HoldingWriter("target") as writer:  # its first message is inserted, not committed
        result = close_stale_sessions(idle=IDLE)
        assert result.total_closed == 1 and result.skipped == 1
        writer.commit()
    assert Session.objects.get(pk="target").ended_at is None
    assert Message.objects.get().content == "a late first message"
