"""Dates the reports cannot hold are refused where they come in, with a form error or a
CommandError, never a 500 or a traceback (issue 23): the analytics page's ``since``/``until``,
trend markers, ``empty_sessions --since/--until``, ``build_rollup --since/--until``. What another
writer stored out of range (a marker, a rollup watermark) is left out by the readers."""

import datetime as dt
import io
import json

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.urls import reverse

from sessions_app.analytics import empty_session_rates, rollup_status
from sessions_app.models import SessionDay, SessionRollupState, TrendMarker
from sessions_app.rollup import build_rollup

PAGE = reverse("admin:sessions_app_session_empty_rates")
ADD_MARKER = reverse("admin:sessions_app_trendmarker_add")

# Before 1000-01-01 in UTC, or past the last datetime Python has once in UTC.
OUT_OF_RANGE = [
    ("until", "0001-01-01"),
    ("until", "0001-01-08"),
    ("since", "0001-01-01"),
    ("until", "0999-12-31"),
    ("since", "0999-12-31T23:59:59Z"),
    ("until", "1000-01-01T00:30+01:00"),
    ("until", "0001-01-01T00:00+01:00"),
    ("until", "9999-12-31T23:59:59-05:00"),
    ("since", "9999-12-31T20:00-12:00"),
]
IN_RANGE = [
    {"until": "1000-01-01"},
    {"since": "1000-01-01", "until": "1000-01-02"},
    {"since": "1970-01-01"},
    {"until": "9999-12-31"},
    {"since": "9999-12-30", "until": "9999-12-31T23:59:59Z"},
]


@pytest.fixture
def sessions(legacy_session):
    legacy_session(session_id="full", started_at=dt.datetime(2026, 1, 5, tzinfo=dt.UTC))
    legacy_session(session_id="empty", started_at=dt.datetime(2026, 1, 6, tzinfo=dt.UTC))


@pytest.mark.parametrize(("name", "value"), OUT_OF_RANGE)
def test_the_page_refuses_a_date_out_of_range_with_a_form_error(admin_client, sessions, name, value):
    html = admin_client.get(PAGE, {name: value})
    assert html.status_code == 200
    assert list(html.context["form"].errors) == [name]
    [error] = html.context["form"].errors[name]
    assert "is before 1000-01-01" in error or "is out of range in UTC" in error
    as_json = admin_client.get(PAGE, {name: value, "format": "json"})
    assert as_json.status_code == 400
    assert list(json.loads(as_json.content)["errors"]) == [name]
    as_csv = admin_client.get(PAGE, {name: value, "format": "csv"})
    assert as_csv.status_code == 400
    assert as_csv.content.decode().startswith(f"{name}: ")


@pytest.mark.parametrize("query", IN_RANGE)
@pytest.mark.parametrize("wanted", ["html", "json", "csv"])
def test_the_edges_of_the_range_are_answered(admin_client, sessions, query, wanted):
    assert admin_client.get(PAGE, {**query, "format": wanted}).status_code == 200


@pytest.mark.parametrize(("name", "value"), OUT_OF_RANGE)
def test_the_command_refuses_a_date_out_of_range(sessions, name, value):
    with pytest.raises(CommandError, match=f"--{name}: .*(is before 1000-01-01|is out of range in UTC)"):
        call_command("empty_sessions", f"--{name}={value}", stdout=io.StringIO())


def test_the_python_api_refuses_it_with_a_validation_error(sessions):
    with pytest.raises(ValidationError) as caught:
        empty_session_rates("week", until=dt.date(1, 1, 1))
    assert list(caught.value.message_dict) == ["until"]


# -- trend markers --------------------------------------------------------------------------------


@pytest.mark.parametrize("day", ["0001-01-01", "0999-12-31"])
def test_the_marker_form_refuses_a_moment_before_the_reports_start(admin_client, db, day):
    response = admin_client.post(ADD_MARKER, {"at_0": day, "at_1": "00:00:00", "label": "too early"})
    assert response.status_code == 200
    [error] = response.context["adminform"].form.errors["at"]
    assert error == "Give a moment from 1000-01-01 on (UTC): the reports start there."
    assert not TrendMarker.objects.exists()


