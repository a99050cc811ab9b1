"""The daily rollup: built from the sessions, read with a live query for the later days, and kept
in agreement with the rows by every writer of ours (prune, the admin's delete action, import,
``verify_sessions --repair``); other writers' changes are picked up by the next build.

Expected numbers come from how the fixture was built, or from the live path (``rollup=None``):
the rollup must give exactly what the sessions table gives.
"""

import datetime as dt
import itertools
from collections import Counter
from io import StringIO

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from agents_app.models import LanguageModel
from sessions_app.analytics import NO_MODEL_KEY, daily_counts, empty_rate_trend, rollup_status
from sessions_app.importers import import_hermes_db
from sessions_app.integrity import verify_sessions
from sessions_app.models import Message, Session, SessionDay
from sessions_app.pruning import delete_empty_sessions, prune_empty_sessions
from sessions_app.rollup import build_rollup, rebuild_days
from tests.hermes_fixtures import StateDB

FIRST = dt.date(2026, 1, 1)
DAYS = 40  # 2026-01-01 .. 2026-02-09
NOW = dt.datetime(2026, 2, 5, 12, tzinfo=dt.UTC)  # default watermark: 2026-02-05
WATERMARK = dt.date(2026, 2, 5)
MODELS = ["anthropic/claude-opus-4.6", "openai/gpt-5", None, "", "nous/hermes-4"]
SOURCES = ["cli", "CLI", "telegram"]  # "CLI" is not "cli", on MariaDB too
PROFILES = ["default", "work"]
HOURS = [0, 5, 11, 17, 23]


