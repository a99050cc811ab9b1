"""The analytics page's story: now versus before, markers, partial buckets, readable trends,
intervals and greyed small samples, and downloads that carry everything the page shows."""

import csv
import datetime as dt
import io
import json
import re

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from agents_app.models import AbandonedAgentTally
from agents_app.services import record_abandoned_agent
from sessions_app.admin.charts import model_colour_class
from sessions_app.analytics import default_bucket, partial_bucket, rate_comparison
from sessions_app.models import TrendMarker
from tests.sessions_app.test_admin import GPT, OPUS, RATES_URL, build_world, speak
from tests.sessions_app.test_analytics import wilson

NOW = dt.datetime.now(dt.UTC)


@pytest.fixture
def world(legacy_session):
    return build_world(legacy_session)


def days_ago(days: float) -> dt.datetime:
    return NOW - dt.timedelta(days=days)


@pytest.fixture
def recent(legacy_session):
    """Before (8 to 14 days ago): 4 sessions, 3 empty. Now (the last 7 days): 5 sessions, 1 empty,
    and 2 abandoned agents (today). Far back (40 days ago): 1 empty session."""
    for age in (8, 9, 10):
        legacy_session(GPT, started_at=days_ago(age))
    speak(GPT, days_ago(11))
    for age in (1, 2, 3, 4):
        speak(OPUS, days_ago(age))
    legacy_session(OPUS, started_at=days_ago(2))
    legacy_session(GPT, started_at=days_ago(40))
    for _ in range(2):
        record_abandoned_agent(OPUS, "cli", "timeout", day=NOW.date())
    # The tally began 20 days ago (an agent then): both windows were measured.
    record_abandoned_agent(GPT, "cli", "error", day=(NOW - dt.timedelta(days=20)).date())


# --- now versus before ------------------------------------------------------------------------


def test_now_versus_the_week_before_without_a_marker(recent):
    comparison = rate_comparison(now=NOW)
    assert comparison.marker is None
    assert (comparison.now.sessions, comparison.now.empty, comparison.now.abandoned) == (5, 1, 2)
    assert (comparison.before.sessions, comparison.before.empty) == (4, 3)
    assert comparison.change == pytest.approx(1 / 5 - 3 / 4)
    assert comparison.abandoned_change == pytest.approx(2 / 7 - 0)
    assert comparison.ranges["now"][1] == NOW
    assert comparison.ranges["before"][1] == comparison.ranges["now"][0] == NOW - dt.timedelta(days=7)


def test_a_window_before_the_tally_existed_is_not_tracked(recent):
    AbandonedAgentTally.objects.filter(day__lt=NOW.date() - dt.timedelta(days=1)).delete()  # the tally began today
    comparison = rate_comparison(now=NOW)
    assert comparison.before.abandoned is None and comparison.before.abandoned_rate is None
    assert comparison.now.abandoned is None  # the last 7 days began before the tally, too
    assert comparison.abandoned_change is None
    data = comparison.as_dict()
    assert data["before"]["abandoned_rate"] is None and data["abandoned_change"] is None
    assert data["before"]["rate"] == 3 / 4  # the empty-session rate was measured all along


def test_before_is_the_week_before_the_latest_marker(recent):
    TrendMarker.objects.create(at=days_ago(30), label="older")
    TrendMarker.objects.create(at=days_ago(9.5), label="lazy sessions on")
    TrendMarker.objects.create(at=NOW + dt.timedelta(days=1), label="planned")  # not yet: ignored
    comparison = rate_comparison(now=NOW)
    assert comparison.marker.label == "lazy sessions on"
    assert comparison.ranges["before"] == (days_ago(16.5), days_ago(9.5))
    assert (comparison.before.sessions, comparison.before.empty) == (2, 1)  # 10 (empty) and 11 days ago
    assert (comparison.now.sessions, comparison.now.empty) == (5, 1)


