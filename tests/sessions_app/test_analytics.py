"""Empty-session analytics: exact numbers per grouping and filter, one query, index use."""

import datetime as dt
import math
from collections import Counter
from dataclasses import dataclass

import pytest
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from agents_app.agent import Agent
from sessions_app.analytics import GROUPINGS, KEY_GROUPINGS, EmptySessionReport, RateRow, empty_session_rates
from sessions_app.models import Message, Session
from sessions_app.rollup import build_rollup


def wilson(k: int, n: int) -> tuple[float, float]:
    """The Wilson 95% bounds, computed apart from the code under test: the two roots p of
    (k/n - p)^2 = z^2 p (1 - p) / n, a quadratic in p (z = 1.959964)."""
    if n == 0:
        return 0.0, 1.0
    z2, f = 1.959963984540054**2, k / n
    a, b, c = 1 + z2 / n, -(2 * f + z2 / n), f * f
    root = math.sqrt(b * b - 4 * a * c)
    return (-b - root) / (2 * a), (-b + root) / (2 * a)


def checked(data: dict) -> dict:
    """A report's JSON (``as_dict``) with its ``rate_low``/``rate_high`` checked against ``wilson``
    on the total and every row, then removed: the rest compares exactly."""
    for row in [data["total"], *data["rows"]]:
        low, high = row.pop("rate_low"), row.pop("rate_high")
        assert (low, high) == pytest.approx(wilson(row["empty"], row["sessions"]), abs=1e-12)
    return data


OPUS = "anthropic/claude-opus-4.6"
GPT = "openai/gpt-5"
PLUS_TWO = dt.timezone(dt.timedelta(hours=2))


