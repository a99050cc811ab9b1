"""How sure a rate is: the Wilson score interval, and when a group is too small to mean much.

A model with 3 sessions at 66% empty is not news. The Wilson interval (Wilson, 1927) stays inside
[0, 1] and behaves at 0 and n successes, where the textbook normal interval collapses to a point.
"""

import math

# The two-sided 95% quantile of the standard normal distribution.
Z_95 = 1.959963984540054
# Groups with fewer sessions (or agents) than this are greyed out on the admin pages: at 30, the
# 95% interval of a 50% rate is still about +/-17 points wide.
MIN_SAMPLE = 30


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
