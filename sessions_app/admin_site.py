"""The admin site every changelist of the project runs on, ours and contrib's alike, hardened
against input no list can answer: an overlong search, a date or number no database or Python
date can hold, a lookup the database refuses, an action on ids that cannot exist.

``HardenedAdminMixin`` gives a ``ModelAdmin`` that behaviour; ``HermesAdminSite.register`` mixes
it into every admin class registered on the site (``django.contrib.auth``'s ``UserAdmin`` and
``GroupAdmin`` too), and ``HermesAdminConfig`` makes that site Django's default ``admin.site``.
A host project lists ``"sessions_app.admin_site.HermesAdminConfig"`` in ``INSTALLED_APPS`` in
place of ``"django.contrib.admin"`` (Django's documented way to override the default site);
the system check ``hermes.W002`` says when it has not.

What each guard turns into is what Django's admin already does for a bad filter: the list
redirects to itself with ``?e=1`` (``IncorrectLookupParameters``), or shows a warning.
"""

import contextlib
import datetime as dt

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.apps import AdminConfig
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ChangeList
from django.core import checks
from django.core.exceptions import EmptyResultSet, FieldDoesNotExist, FullResultSet, ValidationError
from django.db import DatabaseError, connections, models, transaction
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

# Longest admin search term: room for a session id (128) or a model name (255). A longer one
# is refused with a message: SQLite fails on a LIKE pattern past 50,000 bytes ("LIKE or GLOB
# pattern too complex") or on a query of some 1,000 words ("Expression tree is too large"), and
# each word adds a condition per search field (20,000 words took 7-9 s on PostgreSQL and MariaDB).
MAX_SEARCH_CHARS = 256

# Lookups a URL may not use on any list: a pattern the database compiles (an error, or minutes
# of backtracking on SQLite, whose REGEXP is Python's re) and that no admin link of ours needs.
REFUSED_LOOKUPS = frozenset({"regex", "iregex"})

# What turning a lookup value into SQL, or running it, raises for a value no backend can take:
# 9999-12-31T23:00-05:00 is past the last datetime in UTC (SQLite, MariaDB convert in Python),
# a 40-digit integer does not fit SQLite's driver, year 10000 does not exist, a JSON lookup the
# backend lacks (NotSupportedError), a pattern the database rejects.
_UNANSWERABLE = (ValueError, OverflowError, ValidationError, DatabaseError)

# Lookups of a DateTimeField whose value a URL may give without an offset.
_COMPARISONS = frozenset({"", "exact", "gt", "gte", "lt", "lte"})


class HardenedChangeList(ChangeList):
    """Django's ``ChangeList`` that answers a lookup no database can run with
    ``IncorrectLookupParameters`` (Django's redirect to ``?e=1``) instead of an error page.

    ``get_filters``, ``get_queryset`` and ``get_results`` are ``ChangeList`` internals Django does
    not document; tests/sessions_app/test_admin_site.py fails if their names or roles change."""

    def get_filters_params(self, params=None):
        lookup_params = super().get_filters_params(params)
        for key, values in lookup_params.items():
            if _compares_datetime(self.model, key):
                lookup_params[key] = [_in_current_time_zone(value) for value in values]
        return lookup_params

    def get_filters(self, request):
        try:
            return super().get_filters(request)
        except (ValueError, OverflowError) as exc:
            # date_hierarchy: ?at__year=9999 asks for the year up to 10000-01-01, ?..__day=31 of
            # 9999-12 for the day after it (Django checks the date itself but not its end); a
            # datetime lookup past the last moment in UTC (get_filters_params).
            raise IncorrectLookupParameters(exc) from exc

    def get_queryset(self, request, exclude_parameters=None):
        queryset = super().get_queryset(request, exclude_parameters)
        try:
            # Adapting the lookup values happens while the SQL is built: do it here, once, where a
            # failure can still become a redirect rather than a 500 in the template.
            queryset.query.get_compiler(using=queryset.db).as_sql()
        except (EmptyResultSet, FullResultSet):
            pass
        except _UNANSWERABLE as exc:
            raise IncorrectLookupParameters(exc) from exc
        return queryset

    def get_results(self, request):
        using = self.queryset.db
        # Inside a transaction (ATOMIC_REQUESTS, a test) a failed query aborts it on PostgreSQL: a
        # savepoint keeps it usable. Elsewhere nothing is needed, and no BEGIN is sent for a read.
        guard = connections[using].in_atomic_block and connections[using].vendor == "postgresql"
        try:
            with transaction.atomic(using=using) if guard else contextlib.nullcontext():
                super().get_results(request)
        except (DatabaseError, OverflowError) as exc:
            raise IncorrectLookupParameters(exc) from exc


