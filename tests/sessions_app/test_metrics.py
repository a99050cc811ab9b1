"""GET /metrics: the numbers (parsed back with prometheus_client's own parser), the access matrix,
the caps on every label, label escaping, a fixed number of queries per scrape, and counters that
never go down (across a prune, a first message, tally retention, a re-rank of the busiest models)."""

import datetime as dt
import logging
import os
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from agents_app.models import AbandonedAgentTally, LanguageModel
from sessions_app.analytics import empty_session_rates
from sessions_app.models import Message, Session
from sessions_app.pruning import prune_empty_sessions
from sessions_app.retention import prune_abandoned_tally
from sessions_app.services import append_messages
from tests.conftest import skip_or_fail

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "s3cret-scrape-token"
AUTH = {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}
GPT, CLAUDE = "openai/gpt-5", "anthropic/claude-opus-4.6"
WEIRD = 'we"ird\\mo\ndel'  # a quote, a backslash and a newline: only other writers store such names
NONE, OTHER = "(none)", "other"
DAY = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)

# (model name or None, source, message rows, stored message_count, days after DAY it started)
SESSIONS = [
    (GPT, "cli", 3, 3, 0),
    (GPT, "cli", 0, 0, 1),
    (GPT, "telegram", 1, 1, 2),
    (GPT, "CLI", 0, 0, 3),  # "CLI" is another source than "cli", on MariaDB too
    (CLAUDE, "cli", 2, 5, 4),  # the stored counter (5) is what hermes_messages_total sums
    (CLAUDE, "cli", 0, 0, 5),
    (CLAUDE, "cron", 0, 0, 6),
    (None, "cli", 0, 0, 7),
    ("", "cron", 1, 1, 8),  # a model recorded as '' is no model
    (WEIRD, "telegram", 0, 0, 9),
]
# (model name, source, end reason, [agents per tally day])
TALLIES = [
    (GPT, "cli", "timeout", [2, 3]),
    (GPT, "cli", "error", [1]),
    (CLAUDE, "discord", "timeout", [4]),
]
GAUGES = {
    "hermes_sessions",
    "hermes_empty_sessions",
    "hermes_messages",
    "hermes_recent_sessions",
    "hermes_recent_empty_sessions",
    "hermes_newest_session_age_seconds",
}
COUNTERS = {"hermes_sessions_stored_total", "hermes_sessions_deleted_total", "hermes_abandoned_agents_total"}
NAMES = GAUGES | COUNTERS
PROFILE = "default"


@pytest.fixture
def world(db):
    models = {name: LanguageModel.objects.create(name=name) for name in {s[0] for s in SESSIONS} if name is not None}
    for number, (name, source, rows, counter, days) in enumerate(SESSIONS):
        session = Session.objects.create(
            id=f"metrics_{number:03d}",
            model=models.get(name),
            source=source,
            started_at=DAY + dt.timedelta(days=days),
            message_count=counter,
        )
        Message.objects.bulk_create(Message(session=session, role="user", content=f"m{i}") for i in range(rows))
    for name, source, reason, counts in TALLIES:
        for offset, count in enumerate(counts):
            AbandonedAgentTally.objects.create(
                day=DAY.date() + dt.timedelta(days=offset),
                model=models[name],
                source=source,
                end_reason=reason,
                count=count,
            )


def expected_session_series() -> dict[str, dict[tuple[str, str], int]]:
    """The three session counters per (model, source), from SESSIONS alone."""
    expected = {name: defaultdict(int) for name in ("sessions", "empty", "messages")}
    for name, source, rows, counter, _days in SESSIONS:
        labels = (name or NONE, source, PROFILE)
        expected["sessions"][labels] += 1
        expected["empty"][labels] += rows == 0
        expected["messages"][labels] += counter
    return {name: dict(values) for name, values in expected.items()}


