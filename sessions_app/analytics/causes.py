"""Why a session is empty: one cause per empty session, decided from the columns of its row.

Causes, in precedence order (``CAUSES``; the first that applies wins):

- ``lost_transcript``: usage was recorded (API calls, counted messages or tool calls, or tokens)
  but no message row exists: the agent worked and its transcript never arrived;
- ``never_ended``: no usage, still open (no ``ended_at``), started before now minus the grace
  period (setting ``HERMES_OPEN_GRACE``): it will not speak any more, and prune (which keeps open
  sessions) never removes it; ``close_stale_sessions`` ends such sessions;
- ``open``: no usage, still open, started within the grace period: it may still speak;
- ``ghost``: no usage and ended: an agent that was built and ended without a word.

Only ``lost_transcript`` overlaps the others (an open session with tokens is a lost transcript);
the other three split the sessions without usage by ``ended_at`` and the start, so the causes add
up to the empty sessions exactly. Emptiness is ``empty_condition()``, the reports' one definition.
"""

import datetime as dt

from django.db.models import Count

from sessions_app.analytics.filters import empty_condition
from sessions_app.querysets import CAUSES, cause_condition, stale_before


def cause_counts(stale: dt.datetime) -> dict[str, Count]:
    """``{cause: Count(...)}``: the conditional counts of one aggregate query (``.aggregate()`` or
    ``.values(group).annotate()``), one per cause. ``stale``: now minus the grace period."""
    # The row's own columns come first in each filter, so a database that evaluates the
    # conditions in order probes the message index only for the rows that can match.
    empty = empty_condition()
    return {cause: Count("pk", filter=cause_condition(cause, stale_before=stale) & empty) for cause in CAUSES}


def cause_totals(sessions, *, now: dt.datetime | None = None, grace: dt.timedelta | None = None):
    """``(sessions, {cause: empty sessions})`` of a session queryset, in one aggregate query."""
    totals = sessions.order_by().aggregate(sessions=Count("pk"), **cause_counts(stale_before(now, grace)))
    return totals.pop("sessions"), totals


__all__ = ["CAUSES", "cause_counts", "cause_totals"]
