"""Every profile in one place: reports, the command and the admin grouped and filtered by profile.

The fixture has three profiles with overlapping models and sources, plus two look-alikes of
"work" ("Work", "work ") that stay apart on every backend (MariaDB's default collation would fold
them into one). Sessions are written through ``append_messages(profile=...)``, ``Agent(profile=...)``
and as legacy rows; every expected number is counted from ``SPECS`` in plain Python.
"""

import csv
import datetime as dt
import io
import json
import re
from collections import Counter
from dataclasses import dataclass

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from prometheus_client.parser import text_string_to_metric_families

from agents_app.agent import Agent
from sessions_app.analytics import (
    abandoned_agent_counts,
    abandoned_agent_rates,
    empty_cause_breakdown,
    empty_rate_trend,
    empty_session_rates,
    report_from_trend,
    session_counts_by_model,
)
from sessions_app.models import DEFAULT_PROFILE, Message, Session
from sessions_app.rollup import build_rollup
from sessions_app.services import append_messages

GPT, OPUS = "openai/gpt-5", "anthropic/claude-opus-4.6"
RATES_URL = "/admin/sessions_app/session/empty-rates/"
CHANGELIST_URL = "/admin/sessions_app/session/"


def day(d: int, hour: int = 10) -> dt.datetime:
    return dt.datetime(2026, 1, d, hour, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Spec:
    """One session: its profile, model, source, start, message rows, and who wrote it (``service``:
    ``append_messages``; ``agent``: ``Agent``; ``legacy``: a row created directly, maybe empty)."""

    profile: str
    model: str | None
    source: str
    started_at: dt.datetime
    messages: int
    writer: str = "legacy"


SPECS = [
    Spec(DEFAULT_PROFILE, GPT, "cli", day(1), 2, "service"),
    Spec(DEFAULT_PROFILE, GPT, "cli", day(1, 11), 0),
    Spec(DEFAULT_PROFILE, OPUS, "telegram", day(2), 1, "agent"),
    Spec(DEFAULT_PROFILE, None, "cli", day(3), 0),
    Spec("work", GPT, "cli", day(1), 1, "service"),
    Spec("work", GPT, "cli", day(2), 0),
    Spec("work", GPT, "cron", day(2, 12), 0),
    Spec("work", OPUS, "cli", day(8), 3, "service"),
    Spec("work", OPUS, "cli", day(9), 0),
    Spec("lab", OPUS, "cli", day(1), 0),
    Spec("lab", OPUS, "cli", day(1, 12), 0),
    Spec("lab", OPUS, "telegram", day(2), 1),  # legacy, with a message row
    Spec("lab", GPT, "cron", day(9), 1, "service"),
    Spec("lab", OPUS, "cron", day(10), 2, "agent"),
    Spec("Work", GPT, "cli", day(1), 0),  # not "work": case
    Spec("Work", GPT, "cli", day(2), 1, "service"),
    Spec("work ", GPT, "cli", day(3), 0),  # not "work": a trailing space
]
PROFILES = sorted({spec.profile for spec in SPECS})  # by code point: "Work", "default", "lab", "work", "work "


def build(specs, legacy_session) -> dict[str, Spec]:
    built = {}
    for number, spec in enumerate(specs):
        session_id = f"profile_{number:03d}"
        messages = [{"role": "user", "content": f"m{m}", "timestamp": spec.started_at} for m in range(spec.messages)]
        if spec.writer == "service":
            append_messages(
                session_id,
                messages,
                model=spec.model,
                source=spec.source,
                started_at=spec.started_at,
                profile=spec.profile,
            )
        elif spec.writer == "agent":
            agent = Agent(spec.model, spec.source, session_id=session_id, profile=spec.profile)
            agent.started_at = spec.started_at
            for message in messages:
                agent.add_message(**message)
            agent.flush()
            agent.end()
        else:
            session = legacy_session(
                model=spec.model,
                source=spec.source,
                started_at=spec.started_at,
                session_id=session_id,
                profile=spec.profile,
            )
            Message.objects.bulk_create(Message(session=session, **message) for message in messages)
        built[session_id] = spec
    return built


@pytest.fixture
def history(db, legacy_session):
    return build(SPECS, legacy_session)


def key(spec: Spec, by: str) -> str:
    """The report key of a spec, in plain Python."""
    if by == "profile":
        return spec.profile
    if by == "model":
        return spec.model or "(none)"
    if by == "source":
        return spec.source
    when = spec.started_at.date()
    if by == "day":
        return when.isoformat()
    if by == "week":
        return (when - dt.timedelta(days=when.weekday())).isoformat()
    raise AssertionError(by)


def expected(specs, by) -> dict[str, tuple[int, int]]:
    sessions = Counter(key(spec, by) for spec in specs)
    empty = Counter(key(spec, by) for spec in specs if spec.messages == 0)
    return {k: (sessions[k], empty[k]) for k in sessions}


def of(profile: str) -> list[Spec]:
    return [spec for spec in SPECS if spec.profile == profile]


def numbers(report) -> dict[str, tuple[int, int]]:
    return {row.key: (row.sessions, row.empty) for row in report.rows}


def test_fixture_is_what_it_claims(history):
    stored = dict(Session.objects.values_list("id", "profile"))
    assert stored == {session_id: spec.profile for session_id, spec in history.items()}
    assert Session.objects.empty().count() == sum(spec.messages == 0 for spec in SPECS) == 9
    assert len(PROFILES) == 5


# --- querysets and reports ----------------------------------------------------------------------


@pytest.mark.parametrize("profile", PROFILES)
def test_of_profile_is_exact(history, profile):
    ids = set(Session.objects.of_profile(profile).values_list("id", flat=True))
    assert ids == {session_id for session_id, spec in history.items() if spec.profile == profile}
    assert set(Session.objects.matching(profile=profile).values_list("id", flat=True)) == ids


@pytest.mark.parametrize("name", ["WORK", "work  ", " work", "Default"])
def test_look_alikes_of_a_profile_match_nothing(history, name):
    assert not Session.objects.of_profile(name).exists()
    assert empty_session_rates("profile", profile=name).total.sessions == 0


def test_by_profile_keeps_every_profile_apart(history):
    report = empty_session_rates("profile")
    assert [row.key for row in report.rows] == PROFILES
    assert numbers(report) == expected(SPECS, "profile")
    assert numbers(report)["work"] == (5, 3)  # not merged with "Work" (2, 1) or "work " (1, 1)
    assert (report.total.sessions, report.total.empty) == (17, 9)


@pytest.mark.parametrize("by", ["model", "source", "profile", "day", "week"])
def test_totals_across_profiles_are_the_default(history, by):
    report = empty_session_rates(by)
    assert numbers(report) == expected(SPECS, by)
    assert report.filters["profile"] is None


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("by", ["model", "source", "profile", "week"])
def test_profile_filter(history, by, profile):
    chosen = of(profile)
    report = empty_session_rates(by, profile=profile)
    assert numbers(report) == expected(chosen, by)
    assert (report.total.sessions, report.total.empty) == (len(chosen), sum(s.messages == 0 for s in chosen))
    assert report.as_dict()["filters"] == {
        "since": None,
        "until": None,
        "model": None,
        "source": None,
        "profile": profile,
    }


def test_profile_filter_with_the_others(history):
    chosen = [
        s for s in SPECS if s.profile == "work" and s.model == GPT and s.source == "cli" and s.started_at >= day(2, 0)
    ]
    report = empty_session_rates("day", profile="work", model=GPT, source="cli", since=dt.date(2026, 1, 2))
    assert numbers(report) == expected(chosen, "day") == {"2026-01-02": (1, 1)}


def test_a_few_queries_per_profile_report(history, django_assert_max_num_queries):
    build_rollup()  # the rollup's days, and a live count of the rest
    with django_assert_max_num_queries(4):
        empty_session_rates("profile")
    with django_assert_max_num_queries(4):
        empty_session_rates("model", profile="work")


@pytest.mark.parametrize("bad", ["", 3])
def test_bad_profile_filter_is_refused(db, bad):
    with pytest.raises(ValidationError) as caught:
        empty_session_rates(profile=bad)
    assert "profile" in caught.value.message_dict


@pytest.mark.parametrize("profile", [None, "work", "Work"])
def test_trend_and_its_per_model_sums(history, profile):
    chosen = of(profile) if profile else SPECS
    points = empty_rate_trend("day", profile=profile)
    per_day = Counter()
    for point in points:
        per_day[point.bucket] += point.sessions
    assert dict(per_day) == {k: v[0] for k, v in expected(chosen, "day").items()}
    report = report_from_trend(points, profile=profile)
    assert numbers(report) == expected(chosen, "model")
    assert report.filters["profile"] == profile


@pytest.mark.parametrize("profile", [None, "lab", "work "])
def test_cause_breakdown(history, profile):
    chosen = of(profile) if profile else SPECS
    breakdown = empty_cause_breakdown("profile", profile=profile)
    assert numbers(breakdown.report) == expected(chosen, "profile")
    for row in breakdown.rows:
        assert sum(breakdown.causes[row.key].values()) == row.empty
    # Legacy rows here have no usage and are open, started long ago: all of them never_ended.
    assert breakdown.total["never_ended"] == sum(s.messages == 0 for s in chosen)
    by_cause = empty_session_rates("cause", profile=profile)
    assert by_cause.total.empty == sum(s.messages == 0 for s in chosen)


def test_per_language_model_counts(history):
    counts = session_counts_by_model(profile="lab")
    names = dict(Session.objects.filter(model__isnull=False).values_list("model_id", "model__name").distinct())
    assert {names[model_id]: pair for model_id, pair in counts.items()} == expected(of("lab"), "model")


def test_abandoned_reports_refuse_a_profile(history):
    with pytest.raises(ValidationError) as caught:
        abandoned_agent_rates("model", profile="work")
    assert "no profile" in caught.value.message_dict["profile"][0]
    with pytest.raises(ValidationError) as caught:
        abandoned_agent_counts("profile")
    assert "no profile" in caught.value.message_dict["by"][0]
    with pytest.raises(ValidationError):
        abandoned_agent_counts("model", profile="work")
    # Without a profile they count every profile, as before.
    assert abandoned_agent_rates("model").total.sessions == len(SPECS)


# --- the command --------------------------------------------------------------------------------


def run(*args) -> str:
    out = io.StringIO()
    call_command("empty_sessions", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def expected_json(specs, by, profile=None) -> dict:
    rows = [
        {"key": k, "sessions": sessions, "empty": empty, "rate": empty / sessions}
        for k, (sessions, empty) in sorted(expected(specs, by).items())
    ]
    total_empty = sum(s.messages == 0 for s in specs)
    return {
        "by": by,
        "filters": {"since": None, "until": None, "model": None, "source": None, "profile": profile},
        "total": {"sessions": len(specs), "empty": total_empty, "rate": total_empty / len(specs) if specs else 0.0},
        "rows": rows,
    }


def contract_shape(document: dict) -> dict:
    """The command's JSON reduced to the contract's keys (it carries 95% intervals beside them)."""
    keys = ("key", "sessions", "empty", "rate")
    return {
        **document,
        "total": {k: v for k, v in document["total"].items() if k in keys},
        "rows": [{k: v for k, v in row.items() if k in keys} for row in document["rows"]],
    }


def test_command_json_by_profile(history):
    assert contract_shape(json.loads(run("--by", "profile", "--format", "json"))) == expected_json(SPECS, "profile")


@pytest.mark.parametrize("profile", PROFILES)
def test_command_json_of_one_profile(history, profile):
    out = run("--by", "model", "--profile", profile, "--format", "json")
    assert contract_shape(json.loads(out)) == expected_json(of(profile), "model", profile)


def csv_numbers(out: str, by: str) -> dict[str, tuple[int, int]]:
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0][:4] == [by, "sessions", "empty", "rate"]
    assert rows[-1][0] == "TOTAL"
    return {row[0]: (int(row[1]), int(row[2])) for row in rows[1:-1]}


def test_command_csv_by_profile_keeps_a_trailing_space(history):
    out = run("--by", "profile", "--format", "csv")
    assert csv_numbers(out, "profile") == expected(SPECS, "profile")
    assert "work " in csv_numbers(out, "profile")


@pytest.mark.parametrize("profile", ["work", "Work", "work "])
def test_command_csv_of_one_profile(history, profile):
    out = run("--by", "source", "--profile", profile, "--format", "csv")
    assert csv_numbers(out, "source") == expected(of(profile), "source")
    total = list(csv.reader(io.StringIO(out)))[-1]
    assert (int(total[1]), int(total[2])) == (len(of(profile)), sum(s.messages == 0 for s in of(profile)))


ROW = re.compile(r"^(.*?)\s+(\d+)\s+(\d+)\s+(\d+\.\d)%(\s+\S+)?$")  # then the 95% interval


def table_numbers(out: str) -> Counter:
    """``Counter((key without trailing blanks, sessions, empty))`` of a table's rows, TOTAL included:
    the table pads keys, so "work" and "work " are told apart by their numbers here."""
    lines = out.splitlines()
    return Counter(
        (match[1].rstrip(), int(match[2]), int(match[3])) for line in lines[1:] if (match := ROW.match(line))
    )


def test_command_table_by_profile(history):
    out = run("--by", "profile")
    assert out.splitlines()[0].split()[:4] == ["profile", "sessions", "empty", "rate"]
    want = Counter((k.rstrip(), *pair) for k, pair in expected(SPECS, "profile").items())
    want[("TOTAL", 17, 9)] += 1
    assert table_numbers(out) == want


def test_command_table_of_one_profile(history):
    out = run("--by", "model", "--profile", "work")
    want = Counter((k, *pair) for k, pair in expected(of("work"), "model").items())
    want[("TOTAL", 5, 3)] += 1
    assert table_numbers(out) == want
    assert run("--profile", "nobody") == "No sessions match (profile 'nobody').\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--include-abandoned", "--profile", "work"], "--profile: the abandoned-agent tally has no profile"),
        (["--include-abandoned", "--by", "profile"], "--by: the abandoned-agent tally has no profile"),
        (["--profile", ""], "--profile: must not be empty"),
    ],
)
def test_command_refuses(history, args, message):
    with pytest.raises(CommandError, match=message):
        run(*args)


