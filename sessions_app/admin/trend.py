"""The analytics page's trend: which lines to draw, in which colours, and its chart.

At most ``TREND_MODELS`` lines of single models (the busiest), the rest summed as "other"; each
model in its own fixed colour (``colours``); the bucket still filling drawn distinctly; the
operators' ``TrendMarker`` events as labelled vertical lines.
"""

import datetime as dt

from sessions_app.admin.charts import MODEL_MARKERS, Event, Series, legend, line_chart, percent
from sessions_app.admin.colours import OTHER_CLASS, model_colour_class

# The total, the abandoned-agent line and more than this many model lines cannot be told apart.
TREND_MODELS = 5
OTHER_MODELS = "other models"
# More buckets than this (about three years of days) are listed in the table but not drawn.
MAX_TREND_BUCKETS = 1100


def trend_lines(per_model: dict, busiest: list[str]) -> list[tuple[str, str, dict]]:
    """``(name, css_class, {bucket: (sessions, empty)})`` per line: the ``TREND_MODELS`` busiest
    models, then the rest summed as "other models" (when there is a rest)."""
    top = busiest[:TREND_MODELS]
    lines = [(name, f"model {model_colour_class(name)}", per_model.get(name, {})) for name in top]
    other: dict[str, list[int]] = {}
    for name, buckets in per_model.items():
        if name in top:
            continue
        for bucket, (sessions, empty) in buckets.items():
            pair = other.setdefault(bucket, [0, 0])
            pair[0] += sessions
            pair[1] += empty
    if other:
        lines.append((OTHER_MODELS, f"model {OTHER_CLASS}", {b: tuple(pair) for b, pair in other.items()}))
    return lines


def trend_chart(bucket, span, totals, abandoned, lines, overall, *, partial=None, markers=()) -> dict:
    """The trend's chart, legend and note (``chart``, ``legend``, ``chart_note``) for the page.

    ``totals`` is ``{bucket: (sessions, empty)}`` (every bucket of the table, in order),
    ``abandoned`` ``{bucket: agents}``, ``lines`` from ``trend_lines``, ``overall`` the report's
    total row, ``partial`` the label of the bucket still filling (if shown), ``markers`` the
    ``TrendMarker`` rows to draw.
    """
    context = {"chart": "", "legend": "", "chart_note": ""}
    if not totals:
        return context
    first, last = min(totals), max(totals)
    count = (dt.date.fromisoformat(last) - dt.date.fromisoformat(first)) // span + 1
    if count > MAX_TREND_BUCKETS:
        # A stray session decades away (a bad import) would make a chart nobody can read.
        context["chart_note"] = (
            f"{count} {bucket}s from {first} to {last} are too many to draw: "
            "choose a shorter date range or a trend per week."
        )
        return context
    labels = bucket_labels(first, last, span)
    series = [Series("All models", [totals.get(b) for b in labels], "total")]
    if abandoned:
        # Agents that ended without a message, over all agents seen: where the empty rate falls
        # to zero after the fix, this line carries the "fails before speaking" signal on.
        series.append(
            Series(
                "Abandoned agents, all models",
                [(totals[b][0] + abandoned[b], abandoned[b]) if b in abandoned else None for b in labels],
                "abandoned",
                noun="abandoned",
            )
        )
    series += [Series(name, [buckets.get(b) for b in labels], css) for name, css, buckets in lines]
    start = dt.datetime.fromisoformat(first).replace(tzinfo=dt.UTC)
    events = [
        Event(
            (marker.at - start) / span,
            marker.label,
            f"{marker.at:%Y-%m-%d %H:%M} UTC: {marker.label}" + (f" — {marker.note}" if marker.note else ""),
        )
        for marker in markers
        if start <= marker.at < start + span * len(labels)
    ]
    models = len([line for line in lines if line[0] != OTHER_MODELS])
    title = f"Empty-session rate per {bucket}, all models and the {models} with the most sessions"
    if models < len(lines):
        title += " (the rest as other models)"
    if abandoned:
        title += ", and the abandoned-agent rate"
    description = (
        f"From {first} to {last}; the table 'Trend numbers' below lists the same rates. "
        f"Overall {percent(overall.rate)} of {overall.sessions} sessions were empty."
    )
    if partial == last:
        description += f" The {bucket} from {last} is still filling (partial): hollow points, dashed segment."
    context["chart"] = line_chart(
        labels, series, title=title, description=description, partial=partial == last, events=events
    )
    context["legend"] = legend(series)
    context["chart_events"] = events
    context["model_markers"] = len(labels) <= MODEL_MARKERS
    return context


def bucket_labels(first: str, last: str, step: dt.timedelta) -> list[str]:
    """Every bucket from ``first`` to ``last``, those without sessions included (gaps on the chart)."""
    day, end, labels = dt.date.fromisoformat(first), dt.date.fromisoformat(last), []
    while day <= end:
        labels.append(day.isoformat())
        day += step
    return labels


def partial_bucket(bucket: str, span: dt.timedelta, *, until: dt.datetime | None, now: dt.datetime) -> str | None:
    """The label of the bucket that is not complete yet at ``now`` (or cut by ``until``), or None
    when the report ends exactly on a bucket boundary."""
    end = min(until, now) if until is not None else now
    day = (end - dt.timedelta(microseconds=1)).date()
    if bucket == "week":
        day -= dt.timedelta(days=day.weekday())
    start = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
    return day.isoformat() if start + span > end else None
