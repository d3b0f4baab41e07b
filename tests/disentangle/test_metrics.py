"""Known answers for the disentanglement metrics: invariances, hand-computed tables, sklearn, bad input."""

import numpy as np
import pytest
from sklearn.metrics import mutual_info_score

from disentangle import metrics


def _uniform(n=20_000, f=4, seed=0):
    return np.random.default_rng(seed).uniform(size=(n, f))


def _digitize(x, bins=20):
    return np.digitize(x, np.histogram(x, bins)[1][:-1])


def test_permuted_rescaled_copy_scores_one():
    e = _uniform()
    rng = np.random.default_rng(1)
    perm = rng.permutation(e.shape[1])
    codes = e[:, perm] * rng.uniform(0.2, 5.0, size=e.shape[1]) - 3.0
    s = metrics.scores(codes, e)
    for k in ("mir", "mig", "info_m", "info_c", "modularity"):
        assert s[k] > 0.98, (k, s[k])
    # a sign flip and a shift keep every neuron on one factor
    s2 = metrics.scores(-codes + 7.0, e)
    assert s2["mir"] == pytest.approx(s["mir"], abs=1e-3)


def test_rotation_of_independent_factors_scores_low():
    e = _uniform(f=2) - 0.5
    th = np.pi / 4
    rot = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    s = metrics.scores(e @ rot.T, e)
    assert s["mir"] < 0.05 and s["mig"] < 0.05 and s["info_m"] < 0.05
    # a small rotation is in between: less than the aligned code, more than 45 degrees
    th = np.pi / 12
    rot = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    small = metrics.mir(e @ rot.T, e)
    assert s["mir"] + 0.2 < small < 0.9


def test_duplicated_latent_separates_the_metrics():
    e = _uniform(f=2)
    codes = np.stack([e[:, 0], e[:, 1], 3.0 * e[:, 0]], axis=1)
    s = metrics.scores(codes, e)
    assert s["mir"] > 0.98 and s["modularity"] > 0.98  # every neuron still codes one factor
    assert s["mig"] == pytest.approx(0.5, abs=0.02)  # factor 0's gap is zero, factor 1's is one
    # InfoC: factor 0's share is 1/2 over 3 active neurons -> (1/2 - 1/3)/(2/3) = 1/4; factor 1 -> 1
    assert s["info_c"] == pytest.approx((0.25 + 1.0) / 2, abs=0.02)


def test_hand_computed_two_bin_case():
    # factor 0 = code 0 (I = log 2); factor 1 independent of code 0 (I = 0); code 1 = XOR-like half/half.
    f = np.array([[0, 0], [0, 1], [1, 0], [1, 1]] * 5, dtype=float)
    codes = np.stack([f[:, 0], f[:, 0] + f[:, 1] * 0.0 + (f[:, 0] != f[:, 1])], axis=1)
    m = metrics.mutual_information(codes, f, num_bins=2)
    assert m.entropy == pytest.approx([np.log(2), np.log(2)])
    assert m.mi[0] == pytest.approx([np.log(2), 0.0], abs=1e-6)
    # code 1 takes values {0,1,2}: bins [0,1) -> 0 and [1,2] -> 1; (f0,f1) -> code bin: 00->0, 01->1, 10->1, 11->1
    # joint with f0: p(0,0)=1/4, p(1,0)=1/4, p(1,1)=1/2 -> I = 1/4 log(1/4 /(1/4*1/2)) + 1/4 log(1/4/(3/4*1/2))
    #                                                      + 1/2 log(1/2/(3/4*1/2))
    i = 0.25 * np.log(2) + 0.25 * np.log(2 / 3) + 0.5 * np.log(4 / 3)
    assert m.mi[1] == pytest.approx([i, i], abs=1e-6)
    # MIR: neuron 0 share 1 -> 1; neuron 1 share 1/2 -> 0; mean 0.5
    assert metrics.mir(m) == pytest.approx(0.5, abs=1e-6)
    # MIG: factor 0 gap (log2 - i)/log2; factor 1 gap (i - 0)/log2
    assert metrics.mig(m) == pytest.approx(((np.log(2) - i) + i) / (2 * np.log(2)), abs=1e-6)
    # modularity: neuron 0 -> 1; neuron 1 -> 1 - (2i^2 - i^2)/(i^2 * 1) = 0
    assert metrics.modularity(m) == pytest.approx(0.5, abs=1e-6)


