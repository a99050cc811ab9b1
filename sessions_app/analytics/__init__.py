"""Empty-session analytics: how many sessions never got a message, per model, source, profile or period.

Read-only selectors that return plain data (dataclasses and dicts), shared by the
``empty_sessions`` command, the admin pages, the CSV/JSON exports and ``/metrics``. Every report
reads ``daily.read_days``: whole days from the daily rollup, the rest live, so it costs a few
small queries whatever the number of sessions, and its numbers are the rows' at every commit.

- ``daily``: the one reader of sessions (per day, segment, model, source, profile), the rollup's
  status, the filters' choices;
- ``filters``: the groupings (the filters themselves are ``scope.Scope``);
- ``rates``: ``empty_session_rates`` and its report dataclass (rows are ``counts.RateRow``);
- ``trend``: the per-(bucket, model) trend, default bucket, partial bucket, markers;
- ``causes``: why an empty session is empty (``CAUSES``, their precedence and definitions);
- ``breakdown``: ``empty_cause_breakdown``/``empty_cause_counts``, rates crossed with causes;
- ``abandoned``: agents that ended without a message (the abandoned-agent tally) beside them;
- ``comparison``: now versus before (the last 7 days beside the period before, or before a marker);
- ``language_models``: the per-``LanguageModel`` counts of the model list, split at the latest marker;
- ``page``: everything the analytics page shows (``analytics_page``);
- ``metrics``: what ``GET /metrics`` exposes, read in one snapshot.

Conventions (documented in the README):
- "Empty" means no message row (the ``has_messages`` flag the triggers keep), never the stored counter.
- ``since`` is inclusive and ``until`` exclusive, both on ``Session.started_at``. A ``date`` means
  midnight UTC of that day; a ``datetime`` must be aware (a naive one is refused: it would be read
  in whatever time zone the server happens to use).
- Time buckets are UTC and keyed by the ISO date of their first day: ``day`` and ``week``
  ``"2026-01-05"`` (weeks start on Monday, as ISO weeks do), ``month`` ``"2026-01"``.
- Every profile is counted unless ``profile=`` names one (exact match); ``by="profile"`` splits
  them. The abandoned-agent tally has no profile: its reports refuse both.
- Sessions without a model, or with a model recorded as ``""``, are grouped under the key
  ``NO_MODEL_KEY`` (``"(none)"``): one row. A model literally named like a bucket (``(none)``,
  ``other``, ``other models``, ``TOTAL``) is keyed in double quotes (``counts.model_key``, inverted
  by ``model_of_key``): its own row, never merged with the bucket.
- Rows are ordered by key, by code point (date keys therefore chronologically), the same on
  every backend; callers re-sort for display.
"""

from sessions_app.analytics.abandoned import (
    abandoned_agent_counts,
    abandoned_agent_rates,
    tally_covers,
    tally_first_day,
    with_abandoned,
)
from sessions_app.analytics.breakdown import CauseBreakdown, breakdown_of, empty_cause_breakdown, empty_cause_counts
from sessions_app.analytics.causes import CAUSES, cause_counts
from sessions_app.analytics.comparison import RateComparison, rate_comparison
from sessions_app.analytics.daily import (
    DailyCount,
    DayCount,
    DayRead,
    RollupStatus,
    daily_counts,
    read_days,
    rollup_status,
    scope_choices,
)
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
from sessions_app.analytics.language_models import (
    ModelSplit,
    model_ids_by_name,
    model_split,
    session_counts_by_model,
    with_session_counts,
)
from sessions_app.analytics.metrics import MetricsSnapshot, metrics_snapshot
from sessions_app.analytics.page import AnalyticsPage, analytics_page
from sessions_app.analytics.rates import EmptySessionReport, build_report, empty_session_rates, scope_rates
from sessions_app.analytics.trend import (
    TREND_BUCKETS,
    WEEKLY_AFTER_DAYS,
    TrendPoint,
    bucket_totals,
    default_bucket,
    empty_rate_trend,
    latest_marker,
    model_buckets,
    partial_bucket,
    partial_periods,
    period_bounds,
    report_from_trend,
    trend_markers,
)
from sessions_app.counts import (
    MIN_SAMPLE,
    NO_MODEL_KEY,
    RESERVED_KEYS,
    TOTAL_KEY,
    RateRow,
    is_small_sample,
    model_key,
    model_of_key,
    wilson_interval,
)
from sessions_app.scope import Scope

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
    "AnalyticsPage",
    "CauseBreakdown",
    "DailyCount",
    "DayCount",
    "DayRead",
    "EmptySessionReport",
    "MetricsSnapshot",
    "ModelSplit",
    "RateComparison",
    "RateRow",
    "RollupStatus",
    "Scope",
    "TrendPoint",
    "abandoned_agent_counts",
    "abandoned_agent_rates",
    "analytics_page",
    "breakdown_of",
    "bucket_totals",
    "build_report",
    "cause_counts",
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
    "is_small_sample",
    "latest_marker",
    "metrics_snapshot",
    "model_buckets",
    "model_ids_by_name",
    "model_key",
    "model_of_key",
    "model_split",
    "partial_bucket",
    "partial_periods",
    "period_bounds",
    "rate_comparison",
    "read_days",
    "report_filters",
    "report_from_trend",
    "rollup_status",
    "scope_choices",
    "scope_rates",
    "session_counts_by_model",
    "tally_covers",
    "tally_first_day",
    "trend_markers",
    "utc_bound",
    "wilson_interval",
    "with_abandoned",
    "with_session_counts",
]
