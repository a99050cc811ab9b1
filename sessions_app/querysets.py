from django.db import IntegrityError, models, transaction
from django.db.models import Exists, OuterRef
from django.db.models.utils import resolve_callables


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

    def get_or_create(self, defaults=None, **kwargs):
        """Django's ``get_or_create``, with its read and insert prepared once when the lookup is
        the primary key alone (the save path's first flush): compiling those two queries was
        three quarters of a first flush. Same steps, same results, same race handling; any other
        use is Django's own (``fastwrite.can_get_or_create`` says which)."""
        from sessions_app import fastwrite

        if not fastwrite.can_get_or_create(self, kwargs):
            return super().get_or_create(defaults, **kwargs)
        self._for_write = True
        (pk,) = kwargs.values()
        for_update = bool(self.query.select_for_update)
        if fastwrite.session_exists(self.db, pk, for_update=for_update):
            try:
                return self.get(**kwargs), False
            except self.model.DoesNotExist:
                pass  # deleted by someone else since the check: create it, as Django would
        params = self._extract_model_params(defaults, **kwargs)
        try:
            with transaction.atomic(using=self.db):
                params = dict(resolve_callables(params))
                session = self.model(**params)
                if any(hasattr(value, "resolve_expression") for value in params.values()):
                    # An expression (Now(), Lower(...)) is compiled into the INSERT by Django.
                    session.save(force_insert=True, using=self.db)
                else:
                    fastwrite.insert_session(self.db, session)
                return session, True
        except IntegrityError:
            try:
                return self.get(**kwargs), False
            except self.model.DoesNotExist:
                pass
            raise

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
