"""The admin's empty-session analytics page (``admin:sessions_app_session_empty_rates``): its
filters, and its numbers (``analytics.page``) rendered as HTML, JSON and CSV.

The form is the edge: it turns the query string into a checked ``Scope`` once; the numbers come
from ``analytics_page(scope)``; everything here only renders them. ``?format=json`` is
``manage.py empty_sessions --format json``'s document (``by``, ``filters``, ``total``, ``rows``;
same keys, same numbers) with more keys beside them; ``?format=csv`` is one table per file
(``&table=models``, the default, ``abandoned``, ``causes``, ``trend`` or ``comparison``). An
unknown ``format`` (or CSV ``table``) is a 400 naming the allowed values.
"""

import csv
import datetime as dt
import io
import json
from urllib.parse import urlencode

from django import forms
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponse, JsonResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views import View

from agents_app.models import AbandonedAgentTally
from sessions_app import reporting
from sessions_app.admin.charts import line_class, model_colour_class, percent, rate_bar, rate_cell, trend_chart
from sessions_app.admin.listing import CAUSE_LABELS, session_changelist_url
from sessions_app.analytics import (
    CAUSES,
    MIN_SAMPLE,
    NO_MODEL_KEY,
    WEEKLY_AFTER_DAYS,
    AnalyticsPage,
    analytics_page,
    is_small_sample,
    model_ids_by_name,
    model_key,
    model_of_key,
    scope_choices,
)
from sessions_app.analytics.trend import BUCKET_SPANS
from sessions_app.counts import RateRow
from sessions_app.scope import FILTER_NAMES, Scope, parse_date_bound, utc_bound

FORMATS = ("html", "csv", "json")
CSV_TABLES = ("models", "abandoned", "causes", "trend", "comparison")
NOT_TRACKED = "not tracked"
# Past this many models (sources, profiles), the filter is a text box for the exact name instead of
# a list: 5,000 sources made a 5,000-option menu, most of the page's weight.
MAX_LISTED_CHOICES = 200
# Rows each per-model table of the page renders (in its order); the others are summed in one
# "N other models" row, and every model is in the CSV and JSON downloads. 10,000 models made a
# 17 MB page that took 7 s to render.
PAGE_ROWS = 50


# --- the filters: the edge where the query string becomes a Scope ---------------------------


class EmptyRatesForm(forms.Form):
    """The page's GET filters; every field is optional. ``cleaned_data["scope"]`` is the checked
    ``Scope`` everything below uses."""

    since = forms.CharField(
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="Sessions started on or after (UTC).",
    )
    until = forms.CharField(
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="Sessions started before (UTC, exclusive).",
    )
    model = forms.ChoiceField(required=False)
    source = forms.ChoiceField(required=False)
    profile = forms.ChoiceField(required=False)
    bucket = forms.ChoiceField(
        required=False,
        choices=[("", "automatic"), ("day", "day"), ("week", "week (from Monday)")],
        label="Trend per",
        help_text=f"Automatic: per week when the range spans more than {WEEKLY_AFTER_DAYS} days.",
    )
    sort = forms.ChoiceField(
        required=False,
        choices=[("", "highest rate"), ("sessions", "most sessions"), ("key", "model name")],
        help_text="Tables and downloads.",
        label="Sort models by",
    )

    def __init__(self, data, *, choices: dict[str, list[str]], **kwargs):
        super().__init__(data, **kwargs)
        # The model filter takes a model's name: a report key is unquoted (a model named "other"
        # is the key '"other"'), and no model at all is not a name to filter on.
        models = [model_of_key(key) for key in choices.get("model", []) if key != NO_MODEL_KEY]
        for name, values in (("model", models), ("source", choices.get("source", [])),
                             ("profile", choices.get("profile", []))):  # fmt: skip
            if len(values) > MAX_LISTED_CHOICES:
                self.fields[name] = forms.CharField(
                    required=False,
                    strip=False,  # an exact name: "cli " is another source than "cli"
                    help_text=f"Exact name; {len(values):,} {name}s, too many to list. Empty: all.",
                )
            else:
                self.fields[name].choices = [("", f"all {name}s"), *((value, value) for value in values)]

    def clean_since(self):
        return _date_bound(self.cleaned_data["since"])

    def clean_until(self):
        return _date_bound(self.cleaned_data["until"])

    def clean(self):
        cleaned = super().clean()
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until and utc_bound(since) >= utc_bound(until):
            self.add_error("until", "Until must be after since.")
        cleaned["bucket"] = cleaned.get("bucket") or None  # None: chosen from the range
        if not self.errors:
            try:
                cleaned["scope"] = Scope(**{name: cleaned.get(name) or None for name in FILTER_NAMES})
            except ValidationError as exc:
                for field, errors in exc.message_dict.items():
                    self.add_error(field if field in self.fields else None, errors)
        return cleaned


