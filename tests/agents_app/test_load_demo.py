"""load_demo: deterministic history, the drop at the cut-over, safety on non-empty databases, the login."""

import datetime as dt
import io
import re
import sys

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.db.models import Count, Sum

from agents_app import demo
from agents_app.models import AbandonedAgentTally, LanguageModel
from sessions_app.models import Message, Session, TrendMarker

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
SMALL = {"days": 20, "cutover_days_ago": 10, "sessions_per_day": 15}
CUTOVER = NOW - dt.timedelta(days=10)


def snapshot():
    """Everything about the stored history except the ids Agent.compress() draws for its children."""
    sessions = sorted(
        map(
            repr,
            Session.objects.values_list(
                "model__name",
                "source",
                "user_id",
                "started_at",
                "ended_at",
                "end_reason",
                "message_count",
                "input_tokens",
            ),
        )
    )
    messages = sorted(
        map(repr, Message.objects.values_list("session__started_at", "role", "content", "timestamp", "token_count"))
    )
    roots = set(Session.objects.filter(parent_session__isnull=True).values_list("pk", flat=True))
    return sessions, messages, roots


def test_same_seed_same_history(db):
    demo.load_demo(seed=7, now=NOW, **SMALL)
    first = snapshot()
    demo.load_demo(seed=7, now=NOW, flush=True, **SMALL)
    assert snapshot() == first
    demo.load_demo(seed=8, now=NOW, flush=True, **SMALL)
    assert snapshot() != first
    assert len(first[0]) > 200 and len(first[1]) > 1000


@pytest.fixture
def history(db):
    return demo.load_demo(seed=7, now=NOW, **SMALL)


def test_no_empty_session_after_the_cutover(history):
    assert Session.objects.filter(started_at__gte=CUTOVER).count() > 50
    assert not Session.objects.filter(started_at__gte=CUTOVER).empty().exists()
    assert history.silent_agents_after > 0  # agents still failed; they just left no row


def test_every_model_left_empty_sessions_before_the_cutover_at_its_own_rate(history):
    legacy = Session.objects.filter(started_at__lt=CUTOVER)
    rates = {}
    for name, _, _ in demo.MODELS:
        total = legacy.filter(model__name=name).count()
        empty = legacy.filter(model__name=name).empty().count()
        assert empty > 0, name
        rates[name] = empty / total
    # Configured shares: 18% for claude-opus, 57% for llama-4-maverick.
    assert rates["meta-llama/llama-4-maverick"] > rates["anthropic/claude-opus-4.6"] + 0.15


def test_summary_matches_the_database(history):
    legacy = Session.objects.filter(started_at__lt=CUTOVER)
    rows = {row.model: row for row in history.per_model}
    for name, _, _ in demo.MODELS:
        assert rows[name].before == legacy.filter(model__name=name).count()
        assert rows[name].before_empty == legacy.filter(model__name=name).empty().count()
        assert rows[name].after_empty == 0
    assert history.sessions == Session.objects.count()
    assert history.messages == Message.objects.count()


def test_agent_path_keeps_counters_exact_and_the_legacy_path_has_stale_ones(history):
    counted = Session.objects.annotate(rows=Count("messages"))
    assert all(s.message_count == s.rows for s in counted.filter(started_at__gte=CUTOVER))
    stale = [s for s in counted.filter(started_at__lt=CUTOVER) if s.message_count != s.rows]
    assert stale and all(s.message_count == 2 * s.rows for s in stale)  # hermes-agent #12563


def test_compression_chains_on_both_sides_of_the_cutover(history):
    children = Session.objects.filter(parent_session__isnull=False).select_related("parent_session")
    assert children.filter(started_at__lt=CUTOVER).exists() and children.filter(started_at__gte=CUTOVER).exists()
    for child in children:
        assert child.parent_session.end_reason == "compression"
        assert child.parent_session.ended_at == child.started_at  # backdated, not "now"
        assert child.messages.order_by("timestamp", "id").first().content.startswith("[Summary")


def test_everything_happened_inside_the_window(history):
    assert Session.objects.filter(started_at__lt=NOW - dt.timedelta(days=21)).count() == 0
    assert Message.objects.filter(timestamp__gte=NOW).count() == 0
    assert Session.objects.filter(ended_at__gte=NOW).count() == 0
    assert set(Session.objects.values_list("source", flat=True)) == {s for s, _ in demo.SOURCES}
    assert Message.objects.exclude(tool_calls=None).exists() and Message.objects.filter(role="tool").exists()
    assert Session.objects.filter(input_tokens__gt=0).exists()


def test_silent_agents_after_the_cutover_are_tallied_on_their_own_day(history):
    tallies = AbandonedAgentTally.objects.all()
    assert tallies.aggregate(total=Sum("count"))["total"] == history.silent_agents_after
    assert min(t.day for t in tallies) >= CUTOVER.date()
    assert len({t.day for t in tallies}) > 3  # not all stamped "today"


def test_the_cutover_is_marked_on_the_trend(history):
    marker = TrendMarker.objects.get()
    assert (marker.at, marker.label) == (history.cutover, "lazy session creation on")
    assert marker.note
    demo.load_demo(seed=7, now=NOW, flush=True, **SMALL)  # flushed and marked again, once
    assert TrendMarker.objects.count() == 1