def scrape(client, **extra) -> tuple[str, dict[str, dict[tuple, float]]]:
    response = client.get("/metrics", **extra)
    assert response.status_code == 200, response.content
    text = response.content.decode()
    series: dict[str, dict[tuple, float]] = defaultdict(dict)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            keys = ("model", "source", "profile", "end_reason")
            labels = tuple(sample.labels[key] for key in keys if key in sample.labels)
            assert labels not in series[sample.name], f"duplicate series {sample.name}{sample.labels}"
            series[sample.name][labels] = sample.value
    return text, dict(series)


@pytest.fixture
def token(settings):
    settings.HERMES_METRICS_TOKEN = TOKEN


def test_every_number_matches_the_fixture(world, token, client):
    before = timezone.now()
    _, series = scrape(client, **AUTH)
    after = timezone.now()
    assert set(series) == NAMES - {"hermes_sessions_deleted_total"} | {"hermes_sessions_deleted_total"}
    expected = expected_session_series()
    assert series["hermes_sessions"] == expected["sessions"]
    assert series["hermes_empty_sessions"] == expected["empty"]
    assert series["hermes_messages"] == expected["messages"]
    assert series["hermes_sessions_stored_total"] == expected["sessions"]  # nothing deleted yet
    assert set(series["hermes_sessions_deleted_total"].values()) == {0}
    assert series["hermes_recent_sessions"] == {labels: 0 for labels in expected["sessions"]}  # all in March
    assert series["hermes_abandoned_agents_total"] == {
        (name, source, reason): sum(counts) for name, source, reason, counts in TALLIES
    }
    newest = {}
    for _name, source, _rows, _counter, days in SESSIONS:
        newest[source] = max(newest.get(source, days), days)
    ages = series["hermes_newest_session_age_seconds"]
    assert set(ages) == {(source,) for source in newest}
    for source, days in newest.items():
        started = DAY + dt.timedelta(days=days)
        assert (before - started).total_seconds() <= ages[(source,)] <= (after - started).total_seconds()


def test_totals_match_the_report(world, token, client):
    _, series = scrape(client, **AUTH)
    per_model = defaultdict(lambda: [0, 0])
    for (model, _source, _profile), value in series["hermes_sessions"].items():
        per_model[model][0] += value
    for (model, _source, _profile), value in series["hermes_empty_sessions"].items():
        per_model[model][1] += value
    report = empty_session_rates(by="model")
    from_report = defaultdict(lambda: [0, 0])
    for row in report.rows:
        # The contract keys a model recorded as '' "(none)" too; summing keeps this check about
        # the metrics, whichever spelling the report gives that row.
        from_report[row.key or NONE][0] += row.sessions
        from_report[row.key or NONE][1] += row.empty
    assert dict(per_model) == dict(from_report)
    assert sum(series["hermes_sessions"].values()) == report.total.sessions == len(SESSIONS)
    assert sum(series["hermes_empty_sessions"].values()) == report.total.empty


def test_exposed_names_and_types_are_the_contracts(world, token, client):
    """Stored-row figures are gauges without ``_total``; only what never decreases is a counter."""
    text, _ = scrape(client, **AUTH)
    for name in sorted(GAUGES):
        assert f"# TYPE {name} gauge\n" in text and f"# HELP {name} " in text and f"\n{name}{{" in text
    for name in sorted(COUNTERS):
        assert f"# TYPE {name} counter\n" in text and f"\n{name}{{" in text
    assert "hermes_sessions_total" not in text and "hermes_empty_sessions_total" not in text
    assert "hermes_messages_total" not in text
    assert "_total_total" not in text and "_created" not in text


def test_model_names_are_capped_and_the_rest_summed_as_other(world, token, client, settings):
    settings.HERMES_METRICS_MAX_MODELS = 1
    _, series = scrape(client, **AUTH)
    # Agents seen = sessions + abandoned agents: GPT 4 + 6, CLAUDE 3 + 4, WEIRD 1 (the cap keeps GPT).
    kept = {GPT, NONE}
    expected = expected_session_series()
    for name, metric in (("sessions", "hermes_sessions"), ("empty", "hermes_empty_sessions")):
        capped = defaultdict(int)
        for (model, source, profile), value in expected[name].items():
            capped[model if model in kept else OTHER, source, profile] += value
        assert series[metric] == dict(capped)
    assert {model for model, _, _ in series["hermes_sessions"]} == {GPT, NONE, OTHER}
    assert series["hermes_abandoned_agents_total"] == {
        (GPT, "cli", "timeout"): 5,
        (GPT, "cli", "error"): 1,
        (OTHER, "discord", "timeout"): 4,
    }


