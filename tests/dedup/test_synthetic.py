"""Planted-duplicate corpus and its scores: known answers, and exact all-pairs ground truth."""

import numpy as np
import pytest

from dedup import synthetic


def _corpus(n=3000, d=48, seed=0, **kw):
    x = np.zeros((n, d), np.float32)
    g = np.zeros(n, np.int64)
    args = dict(n_topics=30, topic_strength=0.6, dup_fraction=0.2, max_group_size=4, sim_min=0.95, sim_max=0.995)
    args.update(kw)
    synthetic.generate(x, g, seed, **args)
    return x, g


def test_planted_scores_known_answers():
    group = np.array([0, 0, 0, -1, 4, 4, -1])
    # groups {0,1,2} (2 to remove) and {4,5} (1 to remove): 3 needed
    p, r = synthetic.planted_scores(group, np.array([1, 2, 5]), np.array([0, 1, 4]))
    assert (p, r) == (1.0, 1.0)
    p, r = synthetic.planted_scores(group, np.array([1, 3]), np.array([0, 6]))  # 3~6 is false
    assert p == 0.5 and r == pytest.approx(1 / 3)
    p, r = synthetic.planted_scores(group, np.array([4]), np.array([0]))  # wrong group
    assert p == 0.0 and r == 0.0
    assert synthetic.planted_scores(group, np.zeros(0, int), np.zeros(0, int)) == (1.0, 0.0)


def test_pairs_in_same_cluster_known_answer():
    group = np.array([0, 0, 0, -1, 4, 4])
    labels = np.array([1, 1, 2, 7, 3, 3])
    # group 0: pairs (0,1) same, (0,2) (1,2) split; group 4: (4,5) same -> 2 of 4
    assert synthetic.pairs_in_same_cluster(group, labels) == 0.5


def test_generation_is_chunk_deterministic_and_unit_norm():
    x1, g1 = _corpus(seed=3)
    x2, g2 = _corpus(seed=3)
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(g1, g2)
    np.testing.assert_allclose(np.linalg.norm(x1, axis=1), 1.0, atol=1e-5)
    copies = int((g1 >= 0).sum() - np.unique(g1[g1 >= 0]).size)
    assert copies == pytest.approx(0.2 * 3000, abs=4)
    _, sizes = np.unique(g1[g1 >= 0], return_counts=True)
    assert sizes.min() >= 2 and sizes.max() <= 4


def test_exact_all_pairs_ground_truth():
    """Exact all-pairs similarities: every planted pair is above 1 − ε (ε = 0.1) and no other pair is,
    so the planted groups are the true duplicate structure the scores are measured against."""
    x, g = _corpus(d=384, sim_min=0.96, sim_max=0.999)
    s = x.astype(np.float64) @ x.T.astype(np.float64)
    np.fill_diagonal(s, -1)
    same = (g[:, None] == g[None, :]) & (g[:, None] >= 0)
    np.fill_diagonal(same, False)
    assert s[same].min() > 0.9
    assert s[~same].max() < 0.9
    # a copy and its original: cosine in [sim_min, sim_max] up to the 1/√d fluctuation
    assert s[same].max() < 0.9999
