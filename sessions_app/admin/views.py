"""The admin's empty-session analytics page (``admin:sessions_app_session_empty_rates``).

``?format=csv`` and ``?format=json`` are one ``empty_session_rates`` call (the same numbers as
``manage.py empty_sessions``). The HTML page reads the sessions once: one grouped query
(``empty_rate_trend``, per bucket and model) feeds the trend chart, and its sums per model are the
per-model table (``report_from_trend``; the same numbers again, without a second pass over a
million sessions). Two small queries on the abandoned-agent tally (``abandoned_agent_counts``, per
model and per bucket) feed the "ended without a message" section and the chart's second series.
"""

import datetime as dt
from urllib.parse import urlencode

from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponse, JsonResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views import View

from agents_app.models import AbandonedAgentTally
from sessions_app import reporting
from sessions_app.admin.charts import percent, rate_bar, rate_cell, trend_chart
from sessions_app.admin.filters import CAUSE_LABELS
from sessions_app.admin.forms import EmptyRatesForm
from sessions_app.admin.links import session_changelist_url
from sessions_app.analytics import (
    CAUSES,
    abandoned_agent_counts,
    bucket_totals,
    empty_cause_breakdown,
    empty_rate_trend,
    empty_session_rates,
    exact_values,
    model_buckets,
    model_ids_by_name,
    report_from_trend,
    rollup_status,
    with_abandoned,
)
from sessions_app.models import Session

BUCKETS = {"day": dt.timedelta(days=1), "week": dt.timedelta(weeks=1)}
# The trend chart draws the total and the models with the most sessions: more lines than this
# cannot be told apart. The per-model table below it lists every model.
TREND_MODELS = 5


