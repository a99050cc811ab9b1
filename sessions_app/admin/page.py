"""The analytics page's HTML context: ``page_data``'s numbers as table rows, links and a chart.

Every rate carries its 95% Wilson interval; rows with fewer than ``MIN_SAMPLE`` sessions (or
agents) are marked ``small`` and greyed out by the stylesheet.
"""

import datetime as dt
from urllib.parse import urlencode

from django.urls import reverse

from agents_app.models import AbandonedAgentTally
from sessions_app import reporting
from sessions_app.admin.charts import percent, rate_bar, rate_cell
from sessions_app.admin.colours import model_colour_class
from sessions_app.admin.filters import CAUSE_LABELS
from sessions_app.admin.links import session_changelist_url
from sessions_app.admin.page_data import BUCKETS, PageData
from sessions_app.admin.trend import OTHER_MODELS, trend_chart
from sessions_app.analytics import (
    CAUSES,
    MIN_SAMPLE,
    is_small_sample,
    model_ids_by_name,
    model_of_key,
    wilson_interval,
)

# Rows each per-model table of the page renders (in its order); the others are summed in one
# "N other models" row, and every model is in the CSV and JSON downloads. 10,000 models made a
# 17 MB page that took 7 s to render.
PAGE_ROWS = 50


def _rest(rows, **sums) -> dict | None:
    """The row summing ``rows`` (the models past ``PAGE_ROWS``): their number, and per name in
    ``sums`` the total of that attribute (a callable of a row); None when there are none."""
    if not rows:
        return None
    return {"models": len(rows), **{name: sum(pick(row) for row in rows) for name, pick in sums.items()}}


def interval(successes: int, trials: int) -> str:
    """The 95% interval of ``successes / trials`` as text, "-" without trials."""
    return reporting.format_interval(*wilson_interval(successes, trials)) if trials else "-"


def page_context(request, model_admin, form, data: PageData) -> dict:
    report, filters = data.report, data.report.filters
    base_filters = _changelist_filters(filters)
    ordered = reporting.sort_rows(report.rows, form.cleaned_data["sort"] or "rate")
    model_ids = model_ids_by_name([row.key for row in ordered[:PAGE_ROWS]])

    def drill(key, **extra):
        params = dict(base_filters, **extra)
        if key in model_ids:
            params["model__id__exact"] = model_ids[key]
        elif key is not None:
            params["model__isnull"] = "True"
        return session_changelist_url(**params)

    rows = [
        {
            "key": row.key,
            "colour": model_colour_class(row.key),
            "sessions": row.sessions,
            "empty": row.empty,
            "rate": percent(row.rate),
            "interval": interval(row.empty, row.sessions),
            "small": is_small_sample(row.sessions),
            "bar": rate_bar(row.rate),
            "url": drill(row.key),
            "empty_url": drill(row.key, empty="yes"),
        }
        for row in ordered[:PAGE_ROWS]
    ]
    rest = _rest(ordered[PAGE_ROWS:], sessions=lambda r: r.sessions, empty=lambda r: r.empty)
    if rest:
        rest["rate"] = percent(rest["empty"] / rest["sessions"] if rest["sessions"] else 0.0)
    # The model with the most empty sessions by count (the table sorts by rate).
    worst = max(report.rows, key=lambda r: (r.empty, r.rate), default=None)
    if worst is not None and worst.key not in model_ids:
        model_ids.update(model_ids_by_name([worst.key]))
    if worst is not None:
        worst = {**worst.as_dict(), "rate": percent(worst.rate), "url": drill(worst.key, empty="yes")}
    query = request.GET.copy()
    query.pop("format", None)
    query.pop("table", None)

    def download(fmt, **extra):
        return "?" + urlencode({**query.dict(), "format": fmt, **extra})

    return {
        "rollup": data.rollup,
        "rows": rows,
        "rows_rest": rest,
        "total_rate": percent(report.total.rate),
        "total_interval": interval(report.total.empty, report.total.sessions),
        "total_url": drill(None),
        "total_empty_url": drill(None, empty="yes"),
        "worst": worst,
        "bucket": data.bucket,
        "bucket_chosen": form.cleaned_data["bucket"] is None,
        "min_sample": MIN_SAMPLE,
        "csv_url": download("csv"),
        "json_url": download("json"),
        "csv_tables": [(name, download("csv", table=name)) for name in ("abandoned", "causes", "trend", "comparison")],
        "csv_causes_url": download("csv", table="causes"),
        "csv_abandoned_url": download("csv", table="abandoned"),
        "comparison": _comparison(data.comparison),
        "markers": data.markers,
        "can_add_marker": request.user.has_perm("sessions_app.add_trendmarker"),
        "markers_url": reverse("admin:sessions_app_trendmarker_changelist"),
        **_abandoned(request, model_admin, data),
        **_causes(data, drill),
        **_trend(data, base_filters),
    }


