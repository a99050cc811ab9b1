"""Server-side SVG charts for the admin: no JavaScript, no external requests.

``line_chart`` draws rates over time buckets as lines, with labelled vertical event markers and a
distinct last (partial) bucket; ``trend_chart`` lays the analytics page's trend out with it. Each
model keeps one colour on every page (``model_colour_class``).

Shapes carry CSS classes, not colours: ``static/sessions_app/empty_rates.css`` colours them with
the admin's CSS variables, so the charts follow the admin's light and dark themes. Every text
that comes from data (model names, dates) goes through ``format_html``/``escape``.
"""

import datetime as dt
import hashlib
from dataclasses import dataclass

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe
from django.utils.text import Truncator

WIDTH, HEIGHT = 960, 340
LEFT, RIGHT, TOP, BOTTOM = 56, 44, 36, 40
# Y-axis tops to choose from (rates as fractions): the smallest that fits the data.
Y_TOPS = (0.01, 0.02, 0.04, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0)  # quarters of these are round numbers
X_TICKS = 8
LEGEND_CHARS = 48
MODEL_MARKERS = 31  # model lines get hoverable markers up to this many buckets (the total always)
EVENT_CHARS = 28  # event labels drawn on the chart are cut here (the full label is in the tooltip)
EVENT_ROWS = 2  # event labels alternate between this many rows, so close events do not overlap


@dataclass(frozen=True)
class Event:
    """A labelled vertical line at ``position``, in buckets from the first (fractional: inside one)."""

    position: float
    label: str
    tooltip: str


@dataclass(frozen=True)
class Series:
    """One line: a name for the legend, and per x label a (whole, part) pair or None (no data),
    e.g. (sessions, empty sessions); ``noun`` names the part in the markers' tooltips."""

    name: str
    points: list[tuple[int, int] | None]
    css_class: str
    noun: str = "empty"


def percent(rate: float) -> str:
    return f"{rate * 100:.1f}%"


def rate_bar(rate: float) -> SafeString:
    """A horizontal bar of ``rate`` (0..1) filling a table cell; decorative, the cell beside holds the number."""
    width = f"{max(0.0, min(rate, 1.0)) * 100:.2f}"
    return format_html(
        '<svg class="rate-bar" viewBox="0 0 100 10" preserveAspectRatio="none" aria-hidden="true" focusable="false">'
        '<rect class="rate-bar-track" x="0" y="0" width="100" height="10"></rect>'
        '<rect class="rate-bar-fill" x="0" y="0" width="{}" height="10"></rect></svg>',
        width,
    )


def rate_cell(row) -> str:
    """A ``RateRow`` as "rate (empty/sessions)", or "-" without sessions."""
    if row is None or not row.sessions:
        return "-"
    return f"{percent(row.rate)} ({row.empty:,}/{row.sessions:,})"


def line_chart(
    labels: list[str],
    series: list[Series],
    *,
    title: str,
    description: str,
    partial: bool = False,
    events: list[Event] = (),
) -> SafeString:
    """A line chart of empty rates over ``labels`` (time buckets); gaps where a bucket has no sessions.

    With ``partial``, the last bucket is still filling: its points are hollow and the segment to
    it dashed. ``events`` are drawn as labelled vertical lines. The SVG is ``role="img"`` with
    ``aria-label``, ``<title>`` and ``<desc>``; each marker has a ``<title>`` with its numbers.
    Returns an empty string when there is nothing to draw.
    """
    if not labels or not any(point for s in series for point in s.points):
        return mark_safe("")
    top = _y_top(series)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / max(len(labels) - 1, 1)

    def x(i: int) -> float:
        return LEFT + (i * step if len(labels) > 1 else plot_w / 2)

    def y(rate: float) -> float:
        return TOP + plot_h * (1 - min(rate / top, 1.0))

    parts = [_grid(top, y), _x_axis(labels, x, partial)]
    parts += [_event(event, i, x) for i, event in enumerate(events)]
    for s in series:
        parts.append(_line(s, x, y, partial))
        if s.css_class.startswith(("total", "abandoned")) or len(labels) <= MODEL_MARKERS:
            parts.append(_markers(s, labels, x, y, partial))
    return format_html(
        '<svg class="trend-chart" viewBox="0 0 {w} {h}" role="img" aria-label="{title}" '
        'xmlns="http://www.w3.org/2000/svg"><title>{title}</title><desc>{desc}</desc>{body}</svg>',
        w=WIDTH,
        h=HEIGHT,
        title=title,
        desc=description,
        body=mark_safe("".join(parts)),  # noqa: S308 - every part is built with format_html
    )


