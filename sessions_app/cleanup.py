"""Deleting the empty sessions an operator selected (the admin action)."""

from dataclasses import dataclass

from django.db import connections, transaction

from sessions_app.models import Message, Session

# Keeps every IN (...) list far below SQLite's bound-parameter limit.
BATCH_SIZE = 500


@dataclass(frozen=True)
class EmptyDeletion:
    deleted: int  # empty sessions deleted
    kept_with_messages: int  # selected sessions kept because they have message rows
    kept_with_children: int  # empty sessions kept because compression children continue them


def delete_empty_sessions(queryset) -> EmptyDeletion:
    """Delete the sessions of ``queryset`` that have no message row and no child session.

    The empty candidates are locked (``SELECT ... FOR UPDATE``) and checked again under the lock,
    so a message an agent commits meanwhile is never deleted along with its session: either it
    landed first and the session is kept, or its insert waits for this transaction and the save
    path's retry then creates the session again. Never deletes a message.
    """
    using = queryset.db
    queryset = queryset.order_by()
    locking = {"of": ("self",)} if connections[using].features.has_select_for_update_of else {}
    with transaction.atomic(using=using):
        selected = queryset.count()
        # Locked in primary-key order, as prune_empty_sessions does, so the two never deadlock.
        candidates = list(queryset.empty().order_by("pk").select_for_update(**locking).values_list("pk", flat=True))
        deleted = with_children = 0
        for start in range(0, len(candidates), BATCH_SIZE):
            batch = candidates[start : start + BATCH_SIZE]
            busy = set(Message.objects.using(using).filter(session_id__in=batch).values_list("session_id", flat=True))
            parents = set(
                Session.objects.using(using)
                .filter(parent_session_id__in=batch)
                .values_list("parent_session_id", flat=True)
            )
            with_children += len(parents - busy)
            doomed = [pk for pk in batch if pk not in busy and pk not in parents]
            deleted += Session.objects.using(using).filter(pk__in=doomed).delete()[1].get(Session._meta.label, 0)
    return EmptyDeletion(
        deleted=deleted,
        kept_with_messages=selected - deleted - with_children,
        kept_with_children=with_children,
    )