def test_a_marker_inside_the_last_week_starts_now(recent):
    TrendMarker.objects.create(at=days_ago(2.5), label="fix")
    comparison = rate_comparison(now=NOW)
    assert comparison.ranges["now"][0] == days_ago(2.5)
    assert (comparison.now.sessions, comparison.now.empty) == (3, 1)  # 1 and 2 days ago (one empty)
    # The 7 days before the marker (2.5 to 9.5 days ago): 3 and 4 days ago, 8 and 9 (both empty).
    assert (comparison.before.sessions, comparison.before.empty) == (4, 2)


def test_page_shows_the_comparison_with_intervals(admin_client, recent):
    response = admin_client.get(RATES_URL)
    content = response.content.decode()
    assert "Now versus before" in content
    comparison = response.context["comparison"]
    assert (comparison["before"]["rate"], comparison["now"]["rate"]) == ("75.0%", "20.0%")
    assert comparison["change"] == "-55.0 points" and comparison["falling"]
    low, high = wilson(1, 5)
    assert comparison["now"]["interval"] == f"{low * 100:.1f}\u2013{high * 100:.1f}%"
    assert "the 7 days before (no marker yet)" in content


# --- markers, partial buckets, colours, lines --------------------------------------------------


def test_markers_are_drawn_and_listed(admin_client, world):
    TrendMarker.objects.create(
        at=dt.datetime(2026, 1, 9, 12, tzinfo=dt.UTC), label="lazy <b>sessions</b> on", note="PR 42"
    )
    TrendMarker.objects.create(at=dt.datetime(2025, 6, 1, tzinfo=dt.UTC), label="out of range")
    response = admin_client.get(RATES_URL, {"bucket": "day", "since": "2026-01-01"})
    content = response.content.decode()
    svg = re.search(r'<svg class="trend-chart".*?</svg>', content, re.S).group(0)
    assert len(re.findall(r'<g class="event">', svg)) == 1
    assert "lazy &lt;b&gt;sessions&lt;/b&gt; on" in svg and "<b>" not in svg
    # Jan 9 12:00 lies 4.5 days after the first bucket (Jan 5): between the 5th and 6th points.
    x = float(re.search(r'<line class="event-line" x1="([\d.]+)"', svg).group(1))
    points = [float(v) for v in re.findall(r'<circle class="marker total" cx="([\d.]+)"', svg)]
    step = (points[1] - points[0]) / 1  # Jan 5 and Jan 6 are both drawn
    assert x == pytest.approx(points[0] + 4.5 * step, abs=0.2)
    assert "PR 42" in content and "out of range" not in content
    assert [
        m["label"]
        for m in json.loads(admin_client.get(RATES_URL, {"format": "json", "since": "2026-01-01"}).content)["markers"]
    ] == ["lazy <b>sessions</b> on"]


def test_partial_bucket_is_hollow_dashed_and_labelled(admin_client, legacy_session):
    today = NOW.replace(hour=0, minute=0, second=0, microsecond=0)
    for age in (3, 2, 1):
        legacy_session(GPT, started_at=today - dt.timedelta(days=age, hours=-1))
    speak(GPT, today - dt.timedelta(days=1, hours=-2))
    legacy_session(GPT, started_at=NOW - dt.timedelta(seconds=30))  # today: one empty session so far
    response = admin_client.get(RATES_URL, {"bucket": "day"})
    assert response.context["partial"] == today.date().isoformat()
    rows = response.context["trend_rows"]
    assert [row["partial"] for row in rows] == [False, False, False, True]
    svg = re.search(r'<svg class="trend-chart".*?</svg>', response.content.decode(), re.S).group(0)
    assert re.search(r'<path class="series partial total" d="M[\d.,]+ L[\d.,]+"', svg)
    assert len(re.findall(r'<circle class="marker total partial"', svg)) == 1
    assert f"partial {today.date().isoformat()}" in svg
    assert "still filling" in response.content.decode()
    # A range that ends on a bucket boundary has no partial bucket.
    ended = admin_client.get(RATES_URL, {"bucket": "day", "until": today.date().isoformat()})
    assert ended.context["partial"] is None and "partial" not in re.search(
        r'<svg class="trend-chart".*?</svg>', ended.content.decode(), re.S
    ).group(0)


