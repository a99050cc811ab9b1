from django.db import models
from django.db.models import Exists, OuterRef


def has_messages() -> Exists:
    """For the session of the outer query: does it have a message row? An EXISTS on the indexed
    ``message(session_id, ...)``; ``~has_messages()`` is "empty"."""
    from sessions_app.models import Message

    return Exists(Message.objects.filter(session_id=OuterRef("pk")))


def has_children() -> Exists:
    """For the session of the outer query: is it the parent of another session (a compression
    chain continues it)?"""
    from sessions_app.models import Session

    return Exists(Session.objects.filter(parent_session_id=OuterRef("pk")))


class SessionQuerySet(models.QuerySet):
    """Named, chainable filters over sessions.

    "Empty" is decided by the message rows themselves (an EXISTS on the indexed
    ``message(session_id, ...)``), never by the stored ``message_count`` counter, so rows
    written by other code paths are always counted right.
    """

    def with_has_messages(self):
        return self.annotate(has_messages=has_messages())

    def empty(self):
        """Sessions without any message row."""
        return self.filter(~has_messages())

    def non_empty(self):
        """Sessions with at least one message row."""
        return self.filter(has_messages())

    def open(self):
        """Sessions that have not ended."""
        return self.filter(ended_at__isnull=True)

    def with_children(self):
        """Sessions that are the parent of at least one other session."""
        return self.filter(has_children())
