"""``manage.py empty_sessions`` and the renderers it shares with the admin (``sessions_app.reporting``)."""

import csv
import datetime as dt
import io
import json
import os
import subprocess
import sys
import unicodedata
from pathlib import Path
from urllib.parse import quote

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from sessions_app import reporting
from sessions_app.analytics import EmptySessionReport, RateRow
from sessions_app.models import Message, Session
from tests.sessions_app.test_analytics import GPT, OPUS, SPECS, Spec, build, checked, expected, utc, wilson

ROOT = Path(__file__).resolve().parents[2]


def run(*args) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("empty_sessions", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def expected_json(specs, by, **filters) -> dict:
    numbers = expected(specs, by)
    rows = [
        {"key": key, "sessions": sessions, "empty": empty, "rate": empty / sessions}
        for key, (sessions, empty) in sorted(numbers.items())
    ]
    total_sessions, total_empty = len(specs), sum(spec.messages == 0 for spec in specs)
    return {
        "by": by,
        "filters": {"since": None, "until": None, "model": None, "source": None, "profile": None, **filters},
        "total": {
            "sessions": total_sessions,
            "empty": total_empty,
            "rate": total_empty / total_sessions if total_sessions else 0.0,
        },
        "rows": rows,
    }


@pytest.fixture
def history(db, legacy_session):
    build(SPECS, legacy_session)
    return SPECS


# --- JSON -------------------------------------------------------------------------------------


@pytest.mark.parametrize("by", ["model", "source", "day", "week", "month"])
def test_json_for_every_grouping(history, by):
    out, err = run("--by", by, "--format", "json")
    assert checked(json.loads(out)) == expected_json(history, by)
    assert out.count("\n") == 1 and err == ""


def test_json_with_every_filter(history):
    out, _ = run(
        "--format=json",
        "--by=week",
        "--since=2025-12-29",
        "--until=2026-01-05T02:00:00+02:00",
        f"--model={GPT}",
        "--source=cron",
    )
    chosen = [s for s in history if s.model == GPT and s.source == "cron" and s.started_at < utc(2026, 1, 5)]
    assert len(chosen) == 1
    assert checked(json.loads(out)) == expected_json(
        chosen,
        "week",
        since="2025-12-29T00:00:00+00:00",
        until="2026-01-05T00:00:00+00:00",
        model=GPT,
        source="cron",
    )


def test_naive_datetime_on_the_command_line_is_utc(history):
    out, _ = run("--format", "json", "--since", "2026-01-04T23:00", "--until", "2026-01-05")
    data = checked(json.loads(out))
    assert data["filters"]["since"] == "2026-01-04T23:00:00+00:00"
    assert data["total"] == {"sessions": 1, "empty": 0, "rate": 0.0}  # the +02:00 session at 01:00 on the 5th


def test_json_alone_on_stdout_at_high_verbosity(history):
    out, err = run("--format", "json", "--verbosity", "2", "--sort", "rate")
    data = json.loads(out)
    assert [row["key"] for row in data["rows"]] == [OPUS, "(none)", GPT]  # 60%, 50%, 40%
    assert "3 model group(s), 12 session(s), 6 empty (50.0%)" in err


# --- CSV --------------------------------------------------------------------------------------


@pytest.mark.parametrize("by", ["model", "month"])
def test_csv_parses_back_to_the_same_numbers(history, by):
    out, _ = run("--by", by, "--format", "csv")
    assert out.endswith("\r\n") and "\n" not in out.replace("\r\n", "")
    header, *rows, total = list(csv.reader(io.StringIO(out, newline="")))
    assert header == [by, "sessions", "empty", "rate", "rate_low", "rate_high"]
    numbers = expected(history, by)
    assert [row[0] for row in rows] == sorted(numbers)
    for key, sessions, empty, rate, low, high in rows:
        assert (int(sessions), int(empty)) == numbers[key]
        assert float(rate) == numbers[key][1] / numbers[key][0]
        assert (float(low), float(high)) == pytest.approx(wilson(*reversed(numbers[key])), abs=1e-12)
    assert total[:4] == ["TOTAL", "12", "6", "0.5"]


def test_csv_quoting_and_formula_neutralising():
    report = EmptySessionReport(
        "source",
        {},
        [RateRow(key, 2, 1) for key in ["=HYPERLINK(1)", "+1", "-2", "@SUM(A1)", "\tx", 'a,"b"\nc', "plain"]],
        RateRow("TOTAL", 14, 7),
    )
    buffer = io.StringIO()
    reporting.write_csv(report, buffer)
    keys = [row[0] for row in csv.reader(io.StringIO(buffer.getvalue(), newline=""))][1:-1]
    assert keys == ["'=HYPERLINK(1)", "'+1", "'-2", "'@SUM(A1)", "'\tx", 'a,"b"\nc', "plain"]
    assert '\r\n"a,""b""\nc",2,1,0.5,0.094' in buffer.getvalue()  # RFC 4180: quoted, quotes doubled
    raw = [row[0] for row in reporting.csv_rows(report, neutralise_formulas=False)][1:-1]
    assert raw == [row.key for row in report.rows]


# --- table ------------------------------------------------------------------------------------


def test_table_sorted_by_rate_with_total(history):
    out, _ = run()
    # The intervals are Wilson's for 3/5, 1/2, 2/5 and 6/12, evaluated by hand (test_intervals).
    assert out == (
        "model                      sessions  empty   rate  95% interval\n"
        "---------------------------------------------------------------\n"
        "anthropic/claude-opus-4.6         5      3  60.0%    23.1\u201388.2%\n"
        "(none)                            2      1  50.0%     9.5\u201390.5%\n"
        "openai/gpt-5                      5      2  40.0%    11.8\u201376.9%\n"
        "---------------------------------------------------------------\n"
        "TOTAL                            12      6  50.0%    25.4\u201374.6%\n"
    )


def test_periods_are_in_time_order_by_default(history):
    out, _ = run("--by", "month")
    assert [line.split()[0] for line in out.splitlines()[2:5]] == ["2025-12", "2026-01", "2026-02"]
    out, _ = run("--by", "week", "--breakdown", "cause")
    weeks = [line.split()[0] for line in out.splitlines()[2:-2]]
    assert weeks == sorted(weeks) and len(weeks) > 3
    out, _ = run("--by", "day", "--sort", "rate")  # an explicit --sort still wins
    rates = [float(line.split()[3].rstrip("%")) for line in out.splitlines()[2:-2]]
    assert rates == sorted(rates, reverse=True)


def test_include_abandoned_does_not_cut_model_names(history, legacy_session):
    long_name = "openrouter/qwen/qwen3-coder-480b-a35b-instruct:free-" + "x" * 40
    legacy_session(model=long_name)
    out, _ = run("--include-abandoned")
    assert any(line.startswith(long_name + " ") for line in out.splitlines())
    assert "\u2026" not in out


@pytest.mark.parametrize(
    ("sort", "order"),
    [("key", ["(none)", OPUS, GPT]), ("sessions", [OPUS, GPT, "(none)"]), ("rate", [OPUS, "(none)", GPT])],
)
def test_table_sort(history, sort, order):
    out, _ = run("--sort", sort)
    assert [line.split()[0] for line in out.splitlines()[2:5]] == order


def display_width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(char) in "WF" else 1 for char in text)