def test_partial_bucket_boundaries():
    now = dt.datetime(2026, 3, 4, 10, tzinfo=dt.UTC)  # a Wednesday
    assert partial_bucket("day", until=None, now=now) == "2026-03-04"
    assert partial_bucket("week", until=None, now=now) == "2026-03-02"
    assert partial_bucket("week", until=dt.datetime(2026, 3, 2, tzinfo=dt.UTC), now=now) is None
    assert partial_bucket("day", until=dt.datetime(2026, 3, 1, 6, tzinfo=dt.UTC), now=now) == "2026-03-01"


def test_weekly_by_default_over_long_ranges(admin_client, legacy_session):
    legacy_session(GPT, started_at=days_ago(59))
    assert default_bucket(now=NOW) == "day"
    assert admin_client.get(RATES_URL).context["bucket"] == "day"
    legacy_session(GPT, started_at=days_ago(61))
    assert default_bucket(now=NOW) == "week"
    assert admin_client.get(RATES_URL).context["bucket"] == "week"
    assert admin_client.get(RATES_URL, {"bucket": "day"}).context["bucket"] == "day"  # a choice wins
    assert default_bucket(since=NOW.date() - dt.timedelta(days=10)) == "day"
    assert default_bucket(since=dt.date(2026, 1, 1), until=dt.date(2026, 3, 15)) == "week"


def test_five_busiest_models_and_the_rest_as_other_in_fixed_colours(admin_client, legacy_session):
    start = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)
    counts = {f"vendor/m{i}": 8 - i for i in range(7)}  # m0 busiest ... m6 quietest
    for name, count in counts.items():
        for j in range(count):
            legacy_session(name, started_at=start + dt.timedelta(hours=j))
    response = admin_client.get(RATES_URL, {"bucket": "day"})
    lines = [model["name"] for model in response.context["trend_models"]]
    assert lines == [f"vendor/m{i}" for i in range(5)] + ["other models"]
    svg = re.search(r'<svg class="trend-chart".*?</svg>', response.content.decode(), re.S).group(0)
    for name in lines[:5]:
        assert f'class="series model {model_colour_class(name)}"' in svg
    assert 'class="series model model-other"' in svg
    other = response.context["trend_rows"][0]["models"][-1]
    assert other == "100.0% (5/5)"  # m5 (3) and m6 (2), all empty
    # The colour comes from the name alone: the same whatever else is on the page.
    alone = admin_client.get(RATES_URL, {"bucket": "day", "source": "cli"})
    assert f"model-swatch {model_colour_class('vendor/m3')}" in alone.content.decode()
    assert model_colour_class("vendor/m3") == model_colour_class("vendor/m3") and model_colour_class("x").startswith(
        "model-c"
    )


def test_small_samples_are_greyed_and_rates_carry_intervals(admin_client, world):
    response = admin_client.get(RATES_URL, {"bucket": "day"})
    rows = {row["key"]: row for row in response.context["rows"]}
    assert all(row["small"] for row in rows.values())  # 5 sessions at most: under 30
    low, high = wilson(3, 4)
    assert rows[OPUS]["interval"] == f"{low * 100:.1f}\u2013{high * 100:.1f}%"
    content = response.content.decode()
    assert content.count('class="small-sample"') >= len(rows)
    assert "Greyed rows have fewer than 30 sessions" in content
    assert "Most empty sessions (by count)" in content


# --- downloads ---------------------------------------------------------------------------------