class EmptyRatesView(View):
    """The analytics page, and its CSV and JSON downloads (``?format=csv|json``)."""

    model_admin = None
    template_name = "admin/sessions_app/session/empty_rates.html"

    def get(self, request):
        if not self.model_admin.has_view_permission(request):
            raise PermissionDenied
        form = EmptyRatesForm(request.GET, sources=exact_values(Session.objects.all(), "source"))
        wanted = request.GET.get("format") or "html"
        report = points = None
        self.rollup = None
        if form.is_valid():
            filters = {name: form.cleaned_data[name] or None for name in ("since", "until", "source")}
            try:
                if form.cleaned_data["format"] == "html":
                    # Read once: the trend uses it and the page says how far it goes.
                    self.rollup = rollup_status()
                    points = empty_rate_trend(form.cleaned_data["bucket"], **filters, rollup=self.rollup)
                    report = report_from_trend(points, **filters)
                else:
                    report = empty_session_rates("model", **filters)
            except ValidationError as exc:
                for field, errors in exc.message_dict.items():
                    form.add_error(field if field in form.fields else None, errors)
        if report is None:
            if wanted in ("csv", "json"):
                return _error_response(wanted, form)
            return self.render(request, form, None)
        if form.cleaned_data["format"] == "html":
            # The report's own filters: checked, and the bounds as aware UTC datetimes.
            return self.render(request, form, report, report.filters, points)
        sort = form.cleaned_data["sort"]
        exported = reporting.sorted_report(report, sort) if sort else report
        if form.cleaned_data["format"] == "json":
            return HttpResponse(reporting.report_json(exported), content_type="application/json")
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="empty-session-rates-by-model.csv"'
        reporting.write_csv(exported, response)
        return response

    def render(self, request, form, report, filters=None, points=None):
        opts = self.model_admin.model._meta
        context = {
            **self.model_admin.admin_site.each_context(request),
            "opts": opts,
            "title": "Empty-session rates",
            "form": form,
            "report": report,
            "has_filters": any(request.GET.get(name) for name in ("since", "until", "source")),
            "rollup": self.rollup,
        }
        if report is not None:
            context.update(self.report_context(request, form, report, filters, points))
        return TemplateResponse(request, self.template_name, context)

    def report_context(self, request, form, report, filters, points):
        base_filters = _changelist_filters(filters)
        model_ids = model_ids_by_name([row.key for row in report.rows])

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
                "sessions": row.sessions,
                "empty": row.empty,
                "rate": percent(row.rate),
                "bar": rate_bar(row.rate),
                "url": drill(row.key),
                "empty_url": drill(row.key, empty="yes"),
            }
            for row in reporting.sort_rows(report.rows, form.cleaned_data["sort"] or "rate")
        ]
        # The model with the most empty sessions: the first thing an operator looks for.
        worst = max(report.rows, key=lambda r: (r.empty, r.rate), default=None)
        if worst is not None:
            worst = {**worst.as_dict(), "rate": percent(worst.rate), "url": drill(worst.key, empty="yes")}
        bucket = form.cleaned_data["bucket"]
        abandoned = self.abandoned_context(report, filters)
        causes = self.causes_context(filters, drill)
        trend = self.trend_context(bucket, points, report, filters, base_filters)
        query = request.GET.copy()
        query.pop("format", None)
        return {
            "rows": rows,
            "total_rate": percent(report.total.rate),
            "total_url": drill(None),
            "total_empty_url": drill(None, empty="yes"),
            "worst": worst,
            "bucket": bucket,
            "csv_url": "?" + urlencode({**query.dict(), "format": "csv"}),
            "json_url": "?" + urlencode({**query.dict(), "format": "json"}),
            **abandoned,
            **causes,
            **trend,
        }

    def abandoned_context(self, report, filters):
        """The "ended without a message" section: the abandoned-agent tally per model, beside the
        sessions those models started (abandoned / (abandoned + sessions))."""
        joined = with_abandoned(report, abandoned_agent_counts("model", **filters))
        tally_url = reverse("admin:agents_app_abandonedagenttally_changelist")
        params = {}
        if filters["source"]:
            params["source"] = filters["source"]
        if filters["since"]:
            params["day__gte"] = filters["since"].date().isoformat()
        if filters["until"]:
            params["day__lt"] = filters["until"].date().isoformat()
        rows = [
            {
                "key": row.key,
                "agents": row.agents,
                "abandoned": row.abandoned,
                "rate": percent(row.rate),
                "bar": rate_bar(row.rate),
                "reasons": ", ".join(
                    f"{reason} {count}" for reason, count in sorted(row.reasons.items(), key=lambda i: (-i[1], i[0]))
                ),
                "url": f"{tally_url}?{urlencode({**params, 'model__name': row.key})}",
            }
            for row in reporting.sort_rows([r for r in joined.rows if r.abandoned], "rate")
        ]
        return {
            "abandoned_rows": rows,
            "abandoned_total": joined.total,
            "abandoned_rate": percent(joined.total.rate),
            "silent_rate": percent(joined.total.silent_rate),
            "tally_url": f"{tally_url}?{urlencode(params)}" if params else tally_url,
            "can_view_tally": self.model_admin.admin_site.is_registered(AbandonedAgentTally)
            and self.request.user.has_perm("agents_app.view_abandonedagenttally"),
        }

    def causes_context(self, filters, drill):
        """The "Why empty" section: per model, its empty sessions per cause, as counts and as rates
        of all its sessions, with links to the session list filtered by model and cause."""
        breakdown = empty_cause_breakdown("model", **filters)

        def cells(row, causes):
            return [
                {
                    "count": causes[cause],
                    "rate": percent(causes[cause] / row.sessions) if row.sessions else "-",
                    "url": drill(row.key if row is not breakdown.report.total else None, cause=cause),
                }
                for cause in CAUSES
            ]

        rows = [
            {"key": row.key, "empty": row.empty, "causes": cells(row, breakdown.causes[row.key])}
            for row in reporting.sort_rows([r for r in breakdown.rows if r.empty], "rate")
        ]
        total = breakdown.report.total
        return {
            "cause_rows": rows,
            "cause_total": {"empty": total.empty, "causes": cells(total, breakdown.total)},
            "cause_labels": [(cause, CAUSE_LABELS[cause]) for cause in CAUSES],
        }

    def trend_context(self, bucket, points, report, filters, base_filters):
        """The trend table (a row per bucket, with drill-down links) and its chart."""
        abandoned = {key: sum(reasons.values()) for key, reasons in abandoned_agent_counts(bucket, **filters).items()}
        sessions_per_bucket = bucket_totals(points)
        # A bucket with abandoned agents but no session still gets its row.
        totals = {label: sessions_per_bucket.get(label, (0, 0)) for label in sorted(sessions_per_bucket | abandoned)}
        per_model = model_buckets(points)
        top = [r.key for r in reporting.sort_rows(report.rows, "sessions")[:TREND_MODELS]]
        span = BUCKETS[bucket]
        trend_rows = []
        for label, (sessions, empty) in totals.items():
            agents = sessions + abandoned.get(label, 0)
            start = dt.datetime.fromisoformat(label).replace(tzinfo=dt.UTC)
            # The bucket's range, within the page's own since/until.
            lower = max(start, filters["since"]) if filters["since"] else start
            upper = min((bound for bound in (filters["until"], _bucket_end(start, span)) if bound), default=None)
            params = {**base_filters, **_changelist_range(lower, upper)}
            trend_rows.append(
                {
                    "bucket": label,
                    "sessions": sessions,
                    "empty": empty,
                    "rate": percent(empty / sessions) if sessions else "-",
                    "abandoned": abandoned.get(label, 0),
                    "abandoned_rate": percent(abandoned.get(label, 0) / agents) if agents else "-",
                    "models": [rate_cell(per_model.get(name, {}).get(label)) for name in top],
                    "empty_url": session_changelist_url(**params, empty="yes"),
                }
            )
        chart = trend_chart(bucket, span, totals, abandoned, per_model, top, report.total)
        return {"trend_rows": trend_rows, "trend_models": top, **chart}


def _bucket_end(start: dt.datetime, span: dt.timedelta) -> dt.datetime | None:
    """The end of the bucket starting at ``start``; None (open) for the very last days of year 9999."""
    try:
        return start + span
    except OverflowError:
        return None


def _changelist_filters(filters: dict) -> dict:
    """The session changelist's own query parameters for the report's filters."""
    params = _changelist_range(filters["since"], filters["until"])
    if filters["source"]:
        params["source"] = filters["source"]
    return params


def _changelist_range(since: dt.datetime | None, until: dt.datetime | None) -> dict:
    """``started_at__gte``/``__lt`` (UTC bounds): the session changelist's DateFieldListFilter parameters."""
    params = {}
    if since is not None:
        params["started_at__gte"] = since.isoformat(sep=" ")
    if until is not None:
        params["started_at__lt"] = until.isoformat(sep=" ")
    return params


def _error_response(wanted: str, form: EmptyRatesForm) -> HttpResponse:
    errors = {field: [str(message) for message in messages] for field, messages in form.errors.items()}
    if wanted == "json":
        return JsonResponse({"errors": errors}, status=400)
    text = "\n".join(f"{field}: {message}" for field, messages in errors.items() for message in messages)
    return HttpResponse(text + "\n", status=400, content_type="text/plain; charset=utf-8")