def test_every_label_is_capped(world, token, client, settings):
    settings.HERMES_METRICS_MAX_SOURCES = 2
    settings.HERMES_METRICS_MAX_END_REASONS = 1
    settings.HERMES_METRICS_MAX_PROFILES = 1
    Session.objects.filter(pk="metrics_000").update(profile="work")
    _, series = scrape(client, **AUTH)
    sources = {source for _, source, _ in series["hermes_sessions"]}
    sources |= {source for _, source, _ in series["hermes_abandoned_agents_total"]}
    assert len(sources - {OTHER}) == 2 and OTHER in sources
    assert {profile for _, _, profile in series["hermes_sessions"]} == {PROFILE, OTHER}
    assert {reason for _, _, reason in series["hermes_abandoned_agents_total"]} == {"timeout", OTHER}
    assert sum(series["hermes_sessions"].values()) == len(SESSIONS)  # capped, never dropped
    assert len({source for (source,) in series["hermes_newest_session_age_seconds"]} - {OTHER}) <= 2


def test_a_model_that_only_abandons_agents_keeps_its_name(world, token, client, settings):
    settings.HERMES_METRICS_MAX_MODELS = 2
    failing = LanguageModel.objects.create(name="broken/model")
    AbandonedAgentTally.objects.create(day=DAY.date(), model=failing, source="cli", end_reason="error", count=50)
    _, series = scrape(client, **AUTH)
    assert series["hermes_abandoned_agents_total"][("broken/model", "cli", "error")] == 50
    assert {model for model, _, _ in series["hermes_sessions"]} == {GPT, NONE, OTHER}


def counters(series) -> dict:
    return {name: values for name, values in series.items() if name in COUNTERS}


def assert_no_counter_went_down(before: dict, after: dict) -> None:
    """Every counter series of ``before`` is still there in ``after``, at least as high."""
    for name, values in counters(before).items():
        for labels, value in values.items():
            assert labels in after.get(name, {}), f"{name}{labels} vanished"
            assert after[name][labels] >= value, f"{name}{labels} went down: {value} -> {after[name][labels]}"


def test_counters_never_go_down_across_prune_first_message_retention_and_re_rank(world, token, client, settings):
    settings.HERMES_METRICS_MAX_MODELS = 1
    _, first = scrape(client, **AUTH)
    # A prune deletes the old empty sessions (all ended: they are a minute long here).
    Session.objects.filter(has_messages=False).update(ended_at=DAY)
    pruned = prune_empty_sessions(older_than=dt.timedelta(days=1))
    assert pruned.total_deleted
    _, second = scrape(client, **AUTH)
    assert_no_counter_went_down(first, second)
    assert sum(second["hermes_sessions_deleted_total"].values()) == pruned.total_deleted
    assert sum(second["hermes_sessions_stored_total"].values()) == len(SESSIONS)  # stored + deleted
    assert sum(second["hermes_sessions"].values()) == len(SESSIONS) - pruned.total_deleted  # a gauge
    # A first message into an empty session (gauges move; counters do not fall).
    legacy = Session.objects.create(id="late_speaker", model=None, source="cli", started_at=DAY)
    _, third = scrape(client, **AUTH)
    append_messages(legacy.id, [{"role": "user", "content": "hi"}], model="x/late", source="cli")
    _, fourth = scrape(client, **AUTH)
    assert_no_counter_went_down(third, fourth)
    # Tally retention drops every tally day: the retired ledger keeps the counter up.
    result = prune_abandoned_tally(keep_days=1, today=DAY.date() + dt.timedelta(days=400))
    assert result.rows and not AbandonedAgentTally.objects.exists()
    _, fifth = scrape(client, **AUTH)
    assert_no_counter_went_down(fourth, fifth)
    # A re-rank: CLAUDE becomes the busiest model; the cap keeps GPT's name (the first one seen).
    model = LanguageModel.objects.get(name=CLAUDE)
    Session.objects.bulk_create(Session(id=f"busy_{n}", model=model, source="cli", started_at=DAY) for n in range(30))
    _, sixth = scrape(client, **AUTH)
    assert_no_counter_went_down(fifth, sixth)
    assert {model for model, _, _ in sixth["hermes_sessions_stored_total"]} == {GPT, NONE, OTHER}