def _comparison(comparison) -> dict:
    def window(w):
        return {
            "since": w.since,
            "until": w.until,
            "sessions": w.sessions,
            "empty": w.empty,
            "rate": percent(w.rate) if w.sessions else "-",
            "interval": interval(w.empty, w.sessions),
            "agents": w.agents,
            "abandoned": w.abandoned,
            "abandoned_rate": percent(w.abandoned_rate) if w.agents else "-",
            "abandoned_interval": interval(w.abandoned, w.agents),
        }

    def change(value, both):
        return f"{value * 100:+.1f} points" if both else "-"

    now, before = comparison.now, comparison.before
    return {
        "now": window(now),
        "before": window(before),
        "marker": comparison.marker,
        "change": change(comparison.change, now.sessions and before.sessions),
        "falling": comparison.change < 0,
        "abandoned_change": change(comparison.abandoned_change, now.agents and before.agents),
        "abandoned_falling": comparison.abandoned_change < 0,
    }


def _abandoned(request, model_admin, data: PageData) -> dict:
    """The "ended without a message" section: the abandoned-agent tally per model, beside the
    sessions those models started (abandoned / (abandoned + sessions))."""
    joined, filters = data.abandoned, data.report.filters
    if joined is None:
        return {"abandoned_without_profile": True}
    tally_url = reverse("admin:agents_app_abandonedagenttally_changelist")
    params = {}
    if filters["source"]:
        params["source"] = filters["source"]
    if filters["since"]:
        params["day__gte"] = filters["since"].date().isoformat()
    if filters["until"]:
        params["day__lt"] = filters["until"].date().isoformat()
    ordered = reporting.sort_rows([r for r in joined.rows if r.abandoned], "rate")
    rows = [
        {
            "key": row.key,
            "colour": model_colour_class(row.key),
            "agents": row.agents,
            "abandoned": row.abandoned,
            "rate": percent(row.rate),
            "interval": interval(row.abandoned, row.agents),
            "small": is_small_sample(row.agents),
            "bar": rate_bar(row.rate),
            "reasons": ", ".join(
                f"{reason} {count}" for reason, count in sorted(row.reasons.items(), key=lambda i: (-i[1], i[0]))
            ),
            "url": f"{tally_url}?{urlencode({**params, 'model__name': model_of_key(row.key)})}",
        }
        for row in ordered[:PAGE_ROWS]
    ]
    return {
        "abandoned_rows": rows,
        "abandoned_rest": _rest(ordered[PAGE_ROWS:], agents=lambda r: r.agents, abandoned=lambda r: r.abandoned),
        "abandoned_total": joined.total,
        "abandoned_rate": percent(joined.total.rate),
        "abandoned_interval": interval(joined.total.abandoned, joined.total.agents),
        "silent_rate": percent(joined.total.silent_rate),
        "tally_url": f"{tally_url}?{urlencode(params)}" if params else tally_url,
        "can_view_tally": model_admin.admin_site.is_registered(AbandonedAgentTally)
        and request.user.has_perm("agents_app.view_abandonedagenttally"),
    }