def _date_bound(text: str):
    if not text:
        return None
    try:
        value = parse_date_bound(text)
        utc_bound(value)  # 9999-12-31T23:00-05:00 is past the last datetime Python has
    except ValueError as exc:
        raise ValidationError(str(exc)) from None
    except ValidationError as exc:
        raise ValidationError(exc.messages) from None  # one field's errors, not a dict
    return value


# --- the view ----------------------------------------------------------------------------


class EmptyRatesView(View):
    """The analytics page, and its CSV and JSON downloads (``?format=csv|json``)."""

    model_admin = None
    template_name = "admin/sessions_app/session/empty_rates.html"

    def get(self, request):
        if not self.model_admin.has_view_permission(request):
            raise PermissionDenied
        wanted = request.GET.get("format") or "html"
        if wanted not in FORMATS:
            return _plain_400(f"unknown format {wanted!r}; allowed: {', '.join(FORMATS)}.")
        table = request.GET.get("table") or "models"
        if wanted == "csv" and table not in CSV_TABLES:
            return _plain_400(f"unknown table {table!r}; allowed: {', '.join(CSV_TABLES)}.")
        form = EmptyRatesForm(request.GET, choices=scope_choices())
        page = None
        if form.is_valid():
            try:
                page = analytics_page(form.cleaned_data["scope"], bucket=form.cleaned_data["bucket"])
            except ValidationError as exc:
                for field, errors in exc.message_dict.items():
                    form.add_error(field if field in form.fields else None, errors)
        if page is None:
            if wanted in ("csv", "json"):
                return _error_response(wanted, form)
            return self.render(request, form, None)
        sort = form.cleaned_data["sort"] or None
        if wanted == "json":
            return HttpResponse(page_json(page, sort), content_type="application/json")
        if wanted == "csv":
            buffer = io.StringIO()
            write_page_csv(page, table, sort, buffer)
            response = HttpResponse(buffer.getvalue(), content_type="text/csv; charset=utf-8")
            name = "by-model" if table == "models" else table
            response["Content-Disposition"] = f'attachment; filename="empty-session-rates-{name}.csv"'
            return response
        return self.render(request, form, page)

    def render(self, request, form, page):
        context = {
            **self.model_admin.admin_site.each_context(request),
            "opts": self.model_admin.model._meta,
            "title": "Empty-session rates",
            "form": form,
            "report": page.report if page else None,
            "has_filters": any(request.GET.get(name) for name in FILTER_NAMES),
        }
        if page is not None:
            context.update(page_context(request, self.model_admin, form, page))
        return TemplateResponse(request, self.template_name, context)


def _plain_400(text: str) -> HttpResponse:
    return HttpResponse(text + "\n", status=400, content_type="text/plain; charset=utf-8")


def _error_response(wanted: str, form: EmptyRatesForm) -> HttpResponse:
    errors = {field: [str(message) for message in messages] for field, messages in form.errors.items()}
    if wanted == "json":
        return JsonResponse({"errors": errors}, status=400)
    text = "\n".join(f"{field}: {message}" for field, messages in errors.items() for message in messages)
    return _plain_400(text)


# --- JSON and CSV --------------------------------------------------------------------------


def _window(row: RateRow | None) -> dict | None:
    """A before/since window as JSON: its counts, rates and intervals; None where not measured."""
    if row is None:
        return None
    data = row.as_dict(abandoned=True, nullable=True)
    del data["key"]
    return data


def _marker(marker) -> dict | None:
    return None if marker is None else {"at": marker.at.isoformat(), "label": marker.label, "note": marker.note}


