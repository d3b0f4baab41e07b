"""Known answers for the disentanglement metrics: disentanglement_lib's MIG computed independently, invariances,
hand-computed tables, sklearn, bad input."""

import numpy as np
import pytest
from sklearn.metrics import mutual_info_score

from disentangle import metrics

pytestmark = pytest.mark.filterwarnings("ignore:Clustering metrics expects discrete values")


def _uniform(n=20_000, f=4, seed=0):
    return np.random.default_rng(seed).uniform(size=(n, f))


def _reference_mig(codes, factors, num_bins=20):
    """disentanglement_lib's discrete MIG, written out from its protocol: latents binned by np.digitize against
    np.histogram's edges (20 bins), factors used as classes, sklearn's mutual_info_score, entropy = I(y; y)."""
    binned = [np.digitize(c, np.histogram(c, num_bins)[1][:-1]) for c in codes.T]
    m = np.array([[mutual_info_score(y, c) for y in factors.T] for c in binned])
    h = np.array([mutual_info_score(y, y) for y in factors.T])
    top = np.sort(m, axis=0)[::-1]
    return float(np.mean((top[0] - top[1]) / h))


def _mixed_code(factors, seed=0, noise=0.3):
    """A partly disentangled code: each latent is mostly one factor plus some of the others and noise."""
    rng = np.random.default_rng(seed)
    f = (factors - factors.mean(0)) / factors.std(0)
    mix = np.eye(f.shape[1], 5) * 2.0 + 0.4 * rng.normal(size=(f.shape[1], 5))
    return np.tanh(f @ mix + noise * rng.normal(size=(len(f), 5))).astype(np.float32)


def test_mig_matches_disentanglement_lib_on_discrete_factors():
    rng = np.random.default_rng(1)
    factors = np.stack([rng.integers(0, k, 4000) for k in (3, 6, 40, 32)], 1).astype(np.float32)  # dSprites-like
    codes = _mixed_code(factors)
    ref = _reference_mig(codes, factors)
    assert metrics.mig(codes, factors) == pytest.approx(ref, abs=1e-9)
    assert 0.05 < ref < 0.9  # a case in between, not a trivial 0 or 1


def test_mig_matches_disentanglement_lib_on_continuous_factors():
    # disentanglement_lib makes every value of a continuous factor a class of its own (H = log N): MIG near 0.
    factors = _uniform(n=3000, f=3, seed=2)
    codes = _mixed_code(factors, seed=3)
    ref = _reference_mig(codes, factors)
    assert metrics.mig(codes, factors) == pytest.approx(ref, abs=1e-9)  # factor_bins=None is that protocol
    assert ref < 0.05
    # the explicit binning of the factors gives the meaningful score instead; 20 bins is the reference on binned
    # factors
    binned = np.stack([np.digitize(y, np.histogram(y, 20)[1][:-1]) for y in factors.T], 1)
    assert metrics.mig(codes, factors, factor_bins=20) == pytest.approx(_reference_mig(codes, binned), abs=1e-9)
    assert metrics.mig(codes, factors, factor_bins=20) > 0.2


def test_mig_and_mir_do_not_change_when_one_latent_is_rescaled():
    rng = np.random.default_rng(4)
    factors = np.stack([rng.integers(0, k, 4000) for k in (3, 6, 10)], 1).astype(np.float64)
    codes = _mixed_code(factors, seed=5).astype(np.float64)
    scaled = codes.copy()
    scaled[:, int(np.argmax(metrics.mutual_information(codes, factors).mi.max(1)))] *= 0.01
    for c in (codes, scaled):
        assert metrics.mig(c, factors) == pytest.approx(_reference_mig(c, factors), abs=1e-9)
    for fn in (metrics.mig, metrics.mir, metrics.info_m, metrics.info_c, metrics.modularity):
        assert fn(scaled, factors) == pytest.approx(fn(codes, factors), abs=1e-9), fn.__name__
    assert _reference_mig(scaled, factors) == pytest.approx(_reference_mig(codes, factors), abs=1e-9)
    # the optional std rule is the one thing that sees scale: it drops the rescaled latent
    with_rule = metrics.mutual_information(scaled, factors, activity_threshold=0.05)
    assert with_rule.active.sum() == codes.shape[1] - 1


def test_permuted_rescaled_copy_scores_one():
    e = _uniform()
    rng = np.random.default_rng(1)
    perm = rng.permutation(e.shape[1])
    codes = e[:, perm] * rng.uniform(0.2, 5.0, size=e.shape[1]) - 3.0
    s = metrics.scores(codes, e, factor_bins=20)
    for k in ("mir", "mig", "info_m", "info_c", "modularity"):
        assert s[k] > 0.98, (k, s[k])
    # a sign flip and a shift keep every latent on one factor
    s2 = metrics.scores(-codes + 7.0, e, factor_bins=20)
    assert s2["mir"] == pytest.approx(s["mir"], abs=1e-3)