def test_json_carries_everything_the_page_shows(admin_client, world):
    TrendMarker.objects.create(at=dt.datetime(2026, 1, 9, tzinfo=dt.UTC), label="fix")
    record_abandoned_agent(GPT, "cli", "timeout", day=dt.date(2026, 1, 12))
    data = json.loads(admin_client.get(RATES_URL, {"format": "json", "bucket": "day"}).content)
    assert set(data) >= {"by", "filters", "total", "rows", "abandoned", "causes", "trend", "comparison", "markers"}
    assert data["abandoned"]["total"]["abandoned"] == 1
    assert {row["key"]: row["abandoned"] for row in data["abandoned"]["rows"]}[GPT] == 1
    assert data["trend"]["by"] == "day"
    trend = {row["key"]: row for row in data["trend"]["rows"]}
    assert (trend["2026-01-05"]["sessions"], trend["2026-01-05"]["empty"]) == (4, 3)
    assert trend["2026-01-12"]["abandoned"] == 1 and trend["2026-01-12"]["agents"] == 4
    assert (trend["2026-01-05"]["rate_low"], trend["2026-01-05"]["rate_high"]) == pytest.approx(wilson(3, 4))
    assert trend["2026-01-05"]["models"][OPUS] == {"sessions": 2, "empty": 2, "rate": 1.0}
    assert data["causes"]["total"] and sum(data["causes"]["total"].values()) == 8
    assert data["markers"] == [{"at": "2026-01-09T00:00:00+00:00", "label": "fix", "note": ""}]
    assert set(data["comparison"]) == {"now", "before", "marker", "change", "abandoned_change"}
    for row in [data["total"], *data["rows"]]:
        assert (row["rate_low"], row["rate_high"]) == pytest.approx(wilson(row["empty"], row["sessions"]))


@pytest.mark.parametrize("table", ["models", "abandoned", "causes", "trend", "comparison"])
def test_csv_tables(admin_client, world, table):
    response = admin_client.get(RATES_URL, {"format": "csv", "table": table, "bucket": "day"})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert len({len(row) for row in rows}) == 1  # one rectangular table
    if table == "trend":
        assert rows[0][:4] == ["day", "sessions", "empty", "rate"] and "partial" in rows[0]
        assert rows[1][:3] == ["2026-01-05", "4", "3"]
        assert "'=cmd|' /C calc'!A0 sessions" in rows[0]  # a formula-like model name, neutralised
    if table == "models":
        windows = [
            f"{side}_{c}"
            for side in ("before", "since")
            for c in ("sessions", "empty", "rate", "rate_low", "rate_high")
        ]
        assert rows[0] == ["model", "sessions", "empty", "rate", "rate_low", "rate_high", *windows]


@pytest.mark.parametrize("params", [{"format": "xml"}, {"format": "CSV"}, {"format": "csv", "table": "secrets"}])
def test_unknown_format_or_table_is_a_400_listing_the_allowed_values(admin_client, world, params):
    response = admin_client.get(RATES_URL, params)
    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/plain")
    text = response.content.decode()
    if params.get("table"):
        assert "allowed: models, abandoned, causes, trend, comparison" in text
    else:
        assert "allowed: html, csv, json" in text


# --- the markers' admin ------------------------------------------------------------------------


def test_markers_are_managed_in_the_admin_with_permissions(client, django_user_model, db):
    user = django_user_model.objects.create_user("ops", password="pw", is_staff=True)
    client.force_login(user)
    add = reverse("admin:sessions_app_trendmarker_add")
    form = {"at_0": "2026-01-09", "at_1": "12:00:00", "label": "deploy 1.2", "note": "lazy sessions"}
    assert client.post(add, form).status_code == 403
    user.user_permissions.add(*Permission.objects.filter(codename__in=["add_trendmarker", "view_trendmarker"]))
    assert client.post(add, form).status_code == 302
    marker = TrendMarker.objects.get()
    assert (marker.at, marker.label) == (dt.datetime(2026, 1, 9, 12, tzinfo=dt.UTC), "deploy 1.2")
    change = reverse("admin:sessions_app_trendmarker_change", args=[marker.pk])
    assert client.post(change, {**form, "label": "edited"}).status_code == 403
    user.user_permissions.add(*Permission.objects.filter(codename__in=["change_trendmarker", "delete_trendmarker"]))
    assert client.post(change, {**form, "label": "edited"}).status_code == 302
    assert TrendMarker.objects.get().label == "edited"
    listing = client.get(reverse("admin:sessions_app_trendmarker_changelist")).content.decode()
    assert "2026-01-09 12:00:00" in listing
    delete = reverse("admin:sessions_app_trendmarker_delete", args=[marker.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 302 and not TrendMarker.objects.exists()
