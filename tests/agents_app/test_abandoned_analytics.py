"""Abandoned-agent analytics, its command output, its admin section and the tally's retention.

Expectations are computed here from the fixture's own list of what happened (``SESSIONS`` and
``ABANDONED``), never from the code under test.
"""

import csv
import datetime as dt
import io
import json
from collections import Counter, defaultdict

import pytest
from django.contrib.auth.models import Permission
from django.core.management import CommandError, call_command
from django.urls import reverse

from agents_app.models import AbandonedAgentTally
from agents_app.services import record_abandoned_agent
from sessions_app.analytics import abandoned_agent_counts, abandoned_agent_rates, empty_session_rates
from sessions_app.retention import prune_abandoned_tally
from sessions_app.rollup import build_rollup
from sessions_app.services import append_messages

GPT, OPUS = "openai/gpt-5", "anthropic/claude-opus-4.6"


def at(day: str, hour: int = 10) -> dt.datetime:
    return dt.datetime.fromisoformat(day).replace(hour=hour, tzinfo=dt.UTC)


# (model, source, started day, empty?) — legacy empty sessions before the fix (early March),
# only sessions with messages after it.
SESSIONS = [
    (GPT, "cli", "2026-03-02", True),
    (GPT, "cli", "2026-03-02", False),
    (GPT, "cron", "2026-03-03", True),
    (OPUS, "cli", "2026-03-04", False),
    (OPUS, "CLI", "2026-03-08", True),  # Sunday: the week of 2026-03-02
    (GPT, "cli", "2026-03-09", False),
    (GPT, "cron", "2026-03-10", False),
    (OPUS, "cli", "2026-03-31", False),
    (OPUS, "cli", "2026-04-01", False),
]
# (model, source, day ended, reason, agents)
ABANDONED = [
    (GPT, "cli", "2026-03-09", "timeout", 3),
    (GPT, "cli", "2026-03-09", "api_error", 1),
    (GPT, "cron", "2026-03-10", "timeout", 2),
    (OPUS, "cli", "2026-03-31", "error", 1),
    (OPUS, "CLI", "2026-04-01", "timeout", 4),
    (OPUS, "cli", "2026-04-02", "completed", 1),
]


@pytest.fixture
def history(legacy_session):
    for i, (model, source, day, empty) in enumerate(SESSIONS):
        if empty:
            legacy_session(model=model, source=source, started_at=at(day), session_id=f"legacy_{i}")
        else:
            message = {"role": "user", "content": "hi", "timestamp": at(day)}
            append_messages(f"s_{i}", [message], model=model, source=source, started_at=at(day))
    for model, source, day, reason, agents in ABANDONED:
        for _ in range(agents):
            record_abandoned_agent(model, source, reason, day=dt.date.fromisoformat(day))


# The tally's first day: periods that start before it were not measured (abandoned: None).
TALLY_FIRST = min(a[2] for a in ABANDONED)


def key_of(by: str, model: str, source: str, day: str) -> str:
    date = dt.date.fromisoformat(day)
    return {
        "model": model,
        "source": source,
        "day": day,
        "week": (date - dt.timedelta(days=date.weekday())).isoformat(),
        "month": day[:7],
    }[by]


def expected(by: str, keep=lambda model, source, day: True) -> dict:
    rows = defaultdict(lambda: {"sessions": 0, "empty": 0, "abandoned": 0, "reasons": Counter()})
    for model, source, day, empty in SESSIONS:
        if keep(model, source, day):
            row = rows[key_of(by, model, source, day)]
            row["sessions"] += 1
            row["empty"] += empty
    for model, source, day, reason, agents in ABANDONED:
        if keep(model, source, day):
            row = rows[key_of(by, model, source, day)]
            row["abandoned"] += agents
            row["reasons"][reason] += agents
    result = {key: {**row, "reasons": dict(row["reasons"])} for key, row in rows.items()}
    if by in ("day", "week", "month"):
        for key, row in result.items():
            if (key if len(key) == 10 else f"{key}-01") < TALLY_FIRST:  # before the tally: not tracked
                row.update(abandoned=None, reasons={})
    return result


def as_table(report) -> dict:
    return {
        row.key: {"sessions": row.sessions, "empty": row.empty, "abandoned": row.abandoned, "reasons": row.reasons}
        for row in report.rows
    }