def test_command_breakdown_of_one_profile(history):
    data = json.loads(run("--by", "profile", "--breakdown", "cause", "--profile", "lab", "--format", "json"))
    assert data["filters"]["profile"] == "lab"
    assert [(r["key"], r["sessions"], r["empty"]) for r in data["rows"]] == [("lab", 5, 2)]


# --- the admin ----------------------------------------------------------------------------------


def test_analytics_page_lists_the_profiles_present(admin_client, history):
    response = admin_client.get(RATES_URL)
    assert response.status_code == 200
    choices = list(response.context["form"].fields["profile"].choices)
    assert choices == [("", "all profiles"), *((p, p) for p in PROFILES)]
    assert response.context["report"].total.sessions == len(SPECS)
    assert not response.context.get("abandoned_without_profile")


@pytest.mark.parametrize("profile", ["work", "Work", "work "])
def test_analytics_page_of_one_profile(admin_client, history, profile):
    response = admin_client.get(RATES_URL, {"profile": profile})
    assert response.status_code == 200
    report = response.context["report"]
    assert numbers(report) == expected(of(profile), "model")
    assert report.filters["profile"] == profile
    # The drill-down links carry the profile to the changelist's own filter.
    sessions = {row.key: row.sessions for row in report.rows}
    for row in response.context["rows"]:
        assert admin_client.get(row["url"]).context["cl"].result_count == sessions[row["key"]]
    # The tally has no profile: the section says so instead of mixing profiles.
    assert response.context["abandoned_without_profile"] is True
    assert "the abandoned-agent tally has no profile" in response.content.decode()


