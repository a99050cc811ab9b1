"""Empty-session analytics: how many sessions never got a message, per model, source, profile or period.

Read-only selectors that return plain data (dataclasses and dicts), shared by the
``empty_sessions`` command, the admin pages and the CSV/JSON exports. Each report is one
aggregate query, whatever the number of sessions.

- ``filters``: the groupings and filters, checked once and applied to sessions once;
- ``rates``: ``empty_session_rates`` and its report dataclasses;
- ``trend``: the per-(bucket, model) trend of the analytics page;
- ``daily``: sessions per (UTC day, model), the daily rollup before its watermark, live after it;
- ``causes``: why an empty session is empty (``CAUSES``, their precedence and definitions);
- ``breakdown``: ``empty_cause_breakdown``/``empty_cause_counts``, rates crossed with causes;
- ``abandoned``: agents that ended without a message (the abandoned-agent tally) beside them;
- ``comparison``: now versus before (the last 7 days beside the period before, or before a marker);
- ``intervals``: the Wilson 95% interval of a rate, and the sample size below which it means little;
- ``language_models``: the per-``LanguageModel`` counts of the model list;
- ``metrics``: what ``GET /metrics`` exposes (per model and source, the models capped).

Conventions (documented in the README):
- "Empty" means no message row (an EXISTS on the indexed messages), never the stored counter.
- ``since`` is inclusive and ``until`` exclusive, both on ``Session.started_at``. A ``date`` means
  midnight UTC of that day; a ``datetime`` must be aware (a naive one is refused: it would be read
  in whatever time zone the server happens to use).
- Time buckets are UTC and keyed by the ISO date of their first day: ``day`` and ``week``
  ``"2026-01-05"`` (weeks start on Monday, as ISO weeks do), ``month`` ``"2026-01"``.
- Every profile is counted unless ``profile=`` names one (exact match); ``by="profile"`` splits
  them. The abandoned-agent tally has no profile: its reports refuse both.
- Sessions without a model, or with a model recorded as ``""``, are grouped under the key
  ``NO_MODEL_KEY`` (``"(none)"``): one row.
- Rows are ordered by key, by code point (date keys therefore chronologically), the same on
  every backend; callers re-sort for display.
"""

from sessions_app.analytics.abandoned import (
    AbandonedAgentReport,
    AbandonedRow,
    abandoned_agent_counts,
    abandoned_agent_rates,
    with_abandoned,
)
from sessions_app.analytics.breakdown import CauseBreakdown, breakdown_of, empty_cause_breakdown, empty_cause_counts
from sessions_app.analytics.causes import CAUSES, cause_counts, cause_totals
from sessions_app.analytics.comparison import RateComparison, Window, rate_comparison
from sessions_app.analytics.daily import DailyCount, RollupStatus, daily_counts, rollup_status
from sessions_app.analytics.filters import (
    GROUPINGS,
    KEY_GROUPINGS,
    check_grouping,
    empty_condition,
    exact_name,
    exact_values,
    report_filters,
    utc_bound,
)
from sessions_app.analytics.intervals import MIN_SAMPLE, is_small_sample, wilson_interval
from sessions_app.analytics.language_models import model_ids_by_name, session_counts_by_model, with_session_counts
from sessions_app.analytics.metrics import metrics_snapshot
from sessions_app.analytics.rates import (
    NO_MODEL_KEY,
    RESERVED_KEYS,
    TOTAL_KEY,
    EmptySessionReport,
    RateRow,
    SQLitePeriodKey,
    build_report,
    empty_session_rates,
    group_expression,
    group_key,
    model_key,
    model_of_key,
    session_and_empty_counts,
)
from sessions_app.analytics.trend import (
    TREND_BUCKETS,
    WEEKLY_AFTER_DAYS,
    TrendPoint,
    bucket_totals,
    default_bucket,
    empty_rate_trend,
    model_buckets,
    report_from_trend,
    trend_markers,
)

__all__ = [
    "CAUSES",
    "GROUPINGS",
    "KEY_GROUPINGS",
    "MIN_SAMPLE",
    "NO_MODEL_KEY",
    "RESERVED_KEYS",
    "TOTAL_KEY",
    "TREND_BUCKETS",
    "WEEKLY_AFTER_DAYS",
    "AbandonedAgentReport",
    "AbandonedRow",
    "CauseBreakdown",
    "DailyCount",
    "EmptySessionReport",
    "RateComparison",
    "RateRow",
    "RollupStatus",
    "SQLitePeriodKey",
    "TrendPoint",
    "Window",
    "abandoned_agent_counts",
    "abandoned_agent_rates",
    "breakdown_of",
    "bucket_totals",
    "build_report",
    "cause_counts",
    "cause_totals",
    "check_grouping",
    "daily_counts",
    "default_bucket",
    "empty_cause_breakdown",
    "empty_cause_counts",
    "empty_condition",
    "empty_rate_trend",
    "empty_session_rates",
    "exact_name",
    "exact_values",
    "group_expression",
    "group_key",
    "is_small_sample",
    "metrics_snapshot",
    "model_buckets",
    "model_ids_by_name",
    "model_key",
    "model_of_key",
    "rate_comparison",
    "report_filters",
    "report_from_trend",
    "rollup_status",
    "session_and_empty_counts",
    "session_counts_by_model",
    "trend_markers",
    "utc_bound",
    "wilson_interval",
    "with_abandoned",
    "with_session_counts",
]