def page_json(page: AnalyticsPage, sort: str | None) -> str:
    report = reporting.sorted_report(page.report, sort) if sort else page.report
    document = report.as_dict()
    split = page.split
    for row in document["rows"]:
        before, since = split.models.get(row["key"], (None, None)) if split else (None, None)
        row["before"], row["since"] = _window(before), _window(since)
    document["split"] = (
        None
        if split is None
        else {"marker": _marker(split.marker), "before": _window(split.before), "since": _window(split.since)}
    )
    abandoned = reporting.sorted_report(page.abandoned, sort) if sort and page.abandoned else page.abandoned
    document["abandoned"] = abandoned.as_dict() if abandoned else None  # None: one profile (no tally)
    if abandoned:
        document["abandoned"]["tally_since"] = page.tally_since.isoformat() if page.tally_since else None
    document["causes"] = {
        "total": page.breakdown.total,
        "rows": {row.key: page.breakdown.causes[row.key] for row in page.breakdown.rows},
    }
    trend = page.trend
    document["trend"] = {
        "by": trend.bucket,
        "partial": trend.partial,
        "models": [line.name for line in trend.lines],
        "highest_rate": next((line.name for line in trend.lines if line.worst), None),
        "rows": [_trend_row(row, trend) for row in trend.rows],
    }
    document["comparison"] = page.comparison.as_dict()
    document["markers"] = [_marker(marker) for marker in page.markers]
    document["min_sample"] = MIN_SAMPLE
    return json.dumps(document, ensure_ascii=False)


def _trend_row(row: RateRow, trend) -> dict:
    data = row.as_dict(abandoned=True)
    data["partial"] = row.key == trend.partial
    data["models"] = {}
    for line in trend.lines:
        part = line.buckets.get(row.key, RateRow(row.key))
        data["models"][line.name] = {"sessions": part.sessions, "empty": part.empty, "rate": part.rate}
    return data


_WINDOW_COLUMNS = ("sessions", "empty", "rate", "rate_low", "rate_high")
_ABANDONED_COLUMNS = ("abandoned", "agents", "abandoned_rate", "abandoned_rate_low", "abandoned_rate_high")
_PARTS = ("sessions", "empty", "rate")


def write_page_csv(page: AnalyticsPage, table: str, sort: str | None, file) -> None:
    """One of the page's tables as RFC 4180 CSV (model names neutralised against formulas); a
    figure that was not measured is an empty cell."""
    writer = csv.writer(file, lineterminator="\r\n")
    if table == "models":
        report = reporting.sorted_report(page.report, sort) if sort else page.report
        rows = reporting.csv_rows(report)
        header = next(rows)
        split = page.split
        writer.writerow([*header, *(f"{side}_{c}" for side in ("before", "since") for c in _WINDOW_COLUMNS)])
        for row, values in zip([*report.rows, None], rows, strict=True):
            if split is None:
                before = since = None
            elif row is None:  # the total
                before, since = split.before, split.since
            else:
                before, since = split.models.get(row.key, (None, None))
            writer.writerow(
                [*values, *_cells(_window(before), _WINDOW_COLUMNS), *_cells(_window(since), _WINDOW_COLUMNS)]
            )
    elif table == "abandoned" and page.abandoned is None:
        writer.writerow(["the abandoned-agent tally has no profile: choose all profiles"])
    elif table == "abandoned":
        reporting.write_abandoned_csv(reporting.sorted_report(page.abandoned, sort) if sort else page.abandoned, file)
    elif table == "causes":
        reporting.write_breakdown_csv(page.breakdown, file)
    elif table == "trend":
        trend = page.trend
        names = [line.name for line in trend.lines]
        header = [*_WINDOW_COLUMNS, *_ABANDONED_COLUMNS, "partial"]
        writer.writerow(
            [trend.bucket, *header, *(reporting.neutralised(f"{n} {part}") for n in names for part in _PARTS)]
        )
        for row in trend.rows:
            values = _trend_row(row, trend)
            models = [values["models"][name][part] for name in names for part in _PARTS]
            writer.writerow([row.key, *_cells(values, header), *map(_cell, models)])
    else:
        writer.writerow(["period", "since", "until", *_WINDOW_COLUMNS, *_ABANDONED_COLUMNS])
        comparison = page.comparison.as_dict()
        for name in ("before", "now"):
            window = comparison[name]
            writer.writerow([name, *_cells(window, ("since", "until", *_WINDOW_COLUMNS, *_ABANDONED_COLUMNS))])


def _cells(values: dict | None, columns) -> list:
    return [_cell(None if values is None else values[column]) for column in columns]


def _cell(value):
    if value is None:
        return ""
    return repr(value) if isinstance(value, float) else value


# --- the HTML page --------------------------------------------------------------------------