def test_rotation_of_independent_factors_scores_low():
    e = _uniform(f=2) - 0.5
    th = np.pi / 4
    rot = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    s = metrics.scores(e @ rot.T, e, factor_bins=20)
    assert s["mir"] < 0.05 and s["mig"] < 0.05 and s["info_m"] < 0.05
    # a small rotation is in between: less than the aligned code, more than 45 degrees
    th = np.pi / 12
    rot = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    small = metrics.mir(e @ rot.T, e, factor_bins=20)
    assert s["mir"] + 0.2 < small < 0.9


def test_duplicated_latent_separates_the_metrics():
    e = _uniform(f=2)
    codes = np.stack([e[:, 0], e[:, 1], 3.0 * e[:, 0]], axis=1)
    s = metrics.scores(codes, e, factor_bins=20)
    assert s["mir"] > 0.98 and s["modularity"] > 0.98  # every latent still codes one factor
    assert s["mig"] == pytest.approx(0.5, abs=0.02)  # factor 0's gap is zero, factor 1's is one
    # InfoC: factor 0's share is 1/2 over 3 active latents -> (1/2 - 1/3)/(2/3) = 1/4; factor 1 -> 1
    assert s["info_c"] == pytest.approx((0.25 + 1.0) / 2, abs=0.02)


def test_hand_computed_two_bin_case():
    # factor 0 = code 0 (I = log 2); factor 1 independent of code 0 (I = 0); code 1 = XOR-like half/half.
    f = np.array([[0, 0], [0, 1], [1, 0], [1, 1]] * 5, dtype=float)
    codes = np.stack([f[:, 0], f[:, 0] + (f[:, 0] != f[:, 1])], axis=1)
    m = metrics.mutual_information(codes, f, num_bins=2)
    # np.histogram's bins are left-closed, the last one closed: [0, 1) and [1, 2]
    assert metrics.histogram_discretize(np.array([0.0, 1.0, 2.0, 0.5, 1.5]), 2)[:, 0].tolist() == [0, 1, 1, 0, 1]
    assert m.entropy == pytest.approx([np.log(2), np.log(2)])
    assert m.mi[0] == pytest.approx([np.log(2), 0.0], abs=1e-12)
    # code 1 takes values {0,1,2}: bins [0,1) -> 0 and [1,2] -> 1; (f0,f1) -> code bin: 00->0, 01->1, 10->1, 11->1
    # joint with f0: p(0,0)=1/4, p(1,0)=1/4, p(1,1)=1/2 -> I = 1/4 log(1/4 /(1/4*1/2)) + 1/4 log(1/4/(3/4*1/2))
    #                                                      + 1/2 log(1/2/(3/4*1/2))
    i = 0.25 * np.log(2) + 0.25 * np.log(2 / 3) + 0.5 * np.log(4 / 3)
    assert m.mi[1] == pytest.approx([i, i], abs=1e-12)
    # MIR: latent 0 share 1 -> 1; latent 1 share 1/2 -> 0; mean 0.5
    assert metrics.mir(m) == pytest.approx(0.5, abs=1e-12)
    # MIG: factor 0 gap (log2 - i)/log2; factor 1 gap (i - 0)/log2
    assert metrics.mig(m) == pytest.approx(((np.log(2) - i) + i) / (2 * np.log(2)), abs=1e-12)
    # modularity: latent 0 -> 1; latent 1 -> 1 - (2i^2 - i^2)/(i^2 * 1) = 0
    assert metrics.modularity(m) == pytest.approx(0.5, abs=1e-12)


def test_agrees_with_sklearn_plug_in_mutual_information():
    rng = np.random.default_rng(3)
    e = rng.uniform(size=(5000, 3))
    codes = np.tanh(e @ rng.normal(size=(3, 5)) + 0.3 * rng.normal(size=(5000, 5)))
    cat = rng.integers(0, 3, size=(5000, 1))  # a factor with few values is used as classes, not re-binned
    factors = np.concatenate([e, cat + 0.5 * (e[:, :1] > 0.5)], axis=1)
    m = metrics.mutual_information(codes, factors, factor_bins=20)
    dig = lambda x: np.digitize(x, np.histogram(x, 20)[1][:-1])  # noqa: E731
    labels = [dig(factors[:, j]) for j in range(3)] + [np.unique(factors[:, 3], return_inverse=True)[1]]
    for i in range(5):
        for j in range(4):
            assert m.mi[i, j] == pytest.approx(mutual_info_score(labels[j], dig(codes[:, i])), abs=1e-10), (i, j)
    for j in range(4):
        assert m.entropy[j] == pytest.approx(mutual_info_score(labels[j], labels[j]), abs=1e-10)