def legend(series: list[Series]) -> SafeString:
    """An HTML legend (a list) for ``series``; long names are cut, the full name is in the tooltip."""
    return format_html(
        '<ul class="trend-legend">{}</ul>',
        format_html_join(
            "",
            '<li title="{}"><svg viewBox="0 0 24 8" aria-hidden="true" focusable="false">'
            '<line class="series {}" x1="0" y1="4" x2="24" y2="4"></line></svg>{}</li>',
            ((s.name, s.css_class, Truncator(s.name).chars(LEGEND_CHARS)) for s in series),
        ),
    )


def _n(value: float) -> str:
    """A coordinate with one decimal: short SVG, no visible rounding."""
    return f"{value:.1f}"


def _y_top(series: list[Series]) -> float:
    highest = max((part / whole for s in series for p in s.points if p and p[0] for whole, part in [p]), default=0)
    return next((top for top in Y_TOPS if highest <= top), 1.0)


def _grid(top: float, y) -> str:
    lines = []
    for i in range(5):
        rate = top * i / 4
        lines.append(
            format_html(
                '<line class="grid" x1="{x1}" y1="{y}" x2="{x2}" y2="{y}"></line>'
                '<text class="axis-label" x="{tx}" y="{ty}" text-anchor="end">{label}</text>',
                x1=LEFT,
                x2=WIDTH - RIGHT,
                y=_n(y(rate)),
                tx=LEFT - 6,
                ty=_n(y(rate) + 4),
                label=f"{rate * 100:g}%",
            )
        )
    return "".join(lines)


