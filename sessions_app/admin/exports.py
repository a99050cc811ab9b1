"""The analytics page as JSON and CSV: everything the page shows, in the command's shapes.

JSON is ``manage.py empty_sessions --format json``'s document (``by``, ``filters``, ``total``,
``rows``; same keys, same numbers) with more keys beside them: ``abandoned`` (the
``--include-abandoned`` report), ``causes``, ``trend``, ``comparison``, ``markers`` and
``min_sample``. CSV is one table per file: ``?table=models`` (the default, the command's CSV),
``abandoned``, ``causes``, ``trend`` or ``comparison``.
"""

import csv
import json

from sessions_app import reporting
from sessions_app.admin.page_data import PageData
from sessions_app.analytics import MIN_SAMPLE

CSV_TABLES = ("models", "abandoned", "causes", "trend", "comparison")


def page_json(data: PageData, sort: str | None) -> str:
    report = reporting.sorted_report(data.report, sort) if sort else data.report
    document = report.as_dict()
    abandoned = reporting.sorted_report(data.abandoned, sort) if sort and data.abandoned else data.abandoned
    document["abandoned"] = abandoned.as_dict() if abandoned else None  # None: one profile (no tally)
    document["causes"] = {
        "total": data.breakdown.total,
        "rows": {row.key: data.breakdown.causes[row.key] for row in data.breakdown.rows},
    }
    document["trend"] = {
        "by": data.bucket,
        "partial": data.partial,
        "models": [name for name, _, _ in data.lines],
        "rows": [row.as_dict() for row in data.trend],
    }
    document["comparison"] = data.comparison.as_dict()
    document["markers"] = [
        {"at": marker.at.isoformat(), "label": marker.label, "note": marker.note} for marker in data.markers
    ]
    document["min_sample"] = MIN_SAMPLE
    return json.dumps(document, ensure_ascii=False)


def write_page_csv(data: PageData, table: str, sort: str | None, file) -> None:
    """One of the page's tables as RFC 4180 CSV (model names neutralised against formulas)."""
    writer = csv.writer(file, lineterminator="\r\n")
    if table == "models":
        reporting.write_csv(reporting.sorted_report(data.report, sort) if sort else data.report, file)
    elif table == "abandoned" and data.abandoned is None:
        writer.writerow(["the abandoned-agent tally has no profile: choose all profiles"])
    elif table == "abandoned":
        reporting.write_abandoned_csv(reporting.sorted_report(data.abandoned, sort) if sort else data.abandoned, file)
    elif table == "causes":
        reporting.write_breakdown_csv(data.breakdown, file)
    elif table == "trend":
        names = [name for name, _, _ in data.lines]
        header = [*_TREND_COLUMNS, *(reporting.neutralised(f"{name} {part}") for name in names for part in _PARTS)]
        writer.writerow([data.bucket, *header])
        for row in data.trend:
            values = row.as_dict()
            models = [values["models"][name][part] for name in names for part in _PARTS]
            writer.writerow([row.key, *(_cell(values[column]) for column in _TREND_COLUMNS), *map(_cell, models)])
    else:
        writer.writerow(["period", "since", "until", *_WINDOW_COLUMNS])
        comparison = data.comparison.as_dict()
        for name in ("before", "now"):
            window = comparison[name]
            writer.writerow([name, *(_cell(window[column]) for column in ("since", "until", *_WINDOW_COLUMNS))])


_PARTS = ("sessions", "empty", "rate")
_WINDOW_COLUMNS = (
    "sessions",
    "empty",
    "rate",
    "rate_low",
    "rate_high",
    "abandoned",
    "agents",
    "abandoned_rate",
    "abandoned_rate_low",
    "abandoned_rate_high",
)
_TREND_COLUMNS = (*_WINDOW_COLUMNS, "partial")  # a trend bucket has what a comparison window has


def _cell(value):
    return repr(value) if isinstance(value, float) else value
