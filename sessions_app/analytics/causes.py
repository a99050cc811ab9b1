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
up to the empty sessions exactly. The conditions are ``querysets.cause_condition``; the daily
rollup counts them per day (open and never ended together, which a whole day before the grace
period all are), and ``daily.read_days`` counts the days within the grace period live.
"""

from sessions_app.aggregates import cause_counts
from sessions_app.querysets import CAUSES

__all__ = ["CAUSES", "cause_counts"]