def utc(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Spec:
    """One session of the fixture. ``legacy`` rows are created directly (imported history);
    the others through the real save path (``Agent``). ``counter`` is a legacy row's stored
    ``message_count``, which may disagree with its ``messages`` rows."""

    model: str | None
    source: str
    started_at: dt.datetime
    messages: int
    legacy: bool = False
    counter: int = 0


# Around the 2025/2026 year boundary: ISO week 2026-W01 runs Monday 2025-12-29 .. Sunday 2026-01-04.
SPECS = [
    Spec(OPUS, "cli", utc(2025, 12, 28, 23, 59, 59), 2),  # last second of the week of 2025-12-22
    Spec(OPUS, "cli", utc(2025, 12, 29), 0, legacy=True),
    Spec(OPUS, "telegram", utc(2025, 12, 31, 23, 59, 59, 999999), 0, legacy=True, counter=4),  # counter lies
    Spec(GPT, "telegram", utc(2026, 1, 1), 3),
    Spec(GPT, "cron", dt.datetime(2026, 1, 5, 1, 0, tzinfo=PLUS_TWO), 1),  # 2026-01-04 23:00 UTC
    Spec(GPT, "cron", utc(2026, 1, 5), 0, legacy=True),
    Spec(None, "cli", utc(2026, 1, 5, 12), 0, legacy=True),
    Spec(None, "cli", utc(2026, 1, 6), 2, legacy=True, counter=0),  # messages, counter says none
    Spec(OPUS, "CLI", utc(2026, 2, 1), 0, legacy=True),
    Spec(GPT, "cli", utc(2026, 2, 1, 10), 1),
    Spec(OPUS, "cli", utc(2026, 2, 28, 23, 59, 59), 1),
    Spec(GPT, "cli ", utc(2026, 2, 2), 0, legacy=True),  # MariaDB's default collation would pad it to "cli"
]


def build(specs, legacy_session) -> None:
    for number, spec in enumerate(specs):
        if spec.legacy:
            session = legacy_session(
                model=spec.model, source=spec.source, started_at=spec.started_at, message_count=spec.counter
            )
            for m in range(spec.messages):
                Message.objects.create(session=session, role="user", content=f"legacy {m}")
        else:
            agent = Agent(spec.model, spec.source, session_id=f"agent_{number:03d}")
            agent.started_at = spec.started_at
            for m in range(spec.messages):
                agent.add_message("user", f"message {m}")
            agent.flush()


def bucket(spec: Spec, by: str) -> str:
    """The group a spec belongs to, computed in plain Python from the spec."""
    when = spec.started_at.astimezone(dt.UTC)
    if by == "model":
        return spec.model or "(none)"
    if by == "source":
        return spec.source
    if by == "profile":  # every session of this fixture is written with the default profile
        return "default"
    if by == "day":
        return when.date().isoformat()
    if by == "week":
        return (when.date() - dt.timedelta(days=when.weekday())).isoformat()
    return f"{when.year:04d}-{when.month:02d}"


def expected(specs, by) -> dict[str, tuple[int, int]]:
    sessions = Counter(bucket(spec, by) for spec in specs)
    empty = Counter(bucket(spec, by) for spec in specs if spec.messages == 0)
    return {key: (sessions[key], empty[key]) for key in sessions}


def numbers(report) -> dict[str, tuple[int, int]]:
    return {row.key: (row.sessions, row.empty) for row in report.rows}


@pytest.fixture
def history(db, legacy_session):
    build(SPECS, legacy_session)
    return SPECS


def test_fixture_is_what_it_claims(history):
    assert Session.objects.count() == 12
    assert Session.objects.empty().count() == 6
    assert Session.objects.get(model__isnull=True, started_at=utc(2026, 1, 6)).message_count == 0  # counter wrong
    assert Session.objects.filter(message_count=4).get().messages.count() == 0  # counter wrong the other way


@pytest.mark.parametrize("by", KEY_GROUPINGS)  # "cause" rows are checked in test_causes.py
def test_every_grouping_matches_the_fixture(history, by):
    report = empty_session_rates(by)
    assert numbers(report) == expected(history, by)
    assert [row.key for row in report.rows] == sorted(expected(history, by))
    assert (report.total.key, report.total.sessions, report.total.empty) == ("TOTAL", 12, 6)
    for row in report.rows:
        assert row.rate == row.empty / row.sessions


def test_week_and_month_buckets_across_the_year_boundary(history):
    assert numbers(empty_session_rates("week")) == {
        "2025-12-22": (1, 0),
        "2025-12-29": (4, 2),  # ISO week 2026-W01 starts on Monday 2025-12-29
        "2026-01-05": (3, 2),
        "2026-01-26": (2, 1),
        "2026-02-02": (1, 1),
        "2026-02-23": (1, 0),
    }
    assert numbers(empty_session_rates("month")) == {"2025-12": (3, 2), "2026-01": (5, 2), "2026-02": (4, 2)}
    day = numbers(empty_session_rates("day"))
    assert day["2026-01-04"] == (1, 0)  # 01:00 at +02:00 on the 5th is the 4th in UTC
    assert day["2025-12-31"] == (1, 1)


def test_model_report_equals_the_message_rows_not_the_counters(history):
    """Truth computed from the rows directly: sessions whose id never appears in a message."""
    with_messages = set(Message.objects.values_list("session_id", flat=True))
    truth = Counter()
    for session_id, name in Session.objects.values_list("id", "model__name"):
        truth[name or "(none)"] += session_id not in with_messages
    report = empty_session_rates("model")
    assert {row.key: row.empty for row in report.rows} == dict(truth)
    by_counter = Counter(
        name or "(none)" for name in Session.objects.filter(message_count=0).values_list("model__name", flat=True)
    )
    assert dict(by_counter) != dict(truth)  # the fixture's counters lie; the report does not follow them


def test_report_reads_only_and_changes_nothing(history):
    before = list(Session.objects.order_by("id").values_list("id", "message_count", "model_id", "started_at"))
    with CaptureQueriesContext(connection) as queries:
        empty_session_rates("model")
    assert all(query["sql"].lstrip("( ").upper().startswith("SELECT") for query in queries.captured_queries)
    assert list(Session.objects.order_by("id").values_list("id", "message_count", "model_id", "started_at")) == before


@pytest.mark.parametrize("built", [False, True], ids=["live", "rollup"])
@pytest.mark.parametrize("by", GROUPINGS)
def test_a_few_queries_per_report_whatever_the_data(history, legacy_session, by, built):
    """The rollup's state, its marks and its days, and the live count of the rest: at most four
    queries, whatever the number of sessions, models, sources or days."""
    if built:
        build_rollup(now=utc(2026, 12, 1))
    with CaptureQueriesContext(connection) as few:
        empty_session_rates(by, since=dt.date(2025, 1, 1), model=None, source=None)
    for number in range(30):
        legacy_session(model=f"vendor/model-{number}", source=f"src{number}", started_at=utc(2026, 3, 1 + number % 28))
    if built:
        build_rollup(now=utc(2026, 12, 1))
    with CaptureQueriesContext(connection) as many:
        report = empty_session_rates(by, since=dt.date(2025, 1, 1), model=None, source=None)
    assert report.total.sessions == 42
    assert len(many) == len(few) <= 4


@pytest.mark.parametrize(
    ("kwargs", "selected"),
    [
        # since is inclusive, until exclusive; a date means midnight UTC.
        ({"since": dt.date(2025, 12, 29)}, lambda s: s.started_at >= utc(2025, 12, 29)),
        ({"until": dt.date(2025, 12, 29)}, lambda s: s.started_at < utc(2025, 12, 29)),
        (
            {"since": utc(2025, 12, 31, 23, 59, 59, 999999), "until": dt.datetime(2026, 1, 5, 1, tzinfo=PLUS_TWO)},
            lambda s: utc(2025, 12, 31, 23, 59, 59, 999999) <= s.started_at < utc(2026, 1, 4, 23),
        ),
        ({"model": OPUS}, lambda s: s.model == OPUS),
        ({"source": "cli"}, lambda s: s.source == "cli"),  # exact: "CLI" is another source
        ({"source": "CLI"}, lambda s: s.source == "CLI"),
        ({"source": "cli "}, lambda s: s.source == "cli "),
        (
            {"model": GPT, "source": "cron", "since": dt.date(2026, 1, 5)},
            lambda s: s.model == GPT and s.source == "cron" and s.started_at >= utc(2026, 1, 5),
        ),
        ({"model": "anthropic/CLAUDE-opus-4.6"}, lambda s: False),
        ({"model": OPUS + " "}, lambda s: False),
    ],
)
@pytest.mark.parametrize("by", ["model", "source", "week"])
def test_filters(history, by, kwargs, selected):
    chosen = [spec for spec in history if selected(spec)]
    report = empty_session_rates(by, **kwargs)
    assert numbers(report) == expected(chosen, by)
    assert (report.total.sessions, report.total.empty) == (len(chosen), sum(spec.messages == 0 for spec in chosen))


def test_source_grouping_is_exact(history):
    rows = numbers(empty_session_rates("source"))
    assert (rows["CLI"], rows["cli"], rows["cli "]) == ((1, 1), (6, 2), (1, 1))


def test_empty_database_gives_zero_rates(db):
    report = empty_session_rates("week")
    assert (report.rows, report.total.sessions, report.total.empty, report.total.rate) == ([], 0, 0, 0.0)
    assert checked(report.as_dict()) == {
        "by": "week",
        "filters": {"since": None, "until": None, "model": None, "source": None, "profile": None},
        "total": {"sessions": 0, "empty": 0, "rate": 0.0},
        "rows": [],
    }


def test_report_shape(history):
    report = empty_session_rates("model", since=dt.date(2026, 1, 1), until=dt.datetime(2026, 2, 1, 2, tzinfo=PLUS_TWO))
    data = report.as_dict()
    assert list(data) == ["by", "filters", "total", "rows"]
    assert report["total"] == data["total"] and report["by"] == "model"
    data = checked(data)
    assert data["filters"] == {
        "since": "2026-01-01T00:00:00+00:00",
        "until": "2026-02-01T00:00:00+00:00",
        "model": None,
        "source": None,
        "profile": None,
    }
    assert data["total"] == {"sessions": 5, "empty": 2, "rate": 0.4}
    assert data["rows"] == [
        {"key": "(none)", "sessions": 2, "empty": 1, "rate": 0.5},
        {"key": GPT, "sessions": 3, "empty": 1, "rate": 1 / 3},
    ]
    assert len(report) == 2 and list(report) == report.rows
    row = report.rows[1]
    assert (row["key"], row["sessions"], row["empty"], row["rate"]) == (GPT, 3, 1, 1 / 3)
    with pytest.raises(KeyError):
        row["nope"]


def test_rate_row_without_sessions_has_rate_zero():
    assert RateRow("x", 0, 0).rate == 0.0
    assert checked({"total": RateRow("x", 4, 1).as_dict(), "rows": []})["total"] == {
        "key": "x",
        "sessions": 4,
        "empty": 1,
        "rate": 0.25,
    }
    assert isinstance(EmptySessionReport("model", {}, [], RateRow("TOTAL", 0, 0)).as_dict()["filters"], dict)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"by": "year"}, "unknown grouping 'year'"),
        ({"by": None}, "unknown grouping None"),
        ({"since": dt.date(2026, 2, 1), "until": dt.date(2026, 1, 1)}, "must be after since"),
        ({"since": dt.date(2026, 1, 1), "until": utc(2026, 1, 1)}, "must be after since"),
        ({"since": dt.datetime(2026, 1, 1)}, "naive datetime"),
        ({"until": "2026-01-01"}, "must be a date or a datetime, got str"),
        ({"since": 1767225600}, "must be a date or a datetime, got int"),
        ({"model": ""}, "must not be empty"),
        ({"source": 5}, "must be a string, got int"),
    ],
)
def test_bad_arguments_raise_validation_error(db, django_assert_num_queries, kwargs, message):
    with django_assert_num_queries(0), pytest.raises(ValidationError, match=message):
        empty_session_rates(**kwargs)