def interval(row: RateRow | None) -> str:
    """The 95% interval of the empty rate as text, "-" without sessions."""
    return reporting.format_interval(*row.interval) if row is not None and row.sessions else "-"


def abandoned_interval(row: RateRow) -> str:
    if row.abandoned is None:
        return NOT_TRACKED
    return reporting.format_interval(*row.abandoned_interval) if row.agents else "-"


def rate_text(row: RateRow | None) -> str:
    return percent(row.rate) if row is not None and row.sessions else "-"


def abandoned_rate_text(row: RateRow) -> str:
    if row.abandoned is None:
        return NOT_TRACKED
    return percent(row.abandoned_rate) if row.agents else "-"


def window_context(row: RateRow | None) -> dict | None:
    """A window (before/since, now/before) for the template: rates as text, "not tracked" where
    the tally did not measure it."""
    if row is None:
        return None
    return {
        "sessions": row.sessions,
        "empty": row.empty,
        "rate": rate_text(row),
        "interval": interval(row),
        "small": is_small_sample(row.sessions),
        "tracked": row.abandoned is not None,
        "agents": row.agents,
        "abandoned": row.abandoned,
        "abandoned_rate": abandoned_rate_text(row),
        "abandoned_interval": abandoned_interval(row),
    }


def _rest(rows, **sums) -> dict | None:
    """The row summing ``rows`` (the models past ``PAGE_ROWS``): their number, and per name in
    ``sums`` the total of that attribute (a callable of a row); None when there are none."""
    if not rows:
        return None
    return {"models": len(rows), **{name: sum(pick(row) for row in rows) for name, pick in sums.items()}}


def _summed(rows: list[RateRow], key: str) -> RateRow | None:
    """``rows`` added up under ``key``; None for no row (a figure not measured stays None)."""
    rows = [row for row in rows if row is not None]
    if not rows:
        return None
    total = rows[0].keyed(key)
    for row in rows[1:]:
        total += row
    return total


def page_context(request, model_admin, form, page: AnalyticsPage) -> dict:
    report, scope = page.report, page.scope
    ordered = reporting.sort_rows(report.rows, form.cleaned_data["sort"] or "rate")
    breakdown = page.breakdown
    causes_ordered = reporting.sort_rows([r for r in breakdown.rows if r.empty], "rate")
    # The model with the most empty sessions by count (the table sorts by rate).
    worst = max(report.rows, key=lambda r: (r.empty, r.rate), default=None)
    # Ids only of the models the page links to: a lookup of 10,000 names is most of a capped page.
    shown = [row.key for row in (*ordered[:PAGE_ROWS], *causes_ordered[:PAGE_ROWS])]
    model_ids = model_ids_by_name(
        [*shown, *([worst.key] if worst else []), *([model_key(scope.model)] if scope.model else [])]
    )
    base_filters = _changelist_filters(scope)
    if scope.model is not None and model_key(scope.model) in model_ids:
        base_filters["model__id__exact"] = model_ids[model_key(scope.model)]

    def drill(key, **extra):
        params = dict(base_filters, **extra)
        if key in model_ids:
            params["model__id__exact"] = model_ids[key]
        elif key is not None:
            params["model__isnull"] = "True"
        return session_changelist_url(**params)

    split = page.split
    rows = []
    for row in ordered[:PAGE_ROWS]:
        before, since = split.models.get(row.key, (None, None)) if split else (None, None)
        rows.append(
            {
                "key": row.key,
                "colour": model_colour_class(row.key),
                "sessions": row.sessions,
                "empty": row.empty,
                "rate": percent(row.rate),
                "interval": interval(row),
                "small": is_small_sample(row.sessions),
                "bar": rate_bar(row.rate),
                "url": drill(row.key),
                "empty_url": drill(row.key, empty="yes"),
                "before": window_context(before),
                "since": window_context(since),
            }
        )
    rest = _rest(ordered[PAGE_ROWS:], sessions=lambda r: r.sessions, empty=lambda r: r.empty)
    if rest:
        rest["rate"] = percent(rest["empty"] / rest["sessions"] if rest["sessions"] else 0.0)
        if split:
            windows = [split.models.get(row.key, (None, None)) for row in ordered[PAGE_ROWS:]]
            rest["before"] = window_context(_summed([before for before, _ in windows], "before"))
            rest["since"] = window_context(_summed([since for _, since in windows], "since"))
    if worst is not None:
        worst = {**worst.as_dict(), "rate": percent(worst.rate), "url": drill(worst.key, empty="yes")}
    query = request.GET.copy()
    query.pop("format", None)
    query.pop("table", None)

    def download(fmt, **extra):
        return "?" + urlencode({**query.dict(), "format": fmt, **extra})

    return {
        "rollup": page.rollup,
        "rows": rows,
        "rows_rest": rest,
        "total_rate": percent(report.total.rate),
        "total_interval": interval(report.total),
        "total_url": drill(None),
        "total_empty_url": drill(None, empty="yes"),
        "worst": worst,
        "bucket": page.trend.bucket,
        "bucket_chosen": form.cleaned_data["bucket"] is None,
        "min_sample": MIN_SAMPLE,
        "csv_url": download("csv"),
        "json_url": download("json"),
        "csv_tables": [(name, download("csv", table=name)) for name in CSV_TABLES[1:]],
        "csv_causes_url": download("csv", table="causes"),
        "csv_abandoned_url": download("csv", table="abandoned"),
        "split": _split(split, drill),
        "comparison": None if split else _comparison(page.comparison),  # shown without a marker only
        "markers": page.markers,
        "can_add_marker": request.user.has_perm("sessions_app.add_trendmarker"),
        "markers_url": reverse("admin:sessions_app_trendmarker_changelist"),
        **_abandoned(request, model_admin, page),
        **_causes(page, causes_ordered, drill),
        **_trend(page, base_filters),
    }