def test_table_prints_long_names_whole_and_stays_aligned(history, legacy_session):
    """A name is never cut (it can be pasted back into --model): the key column is as wide as the
    longest name, and every line still ends at the same column."""
    long_name = "vendor/" + "very-long-model-name-" * 6
    wide_name = "模型" * 30
    legacy_session(model=long_name)
    legacy_session(model=wide_name)
    out, _ = run()
    lines = out.splitlines()
    assert len({display_width(line) for line in lines}) == 1  # every line ends at the same column
    assert any(line.startswith(long_name + "  ") for line in lines)
    assert any(line.startswith(wide_name + "  ") for line in lines)
    assert "…" not in out
    assert lines[-1].split()[:4] == ["TOTAL", "14", "8", "57.1%"]


def test_partial_first_and_last_periods_are_marked(history):
    """--since on a Tuesday: the first week is cut, and so is the last one by --until."""
    out, _ = run("--by", "week", "--since", "2026-01-06", "--until", "2026-02-03T12:00:00Z")
    lines = out.splitlines()
    rows = [line for line in lines[2:] if line[:4].isdigit()]
    assert rows[0].startswith("2026-01-05 (partial)") and rows[-1].startswith("2026-02-02 (partial)")
    assert all("(partial)" not in line for line in rows[1:-1])
    assert lines[-1].startswith("(partial):")
    out, _ = run("--by", "week", "--since", "2026-01-05", "--until", "2026-02-02")  # whole weeks
    assert "(partial)" not in out


def test_no_sessions_is_said_clearly(db):
    out, _ = run()
    assert out == "No sessions recorded.\n"
    out, _ = run("--model", "nobody/none", "--since", "2026-01-01")
    assert out == "No sessions match (since 2026-01-01T00:00:00+00:00, model 'nobody/none').\n"
    out, _ = run("--format", "json")
    assert checked(json.loads(out)) == expected_json([], "model")
    out, _ = run("--format", "csv", "--by", "day")
    assert out == "day,sessions,empty,rate,rate_low,rate_high\r\nTOTAL,0,0,0.0,0.0,1.0\r\n"