def _x_axis(labels: list[str], x, partial: bool) -> str:
    every = max(1, -(-len(labels) // X_TICKS))
    ticks = list(range(0, len(labels), every))
    # The partial bucket says so under the axis labels, below its point.
    partial_tick = ""
    if partial:
        partial_tick = format_html(
            '<text class="axis-label partial-label" x="{x}" y="{ty}" text-anchor="end">partial {label}</text>',
            x=_n(x(len(labels) - 1) + 6),
            ty=HEIGHT - BOTTOM + 34,
            label=labels[-1],
        )
    return partial_tick + "".join(
        format_html(
            '<line class="tick" x1="{x}" y1="{y1}" x2="{x}" y2="{y2}"></line>'
            '<text class="axis-label" x="{x}" y="{ty}" text-anchor="middle">{label}</text>',
            x=_n(x(i)),
            y1=HEIGHT - BOTTOM,
            y2=HEIGHT - BOTTOM + 5,
            ty=HEIGHT - BOTTOM + 20,
            label=labels[i],
        )
        for i in ticks
    )


def _line(s: Series, x, y, partial: bool = False) -> str:
    """A path broken into strokes at every bucket without sessions; a lone point becomes a dot
    (a zero-length stroke, drawn by the round line cap). With ``partial``, the segment into the
    last bucket is a path of its own (dashed by the stylesheet)."""
    points = s.points[:-1] if partial else s.points
    strokes, stroke = [], []
    for i, point in enumerate([*points, None]):
        if point and point[0]:
            stroke.append(f"{x(i):.1f},{y(point[1] / point[0]):.1f}")
        elif stroke:
            strokes.append("M" + " L".join(stroke) + (" h0" if len(stroke) == 1 else ""))
            stroke = []
    path = format_html('<path class="series {}" d="{}"></path>', s.css_class, " ".join(strokes)) if strokes else ""
    last, before = s.points[-1], (s.points[-2] if len(s.points) > 1 else None)
    if partial and last and last[0] and before and before[0]:
        n = len(s.points) - 1
        d = f"M{x(n - 1):.1f},{y(before[1] / before[0]):.1f} L{x(n):.1f},{y(last[1] / last[0]):.1f}"
        path += format_html('<path class="series partial {}" d="{}"></path>', s.css_class, d)
    return path


def _markers(s: Series, labels: list[str], x, y, partial: bool = False) -> str:
    last = len(labels) - 1
    return "".join(
        format_html(
            '<circle class="marker {cls}" cx="{cx}" cy="{cy}" r="{r}"><title>{text}</title></circle>',
            cls=s.css_class + (" partial" if partial and i == last else ""),
            cx=_n(x(i)),
            cy=_n(y(point[1] / point[0])),
            r=4 if partial and i == last else 3,
            text=f"{s.name}, {labels[i]}{' (partial, still filling)' if partial and i == last else ''}: "
            f"{point[1]} of {point[0]} {s.noun} ({percent(point[1] / point[0])})",
        )
        for i, point in enumerate(s.points)
        if point and point[0]
    )


def _event(event: Event, i: int, x) -> str:
    """A vertical dashed line across the plot, its label above the plot (rows alternate)."""
    at = x(0) + (x(1) - x(0)) * event.position
    anchor = "end" if at > WIDTH - RIGHT - 160 else "start"
    label_y = 12 + 13 * (i % EVENT_ROWS)
    return format_html(
        '<g class="event"><title>{tooltip}</title>'
        '<line class="event-line" x1="{x}" y1="{top}" x2="{x}" y2="{bottom}"></line>'
        '<text class="event-label" x="{tx}" y="{ty}" text-anchor="{anchor}">{label}</text></g>',
        tooltip=event.tooltip,
        x=_n(at),
        top=label_y + 3,
        bottom=HEIGHT - BOTTOM,
        tx=_n(at + (-4 if anchor == "end" else 4)),
        ty=label_y + 4,
        anchor=anchor,
        label=Truncator(event.label).chars(EVENT_CHARS),
    )


# --- a colour per model --------------------------------------------------------------------

PALETTE_SIZE = 10
OTHER_CLASS = "model-other"


def model_colour_class(name: str) -> str:
    """The CSS class of ``name``'s colour (``model-c0`` .. ``model-c9``)."""
    digest = hashlib.sha1(name.encode("utf-8"), usedforsecurity=False).hexdigest()
    return f"model-c{int(digest, 16) % PALETTE_SIZE}"


# --- the analytics page's trend ----------------------------------------------------------

# More buckets than this (about three years of days) are listed in the table but not drawn.
MAX_TREND_BUCKETS = 1100


def line_class(line) -> str:
    """The CSS classes of a trend line (``analytics.page.Line``): its model's colour, or "other"."""
    return f"model {OTHER_CLASS}" if line.other else f"model {model_colour_class(line.name)}"


def trend_chart(trend, span: dt.timedelta, overall, *, markers=()) -> dict:
    """The trend's chart, legend and note (``chart``, ``legend``, ``chart_note``) for the page.

    ``trend`` is ``analytics.page.Trend`` (a row per bucket, abandoned None where not tracked,
    its lines), ``overall`` the report's total row, ``markers`` the ``TrendMarker`` rows to draw.
    """
    context = {"chart": "", "legend": "", "chart_note": ""}
    rows = {row.key: row for row in trend.rows}
    if not rows:
        return context
    first, last = min(rows), max(rows)
    count = (dt.date.fromisoformat(last) - dt.date.fromisoformat(first)) // span + 1
    bucket = trend.bucket
    if count > MAX_TREND_BUCKETS:
        # A stray session decades away (a bad import) would make a chart nobody can read.
        context["chart_note"] = (
            f"{count} {bucket}s from {first} to {last} are too many to draw: "
            "choose a shorter date range or a trend per week."
        )
        return context
    labels = bucket_labels(first, last, span)

    def pair(row):
        return (row.sessions, row.empty) if row is not None and row.sessions else None

    series = [Series("All models", [pair(rows.get(b)) for b in labels], "total")]
    tracked = [b for b in labels if b in rows and rows[b].agents]  # measured, with agents
    if any(rows[b].abandoned for b in tracked):
        # Agents that ended without a message, over all agents seen, where the tally measured them:
        # where the empty rate falls to zero after the fix, this line carries the signal on.
        series.append(
            Series(
                "Abandoned agents, all models",
                [(rows[b].agents, rows[b].abandoned) if b in tracked else None for b in labels],
                "abandoned",
                noun="abandoned",
            )
        )
    series += [
        Series(
            line.name + (" (highest rate)" if line.worst else ""),
            [pair(line.buckets.get(b)) for b in labels],
            line_class(line),
        )
        for line in trend.lines
    ]
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
    models = len([line for line in trend.lines if not line.other])
    title = f"Empty-session rate per {bucket}, all models and {models} models (the busiest and the highest rate)"
    if models < len(trend.lines):
        title += ", the rest as other models"
    if any(rows[b].abandoned for b in tracked):
        title += ", and the abandoned-agent rate"
    description = (
        f"From {first} to {last}; the table 'Trend numbers' below lists the same rates. "
        f"Overall {percent(overall.rate)} of {overall.sessions} sessions were empty."
    )
    if trend.partial == last:
        description += f" The {bucket} from {last} is still filling (partial): hollow points, dashed segment."
    context["chart"] = line_chart(
        labels, series, title=title, description=description, partial=trend.partial == last, events=events
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