def test_constant_latents_are_inactive_and_the_std_rule_is_optional():
    e = _uniform(f=3)
    codes = np.concatenate([e, np.zeros((e.shape[0], 2)), 1e-6 * e[:, :1]], axis=1)
    m = metrics.mutual_information(codes, e, factor_bins=20)
    assert m.active.tolist() == [True, True, True, False, False, True]  # a tiny copy is still a copy
    assert metrics.mir(m) > 0.98 and metrics.mig(m) < 0.75  # ...so factor 0 has two latents
    rule = metrics.mutual_information(codes, e, factor_bins=20, activity_threshold=0.05)
    assert rule.active.tolist() == [True, True, True, False, False, False]
    assert metrics.mig(rule) > 0.98


def test_many_valued_factor_is_exact_in_blocks(monkeypatch):
    # a continuous factor as classes needs N label columns; the bincount is split into blocks of latents
    e = _uniform(n=2000, f=2, seed=6)
    codes = _mixed_code(e, seed=7)
    whole = metrics.mutual_information(codes, e).mi
    monkeypatch.setattr(metrics, "_MAX_CELLS", 20 * 2000 * 2)
    np.testing.assert_allclose(metrics.mutual_information(codes, e).mi, whole, atol=1e-12)


@pytest.mark.slow
def test_large_input_is_fast_enough():
    import time

    rng = np.random.default_rng(0)
    e = rng.uniform(size=(100_000, 6)).astype(np.float32)
    codes = e @ rng.normal(size=(6, 100)).astype(np.float32)
    t = time.perf_counter()
    m = metrics.mutual_information(codes, e, factor_bins=20)
    assert time.perf_counter() - t < 20.0
    assert m.mi.shape == (100, 6)


@pytest.mark.parametrize(
    "codes,factors,match",
    [
        (np.ones((100, 3)), np.random.default_rng(0).uniform(size=(100, 2)), "no active latent"),
        (np.full((100, 3), np.nan), np.random.default_rng(0).uniform(size=(100, 2)), "codes hold 300 non-finite"),
        (
            np.random.default_rng(0).uniform(size=(100, 3)),
            np.random.default_rng(0).uniform(size=(99, 2)),
            "same number",
        ),
        (np.random.default_rng(0).uniform(size=(100, 3)), np.ones((100, 1)), "factor 0 is constant"),
        (np.random.default_rng(0).uniform(size=(1, 3)), np.ones((1, 1)), "at least 2 samples"),
        (np.random.default_rng(0).uniform(size=(10, 3)), np.array([["a"]] * 10), "factors must be numeric"),
    ],
)
def test_bad_input_is_a_clear_error(codes, factors, match):
    with pytest.raises(ValueError, match=match):
        metrics.scores(codes, factors)


def test_nan_in_one_code_and_bad_bins_are_named():
    e = _uniform(n=100, f=2)
    codes = e.copy()
    codes[7, 1] = np.nan
    with pytest.raises(ValueError, match="first at sample 7, column 1"):
        metrics.mir(codes, e)
    with pytest.raises(ValueError, match="num_bins"):
        metrics.mir(e, e, num_bins=1)
    with pytest.raises(ValueError, match="factor_bins"):
        metrics.mir(e, e, factor_bins=1.5)


def test_correlated_factors_are_also_scored_on_independent_factors():
    # an axis-aligned code of strongly correlated factors: scored on its own factors MIR is low (each latent also
    # carries information about the other, correlated factors); the same encoder on independent factors scores ~1
    import ml_collections

    from disentangle import summary

    rng = np.random.default_rng(8)
    n = 20_000
    shared = rng.uniform(size=(n, 1))
    corr = np.where(rng.uniform(size=(n, 3)) < 0.95, shared, rng.uniform(size=(n, 3)))
    ind = rng.uniform(size=(n, 3))
    encode = lambda e: 2.0 * e[:, [2, 0, 1]] + 0.1  # noqa: E731
    out = {"code": encode(corr), "factors": corr, "code_independent": encode(ind), "factors_independent": ind,
           "recon": 0.0}  # fmt: skip
    cfg = ml_collections.ConfigDict({"eval": {"num_bins": 20, "factor_bins": 20, "activity_threshold": 0.0}})
    s = summary.synthetic_scores(out, cfg)
    assert s["mir"] < 0.5 and s["mir_on_independent"] > 0.97 and s["mig_on_independent"] > 0.97
