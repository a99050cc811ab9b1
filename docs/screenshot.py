"""Screenshots of the admin in headless Chromium, against a running server (e.g. on a demo database).

    DJANGO_DEBUG=1 .venv/bin/python manage.py load_demo --flush --no-input   # prints a login
    DJANGO_DEBUG=1 .venv/bin/python manage.py runserver 8771 &
    .venv/bin/python docs/screenshot.py http://127.0.0.1:8771 demo-admin PASSWORD

writes ``docs/analytics-page.png`` (the README's picture: the analytics page, light, 1366 px wide).
With ``--all DIR``, also every admin page the operators use, light and dark, 1366 and 420 px wide,
into DIR. Needs Playwright (requirements-dev.txt) and Chromium (``apt-get install chromium``, or
set HERMES_CHROMIUM).
"""

import argparse
import os
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

CHROMIUM = os.environ.get("HERMES_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
README_PICTURE = Path(__file__).resolve().parent / "analytics-page.png"
PAGES = {
    "index": "/admin/",
    "analytics": "/admin/sessions_app/session/empty-rates/",
    "analytics-weekly": "/admin/sessions_app/session/empty-rates/?bucket=week",
    "sessions": "/admin/sessions_app/session/",
    "sessions-empty": "/admin/sessions_app/session/?empty=yes",
    "messages": "/admin/sessions_app/message/",
    "models": "/admin/agents_app/languagemodel/",
    "tally": "/admin/agents_app/abandonedagenttally/",
    "markers": "/admin/sessions_app/trendmarker/",
    "marker-add": "/admin/sessions_app/trendmarker/add/",
}
# Detail pages are found by following the first link of a list.
DETAILS = {
    "session": ("/admin/sessions_app/session/", "#result_list tbody tr th a"),
    "session-empty": ("/admin/sessions_app/session/?empty=yes", "#result_list tbody tr th a"),
    "message": ("/admin/sessions_app/message/", "#result_list tbody tr th a"),
    "tally-row": ("/admin/agents_app/abandonedagenttally/", "#result_list tbody tr th a"),
    "marker": ("/admin/sessions_app/trendmarker/", "#result_list tbody tr th a"),
}
WIDTHS = {"1366": 1366, "420": 420}


def log_in(page, base: str, username: str, password: str) -> None:
    page.goto(f"{base}/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    page.wait_for_url(f"{base}/admin/")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", help="the server, e.g. http://127.0.0.1:8771")
    parser.add_argument("username")
    parser.add_argument("password")
    parser.add_argument("--all", metavar="DIR", type=Path, help="also every admin page, light/dark, 1366/420 px")
    options = parser.parse_args()
    base = options.base.rstrip("/")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = browser.new_context(color_scheme="light", viewport={"width": 1366, "height": 900})
        page = context.new_page()
        log_in(page, base, options.username, options.password)
        page.goto(base + PAGES["analytics"])
        # The top of the page (the comparison, the per-model table and the trend) tells the story.
        page.screenshot(path=str(README_PICTURE), full_page=False, clip=_story_clip(page))
        print(f"wrote {README_PICTURE}")
        if options.all:
            options.all.mkdir(parents=True, exist_ok=True)
            urls = dict(PAGES)
            for name, (list_url, selector) in DETAILS.items():
                page.goto(base + list_url)
                link = page.locator(selector).first
                if link.count():
                    urls[name] = link.get_attribute("href")
            cookies = context.cookies()
            for scheme in ("light", "dark"):
                for width_name, width in WIDTHS.items():
                    shot = browser.new_context(color_scheme=scheme, viewport={"width": width, "height": 900})
                    shot.add_cookies(cookies)
                    tab = shot.new_page()
                    for name, url in urls.items():
                        tab.goto(base + url)
                        path = options.all / f"{name}-{scheme}-{width_name}.png"
                        tab.screenshot(path=str(path), full_page=True)
                    shot.close()
            print(f"wrote {len(urls) * 4} screenshots into {options.all}")
        browser.close()
    return 0


def _story_clip(page) -> dict:
    """From the top of the page to the end of the trend chart's figure, at most 2400 px tall."""
    bottom = page.evaluate(
        "() => { const f = document.querySelector('#trend figure') || document.body;"
        " const r = f.getBoundingClientRect(); return r.bottom + window.scrollY + 8; }"
    )
    page.set_viewport_size({"width": 1366, "height": int(min(bottom, 2400))})
    return {"x": 0, "y": 0, "width": 1366, "height": min(bottom, 2400)}


if __name__ == "__main__":
    sys.exit(main())
