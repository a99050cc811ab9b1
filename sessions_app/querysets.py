"""Named, chainable filters over sessions: ``Session.objects.empty().of_model("m").started_between(a, b)``.

Every reader (analytics, admin, prune, metrics) builds its scope from these, so a filter has one
meaning everywhere: model and source match exactly (byte for byte, MariaDB included), ``since`` is
inclusive and ``until`` exclusive on ``started_at``.
"""

from django.db import models
from django.db.models import Exists, OuterRef, Q

from hermes_site.db import filter_exact


class SessionQuerySet(models.QuerySet):
    def _message_rows(self) -> Exists:
        """EXISTS (a message row of the outer session), on the indexed ``message(session_id, ...)``."""
        messages = self.model._meta.get_field("messages").related_model._default_manager
        return Exists(messages.filter(session_id=OuterRef("pk")))

    def _children(self) -> Exists:
        """EXISTS (a session continuing the outer one after compression), on the parent index."""
        return Exists(self.model._default_manager.filter(parent_session_id=OuterRef("pk")))

    def empty(self):
        """Sessions without any message row."""
        return self.filter(~self._message_rows())

    def non_empty(self):
        """Sessions with at least one message row."""
        return self.filter(self._message_rows())

    def with_has_messages(self):
        """Annotate ``has_messages`` (bool) on each session."""
        return self.annotate(has_messages=self._message_rows())

    def with_has_children(self):
        """Annotate ``has_children`` (bool) on each session."""
        return self.annotate(has_children=self._children())

    def open(self):
        """Sessions that have not ended."""
        return self.filter(ended_at__isnull=True)

    def ended(self):
        """Sessions that have ended."""
        return self.filter(ended_at__isnull=False)

    def with_children(self):
        """Sessions that are the parent of at least one other session."""
        return self.filter(self._children())

    def without_children(self):
        """Sessions that no other session continues."""
        return self.filter(~self._children())

    def started_between(self, since=None, until=None):
        """Sessions started at or after ``since`` and before ``until`` (aware datetimes; None: unbounded)."""
        queryset = self
        if since is not None:
            queryset = queryset.filter(started_at__gte=since)
        if until is not None:
            queryset = queryset.filter(started_at__lt=until)
        return queryset

    def started_before(self, cutoff):
        """Sessions started before ``cutoff``."""
        return self.filter(started_at__lt=cutoff)

    def of_model(self, name: str):
        """Sessions of the model named exactly ``name`` (a binary-collated key on MySQL/MariaDB)."""
        return self.filter(model__name=name)

    def from_source(self, source: str):
        """Sessions from exactly ``source`` ("CLI" is not "cli", on MariaDB too)."""
        return filter_exact(self, "source", source)

    def matching(self, *, since=None, until=None, model=None, source=None):
        """The scope of a report: every filter given (None leaves it out), each as above."""
        queryset = self.started_between(since, until)
        if model is not None:
            queryset = queryset.of_model(model)
        if source is not None:
            queryset = queryset.from_source(source)
        return queryset

    def prunable(self, cutoff=None, *, include_open: bool = False):
        """Sessions that may be deleted: empty, continued by no other session, started before
        ``cutoff`` (None: any time) and ended (unless ``include_open``)."""
        return self.filter(self.prunable_condition(cutoff, include_open=include_open))

    def prunable_condition(self, cutoff=None, *, include_open: bool = False) -> Q:
        """``prunable``'s condition as a ``Q``, for a statement that must re-check it (the DELETE)."""
        condition = ~self._message_rows() & ~self._children()
        if cutoff is not None:
            condition &= Q(started_at__lt=cutoff)
        return condition if include_open else condition & Q(ended_at__isnull=False)