def test_label_values_are_escaped(world, token, client):
    text, series = scrape(client, **AUTH)
    assert 'model="we\\"ird\\\\mo\\ndel",profile="default",source="telegram"' in text
    assert series["hermes_sessions"][(WEIRD, "telegram", PROFILE)] == 1


def test_a_scrape_is_a_few_queries_whatever_the_size(world, token, client, legacy_session):
    """The rollup's state, marks and days, the live days, the two ledgers, the tally and the labels
    (plus their registration when a new value appears): the same number at any size."""
    client.get("/metrics", **AUTH)  # registers this world's labels
    with CaptureQueriesContext(connection) as few:
        client.get("/metrics", **AUTH)
    for number in range(30):
        legacy_session(model=f"vendor/model-{number}", source=f"source-{number % 7}")
    client.get("/metrics", **AUTH)  # registers the new ones
    with CaptureQueriesContext(connection) as many:
        response = client.get("/metrics", **AUTH)
    assert response.status_code == 200
    assert len(many) == len(few) <= 12


def test_an_empty_database_exposes_help_and_no_samples(db, token, client):
    text, series = scrape(client, **AUTH)
    assert series == {}
    assert "# TYPE hermes_sessions gauge" in text and "# TYPE hermes_sessions_stored_total counter" in text


def test_response_headers(world, token, client):
    response = client.get("/metrics", **AUTH)
    assert response["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert "no-store" in response["Cache-Control"]
    assert client.head("/metrics", **AUTH).status_code == 200
    browser = Client(enforce_csrf_checks=True)  # as a real request meets the CSRF middleware
    for method in (browser.post, browser.put, browser.delete, browser.options):
        refused = method("/metrics", **AUTH)
        assert refused.status_code == 405
        assert "no-store" in refused["Cache-Control"]


# --- access ---------------------------------------------------------------------------------


@pytest.fixture
def make_user(django_user_model):
    def make(*, staff: bool, permission: bool):
        user = django_user_model.objects.create_user(
            username=f"u{django_user_model.objects.count()}", password="pw", is_staff=staff
        )
        if permission:
            user.user_permissions.add(
                Permission.objects.get(codename="view_session", content_type__app_label="sessions_app")
            )
        return user

    return make


@pytest.mark.parametrize("configured", [False, True])
def test_anonymous_without_credentials_gets_401_with_a_bearer_challenge(db, settings, client, configured):
    settings.HERMES_METRICS_TOKEN = TOKEN if configured else ""
    response = client.get("/metrics")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert "no-store" in response["Cache-Control"]


@pytest.mark.parametrize(
    ("configured", "header", "status"),
    [
        (TOKEN, f"Bearer {TOKEN}", 200),
        (TOKEN, f"bearer {TOKEN}", 200),  # the scheme is case-insensitive (RFC 9110)
        (TOKEN, "Bearer wrong", 403),
        (TOKEN, f"Bearer {TOKEN}x", 403),
        (TOKEN, "Bearer ", 403),
        (TOKEN, f"Basic {TOKEN}", 401),  # not a bearer token: no credentials for this endpoint
        ("", f"Bearer {TOKEN}", 403),  # no token configured: no token opens it
        ("", "Bearer ", 403),
    ],
)
def test_bearer_token(db, settings, client, configured, header, status):
    settings.HERMES_METRICS_TOKEN = configured
    assert client.get("/metrics", HTTP_AUTHORIZATION=header).status_code == status


@pytest.mark.parametrize("configured", ["", TOKEN])
@pytest.mark.parametrize(
    ("staff", "permission", "status"),
    [(True, True, 200), (True, False, 403), (False, True, 403), (False, False, 403)],
)
def test_logged_in_users(db, settings, client, make_user, configured, staff, permission, status):
    settings.HERMES_METRICS_TOKEN = configured
    client.force_login(make_user(staff=staff, permission=permission))
    assert client.get("/metrics").status_code == status


def test_a_wrong_token_is_refused_even_beside_a_staff_login(db, token, client, make_user):
    client.force_login(make_user(staff=True, permission=True))
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403


def test_the_token_is_never_logged(world, token, client, caplog):
    with caplog.at_level(logging.DEBUG):
        client.get("/metrics", **AUTH)
        client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN[:-1]}")
    assert TOKEN not in caplog.text and TOKEN[:-1] not in caplog.text