def test_refuses_a_database_with_sessions(legacy_session):
    legacy_session(session_id="real_data")
    with pytest.raises(ValidationError, match="already has sessions"):
        demo.load_demo(now=NOW, **SMALL)
    assert list(Session.objects.values_list("pk", flat=True)) == ["real_data"]

    demo.load_demo(seed=3, now=NOW, force=True, **SMALL)
    assert Session.objects.filter(pk="real_data").exists() and Session.objects.count() > 100
    count = Session.objects.count()
    with pytest.raises(ValidationError, match="already loaded"):
        demo.load_demo(seed=3, now=NOW, force=True, **SMALL)
    assert Session.objects.count() == count


def test_flush_replaces_everything(legacy_session):
    legacy_session(session_id="real_data", model="x/old-model")
    demo.load_demo(now=NOW, flush=True, **SMALL)
    assert not Session.objects.filter(pk="real_data").exists()
    assert not LanguageModel.objects.filter(name="x/old-model").exists()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"days": 0},
        {"days": 10, "cutover_days_ago": 11},
        {"cutover_days_ago": -1},
        {"sessions_per_day": 0},
        {"seed": -1},
    ],
)
def test_bad_arguments_write_nothing(db, kwargs):
    with pytest.raises(ValidationError):
        demo.load_demo(now=NOW, **{**SMALL, **kwargs})
    assert not Session.objects.exists() and not LanguageModel.objects.exists()


# --- the command ---------------------------------------------------------------------------

ARGS = ["--days", "6", "--cutover-days-ago", "3", "--sessions-per-day", "5"]


def run(*args):
    out, err = io.StringIO(), io.StringIO()
    call_command("load_demo", *ARGS, *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def login_from(output: str) -> tuple[str, str]:
    username = re.search(r"^\s+username\s+(\S+)$", output, re.MULTILINE).group(1)
    password = re.search(r"^\s+password\s+(\S+)$", output, re.MULTILINE).group(1)
    return username, password


def test_command_prints_a_login_that_works(db, client):
    out, _ = run()
    assert "http://127.0.0.1:8000/admin/" in out
    username, password = login_from(out)
    assert username == "demo-admin" and len(password) >= 20
    assert client.login(username=username, password=password)
    assert client.get("/admin/", secure=True).status_code == 200


def test_each_run_gives_a_new_random_password(db, client):
    _, first = login_from(run()[0])
    out, _ = run("--flush", "--no-input")
    _, second = login_from(out)
    assert first != second and "Reset the password" in out
    assert not client.login(username="demo-admin", password=first)
    assert client.login(username="demo-admin", password=second)
    assert get_user_model().objects.filter(username="demo-admin").count() == 1


def test_command_summary_table(db):
    out, _ = run("--no-user", "--seed", "5")
    assert re.search(r"Created [\d,]+ sessions with [\d,]+ messages", out)
    total = [cell.replace(",", "") for cell in next(line for line in out.splitlines() if "total" in line).split()]
    assert int(total[1]) + int(total[4]) == Session.objects.count()
    assert int(total[2]) == Session.objects.empty().count() > 0  # every empty session is from before the cut-over
    assert total[-2:] == ["0", "0.0%"]
    assert "password" not in out and not get_user_model().objects.exists()


def test_command_refuses_a_database_with_sessions(legacy_session):
    legacy_session(session_id="real_data")
    with pytest.raises(CommandError, match="--flush"):
        run()
    with pytest.raises(CommandError, match="contradict"):
        run("--flush", "--force")
    assert Session.objects.count() == 1


def test_command_flush_needs_confirmation(legacy_session, monkeypatch):
    legacy_session(session_id="real_data")
    monkeypatch.setattr(sys, "stdin", io.StringIO("yes\n"))
    with pytest.raises(CommandError, match="--no-input"):
        run("--flush")
    assert list(Session.objects.values_list("pk", flat=True)) == ["real_data"]


def test_command_bad_arguments(db):
    with pytest.raises(CommandError, match="--cutover-days-ago"):
        run("--days", "2")
    assert not Session.objects.exists()


def test_the_daily_rollup_follows_a_flush_and_a_forced_second_demo(db):
    from sessions_app.analytics import empty_rate_trend, rollup_status
    from sessions_app.rollup import build_rollup

    def trends():
        return empty_rate_trend("day"), empty_rate_trend("day", rollup=None)  # rollup + live, all live

    later = NOW + dt.timedelta(days=2)
    demo.load_demo(seed=7, now=NOW, **SMALL)
    build_rollup(now=later)
    assert rollup_status() is not None
    demo.load_demo(seed=8, now=NOW, flush=True, **SMALL)
    assert rollup_status() is None or rollup_status().watermark is None  # the flush emptied it
    build_rollup(now=later)
    demo.load_demo(seed=9, now=NOW, force=True, **SMALL)  # beside seed 8, on days the rollup holds
    with_rollup, live = trends()
    assert with_rollup == live and sum(point.sessions for point in live) == Session.objects.count()