@pytest.mark.parametrize("built", [False, True], ids=["live", "rollup"])
@pytest.mark.parametrize("by", ["model", "source", "day", "week", "month"])
def test_every_grouping_matches_the_history(history, by, built, django_assert_max_num_queries):
    if built:
        build_rollup()
    # The rollup's state, marks and days, the live sessions, the tally, and the tally's first
    # day: a fixed number whatever the history.
    with django_assert_max_num_queries(6):
        report = abandoned_agent_rates(by)
    want = expected(by)
    assert as_table(report) == want
    assert [row.key for row in report.rows] == sorted(want)
    sessions = sum(r["sessions"] for r in want.values())
    abandoned = sum(a[4] for a in ABANDONED)  # the total counts every agent of the tally
    empty = sum(r["empty"] for r in want.values())
    assert (report.total.sessions, report.total.empty, report.total.abandoned) == (sessions, empty, abandoned)
    assert report.total.rate == pytest.approx(empty / sessions)  # rate is the empty rate, everywhere
    assert report.total.abandoned_rate == pytest.approx(abandoned / (abandoned + sessions))
    assert report.total.silent_rate == pytest.approx((empty + abandoned) / (abandoned + sessions))
    for row in report.rows:
        if want[row.key]["abandoned"] is None:
            assert row.abandoned_rate is None and row.agents is None and row.silent_rate is None
            continue
        agents = want[row.key]["sessions"] + want[row.key]["abandoned"]
        assert row.abandoned_rate == pytest.approx(want[row.key]["abandoned"] / agents)


def test_source_is_exact_and_case_sensitive_on_every_backend(history):
    report = abandoned_agent_rates("source", source="CLI")
    assert as_table(report) == expected("source", lambda m, source, d: source == "CLI")
    assert abandoned_agent_rates("model", model=GPT).total.abandoned == sum(a[4] for a in ABANDONED if a[0] == GPT)
    assert abandoned_agent_rates("model", model="openai/GPT-5").total.abandoned == 0


def test_since_and_until_count_tally_days_whose_midnight_is_in_range(history):
    # Dates: [2026-03-09, 2026-03-31) keeps the 9th and 10th, not the 31st.
    report = abandoned_agent_rates("day", since=dt.date(2026, 3, 9), until=dt.date(2026, 3, 31))
    assert as_table(report) == expected("day", lambda m, s, day: "2026-03-09" <= day < "2026-03-31")
    # A bound inside a day: the 9th's midnight is before 10:00, so the 9th's tally is out;
    # until 2026-03-31T00:00:01 includes the 31st (its midnight is before the bound).
    report = abandoned_agent_rates(
        "day", since=at("2026-03-09", 1), until=at("2026-03-31", 0) + dt.timedelta(seconds=1)
    )
    assert report.total.abandoned == sum(a[4] for a in ABANDONED if "2026-03-10" <= a[2] <= "2026-03-31")
    assert abandoned_agent_counts("day", until=dt.datetime(9999, 12, 31, 12, tzinfo=dt.UTC))  # no overflow


def test_bad_arguments_are_validation_errors(db):
    from django.core.exceptions import ValidationError

    past_the_end = dt.datetime(9999, 12, 31, 23, tzinfo=dt.timezone(-dt.timedelta(hours=5)))
    for kwargs in (
        {"by": "hour"},
        {"since": dt.datetime(2026, 1, 1)},
        {"since": "2026-01-01"},
        {"until": past_the_end},
        {"since": dt.date(2026, 2, 1), "until": dt.date(2026, 1, 1)},
        {"model": ""},
        {"source": 5},
    ):
        with pytest.raises(ValidationError):
            abandoned_agent_rates(**kwargs)
        with pytest.raises(ValidationError):
            abandoned_agent_counts(**kwargs)  # checked alike when called on its own
        with pytest.raises(ValidationError):
            empty_session_rates(**kwargs)


def test_empty_database_gives_zero_rates(db):
    report = abandoned_agent_rates()
    assert report.rows == [] and report.total.abandoned_rate == 0.0 and report.total.silent_rate == 0.0


# --- the command ------------------------------------------------------------------------------