def utc(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


def _spec(i: int) -> dict:
    day = FIRST + dt.timedelta(days=i % DAYS)
    started = utc(day.year, day.month, day.day, HOURS[i % len(HOURS)], (i * 7) % 60)
    if i % 11 == 0:
        started = utc(day.year, day.month, day.day, 23, 59, 59, 999999)  # the last instant of a day
    return {
        "id": f"s{i:05d}",
        "model": MODELS[i % len(MODELS)],
        "source": SOURCES[i % len(SOURCES)],
        "profile": PROFILES[(i // 3) % 2],
        "started_at": started,
        "empty": i % 4 == 0 or i % 7 == 3,
    }


SPECS = [_spec(i) for i in range(600)]


def _key(model) -> str:
    return model or NO_MODEL_KEY


def expected_days(specs=SPECS, keep=lambda spec: True) -> dict:
    """``{(day, model key): (sessions, empty)}`` from the fixture's construction."""
    counts = Counter()
    for spec in specs:
        if keep(spec):
            key = (spec["started_at"].date(), _key(spec["model"]))
            counts[key, "sessions"] += 1
            counts[key, "empty"] += spec["empty"]
    keys = {key for key, _ in counts}
    return {key: (counts[key, "sessions"], counts[key, "empty"]) for key in keys}


def as_dict(rows) -> dict:
    return {(row.day, row.model): (row.sessions, row.empty) for row in rows}


@pytest.fixture
def landscape(db):
    models = {name: LanguageModel.objects.create(name=name) for name in MODELS if name is not None}
    Session.objects.bulk_create(
        Session(
            id=spec["id"],
            model=models.get(spec["model"]),
            source=spec["source"],
            profile=spec["profile"],
            started_at=spec["started_at"],
            ended_at=spec["started_at"] + dt.timedelta(minutes=1),
        )
        for spec in SPECS
    )
    # The triggers set the flag of every session given a message.
    Message.objects.bulk_create(
        Message(session_id=spec["id"], role="user", content="hi", timestamp=spec["started_at"])
        for spec in SPECS
        if not spec["empty"]
    )
    return models


FILTERS = [
    {},
    {"since": dt.date(2026, 1, 10)},
    {"until": dt.date(2026, 1, 20)},
    {"since": utc(2026, 1, 3, 12), "until": utc(2026, 2, 7, 6)},  # partial days at both ends
    {"since": utc(2026, 1, 31, 23, 59, 59, 999999)},
    {"since": dt.date(2026, 2, 6)},  # after the watermark: all live
    {"until": dt.date(2026, 1, 2)},  # the rollup alone
    {"source": "cli"},
    {"source": "CLI"},
    {"model": "openai/gpt-5"},
    {"profile": "work"},
    {"since": dt.date(2026, 1, 5), "until": dt.date(2026, 2, 8), "source": "telegram", "profile": "default"},
]


def assert_agree():
    """Every report the rollup serves equals the live computation (the sessions table alone)."""
    for filters in FILTERS:
        assert as_dict(daily_counts(**filters)) == as_dict(daily_counts(**filters, rollup=None)), filters
    for bucket, filters in itertools.product(("day", "week"), ({}, {"since": utc(2026, 1, 7, 8)}, {"source": "CLI"})):
        assert empty_rate_trend(bucket, **filters) == empty_rate_trend(bucket, **filters, rollup=None)


def rollup_totals() -> tuple[int, int]:
    rows = SessionDay.objects.all()
    return sum(row.sessions for row in rows), sum(row.empty for row in rows)


def test_build_matches_the_fixture_and_the_live_path(landscape):
    result = build_rollup(now=NOW)
    assert (result.watermark, result.built_at) == (WATERMARK, NOW)
    status = rollup_status()
    assert (status.watermark, status.built_at, status.last_day) == (WATERMARK, NOW, dt.date(2026, 2, 4))
    before = [spec for spec in SPECS if spec["started_at"].date() < WATERMARK]
    # One row per (day, model, source, profile) before the watermark, none from it on.
    groups = Counter((s["started_at"].date(), s["model"], s["source"], s["profile"], s["empty"]) for s in before)
    assert SessionDay.objects.count() == len({key[:4] for key in groups})
    assert rollup_totals() == (len(before), sum(s["empty"] for s in before))
    assert SessionDay.objects.filter(day__gte=WATERMARK).count() == 0
    assert as_dict(daily_counts()) == expected_days()
    assert as_dict(daily_counts(source="CLI", profile="work")) == expected_days(
        keep=lambda s: s["source"] == "CLI" and s["profile"] == "work"
    )
    assert_agree()


def test_trend_weeks_sum_the_days(landscape):
    build_rollup(now=NOW)
    weeks = Counter()
    for (day, model), (sessions, empty) in expected_days().items():
        monday = (day - dt.timedelta(days=day.weekday())).isoformat()
        weeks[monday, model, 0] += sessions
        weeks[monday, model, 1] += empty
    points = empty_rate_trend("week")
    assert {(p.bucket, p.model): (p.sessions, p.empty) for p in points} == {
        (week, model): (weeks[week, model, 0], weeks[week, model, 1]) for week, model, _ in weeks
    }


def test_reads_are_a_constant_number_of_queries(landscape, django_assert_max_num_queries):
    build_rollup(now=NOW)
    with django_assert_max_num_queries(4):  # state, marks, rollup days, live head and tail together
        daily_counts(since=utc(2026, 1, 3, 12))
    status = rollup_status()
    with django_assert_max_num_queries(3):  # the caller's status: marks, the rollup's days and the live ones
        empty_rate_trend("day", rollup=status)


def test_without_a_build_everything_is_live(landscape):
    assert rollup_status() is None
    assert as_dict(daily_counts()) == expected_days()
    assert rebuild_days([dt.date(2026, 1, 5)]) == 0 and not SessionDay.objects.exists()


def test_prune_and_delete_action_rebuild_their_days(landscape):
    build_rollup(now=NOW)
    result = prune_empty_sessions(older_than=dt.timedelta(days=20), now=NOW)
    cutoff = NOW - dt.timedelta(days=20)
    pruned = [s for s in SPECS if s["empty"] and s["started_at"] < cutoff]
    assert result.total_deleted == len(pruned) > 0
    kept = [s for s in SPECS if s not in pruned]
    assert as_dict(daily_counts()) == expected_days(kept)
    assert_agree()

    chosen = Session.objects.filter(started_at__date__gte=dt.date(2026, 1, 25), started_at__lt=utc(2026, 1, 28))
    deletion = delete_empty_sessions(chosen)
    gone = {s["id"] for s in kept if s["empty"] and utc(2026, 1, 25) <= s["started_at"] < utc(2026, 1, 28)}
    assert deletion.deleted == len(gone) > 0
    assert as_dict(daily_counts()) == expected_days([s for s in kept if s["id"] not in gone])
    assert_agree()


def test_repair_rebuilds_the_days_of_the_sessions_it_fixed(landscape):
    build_rollup(now=NOW)
    wrong = [s["id"] for s in SPECS if s["empty"] and s["started_at"].date() < WATERMARK][:5]
    Session.objects.filter(pk__in=wrong).update(has_messages=True)  # drift, as after a restore
    build_rollup(now=NOW)  # the rollup now holds the drifted flags
    assert rollup_totals()[1] == sum(s["empty"] for s in SPECS if s["started_at"].date() < WATERMARK) - len(wrong)
    drift = verify_sessions(repair=True)
    assert drift.counts["flag_without_rows"] == len(wrong)
    assert as_dict(daily_counts()) == expected_days()
    assert_agree()


def test_import_rebuilds_the_days_it_touched(landscape, tmp_path):
    build_rollup(now=NOW)
    path = tmp_path / "state.db"
    moment = utc(2026, 1, 12, 9).timestamp()
    with StateDB(path) as source:
        source.session("20260112_090000_aa", source="cron", model="openai/gpt-5", started_at=moment)
        source.session("20260112_090001_bb", source="cron", model="x/new", started_at=moment + 1)
        source.message("20260112_090000_aa", timestamp=moment + 2)
    import_hermes_db(path)
    assert as_dict(daily_counts(source="cron")) == {
        (dt.date(2026, 1, 12), "openai/gpt-5"): (1, 0),
        (dt.date(2026, 1, 12), "x/new"): (1, 1),
    }
    assert_agree()
    with StateDB.reopen(path) as source:  # the empty one gets its first message: its flag flips
        source.message("20260112_090001_bb", timestamp=moment + 3)
    import_hermes_db(path)
    assert as_dict(daily_counts(source="cron"))[dt.date(2026, 1, 12), "x/new"] == (1, 0)
    assert_agree()


def test_other_writers_are_picked_up_by_the_next_build(landscape):
    build_rollup(now=NOW)
    old = [s["id"] for s in SPECS if s["started_at"].date() == dt.date(2026, 1, 9)]
    Session.objects.filter(pk__in=old).delete()  # not through our services: the rollup lags
    assert as_dict(daily_counts()) != as_dict(daily_counts(rollup=None))
    result = build_rollup(now=NOW)
    assert result.days_changed == 1
    assert as_dict(daily_counts()) == expected_days([s for s in SPECS if s["id"] not in old])
    assert_agree()


def test_since_full_and_an_earlier_watermark(landscape):
    build_rollup(until=dt.date(2026, 1, 20), now=NOW)
    assert rollup_status().watermark == dt.date(2026, 1, 20)
    assert_agree()
    # --since still covers the days from the old watermark on, so the rollup stays whole.
    result = build_rollup(since=dt.date(2026, 2, 1), now=NOW)
    assert result.watermark == WATERMARK and result.days_checked == (WATERMARK - dt.date(2026, 1, 20)).days
    assert_agree()
    build_rollup(until=dt.date(2026, 1, 15), now=NOW)  # back: the later rows go
    assert not SessionDay.objects.filter(day__gte=dt.date(2026, 1, 15)).exists()
    assert_agree()
    result = build_rollup(full=True, now=NOW)
    assert result.days_changed == DAYS - (dt.date(2026, 2, 9) - WATERMARK).days - 1
    assert as_dict(daily_counts()) == expected_days()
    assert_agree()


def test_bad_arguments(db):
    with pytest.raises(ValidationError, match="after today"):
        build_rollup(until=dt.date(2026, 2, 6), now=NOW)
    with pytest.raises(ValidationError, match="must be a date"):
        build_rollup(until=utc(2026, 1, 1), now=NOW)
    with pytest.raises(ValidationError, match="chunk"):
        build_rollup(chunk_days=0, now=NOW)


def test_command(landscape):
    out = StringIO()
    call_command("build_rollup", "--until", "2026-02-01", stdout=out)
    assert "days before 2026-02-01" in out.getvalue()
    assert rollup_status().watermark == dt.date(2026, 2, 1)
    assert_agree()
    with pytest.raises(CommandError, match="--since: invalid day"):
        call_command("build_rollup", "--since", "yesterday")
    with pytest.raises(CommandError, match="--full"):
        call_command("build_rollup", "--full", "--since", "2026-01-01")
    with pytest.raises(CommandError, match="--until"):
        call_command("build_rollup", "--until", "2999-01-01")


def test_page_says_how_far_the_rollup_goes(admin_client, landscape):
    url = "/admin/sessions_app/session/empty-rates/"
    assert "daily rollup" not in admin_client.get(url).content.decode()
    build_rollup(now=NOW)
    page = admin_client.get(url, {"bucket": "day"})  # the range ends today: weekly by default
    assert "Trend from the daily rollup built 2026-02-05 12:00" in page.content.decode()
    assert "up to 2026-02-04; later days live" in page.content.decode()
    rows = {row["bucket"]: (row["sessions"], row["empty"]) for row in page.context["trend_rows"]}
    totals = Counter()
    for (day, _), (sessions, empty) in expected_days().items():
        totals[day.isoformat(), 0] += sessions
        totals[day.isoformat(), 1] += empty
    assert rows == {day: (totals[day, 0], totals[day, 1]) for day, _ in totals}