class HardenedAdminMixin:
    """A ``ModelAdmin`` whose changelist takes only input a database can answer: a bounded search
    term, lookups without regular expressions, dates and numbers in range, and action selections
    of ids the primary key can hold."""

    def get_changelist(self, request, **kwargs):
        changelist = super().get_changelist(request, **kwargs)
        if issubclass(changelist, HardenedChangeList):
            return changelist
        return type(changelist.__name__, (HardenedChangeList, changelist), {})

    def lookup_allowed(self, lookup, value, request=None):
        if REFUSED_LOOKUPS.intersection(lookup.split("__")):
            return False  # a 400 (DisallowedModelAdminLookup), as for a lookup across a relation
        return super().lookup_allowed(lookup, value, request)

    def get_search_results(self, request, queryset, search_term):
        if len(search_term) > MAX_SEARCH_CHARS:
            self.message_user(
                request,
                f"The search term is {len(search_term):,} characters long; the limit is {MAX_SEARCH_CHARS}.",
                messages.WARNING,
            )
            return queryset.none(), False
        return super().get_search_results(request, queryset, search_term)

    def response_action(self, request, queryset):
        selected = request.POST.getlist(helpers.ACTION_CHECKBOX_NAME)
        if bad := [value for value in selected if not _is_key(self.model, value)]:
            self.message_user(
                request,
                f"No action was run: {len(bad)} of the selected ids cannot be {self.model._meta.verbose_name} ids.",
                messages.WARNING,
            )
            return None  # Django then redirects back to the list
        return super().response_action(request, queryset)


def _compares_datetime(model, lookup: str) -> bool:
    """Whether ``lookup`` compares a ``DateTimeField`` of ``model`` itself with a value."""
    name, _, rest = lookup.partition("__")
    try:
        field = model._meta.get_field(name)
    except FieldDoesNotExist:
        return False
    return isinstance(field, models.DateTimeField) and rest in _COMPARISONS


def _in_current_time_zone(text: str) -> str:
    """A date or datetime typed without an offset, read in the current time zone as Django's
    admin forms read it (and without the naive-datetime warning meant for code); other text as it
    is, for the field to accept or refuse. ``OverflowError`` for a moment past the datetimes
    Python has in UTC (9999-12-31T23:59-05:00), which PostgreSQL would compare and SQLite and
    MariaDB could not: refused on every backend alike."""
    try:
        value = parse_datetime(text)
        if value is None and (day := parse_date(text)) is not None:
            value = dt.datetime.combine(day, dt.time())
    except ValueError:
        return text
    if value is None:
        return text
    if timezone.is_naive(value):
        value = timezone.make_aware(value)
    value.astimezone(dt.UTC)
    return value.isoformat()


def _is_key(model, value: str) -> bool:
    """Whether ``value`` can be the primary key of a row of ``model``: what the key field accepts
    (a whole number in the column's range for an integer key, at most ``max_length`` characters
    for a text key), and no NUL, which PostgreSQL cannot take in a text parameter."""
    field = model._meta.pk
    if "\x00" in value:
        return False
    try:
        field.run_validators(field.to_python(value))
    except (ValidationError, ValueError, TypeError, OverflowError):
        return False
    return True


def hardened(admin_class: type) -> type:
    """``admin_class`` with ``HardenedAdminMixin`` in front (itself when it has it already)."""
    if issubclass(admin_class, HardenedAdminMixin):
        return admin_class
    return type(admin_class.__name__, (HardenedAdminMixin, admin_class), {"__module__": admin_class.__module__})


class HermesAdminSite(admin.AdminSite):
    """Django's ``AdminSite``, registering every model admin hardened (``HardenedAdminMixin``)."""

    def register(self, model_or_iterable, admin_class=None, **options):
        super().register(model_or_iterable, hardened(admin_class or admin.ModelAdmin), **options)


class HermesAdminConfig(AdminConfig):
    """``django.contrib.admin`` with ``HermesAdminSite`` as ``admin.site``."""

    default_site = "sessions_app.admin_site.HermesAdminSite"


def check_admin_site(app_configs=None, **kwargs) -> list:
    """System check ``hermes.W002``: every model admin on ``admin.site`` is hardened."""
    plain = [
        model._meta.label
        for model, model_admin in admin.site._registry.items()
        if not isinstance(model_admin, HardenedAdminMixin)
    ]
    if not plain:
        return []
    return [
        checks.Warning(
            f"Model admins on admin.site without the changelist hardening: {', '.join(sorted(plain))}.",
            hint='List "sessions_app.admin_site.HermesAdminConfig" in INSTALLED_APPS instead of '
            '"django.contrib.admin", or give those admins sessions_app.admin_site.HardenedAdminMixin.',
            id="hermes.W002",
        )
    ]