def run(*args) -> str:
    out = io.StringIO()
    call_command("empty_sessions", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_command_json_has_the_numbers(history):
    data = json.loads(run("--include-abandoned", "--format", "json", "--by", "month"))
    want = expected("month")
    assert {row["key"]: (row["sessions"], row["empty"], row["abandoned"], row["reasons"]) for row in data["rows"]} == {
        key: (r["sessions"], r["empty"], r["abandoned"], r["reasons"]) for key, r in want.items()
    }
    # March began before the tally: not measured, null. April: measured.
    march = next(row for row in data["rows"] if row["key"] == "2026-03")
    assert (march["abandoned"], march["abandoned_rate"], march["agents"]) == (None, None, None)
    assert march["rate"] == want["2026-03"]["empty"] / want["2026-03"]["sessions"]  # the empty rate
    april, row = want["2026-04"], next(row for row in data["rows"] if row["key"] == "2026-04")
    assert row["abandoned_rate"] == april["abandoned"] / (april["abandoned"] + april["sessions"])
    assert data["total"]["abandoned"] == sum(a[4] for a in ABANDONED)


def test_command_table_and_csv(history):
    table = run("--include-abandoned", "--by", "model")
    lines = table.splitlines()
    assert lines[0].split() == ["model", "sessions", "empty", "rate", "abandoned", "abandoned", "rate"]
    want = expected("model")
    rates = {key: r["abandoned"] / (r["abandoned"] + r["sessions"]) for key, r in want.items()}
    body = [line.split()[0] for line in lines[2:-2]]
    assert body == sorted(rates, key=lambda k: -rates[k])  # highest abandoned rate first
    assert lines[-1].split()[:5] == ["TOTAL", str(len(SESSIONS)), "3", f"{3 / len(SESSIONS) * 100:.1f}%", "12"]

    rows = list(csv.reader(io.StringIO(run("--include-abandoned", "--format", "csv", "--by", "source"))))
    assert rows[0] == [
        "source",
        "sessions",
        "empty",
        "empty_rate",
        "abandoned",
        "abandoned_rate",
        "silent_rate",
        "reasons",
        "abandoned_rate_low",
        "abandoned_rate_high",
    ]
    by_source = {row[0]: row for row in rows[1:]}
    assert by_source["CLI"][4] == "4" and by_source["CLI"][7] == "timeout=4"
    assert by_source["TOTAL"][4] == str(sum(a[4] for a in ABANDONED))
    # By day, the days before the tally's first day were not tracked: empty cells, "not tracked".
    rows = list(csv.reader(io.StringIO(run("--include-abandoned", "--format", "csv", "--by", "day"))))
    first = next(row for row in rows[1:] if row[0] == "2026-03-02")
    assert first[4:7] == ["", "", ""] and first[8:] == ["", ""]
    table = run("--include-abandoned", "--by", "day")
    assert "not tracked" in next(line for line in table.splitlines() if line.startswith("2026-03-02"))


def test_command_fail_above_still_reads_the_empty_rate(history):
    # The empty rate of GPT is 2/5 = 40%: above 30%, below 50%, whatever its abandoned rate.
    run("--include-abandoned", "--fail-above", "50%", "--model", GPT)
    with pytest.raises(CommandError) as failure:
        run("--include-abandoned", "--fail-above", "30%", "--model", GPT)
    assert failure.value.returncode == 3


def test_command_without_anything_says_so(db):
    assert run("--include-abandoned").startswith("No sessions and no abandoned agents")


@pytest.mark.parametrize("bound", ["9999-12-31T23:00:00-05:00", "0001-01-01T00:00:00+05:00"])
def test_out_of_range_bounds_are_command_errors(db, bound):
    with pytest.raises(CommandError, match="out of range"):
        run("--until", bound)


# --- retention --------------------------------------------------------------------------------


def counts_by_day() -> dict:
    return dict(AbandonedAgentTally.objects.values_list("day", "count").order_by("day"))


def test_prune_tally_keeps_the_retention_window(db, settings):
    today = dt.date(2026, 6, 30)
    for days_ago in (0, 9, 10, 11, 400):
        record_abandoned_agent(GPT, "cli", "timeout", day=today - dt.timedelta(days=days_ago))
    record_abandoned_agent(OPUS, "cli", "timeout", day=today - dt.timedelta(days=400))
    before = counts_by_day()
    plan = prune_abandoned_tally(keep_days=10, dry_run=True, today=today)
    assert (plan.rows, plan.agents, plan.before) == (3, 3, dt.date(2026, 6, 20)) and counts_by_day() == before
    result = prune_abandoned_tally(keep_days=10, model=GPT, today=today)
    assert (result.rows, result.agents) == (2, 2)
    left = AbandonedAgentTally.objects.values_list("model__name", "day")
    assert sorted((m, (today - d).days) for m, d in left) == [(OPUS, 400), (GPT, 0), (GPT, 9), (GPT, 10)]
    settings.HERMES_ABANDONED_TALLY_RETENTION_DAYS = 0
    assert prune_abandoned_tally(today=today).rows == 0 and AbandonedAgentTally.objects.count() == 4


def test_prune_command_covers_the_tally(db, settings):
    settings.HERMES_ABANDONED_TALLY_RETENTION_DAYS = 30
    today = dt.datetime.now(dt.UTC).date()
    record_abandoned_agent(GPT, "cli", "timeout", day=today - dt.timedelta(days=31))
    record_abandoned_agent(GPT, "cli", "timeout", day=today - dt.timedelta(days=30))
    out = io.StringIO()
    call_command("prune_empty_sessions", "--dry-run", stdout=out)
    assert "Would delete 1 abandoned-agent tally rows" in out.getvalue() and AbandonedAgentTally.objects.count() == 2
    out = io.StringIO()
    call_command("prune_empty_sessions", "--no-input", "--format", "json", stdout=out)
    data = json.loads(out.getvalue())
    assert data["abandoned_tally"] == {
        "before": (today - dt.timedelta(days=30)).isoformat(),
        "rows": 1,
        "agents": 1,
    }
    assert list(AbandonedAgentTally.objects.values_list("day", flat=True)) == [today - dt.timedelta(days=30)]
    call_command("prune_empty_sessions", "--no-input", "--tally-keep-days", "0", stdout=io.StringIO())
    assert AbandonedAgentTally.objects.count() == 1
    with pytest.raises(CommandError, match="tally-keep-days"):
        call_command("prune_empty_sessions", "--no-input", "--tally-keep-days", "-1", stdout=io.StringIO())
    assert AbandonedAgentTally.objects.count() == 1


# --- admin ------------------------------------------------------------------------------------


def test_analytics_page_shows_the_abandoned_section_and_series(admin_client, history):
    response = admin_client.get(reverse("admin:sessions_app_session_empty_rates"), {"bucket": "day"})
    assert response.status_code == 200
    # Beside the sessions started since the tally's first day (both sides of the rate cover the
    # same days).
    since_tally = expected("model", lambda model, source, day: day >= TALLY_FIRST)
    rows = {row["key"]: (row["agents"], row["abandoned"]) for row in response.context["abandoned_rows"]}
    want = {key: (r["sessions"] + r["abandoned"], r["abandoned"]) for key, r in since_tally.items() if r["abandoned"]}
    assert rows == want
    content = response.content.decode()
    assert "Agents that ended without a message" in content and f"since the tally began on {TALLY_FIRST}" in content
    assert 'class="series abandoned"' in content  # the second series on the trend chart
    trend = {row["bucket"]: row["abandoned"] for row in response.context["trend_rows"]}
    per_day = expected("day")
    assert trend == {day: "not tracked" if r["abandoned"] is None else r["abandoned"] for day, r in per_day.items()}
    # An agent tallied on a day without any session still gets its trend row.
    assert trend["2026-04-02"] == 1


def test_analytics_page_empty_state(admin_client, legacy_session):
    legacy_session()
    content = admin_client.get(reverse("admin:sessions_app_session_empty_rates")).content.decode()
    assert "No agent ended without a message" in content


def test_tally_changelist_is_read_only_and_filters_by_model_name(
    admin_client, history, settings, client, django_user_model
):
    url = reverse("admin:agents_app_abandonedagenttally_changelist")
    response = admin_client.get(url, {"model__name": OPUS})
    assert response.status_code == 200
    assert {t.model.name for t in response.context["cl"].result_list} == {OPUS}
    assert admin_client.get(reverse("admin:agents_app_abandonedagenttally_add")).status_code == 403
    staff = django_user_model.objects.create_user("viewer", password="pw-long-enough-1", is_staff=True)
    client.force_login(staff)
    assert client.get(url).status_code == 403
    staff.user_permissions.add(Permission.objects.get(codename="view_abandonedagenttally"))
    assert client.get(url).status_code == 200