def _plan(sql: str, vendor: str) -> str:
    with connection.cursor() as cursor:
        if vendor == "sqlite":
            cursor.execute("EXPLAIN QUERY PLAN " + sql)
            return "\n".join(str(row[-1]) for row in cursor.fetchall())
        # VACUUM (outside a transaction) sets the visibility map that index-only scans rely on.
        cursor.execute("VACUUM ANALYZE sessions_app_session, sessions_app_message, agents_app_languagemodel")
        with transaction.atomic():
            # Tiny tables are cheapest to read whole; forbid that to see which index can answer.
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute("SET LOCAL enable_bitmapscan = off")
            cursor.execute("EXPLAIN " + sql)
            return "\n".join(row[0] for row in cursor.fetchall())


@pytest.mark.django_db(transaction=True)  # PostgreSQL's VACUUM cannot run in the test's transaction
@pytest.mark.parametrize(
    ("by", "kwargs", "index"),
    [
        ("model", {}, "session_model_started_flag"),
        ("model", {"model": OPUS}, "session_model_started_flag"),
        ("source", {}, "session_source_started_flag"),
        ("source", {"source": "cli"}, "session_source_started_flag"),
    ],
)
def test_per_model_and_source_reports_are_answered_from_indexes(history, vendor, by, kwargs, index):
    if vendor not in ("sqlite", "postgresql"):
        pytest.skip(f"the EXPLAIN output checked here is SQLite's and PostgreSQL's, not {vendor}'s")
    with CaptureQueriesContext(connection) as queries:
        empty_session_rates(by, **kwargs)
    plan = _plan(queries.captured_queries[-1]["sql"], vendor)  # the live count (no rollup built here)
    # Emptiness comes from the flag in the same index: the message table is not read at all.
    assert "message" not in plan.replace("has_messages", ""), plan
    if vendor == "sqlite":
        assert f"USING COVERING INDEX {index}" in plan, plan
    else:
        assert f"Index Only Scan using {index}" in plan, plan