@pytest.mark.parametrize(("day", "time"), [("1000-01-01", "00:00:00"), ("9999-12-31", "23:59:59")])
def test_the_marker_form_takes_the_edges(admin_client, db, day, time):
    response = admin_client.post(ADD_MARKER, {"at_0": day, "at_1": time, "label": "edge"})
    assert response.status_code == 302
    assert TrendMarker.objects.get().at == dt.datetime.fromisoformat(f"{day}T{time}+00:00")


@pytest.mark.parametrize(
    "at",
    [
        dt.datetime(1, 1, 1, tzinfo=dt.UTC),
        dt.datetime(999, 12, 31, 23, tzinfo=dt.UTC),
        dt.datetime(9999, 12, 31, 23, 59, tzinfo=dt.UTC),
    ],
)
@pytest.mark.parametrize("wanted", ["html", "json", "csv"])
def test_a_marker_stored_by_another_writer_never_breaks_the_page(admin_client, sessions, at, wanted):
    TrendMarker.objects.create(at=at, label="stored out of range")  # create() skips the validators
    TrendMarker.objects.create(at=dt.datetime(2026, 1, 5, 12, tzinfo=dt.UTC), label="real")
    response = admin_client.get(PAGE, {"format": wanted})
    assert response.status_code == 200
    if wanted == "json":
        labels = [marker["label"] for marker in json.loads(response.content)["markers"]]
        assert "real" in labels
        assert ("stored out of range" in labels) is (at.year == 9999)  # the early ones are left out


def test_the_marker_list_still_shows_a_stored_early_marker_to_correct_it(admin_client, db):
    TrendMarker.objects.create(at=dt.datetime(1, 1, 1, tzinfo=dt.UTC), label="stored out of range")
    response = admin_client.get(reverse("admin:sessions_app_trendmarker_changelist"))
    assert [marker.label for marker in response.context["cl"].result_list] == ["stored out of range"]


# -- the rollup -----------------------------------------------------------------------------------


@pytest.mark.parametrize("option", ["--until", "--since"])
@pytest.mark.parametrize("value", ["0001-01-01", "0999-12-31"])
def test_build_rollup_refuses_a_day_before_the_reports_start(admin_client, sessions, option, value):
    with pytest.raises(CommandError, match=f"{option}: {value} is before 1000-01-01"):
        call_command("build_rollup", option, value, stdout=io.StringIO())
    assert not SessionRollupState.objects.exists() and not SessionDay.objects.exists()
    assert admin_client.get(PAGE).status_code == 200


def test_build_rollup_takes_the_first_day(sessions):
    assert build_rollup(until=dt.date(1000, 1, 1)).watermark == dt.date(1000, 1, 1)


@pytest.mark.parametrize("watermark", [None, dt.date(1, 1, 1), dt.date(999, 12, 31), dt.date(9999, 12, 31)])
@pytest.mark.parametrize("wanted", ["html", "json", "csv"])
def test_a_watermark_no_build_leaves_is_read_as_no_rollup(admin_client, sessions, watermark, wanted):
    SessionRollupState.objects.create(pk=1, watermark=watermark)  # another writer, or a clock that was wrong
    assert rollup_status() is None
    response = admin_client.get(PAGE, {"format": wanted, "since": "2026-01-01", "until": "2026-02-01"})
    assert response.status_code == 200
    if wanted == "json":
        assert json.loads(response.content)["total"]["sessions"] == 2  # read live: both sessions


FULL_WIDTH_YEAR = "\uff19\uff19\uff19\uff19-12-31"
HOSTILE_VALUES = ["", " ", "x" * 10_000, FULL_WIDTH_YEAR, "2026-02-30", "-1", "9" * 40, "2026-01-01T25:00", "<b>"]


@pytest.mark.parametrize("name", ["since", "until", "source", "profile", "bucket", "sort", "format", "table", "model"])
@pytest.mark.parametrize("value", HOSTILE_VALUES)
def test_no_query_value_of_the_page_is_a_server_error(admin_client, sessions, name, value):
    for wanted in ("html", "json", "csv"):
        query = {name: value} if name == "format" else {name: value, "format": wanted}
        response = admin_client.get(PAGE, query)
        assert response.status_code in (200, 400), (wanted, response.status_code)