def test_agrees_with_sklearn_plug_in_mutual_information():
    rng = np.random.default_rng(3)
    e = rng.uniform(size=(5000, 3))
    codes = np.tanh(e @ rng.normal(size=(3, 5)) + 0.3 * rng.normal(size=(5000, 5)))
    cat = rng.integers(0, 3, size=(5000, 1))  # a categorical factor is used as labels, not re-binned
    factors = np.concatenate([e, cat + 0.5 * (e[:, :1] > 0.5)], axis=1)
    m = metrics.mutual_information(codes, factors)
    labels = [_digitize(factors[:, j]) for j in range(3)] + [np.unique(factors[:, 3], return_inverse=True)[1]]
    for i in range(5):
        for j in range(4):
            ref = mutual_info_score(labels[j], _digitize(codes[:, i]))
            assert m.mi[i, j] == pytest.approx(ref, abs=2e-5), (i, j)
    for j in range(4):
        assert m.entropy[j] == pytest.approx(mutual_info_score(labels[j], labels[j]), abs=2e-5)


def test_dead_neurons_are_ignored():
    e = _uniform(f=3)
    codes = np.concatenate([e, np.zeros((e.shape[0], 2)), 1e-6 * e[:, :1]], axis=1)
    m = metrics.mutual_information(codes, e)
    assert m.active.tolist() == [True, True, True, False, False, False]
    assert metrics.mir(m) > 0.98 and metrics.mig(m) > 0.98
    # with the threshold off, the tiny copy counts as an active duplicate and lowers the gap for factor 0
    assert metrics.mig(codes, e, activity_threshold=0.0) < 0.75


@pytest.mark.slow
def test_large_input_is_fast_enough():
    import time

    rng = np.random.default_rng(0)
    e = rng.uniform(size=(100_000, 6)).astype(np.float32)
    codes = e @ rng.normal(size=(6, 100)).astype(np.float32)
    metrics.mutual_information(codes[:1000], e[:1000])
    t = time.perf_counter()
    m = metrics.mutual_information(codes, e)
    assert time.perf_counter() - t < 20.0  # ~1-3 s on two loaded cores
    assert m.mi.shape == (100, 6)


@pytest.mark.parametrize(
    "codes,factors,match",
    [
        (np.ones((100, 3)), np.random.default_rng(0).uniform(size=(100, 2)), "no active neuron"),
        (np.full((100, 3), np.nan), np.random.default_rng(0).uniform(size=(100, 2)), "codes hold 300 non-finite"),
        (
            np.random.default_rng(0).uniform(size=(100, 3)),
            np.random.default_rng(0).uniform(size=(99, 2)),
            "same number",
        ),
        (np.random.default_rng(0).uniform(size=(100, 3)), np.ones((100, 1)), "factor 0 is constant"),
        (np.random.default_rng(0).uniform(size=(1, 3)), np.ones((1, 1)), "at least 2 samples"),
    ],
)
def test_bad_input_is_a_clear_error(codes, factors, match):
    with pytest.raises(ValueError, match=match):
        metrics.scores(codes, factors)


def test_nan_in_one_code_is_named():
    e = _uniform(n=100, f=2)
    codes = e.copy()
    codes[7, 1] = np.nan
    with pytest.raises(ValueError, match="first at sample 7, column 1"):
        metrics.mir(codes, e)
    with pytest.raises(ValueError, match="num_bins"):
        metrics.mir(e, e, num_bins=1)