MINUS_FIVE = dt.timezone(dt.timedelta(hours=-5))
LAST_INSTANT = (23, 59, 59, 999999)

# (started_at, expected day, week, month keys), written out by hand from a calendar: UTC buckets,
# weeks keyed by their Monday (ISO weeks), the last microsecond of a bucket still inside it.
BUCKET_EDGES = [
    (utc(2026, 1, 4, *LAST_INSTANT), "2026-01-04", "2025-12-29", "2026-01"),  # a Sunday's last instant
    (utc(2026, 1, 5), "2026-01-05", "2026-01-05", "2026-01"),  # the Monday after it
    (utc(2025, 12, 31, *LAST_INSTANT), "2025-12-31", "2025-12-29", "2025-12"),  # ISO 2026-W01, in 2025
    (utc(2027, 1, 1), "2027-01-01", "2026-12-28", "2027-01"),  # a Friday: its week began in 2026
    (utc(2027, 1, 3, *LAST_INSTANT), "2027-01-03", "2026-12-28", "2027-01"),  # ISO 2026-W53's Sunday
    (utc(2026, 2, 28, *LAST_INSTANT), "2026-02-28", "2026-02-23", "2026-02"),  # month boundary
    (utc(2026, 3, 1), "2026-03-01", "2026-02-23", "2026-03"),
    (utc(2028, 2, 29, *LAST_INSTANT), "2028-02-29", "2028-02-28", "2028-02"),  # leap day
    (dt.datetime(2026, 3, 2, 1, 0, tzinfo=PLUS_TWO), "2026-03-01", "2026-02-23", "2026-03"),  # Sunday in UTC
    (dt.datetime(2026, 3, 31, 20, 0, tzinfo=MINUS_FIVE), "2026-04-01", "2026-03-30", "2026-04"),  # next UTC day
]


@pytest.mark.parametrize(("by", "column"), [("day", 1), ("week", 2), ("month", 3)])
def test_period_buckets_at_their_edges(db, legacy_session, by, column):
    for number, edge in enumerate(BUCKET_EDGES):
        session = legacy_session(started_at=edge[0])
        if number % 2:  # every other session has a message, so the empty counts are checked too
            Message.objects.create(session=session, role="user", content="hello")
    sessions = Counter(edge[column] for edge in BUCKET_EDGES)
    empty = Counter(edge[column] for number, edge in enumerate(BUCKET_EDGES) if number % 2 == 0)
    report = empty_session_rates(by)
    assert numbers(report) == {key: (sessions[key], empty[key]) for key in sessions}
    assert [row.key for row in report.rows] == sorted(sessions)


@pytest.mark.parametrize("by", ["day", "week", "month"])
def test_period_buckets_are_plain_sql_on_sqlite(history, vendor, by):
    """Django's Trunc calls a Python function per row on SQLite; the report must not."""
    if vendor != "sqlite":
        pytest.skip("SQLite only")
    with CaptureQueriesContext(connection) as queries:
        empty_session_rates(by)
    assert all("django_datetime_trunc" not in query["sql"] for query in queries.captured_queries)