@pytest.mark.parametrize("value", ["0", "-3", "many", "2.5"])
def test_a_bad_model_cap_is_refused_at_start(value):
    env = {key: item for key, item in os.environ.items() if not key.startswith("DJANGO_")}
    env.update(DJANGO_DEBUG="1", DJANGO_ENV_FILE="", HERMES_METRICS_MAX_MODELS=value)
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "HERMES_METRICS_MAX_MODELS must be a whole number from 1 to 100000" in result.stderr


# --- the example alert rule -----------------------------------------------------------------


def test_the_example_alert_rule_file_is_well_formed():
    """promtool checks it for real (docs/metrics.md); this guards its shape without a YAML library
    in the requirements: PyYAML when it happens to be installed, else the few lines that matter."""
    text = (ROOT / "docs" / "prometheus" / "hermes_rules.yml").read_text()
    try:
        import yaml
    except ImportError:
        yaml = None
    if yaml is not None:
        rule = yaml.safe_load(text)["groups"][0]["rules"][0]
        alert, expr, duration = rule["alert"], rule["expr"], rule["for"]
    else:
        import re

        assert re.search(r"^groups:$", text, re.M) and "\t" not in text
        alert = re.search(r"^\s+- alert: (\S+)$", text, re.M).group(1)
        expr = re.search(r"^\s+expr: [|>]-?\n((?:\s{8,}.*\n)+)", text, re.M).group(1)
        duration = re.search(r"^\s+for: (\S+)$", text, re.M).group(1)
    assert alert == "HermesEmptySessionRateHigh"
    assert duration == "1h"
    # A recent window (the last 24 hours' gauges), not all-time stored ratios.
    assert "hermes_recent_empty_sessions" in expr and "hermes_recent_sessions" in expr and "0.25" in expr
    assert "_total" not in expr


def test_promtool_accepts_the_rule_file():
    """The real check, where promtool is installed (Debian's prometheus package ships it)."""
    promtool = shutil.which("promtool")
    if promtool is None:
        skip_or_fail("promtool is not installed (apt-get install prometheus)")
    result = subprocess.run(
        [promtool, "check", "rules", str(ROOT / "docs" / "prometheus" / "hermes_rules.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.django_db(transaction=True)
def test_a_scrape_outside_any_transaction_reads_one_snapshot(settings, client, legacy_session):
    """Outside a test's transaction the scrape opens its own, at REPEATABLE READ on PostgreSQL and
    MariaDB (the statement that sets it must come first there, or the server refuses it)."""
    settings.HERMES_METRICS_TOKEN = TOKEN
    legacy_session(GPT, source="cli")
    _, series = scrape(client, **AUTH)
    assert series["hermes_sessions"] == {(GPT, "cli", PROFILE): 1}
    assert series["hermes_sessions_stored_total"] == {(GPT, "cli", PROFILE): 1}
