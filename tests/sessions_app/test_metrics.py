"""GET /metrics: the numbers (parsed back with prometheus_client's own parser), the access matrix,
the cap on model names, label escaping, and a fixed number of queries per scrape."""

import datetime as dt
import logging
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from agents_app.models import AbandonedAgentTally, LanguageModel
from sessions_app.analytics import empty_session_rates
from sessions_app.models import Message, Session

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
NAMES = {
    "hermes_sessions_total",
    "hermes_empty_sessions_total",
    "hermes_messages_total",
    "hermes_abandoned_agents_total",
    "hermes_newest_session_age_seconds",
}


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
        labels = (name or NONE, source)
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
            labels = tuple(sample.labels[key] for key in ("model", "source", "end_reason") if key in sample.labels)
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
    assert set(series) == NAMES
    expected = expected_session_series()
    assert series["hermes_sessions_total"] == expected["sessions"]
    assert series["hermes_empty_sessions_total"] == expected["empty"]
    assert series["hermes_messages_total"] == expected["messages"]
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
    for (model, _source), value in series["hermes_sessions_total"].items():
        per_model[model][0] += value
    for (model, _source), value in series["hermes_empty_sessions_total"].items():
        per_model[model][1] += value
    report = empty_session_rates(by="model")
    from_report = defaultdict(lambda: [0, 0])
    for row in report.rows:
        # The contract keys a model recorded as '' "(none)" too; summing keeps this check about
        # the metrics, whichever spelling the report gives that row.
        from_report[row.key or NONE][0] += row.sessions
        from_report[row.key or NONE][1] += row.empty
    assert dict(per_model) == dict(from_report)
    assert sum(series["hermes_sessions_total"].values()) == report.total.sessions == len(SESSIONS)
    assert sum(series["hermes_empty_sessions_total"].values()) == report.total.empty


def test_exposed_names_and_types_are_the_contracts(world, token, client):
    text, _ = scrape(client, **AUTH)
    for name in sorted(NAMES - {"hermes_newest_session_age_seconds"}):
        assert f"# TYPE {name} counter\n" in text
        assert f"# HELP {name} " in text
        assert f"\n{name}{{" in text
    assert "# TYPE hermes_newest_session_age_seconds gauge\n" in text
    assert "_total_total" not in text and "_created" not in text


def test_model_names_are_capped_and_the_rest_summed_as_other(world, token, client, settings):
    settings.HERMES_METRICS_MAX_MODELS = 1
    _, series = scrape(client, **AUTH)
    # Agents seen = sessions + abandoned agents: GPT 4 + 6, CLAUDE 3 + 4, WEIRD 1 (the cap keeps GPT).
    kept = {GPT, NONE}
    expected = expected_session_series()
    for name, metric in (("sessions", "hermes_sessions_total"), ("empty", "hermes_empty_sessions_total")):
        capped = defaultdict(int)
        for (model, source), value in expected[name].items():
            capped[model if model in kept else OTHER, source] += value
        assert series[metric] == dict(capped)
    assert {model for model, _ in series["hermes_sessions_total"]} == {GPT, NONE, OTHER}
    assert series["hermes_abandoned_agents_total"] == {
        (GPT, "cli", "timeout"): 5,
        (GPT, "cli", "error"): 1,
        (OTHER, "discord", "timeout"): 4,
    }


def test_a_model_that_only_abandons_agents_keeps_its_name(world, token, client, settings):
    settings.HERMES_METRICS_MAX_MODELS = 2
    failing = LanguageModel.objects.create(name="broken/model")
    AbandonedAgentTally.objects.create(day=DAY.date(), model=failing, source="cli", end_reason="error", count=50)
    _, series = scrape(client, **AUTH)
    assert series["hermes_abandoned_agents_total"][("broken/model", "cli", "error")] == 50
    assert {model for model, _ in series["hermes_sessions_total"]} == {GPT, NONE, OTHER}


def test_label_values_are_escaped(world, token, client):
    text, series = scrape(client, **AUTH)
    assert 'model="we\\"ird\\\\mo\\ndel",source="telegram"' in text
    assert series["hermes_sessions_total"][(WEIRD, "telegram")] == 1


def test_one_scrape_is_two_queries_whatever_the_size(world, token, client, django_assert_num_queries, legacy_session):
    with django_assert_num_queries(2):
        client.get("/metrics", **AUTH)
    for number in range(30):
        legacy_session(model=f"vendor/model-{number}", source=f"source-{number % 7}")
    with django_assert_num_queries(2):
        response = client.get("/metrics", **AUTH)
    assert response.status_code == 200


def test_an_empty_database_exposes_help_and_no_samples(db, token, client):
    text, series = scrape(client, **AUTH)
    assert series == {}
    assert "# TYPE hermes_sessions_total counter" in text


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
    assert "hermes_empty_sessions_total" in expr and "hermes_sessions_total" in expr and "0.25" in expr