def _causes(data: PageData, drill) -> dict:
    """The "Why empty" section: per model, its empty sessions per cause, as counts and as rates
    of all its sessions, with links to the session list filtered by model and cause."""
    breakdown = data.breakdown

    def cells(row, causes):
        return [
            {
                "count": causes[cause],
                "rate": percent(causes[cause] / row.sessions) if row.sessions else "-",
                "url": drill(row.key if row is not breakdown.report.total else None, cause=cause),
            }
            for cause in CAUSES
        ]

    ordered = reporting.sort_rows([r for r in breakdown.rows if r.empty], "rate")
    rows = [
        {"key": row.key, "empty": row.empty, "causes": cells(row, breakdown.causes[row.key])}
        for row in ordered[:PAGE_ROWS]
    ]
    rest = _rest(ordered[PAGE_ROWS:], empty=lambda r: r.empty)
    if rest:
        rest["causes"] = [sum(breakdown.causes[r.key][cause] for r in ordered[PAGE_ROWS:]) for cause in CAUSES]
    total = breakdown.report.total
    return {
        "cause_rows": rows,
        "cause_rest": rest,
        "cause_total": {"empty": total.empty, "causes": cells(total, breakdown.total)},
        "cause_labels": [(cause, CAUSE_LABELS[cause]) for cause in CAUSES],
    }


def _trend(data: PageData, base_filters: dict) -> dict:
    """The trend table (a row per bucket, with drill-down links) and its chart."""
    filters, span = data.report.filters, BUCKETS[data.bucket]
    trend_rows = []
    for row in data.trend:
        start = dt.datetime.fromisoformat(row.key).replace(tzinfo=dt.UTC)
        # The bucket's range, within the page's own since/until.
        lower = max(start, filters["since"]) if filters["since"] else start
        upper = min((bound for bound in (filters["until"], _bucket_end(start, span)) if bound), default=None)
        params = {**base_filters, **_changelist_range(lower, upper)}
        trend_rows.append(
            {
                "bucket": row.key,
                "partial": row.partial,
                "sessions": row.sessions,
                "empty": row.empty,
                "rate": percent(row.rate) if row.sessions else "-",
                "interval": interval(row.empty, row.sessions),
                "small": is_small_sample(row.sessions),
                "abandoned": row.abandoned,
                "abandoned_rate": percent(row.abandoned_rate) if row.agents else "-",
                "models": [rate_cell(row.lines[name]) for name, _, _ in data.lines],
                "empty_url": session_changelist_url(**params, empty="yes"),
            }
        )
    totals = {row.key: (row.sessions, row.empty) for row in data.trend}
    abandoned = {row.key: row.abandoned for row in data.trend if row.abandoned}
    chart = trend_chart(
        data.bucket, span, totals, abandoned, data.lines, data.report.total, partial=data.partial, markers=data.markers
    )
    columns = [{"name": name, "colour": css.split()[-1]} for name, css, _ in data.lines]
    return {
        "trend_rows": trend_rows,
        "trend_models": columns,
        "has_other": any(name == OTHER_MODELS for name, _, _ in data.lines),
        "drawn_models": len([name for name, _, _ in data.lines if name != OTHER_MODELS]),
        "partial": data.partial,
        **chart,
    }


def _bucket_end(start: dt.datetime, span: dt.timedelta) -> dt.datetime | None:
    """The end of the bucket starting at ``start``; None (open) for the very last days of year 9999."""
    try:
        return start + span
    except OverflowError:
        return None


def _changelist_filters(filters: dict) -> dict:
    """The session changelist's own query parameters for the report's filters."""
    params = _changelist_range(filters["since"], filters["until"])
    for name in ("source", "profile"):  # the changelist's exact-value filters of the same names
        if filters[name]:
            params[name] = filters[name]
    return params


def _changelist_range(since: dt.datetime | None, until: dt.datetime | None) -> dict:
    """``started_at__gte``/``__lt`` (UTC bounds): the session changelist's DateFieldListFilter parameters."""
    params = {}
    if since is not None:
        params["started_at__gte"] = since.isoformat(sep=" ")
    if until is not None:
        params["started_at__lt"] = until.isoformat(sep=" ")
    return params