@pytest.mark.parametrize("profile", ["work", "work "])
def test_analytics_downloads_are_the_commands_numbers(admin_client, history, profile):
    data = admin_client.get(RATES_URL, {"profile": profile, "format": "json"}).json()
    report = {name: data[name] for name in ("by", "filters", "total", "rows")}  # the page carries more beside it
    for row in report["rows"]:  # ... and the windows before and since the latest marker on each row
        assert row.pop("before") is None and row.pop("since") is None  # no marker here
    assert report == json.loads(run("--profile", profile, "--format", "json"))
    response = admin_client.get(RATES_URL, {"profile": profile, "format": "csv"})
    page = list(csv.reader(io.StringIO(response.content.decode())))
    command = list(csv.reader(io.StringIO(run("--profile", profile, "--format", "csv"))))
    assert [row[: len(command[0])] for row in page] == command


def test_analytics_page_refuses_an_unknown_profile(admin_client, history):
    response = admin_client.get(RATES_URL, {"profile": "WORK"})
    assert response.status_code == 200 and "profile" in response.context["form"].errors
    assert admin_client.get(RATES_URL, {"profile": "WORK", "format": "json"}).status_code == 400


def test_changelist_profile_column_and_exact_filter(admin_client, history):
    response = admin_client.get(CHANGELIST_URL)
    # One narrow column: the source, and under it the profile unless it is "default".
    assert "origin" in response.context["cl"].list_display
    page = response.content.decode()
    assert "column-origin" in page and '<span class="session-title">work </span>' in page
    spec = next(f for f in response.context["cl"].filter_specs if getattr(f, "parameter_name", None) == "profile")
    assert spec.lookup_choices == [(p, p) for p in PROFILES]
    for profile in PROFILES:
        response = admin_client.get(CHANGELIST_URL, {"profile": profile})
        ids = {session.pk for session in response.context["cl"].result_list}
        assert ids == {session_id for session_id, spec in history.items() if spec.profile == profile}


def test_change_page_shows_the_profile(admin_client, history):
    session_id = next(sid for sid, spec in history.items() if spec.profile == "work ")
    response = admin_client.get(f"{CHANGELIST_URL}{session_id}/change/")
    assert response.status_code == 200
    assert '<div class="readonly">work </div>' in response.content.decode()  # a record: read-only


# --- /metrics keeps its labels ------------------------------------------------------------------


def test_metrics_count_every_profile_under_model_and_source(client, settings, history):
    settings.HERMES_METRICS_TOKEN = "profiles-token"
    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer profiles-token")
    assert response.status_code == 200
    sessions = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            if sample.name == "hermes_sessions":
                assert set(sample.labels) == {"model", "source", "profile"}
                key = (sample.labels["model"], sample.labels["source"])
                sessions[key] = sessions.get(key, 0) + sample.value
    want = Counter((spec.model or "(none)", spec.source) for spec in SPECS)
    assert sessions == dict(want)
