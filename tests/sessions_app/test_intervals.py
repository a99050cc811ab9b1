"""The Wilson 95% interval and the small-sample threshold (``sessions_app.counts``)."""

import pytest

from sessions_app.analytics import MIN_SAMPLE, RateRow, is_small_sample, wilson_interval
from tests.sessions_app.test_analytics import wilson


@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    [
        # Evaluated by hand from the closed formula (p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n),
        # z = 1.96; they match published tables (e.g. Newcombe 1998, and R's prop.test without correction).
        (3, 5, 0.2307, 0.8824),
        (2, 5, 0.1176, 0.7693),
        (1, 2, 0.0945, 0.9055),
        (6, 12, 0.2538, 0.7462),
        (1, 10, 0.0179, 0.4042),
        (0, 10, 0.0, 0.2775),
        (10, 10, 0.7225, 1.0),
    ],
)
def test_wilson_interval_matches_hand_computed_values(k, n, low, high):
    assert wilson_interval(k, n) == pytest.approx((low, high), abs=5e-5)
    assert wilson(k, n) == pytest.approx((low, high), abs=5e-5)


def test_wilson_interval_edges():
    assert wilson_interval(0, 0) == (0.0, 1.0)  # nothing known
    assert wilson_interval(0, 7)[0] == 0.0 and wilson_interval(7, 7)[1] == 1.0
    for n in (1, 3, 30, 1000):
        for k in range(0, n + 1, max(1, n // 7)):
            low, high = wilson_interval(k, n)
            assert 0.0 <= low <= k / n <= high <= 1.0
    # More sessions, narrower interval at the same rate.
    assert (
        wilson_interval(50, 100)[1] - wilson_interval(50, 100)[0]
        < wilson_interval(5, 10)[1] - wilson_interval(5, 10)[0]
    )


def test_rate_rows_carry_their_interval():
    row = RateRow("m", 5, 3)
    assert (row.rate_low, row.rate_high) == pytest.approx((0.2307, 0.8824), abs=5e-5)
    assert row["rate_low"] == row.rate_low and row.as_dict()["rate_high"] == row.rate_high


def test_small_sample_threshold():
    assert MIN_SAMPLE == 30
    assert is_small_sample(29) and not is_small_sample(30)
