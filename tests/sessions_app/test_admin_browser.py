"""End to end in a real browser: headless Chromium (Debian's ``chromium``) driven by Playwright
against pytest-django's ``live_server``. Skips where Playwright or Chromium is missing, and fails
instead under HERMES_STRICT=1 (CI installs both).

Screenshots go to ``test-artifacts/`` (git-ignored), kept as CI artefacts.
"""

import contextlib
import datetime as dt
import os
import re
from pathlib import Path

import pytest
from django.conf import settings
from pytest_django.live_server_helper import LiveServer

from agents_app.services import record_abandoned_agent
from sessions_app.admin.listing import session_change_url
from sessions_app.models import Session, TrendMarker
from tests.conftest import skip_or_fail
from tests.sessions_app.test_admin import FORMULA, GPT, OPUS, XSS, build_world, speak

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("HERMES_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
ARTIFACTS = Path(settings.BASE_DIR) / "test-artifacts"


@contextlib.contextmanager
def chromium():
    """A Playwright browser on the system's Chromium. Started only after the test's data is
    written: Playwright's sync API runs an event loop, inside which Django refuses ORM calls."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        skip_or_fail("Playwright for Python is not installed (pip install playwright==1.65.2)")
    if not Path(CHROMIUM).is_file():
        skip_or_fail(f"no Chromium at {CHROMIUM} (apt-get install chromium, or set HERMES_CHROMIUM)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def http_live_server(transactional_db, settings):
    """pytest-django's live server, speaking plain HTTP (no HTTPS redirect, cookies without TLS).

    Started here rather than through the session-wide ``live_server`` fixture because
    SecurityMiddleware reads SECURE_SSL_REDIRECT once, when the server starts: the settings
    must be overridden first.
    """
    settings.SECURE_SSL_REDIRECT = False
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False
    settings.ALLOWED_HOSTS = ["localhost"]
    server = LiveServer("localhost")
    yield server
    server.stop()


def test_operator_logs_in_and_reads_the_empty_rates(http_live_server, legacy_session, django_user_model):
    build_world(legacy_session)
    first_day = Session.objects.earliest("started_at").started_at.date()
    for _ in range(3):  # agents that ended without a message on the first day: the tally covers it all
        record_abandoned_agent(GPT, "cli", "timeout", day=first_day)
    django_user_model.objects.create_superuser("operator", password="a long test password")
    base = http_live_server.url
    ARTIFACTS.mkdir(exist_ok=True)

    with chromium() as browser:
        for scheme in ("light", "dark"):
            context = browser.new_context(color_scheme=scheme, viewport={"width": 1280, "height": 900})
            page = context.new_page()
            requested = []
            page.on("request", lambda request, requested=requested: requested.append(request.url))

            page.goto(f"{base}/admin/")
            page.fill("#id_username", "operator")
            page.fill("#id_password", "a long test password")
            page.click("input[type=submit]")
            page.click("#hermes-analytics a")  # the index's link to the page
            page.wait_for_url(re.compile(r"/admin/sessions_app/session/empty-rates/$"))

            assert page.inner_text(".rates-big") == "66.7%"  # 8 of 12 sessions are empty
            rows = page.locator("table.per-model tbody tr")
            table = {}
            for i in range(rows.count()):
                cells = rows.nth(i).locator("th, td").all_inner_texts()
                table[cells[0]] = tuple(cells[1:4])
            assert table == {
                GPT: ("5", "2", "40.0%"),
                OPUS: ("4", "3", "75.0%"),
                "(none)": ("1", "1", "100.0%"),
                XSS: ("1", "1", "100.0%"),  # shown as text, not run
                FORMULA: ("1", "1", "100.0%"),
            }
            assert page.evaluate("window.__xss === undefined && !document.querySelector('body script[src=x]')")

            chart = page.locator("svg.trend-chart")
            assert chart.get_attribute("role") == "img"
            box = chart.bounding_box()
            assert box["width"] > 400 and box["height"] > 100
            # The total line, the abandoned-agent line and one line per model (five here) were laid out.
            widths = page.eval_on_selector_all("svg.trend-chart path.series", "ps => ps.map(p => p.getBBox().width)")
            assert len(widths) == 7 and widths[0] > 0
            assert page.locator("svg.trend-chart circle.marker.abandoned").count() >= 1
            abandoned = page.locator("#abandoned tbody tr").first.locator("th, td").all_inner_texts()
            assert abandoned[:4] == [GPT, "8", "3", "37.5%"]  # 3 abandoned of 3 + 5 GPT sessions
            stroke = page.eval_on_selector("svg.trend-chart path.total", "p => getComputedStyle(p).stroke")
            assert stroke == ("rgb(51, 51, 51)" if scheme == "light" else "rgb(238, 238, 238)")  # --body-fg

            page.screenshot(path=str(ARTIFACTS / f"empty-rates-{scheme}.png"), full_page=True)
            assert all(url.startswith(base) for url in requested), "no request may leave the site"
            context.close()


def log_in(page, base: str) -> None:
    page.goto(f"{base}/admin/")
    page.fill("#id_username", "operator")
    page.fill("#id_password", "a long test password")
    page.click("input[type=submit]")
    page.wait_for_url(f"{base}/admin/")


def test_markers_partial_bucket_and_read_only_records(http_live_server, legacy_session, django_user_model):
    """The story at a glance, in light and dark, on a laptop (1366 px) and a phone (420 px): the
    marker drawn and listed, today's bucket hollow and dashed, tables scrolling inside their box,
    and sessions shown read-only."""
    now = dt.datetime.now(dt.UTC)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    for age in range(1, 8):
        legacy_session(OPUS, started_at=today - dt.timedelta(days=age, hours=-1))
        speak(GPT, today - dt.timedelta(days=age, hours=-2), messages=2)
    legacy_session(GPT, started_at=now - dt.timedelta(seconds=30))  # today: partial
    full = speak("openrouter/qwen/qwen3-coder-480b-a35b-instruct:free", today - dt.timedelta(days=3), messages=3)
    for age in range(8):  # tally rows with the longest model name, and a long message to wrap
        record_abandoned_agent("openrouter/qwen/qwen3-coder-480b-a35b-instruct:free", "api_server", "never_dispatched",
                               day=(today - dt.timedelta(days=age)).date())  # fmt: skip
    speak(GPT, today - dt.timedelta(days=2), messages=1)
    TrendMarker.objects.create(at=today - dt.timedelta(days=4), label="lazy session creation on", note="deploy 42")
    django_user_model.objects.create_superuser("operator", password="a long test password")
    base = http_live_server.url
    session_url = base + session_change_url(full)
    ARTIFACTS.mkdir(exist_ok=True)

    with chromium() as browser:
        for scheme in ("light", "dark"):
            for width in (1366, 420):
                context = browser.new_context(color_scheme=scheme, viewport={"width": width, "height": 900})
                page = context.new_page()
                log_in(page, base)
                page.goto(f"{base}/admin/sessions_app/session/empty-rates/?bucket=day")

                # The marker: a labelled vertical line on the chart, and listed under it.
                assert page.locator("svg.trend-chart g.event line.event-line").count() == 1
                assert page.text_content("svg.trend-chart text.event-label") == "lazy session creation on"
                assert "deploy 42" in page.inner_text(".marker-list")
                # Today's bucket: a hollow point on a dashed segment, and said to be partial.
                hollow = page.eval_on_selector(
                    "svg.trend-chart circle.marker.total.partial", "c => getComputedStyle(c).fill"
                )
                background = page.evaluate("getComputedStyle(document.body).backgroundColor")
                assert hollow == background
                dashed = page.eval_on_selector(
                    "svg.trend-chart path.series.partial.total", "p => getComputedStyle(p).strokeDasharray"
                )
                assert dashed not in ("none", "")
                assert "partial" in page.text_content("svg.trend-chart text.partial-label")
                # Since the marker first, before it beside.
                assert "lazy session creation on" in page.inner_text(".rates-headline")
                # The trend numbers scroll inside their box; the page itself never scrolls sideways.
                page.click("details.trend-numbers summary")
                assert page.evaluate("document.documentElement.scrollWidth") <= width
                # On a phone the chart scrolls, and opens at its latest buckets (its right end).
                scroller = page.locator(".chart-scroll")
                visible = scroller.bounding_box()
                latest = page.locator("svg.trend-chart text.partial-label").bounding_box()
                assert (
                    visible["x"] - 1 <= latest["x"]
                    and latest["x"] + latest["width"] <= visible["x"] + visible["width"] + 1
                )
                if width == 420:
                    assert scroller.evaluate("s => s.scrollWidth > s.clientWidth")  # the chart does scroll there
                    wrap = page.locator(".trend-table-wrap")
                    assert wrap.evaluate("w => w.scrollWidth > w.clientWidth")
                    # Chart text stays legible: at least 10 px on screen.
                    size = page.eval_on_selector(
                        "svg.trend-chart text.axis-label", "t => t.getBoundingClientRect().height"
                    )
                    assert size >= 10
                page.screenshot(path=str(ARTIFACTS / f"analytics-{scheme}-{width}.png"), full_page=True)

                # A session is a record: shown read-only, with the model by name.
                page.goto(session_url)
                assert page.locator("input[name=_save]").count() == 0
                assert page.locator("a.closelink").count() == 1
                assert "openrouter/qwen/qwen3-coder-480b-a35b-instruct:free" in page.inner_text("#content")
                assert page.evaluate("document.documentElement.scrollWidth") <= width
                page.screenshot(path=str(ARTIFACTS / f"session-{scheme}-{width}.png"), full_page=True)
                page.goto(f"{base}/admin/sessions_app/session/")
                assert page.locator(".object-tools a.addlink").count() == 0  # no "Add session"
                if width == 1366:
                    # The list fits beside the sidebar and the filters: no sideways scrolling.
                    results = page.locator(".results")
                    assert results.evaluate("r => r.scrollWidth <= r.clientWidth + 1")
                page.screenshot(path=str(ARTIFACTS / f"sessions-{scheme}-{width}.png"), full_page=True)
                if width == 1366:
                    # The message, tally and model lists fit beside the sidebar and their filters too.
                    for url in (
                        "/admin/sessions_app/message/",
                        "/admin/agents_app/abandonedagenttally/",
                        "/admin/agents_app/languagemodel/",
                    ):
                        page.goto(base + url)
                        results = page.locator(".results")
                        assert results.evaluate("r => r.scrollWidth <= r.clientWidth + 1"), url
                        assert page.evaluate("document.documentElement.scrollWidth") <= width, url
                context.close()
