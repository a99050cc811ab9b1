"""The admin's empty-session analytics page (``admin:sessions_app_session_empty_rates``).

The view parses the filters, asks ``page_data`` for the numbers once, and renders them: as the
HTML page (``page.page_context``), or as ``?format=json``/``?format=csv`` (``exports``), which
carry everything the page shows. An unknown ``format`` (or CSV ``table``) is a 400 naming the
allowed values.
"""

import io

from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponse, JsonResponse
from django.template.response import TemplateResponse
from django.views import View

from sessions_app.admin.exports import CSV_TABLES, page_json, write_page_csv
from sessions_app.admin.forms import FORMATS, EmptyRatesForm
from sessions_app.admin.page import page_context
from sessions_app.admin.page_data import page_data
from sessions_app.analytics import exact_values
from sessions_app.models import Session

# The page's report filters (form fields of the same names).
FILTERS = ("since", "until", "source", "profile")


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
        sessions = Session.objects.all()
        form = EmptyRatesForm(
            request.GET, sources=exact_values(sessions, "source"), profiles=exact_values(sessions, "profile")
        )
        data = None
        if form.is_valid():
            filters = {name: form.cleaned_data[name] or None for name in FILTERS}
            try:
                data = page_data(**filters, bucket=form.cleaned_data["bucket"])
            except ValidationError as exc:
                for field, errors in exc.message_dict.items():
                    form.add_error(field if field in form.fields else None, errors)
        if data is None:
            if wanted in ("csv", "json"):
                return _error_response(wanted, form)
            return self.render(request, form, None)
        sort = form.cleaned_data["sort"] or None
        if wanted == "json":
            return HttpResponse(page_json(data, sort), content_type="application/json")
        if wanted == "csv":
            buffer = io.StringIO()
            write_page_csv(data, table, sort, buffer)
            response = HttpResponse(buffer.getvalue(), content_type="text/csv; charset=utf-8")
            name = "by-model" if table == "models" else table
            response["Content-Disposition"] = f'attachment; filename="empty-session-rates-{name}.csv"'
            return response
        return self.render(request, form, data)

    def render(self, request, form, data):
        context = {
            **self.model_admin.admin_site.each_context(request),
            "opts": self.model_admin.model._meta,
            "title": "Empty-session rates",
            "form": form,
            "report": data.report if data else None,
            "has_filters": any(request.GET.get(name) for name in FILTERS),
        }
        if data is not None:
            context.update(page_context(request, self.model_admin, form, data))
        return TemplateResponse(request, self.template_name, context)


def _plain_400(text: str) -> HttpResponse:
    return HttpResponse(text + "\n", status=400, content_type="text/plain; charset=utf-8")


def _error_response(wanted: str, form: EmptyRatesForm) -> HttpResponse:
    errors = {field: [str(message) for message in messages] for field, messages in form.errors.items()}
    if wanted == "json":
        return JsonResponse({"errors": errors}, status=400)
    text = "\n".join(f"{field}: {message}" for field, messages in errors.items() for message in messages)
    return _plain_400(text)