# --- errors and --fail-above ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--by", "year"], "--by: unknown grouping 'year'; choose one of model, source, profile, day, week, month"),
        (["--since", "2026-13-01"], "--since: invalid date '2026-13-01'"),
        (["--until", "yesterday"], "--until: invalid date 'yesterday'"),
        (["--since", "2026-02-01", "--until", "2026-01-01"], "--until: until .* must be after since"),
        (["--since", "2026-01-01", "--until", "2026-01-01"], "must be after since"),
        (["--format", "xml"], "unknown --format 'xml'"),
        (["--sort", "name"], "unknown --sort 'name'"),
        (["--fail-above", "lots"], "--fail-above: invalid rate 'lots'"),
        (["--fail-above", "150%"], "outside 0..1"),
        (["--fail-above", "1.5"], "outside 0..1"),
        (["--database", "nope"], "unknown --database 'nope'"),
        (["--model", ""], "--model: must not be empty"),
    ],
)
def test_bad_input_is_a_command_error_with_status_1(history, django_assert_num_queries, args, message):
    before = (Session.objects.count(), Message.objects.count())
    with django_assert_num_queries(0), pytest.raises(CommandError, match=message) as caught:
        run(*args)
    assert caught.value.returncode == 1
    assert (Session.objects.count(), Message.objects.count()) == before


def test_fail_above_exits_3_after_printing_the_report(history):
    out = io.StringIO()
    with pytest.raises(CommandError, match=r"1 model row\(s\) above .* 55\.0%: anthropic/claude-opus-4\.6") as caught:
        call_command("empty_sessions", "--fail-above", "55%", "--format", "json", stdout=out)
    assert caught.value.returncode == 3
    assert json.loads(out.getvalue())["total"]["empty"] == 6


@pytest.mark.parametrize("limit", ["0.6", "60%", "1", "100%"])
def test_fail_above_passes_at_or_over_the_highest_rate(history, limit):
    out, _ = run("--fail-above", limit)  # highest row rate is exactly 60%: not above
    assert out.splitlines()[-1].split() == ["TOTAL", "12", "6", "50.0%", "25.4\u201374.6%"]


def test_fail_above_looks_at_the_reported_rows_only(history):
    with pytest.raises(CommandError) as caught:
        run("--by", "source", "--fail-above", "0.99")  # "CLI" and "cli " are 100% empty
    assert caught.value.returncode == 3
    run("--by", "source", "--source", "cli", "--fail-above", "0.99")  # filtered to "cli": 2 of 6


# --- real processes: exit statuses ------------------------------------------------------------


def database_url() -> str:
    """DATABASE_URL of the test database this test runs on, for a child ``manage.py``."""
    settings = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{settings['NAME']}"
    scheme = {"postgresql": "postgres", "mysql": "mysql"}[connection.vendor]
    credentials = quote(settings["USER"] or "", safe="")
    if settings["PASSWORD"]:
        credentials += ":" + quote(settings["PASSWORD"], safe="")
    return f"{scheme}://{credentials}@{settings['HOST'] or 'localhost'}:{settings['PORT'] or ''}/{settings['NAME']}"


def manage(*args) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "hermes_site.settings",
        "DJANGO_DEBUG": "1",
        "DATABASE_URL": database_url(),
    }
    return subprocess.run(
        [sys.executable, "manage.py", "empty_sessions", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.django_db(transaction=True)  # the child process must see the rows
def test_exit_statuses_of_a_real_process(legacy_session):
    build([Spec(OPUS, "cli", utc(2026, 1, 1), 0, legacy=True), Spec(OPUS, "cli", utc(2026, 1, 2), 3)], legacy_session)

    ok = manage("--format", "json", "--fail-above", "50%")
    assert ok.returncode == 0, ok.stderr
    assert checked(json.loads(ok.stdout))["rows"] == [{"key": OPUS, "sessions": 2, "empty": 1, "rate": 0.5}]

    above = manage("--format", "json", "--fail-above", "0.25")
    assert above.returncode == 3, above.stderr
    assert json.loads(above.stdout)["total"]["rate"] == 0.5  # the report is still printed, alone on stdout
    assert "above the empty-session rate limit 25.0%" in above.stderr

    bad = manage("--by", "year")
    assert bad.returncode == 1
    assert bad.stdout == ""
    assert "--by: unknown grouping 'year'" in bad.stderr


# --- reporting helpers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("2026-01-05", dt.date(2026, 1, 5)),
        (" 2026-01-05 ", dt.date(2026, 1, 5)),
        ("2026-01-05T10:00:00Z", utc(2026, 1, 5, 10)),
        ("2026-01-05T10:00", utc(2026, 1, 5, 10)),
        ("2026-01-05 10:00:00+02:00", utc(2026, 1, 5, 8)),
    ],
)
def test_parse_date_bound(text, value):
    parsed = reporting.parse_date_bound(text)
    assert parsed == value and type(parsed) is type(value)
    if isinstance(parsed, dt.datetime):
        assert parsed.tzinfo is not None


@pytest.mark.parametrize("text", ["", "2026-1-5", "2026-02-30", "yesterday", "2026-01-05T25:00"])
def test_parse_date_bound_refuses_with_a_clear_message(text):
    with pytest.raises(ValueError, match="expected YYYY-MM-DD or an ISO 8601 datetime"):
        reporting.parse_date_bound(text)


def test_percentages_have_one_decimal():
    assert [reporting.format_percent(r) for r in (0.0, 0.568, 1 / 3, 0.9996, 1.0)] == [
        "0.0%",
        "56.8%",
        "33.3%",
        "100.0%",
        "100.0%",
    ]
