"""The one counts/rate type: sessions, empty sessions and, where the abandoned-agent tally covers
the slice, abandoned agents, with their rates and 95% Wilson intervals.

Every report row, comparison window, trend bucket, per-model split and import tally is a
``RateRow``: the same numbers mean the same thing everywhere. ``rate`` is always the empty-session
rate (empty / sessions); the abandoned-agent rate is ``abandoned_rate`` (abandoned / (abandoned +
sessions)). A figure that was not measured is None, never a number: ``abandoned`` is None where
the tally did not exist (or was not asked for), and so are the rates built on it.

Also here: how sure a rate is (the Wilson score interval, Wilson 1927: it stays inside [0, 1] and
behaves at 0 and n successes, where the textbook normal interval collapses to a point), and the
sample size below which a rate means little.
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

# Sessions without a model, or with a model recorded as "" (hermes-agent writes both): one key.
NO_MODEL_KEY = "(none)"
TOTAL_KEY = "TOTAL"
# Labels the reports give rows and buckets that are not one model: no model, the total row, the
# models summed past a cap (the page's and the trend's "other models", /metrics' "other"). A model
# literally named one of them is keyed in double quotes (``model_key``), never merged with them.
RESERVED_KEYS = frozenset({NO_MODEL_KEY, TOTAL_KEY, "other", "other models"})
# The two-sided 95% quantile of the standard normal distribution.
Z_95 = 1.959963984540054
# Groups with fewer sessions (or agents) than this are greyed out on the admin pages: at 30, the
# 95% interval of a 50% rate is still about +/-17 points wide.
MIN_SAMPLE = 30


def model_key(name: str | None) -> str:
    """The report key of a model name, one key per model and none shared with a bucket:
    ``NO_MODEL_KEY`` for no model and for "" (hermes-agent writes both: one row); the name itself;
    but a name that is a reserved label (``RESERVED_KEYS``) or starts with a double quote, in
    double quotes, so a model named ``other`` is the row ``"other"``. ``model_of_key`` inverts it."""
    if not name:
        return NO_MODEL_KEY
    if name in RESERVED_KEYS or name.startswith('"'):
        return f'"{name}"'
    return name


def model_of_key(key: str) -> str | None:
    """The model name of a report key (``model_key``'s inverse); None for ``NO_MODEL_KEY``."""
    if key == NO_MODEL_KEY:
        return None
    if len(key) >= 2 and key.startswith('"') and key.endswith('"'):
        return key[1:-1]
    return key


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval (``low``, ``high``) of ``successes / trials``; (0.0, 1.0) with
    no trials (nothing is known)."""
    if trials <= 0:
        return 0.0, 1.0
    p = successes / trials
    z2 = z * z
    centre = p + z2 / (2 * trials)
    spread = z * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials))
    denominator = 1 + z2 / trials
    low = (centre - spread) / denominator
    high = (centre + spread) / denominator
    # Exact bounds at 0 and n successes (the formula gives them up to rounding).
    return (0.0 if successes == 0 else max(0.0, low)), (1.0 if successes == trials else min(1.0, high))


def is_small_sample(size: int) -> bool:
    """Whether a group is too small for its rate to mean much (``MIN_SAMPLE``)."""
    return size < MIN_SAMPLE


@dataclass(frozen=True)
class RateRow:
    """One slice (a model, a source, a day, a window...): ``key`` names it."""

    key: str
    sessions: int = 0
    empty: int = 0
    # Agents that ended without saving a message (the abandoned-agent tally); None: not measured.
    abandoned: int | None = None
    reasons: Mapping[str, int] = field(default_factory=dict, compare=False)  # abandoned agents per end reason

    @property
    def rate(self) -> float:
        """Empty sessions / sessions; 0.0 for a slice without sessions (the reports' contract)."""
        return self.empty / self.sessions if self.sessions else 0.0

    @property
    def interval(self) -> tuple[float, float]:
        """The 95% Wilson interval of ``rate``; (0.0, 1.0) without sessions: nothing is known."""
        return wilson_interval(self.empty, self.sessions)

    @property
    def rate_low(self) -> float:
        return self.interval[0]

    @property
    def rate_high(self) -> float:
        return self.interval[1]

    @property
    def agents(self) -> int | None:
        """Agents seen: every session started plus every agent that ended without one (None: not measured)."""
        return None if self.abandoned is None else self.sessions + self.abandoned

    @property
    def abandoned_rate(self) -> float | None:
        """Abandoned agents / agents seen; 0.0 without agents; None when the tally did not cover the slice."""
        if self.abandoned is None:
            return None
        return self.abandoned / self.agents if self.agents else 0.0

    @property
    def abandoned_interval(self) -> tuple[float, float] | None:
        return None if self.abandoned is None else wilson_interval(self.abandoned, self.agents)

    @property
    def silent_rate(self) -> float | None:
        """(Empty sessions + abandoned agents) / agents: agents that never spoke, before or after the fix."""
        if self.abandoned is None:
            return None
        return (self.empty + self.abandoned) / self.agents if self.agents else 0.0

    def __add__(self, other: "RateRow") -> "RateRow":
        """Both slices together, under this one's key (not measured if either was not)."""
        abandoned = None if self.abandoned is None or other.abandoned is None else self.abandoned + other.abandoned
        reasons = dict(self.reasons)
        for reason, count in other.reasons.items():
            reasons[reason] = reasons.get(reason, 0) + count
        return replace(
            self,
            sessions=self.sessions + other.sessions,
            empty=self.empty + other.empty,
            abandoned=abandoned,
            reasons=reasons,
        )

    def keyed(self, key: str) -> "RateRow":
        return replace(self, key=key)

    def __getitem__(self, name: str):
        if name not in self.as_dict(abandoned=True):
            raise KeyError(name)
        return getattr(self, name)

    def as_dict(self, *, abandoned: bool = False, nullable: bool = False) -> dict:
        """Plain data for JSON: ``key, sessions, empty, rate, rate_low, rate_high`` (the reports'
        shape), and with ``abandoned`` the tally's figures (None where not measured). ``nullable``:
        a rate without sessions (or agents) is None, not 0.0 (for windows that may be empty)."""
        unmeasured = nullable and not self.sessions
        data = {
            "key": self.key,
            "sessions": self.sessions,
            "empty": self.empty,
            "rate": None if unmeasured else self.rate,
            "rate_low": None if unmeasured else self.rate_low,
            "rate_high": None if unmeasured else self.rate_high,
        }
        if abandoned:
            interval = self.abandoned_interval or (None, None)
            no_agents = nullable and not self.agents
            data.update(
                abandoned=self.abandoned,
                agents=self.agents,
                abandoned_rate=None if no_agents else self.abandoned_rate,
                abandoned_rate_low=None if no_agents else interval[0],
                abandoned_rate_high=None if no_agents else interval[1],
                silent_rate=None if no_agents else self.silent_rate,
                reasons=dict(sorted(self.reasons.items())),
            )
        return data
