"""The analytics page on a ``load_demo`` database tells the demo's story: since the cut-over
marker no session is empty, before it every model left some; per model, before + since is all
time; the abandoned-agent tally began at the cut-over, so "before" has no abandoned rate; the
model filter gives the command's numbers; the command prints every model name whole.

Expected numbers come from the demo's own rows (plain ORM), never from the page's code.
"""

import io
import json

import pytest
from django.core.management import call_command
from django.db.models import Count, Q

from agents_app import demo
from agents_app.demo.load import CUTOVER_LABEL
from sessions_app.models import Session, TrendMarker

RATES_URL = "/admin/sessions_app/session/empty-rates/"
SMALL = {"days": 30, "cutover_days_ago": 12, "sessions_per_day": 12}


@pytest.fixture
def story(db):
    return demo.load_demo(seed=11, **SMALL)


def command(*args) -> str:
    out = io.StringIO()
    call_command("empty_sessions", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def split_from_rows(cutover) -> dict:
    """``{model key: ((before sessions, empty), (since sessions, empty))}`` from the rows."""
    before, since = Q(started_at__lt=cutover), Q(started_at__gte=cutover)
    rows = Session.objects.values("model__name").annotate(
        b=Count("pk", filter=before),
        be=Count("pk", filter=before & Q(has_messages=False)),
        s=Count("pk", filter=since),
        se=Count("pk", filter=since & Q(has_messages=False)),
    )
    return {row["model__name"] or "(none)": ((row["b"], row["be"]), (row["s"], row["se"])) for row in rows}


def test_per_model_before_and_since_add_up_and_tell_the_story(admin_client, story):
    data = json.loads(admin_client.get(RATES_URL, {"format": "json"}).content)
    marker = TrendMarker.objects.get()
    assert data["split"]["marker"]["label"] == CUTOVER_LABEL == marker.label
    want = split_from_rows(marker.at)
    assert {row["key"] for row in data["rows"]} == set(want)
    for row in data["rows"]:
        before, since = row["before"], row["since"]
        assert (before["sessions"], before["empty"]) == want[row["key"]][0]
        assert (since["sessions"], since["empty"]) == want[row["key"]][1]
        assert before["sessions"] + since["sessions"] == row["sessions"]  # they add up to all time
        assert before["empty"] + since["empty"] == row["empty"]
        assert before["rate"] > 0 and since["rate"] == 0  # every model wasted before; none since
        # The tally began at the cut-over: before it, abandoned agents were not measured.
        assert before["abandoned"] is None and before["abandoned_rate"] is None
        assert since["abandoned_rate"] is not None
    split = data["split"]
    assert split["before"]["sessions"] + split["since"]["sessions"] == data["total"]["sessions"]
    assert split["since"]["empty"] == 0 and split["before"]["empty"] == data["total"]["empty"]
    assert split["before"]["abandoned_rate"] is None and split["since"]["abandoned_rate"] > 0
    # The page itself: since first, before beside it, "not tracked" for the abandoned rate before.
    page = admin_client.get(RATES_URL).content.decode()
    assert f"Since “{CUTOVER_LABEL}”" in page and "not tracked" in page


def test_the_model_filter_gives_the_commands_numbers(admin_client, story):
    for model in demo.MODELS:
        name = model[0]
        data = json.loads(admin_client.get(RATES_URL, {"format": "json", "model": name}).content)
        assert data["filters"]["model"] == name
        expected = json.loads(command("--model", name, "--format", "json"))
        rows = [{k: v for k, v in row.items() if k not in ("before", "since")} for row in data["rows"]]
        assert {key: data[key] for key in ("by", "filters", "total")} == {
            key: expected[key] for key in ("by", "filters", "total")
        }
        assert rows == expected["rows"]
        assert data["total"]["sessions"] == Session.objects.filter(model__name=name).count()
    html = admin_client.get(RATES_URL, {"model": demo.MODELS[0][0]})
    assert html.status_code == 200 and html.context["form"].cleaned_data["model"] == demo.MODELS[0][0]


def test_the_command_prints_the_longest_model_name_whole(story):
    longest = max((model[0] for model in demo.MODELS), key=len)
    for args in ((), ("--include-abandoned",), ("--breakdown", "cause")):
        out = command(*args)
        assert any(line.startswith(longest + " ") for line in out.splitlines()), args
        assert "\u2026" not in out


def test_the_worst_model_is_always_drawn(admin_client, story):
    response = admin_client.get(RATES_URL)
    report = response.context["report"]
    worst = max((row for row in report.rows if row.sessions >= 30), key=lambda row: row.rate)
    drawn = [column["name"] for column in response.context["trend_models"]]
    assert worst.key in drawn and response.context["worst_line"] == worst.key