def _split(split, drill) -> dict | None:
    """The headline: the rates since the latest marker, beside those before it."""
    if split is None:
        return None
    since_url = session_changelist_url(**{"started_at__gte": split.marker.at.isoformat(sep=" ")})
    return {
        "marker": split.marker,
        "before": window_context(split.before),
        "since": window_context(split.since),
        "since_url": since_url,
    }


def _comparison(comparison) -> dict:
    def change(value):
        return "-" if value is None else f"{value * 100:+.1f} points"

    return {
        "now": window_context(comparison.now)
        | {"since": comparison.ranges["now"][0], "until": comparison.ranges["now"][1]},
        "before": window_context(comparison.before)
        | {"since": comparison.ranges["before"][0], "until": comparison.ranges["before"][1]},
        "marker": comparison.marker,
        "change": change(comparison.change),
        "falling": comparison.change is not None and comparison.change < 0,
        "abandoned_change": change(comparison.abandoned_change),
        "abandoned_falling": comparison.abandoned_change is not None and comparison.abandoned_change < 0,
    }


def _abandoned(request, model_admin, page: AnalyticsPage) -> dict:
    """The "ended without a message" section: the abandoned-agent tally per model, beside the
    sessions those models started since the tally began (abandoned / (abandoned + sessions))."""
    joined, scope = page.abandoned, page.scope
    if joined is None:
        return {"abandoned_without_profile": True}
    tally_url = reverse("admin:agents_app_abandonedagenttally_changelist")
    params = {}
    if scope.source:
        params["source"] = scope.source
    if scope.since:
        params["day__gte"] = scope.since.date().isoformat()
    if scope.until:
        params["day__lt"] = scope.until.date().isoformat()
    ordered = sorted(
        (r for r in joined.rows if r.abandoned), key=lambda r: (-(r.abandoned_rate or 0), -r.agents, r.key)
    )
    rows = [
        {
            "key": row.key,
            "colour": model_colour_class(row.key),
            "agents": row.agents,
            "abandoned": row.abandoned,
            "rate": abandoned_rate_text(row),
            "interval": abandoned_interval(row),
            "small": is_small_sample(row.agents),
            "bar": rate_bar(row.abandoned_rate or 0.0),
            "reasons": ", ".join(
                f"{reason} {count}" for reason, count in sorted(row.reasons.items(), key=lambda i: (-i[1], i[0]))
            ),
            "url": f"{tally_url}?{urlencode({**params, 'model__name': model_of_key(row.key) or ''})}",
        }
        for row in ordered[:PAGE_ROWS]
    ]
    total = joined.total
    return {
        "abandoned_rows": rows,
        "abandoned_rest": _rest(ordered[PAGE_ROWS:], agents=lambda r: r.agents, abandoned=lambda r: r.abandoned),
        "abandoned_total": total,
        "abandoned_rate": abandoned_rate_text(total),
        "abandoned_interval": abandoned_interval(total),
        "silent_rate": percent(total.silent_rate or 0.0),
        "tally_since": page.tally_since,
        "tally_url": f"{tally_url}?{urlencode(params)}" if params else tally_url,
        "can_view_tally": model_admin.admin_site.is_registered(AbandonedAgentTally)
        and request.user.has_perm("agents_app.view_abandonedagenttally"),
    }


