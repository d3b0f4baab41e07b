"""The two M* estimates on hand-built curves whose crossings are known in closed form.

Both estimates are defined on the seed-mean curves (the distances averaged over seeds at each M), besides the
per-seed estimates; these cases make the seed mean and the per-seed answers differ, so an average over the wrong
axis, or a mean of per-seed log ratios instead of the distances, moves the answer off the hand value.
"""

import math

import numpy as np
import pytest

from icl import thresholds

X = [1.0, 2.0, 4.0, 6.0]  # log2 M, not evenly spaced
MEAN_RATIO = np.array([4.0, 2.0, 0.5, 0.25])  # seed-mean Delta_Ridge / Delta_dMMSE


def test_closer_to_ridge_seed_mean_crossing_is_three():
    # Two seeds at 1.5x and 0.5x the mean ratio (mean 1x); Delta_dMMSE = 1 for both.
    # Seed-mean log ratio: +log 2 at log2 M = 2 and -log 2 at 4, so it crosses at exactly 3.
    # Seed 0: log 3 at 2 and log 0.75 at 4: 2 + 2 log 3 / log 4 = 2 + log2 3.
    # Seed 1: ratio exactly 1 at 2 (log 0: not yet closer), below 1 from 4 on: crossing at 2.
    dr = np.stack([1.5 * MEAN_RATIO, 0.5 * MEAN_RATIO])
    dd = np.ones_like(dr)
    out = thresholds.closer_to_ridge(X, dr, dd)
    assert out["log2_M"] == pytest.approx(3.0, abs=1e-12)
    assert out["per_seed_log2"] == pytest.approx([2.0 + math.log2(3.0), 2.0], abs=1e-12)
    assert out["num_seeds"] == 2
    assert out["log2_M_mean"] == pytest.approx(2.0 + math.log2(3.0) / 2, abs=1e-12)
    assert out["log2_M_se"] == pytest.approx(math.log2(3.0) / 2, abs=1e-12)  # |a - b| / 2 for two seeds


def test_closer_to_ridge_averages_distances_not_their_logs():
    # Seed 0: Delta_Ridge = 3 r, Delta_dMMSE = 1; seed 1: r and 2. The ratio of the seed-mean distances is
    # (3 r + r) / (1 + 2) = 4 r / 3 = (16/3, 8/3, 2/3, 1/3): its log crosses 0 between log2 M = 2 and 4, at
    # 2 + 2 log(8/3) / (log(8/3) - log(2/3)) = 2 + log2(8/3). (The mean of the per-seed log ratios would be
    # log(sqrt(1.5) r), crossing elsewhere.)
    r = MEAN_RATIO
    dr = np.stack([3 * r, r])
    dd = np.stack([np.ones(4), 2 * np.ones(4)])
    out = thresholds.closer_to_ridge(X, dr, dd)
    assert out["log2_M"] == pytest.approx(2.0 + math.log2(8.0 / 3.0), abs=1e-12)


def test_batch_crossing_seed_mean_crossing_is_three():
    # d(M) = Delta_large - Delta_small, per seed a line in log2 M; seed-mean d = (3 - x) / 2 crosses 0 at exactly 3.
    x = np.array(X)
    small = np.stack([np.ones(4), 3 * np.ones(4)])
    large = np.stack([small[0] + (2.0 - x) / 2, small[1] + (4.0 - x) / 2])  # seed crossings at 2 and 4
    out = thresholds.batch_crossing(X, small, large)
    assert out["log2_M"] == pytest.approx(3.0, abs=1e-12)
    assert out["interval_log2"] == [2.0, 4.0]
    assert out["diff"] == pytest.approx((3.0 - x) / 2, abs=1e-12)
    # seed 0: d = 0 exactly at x = 2 (not > 0), so its last + to - change is between 1 and 2, at 2
    assert out["per_seed_log2"] == pytest.approx([2.0, 4.0], abs=1e-12)
    assert out["log2_M_mean"] == pytest.approx(3.0) and out["log2_M_se"] == pytest.approx(1.0)


def test_ties_are_not_closer_and_not_positive():
    # closer_to_ridge needs Delta_Ridge < Delta_dMMSE strictly: ratio (2, 1, 1, 0.5) is tied at log2 M = 2 and 4 and
    # closer only from 6 on, so M* interpolates between 4 (log ratio 0) and 6: exactly 4.
    out = thresholds.closer_to_ridge(X, np.array([[2.0, 1.0, 1.0, 0.5]]), np.ones((1, 4)))
    assert out["log2_M"] == pytest.approx(4.0, abs=1e-12) and out["per_seed_log2"] == [pytest.approx(4.0)]
    # batch_crossing takes the last change from d > 0 strictly: d = (1, 0, 0, -1) is positive only at log2 M = 1,
    # so the crossing is between 1 and 2, at exactly 2.
    out = thresholds.batch_crossing(X, np.zeros((1, 4)), np.array([[1.0, 0.0, 0.0, -1.0]]))
    assert out["log2_M"] == pytest.approx(2.0, abs=1e-12) and out["interval_log2"] == [1.0, 2.0]