def _causes(page: AnalyticsPage, ordered: list[RateRow], drill) -> dict:
    """The "Why empty" section: per model (``ordered``: those with empty sessions, highest rate
    first), its empty sessions per cause, as counts and as rates of all its sessions, with links to
    the session list filtered by model and cause; the models past ``PAGE_ROWS`` in one row."""
    breakdown = page.breakdown

    def cells(row, causes, key):
        return [
            {
                "count": causes[cause],
                "rate": percent(causes[cause] / row.sessions) if row.sessions else "-",
                "url": drill(key, cause=cause),
            }
            for cause in CAUSES
        ]

    rows = [
        {"key": row.key, "empty": row.empty, "causes": cells(row, breakdown.causes[row.key], row.key)}
        for row in ordered[:PAGE_ROWS]
    ]
    rest = _rest(ordered[PAGE_ROWS:], empty=lambda r: r.empty)
    if rest:
        rest["causes"] = [sum(breakdown.causes[r.key][cause] for r in ordered[PAGE_ROWS:]) for cause in CAUSES]
    total = breakdown.report.total
    return {
        "cause_rows": rows,
        "cause_rest": rest,
        "cause_total": {"empty": total.empty, "causes": cells(total, breakdown.total, None)},
        "cause_labels": [(cause, CAUSE_LABELS[cause]) for cause in CAUSES],
    }


def _trend(page: AnalyticsPage, base_filters: dict) -> dict:
    """The trend table (a row per bucket, with drill-down links) and its chart."""
    trend, scope = page.trend, page.scope
    span = BUCKET_SPANS[trend.bucket]
    trend_rows = []
    for row in trend.rows:
        start = dt.datetime.fromisoformat(row.key).replace(tzinfo=dt.UTC)
        # The bucket's range, within the page's own since/until.
        lower = max(start, scope.since) if scope.since else start
        upper = min((bound for bound in (scope.until, _bucket_end(start, span)) if bound), default=None)
        params = {**base_filters, **_changelist_range(lower, upper)}
        trend_rows.append(
            {
                "bucket": row.key,
                "partial": row.key == trend.partial,
                "sessions": row.sessions,
                "empty": row.empty,
                "rate": rate_text(row),
                "interval": interval(row),
                "small": is_small_sample(row.sessions),
                "abandoned": NOT_TRACKED if row.abandoned is None else row.abandoned,
                "abandoned_rate": abandoned_rate_text(row),
                "models": [rate_cell(line.buckets.get(row.key)) for line in trend.lines],
                "empty_url": session_changelist_url(**params, empty="yes"),
            }
        )
    chart = trend_chart(trend, span, page.report.total, markers=page.markers)
    columns = [{"name": line.name, "colour": line_class(line).split()[-1], "worst": line.worst} for line in trend.lines]
    return {
        "trend_rows": trend_rows,
        "trend_models": columns,
        "has_other": any(line.other for line in trend.lines),
        "drawn_models": len([line for line in trend.lines if not line.other]),
        "worst_line": next((line.name for line in trend.lines if line.worst), None),
        "partial": trend.partial,
        **chart,
    }


def _bucket_end(start: dt.datetime, span: dt.timedelta) -> dt.datetime | None:
    """The end of the bucket starting at ``start``; None (open) for the very last days of year 9999."""
    try:
        return start + span
    except OverflowError:
        return None


def _changelist_filters(scope: Scope) -> dict:
    """The session changelist's own query parameters for the page's scope."""
    params = _changelist_range(scope.since, scope.until)
    for name in ("source", "profile"):  # the changelist's exact-value filters of the same names
        if getattr(scope, name):
            params[name] = getattr(scope, name)
    return params


def _changelist_range(since: dt.datetime | None, until: dt.datetime | None) -> dict:
    """``started_at__gte``/``__lt`` (UTC bounds): the session changelist's DateFieldListFilter parameters."""
    params = {}
    if since is not None:
        params["started_at__gte"] = since.isoformat(sep=" ")
    if until is not None:
        params["started_at__lt"] = until.isoformat(sep=" ")
    return params
