"""Known answers: Cover's counting by exhaustive enumeration and by draws, teacher-student theory, the ETF margin."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from margin import models, perceptron, probes, train
from margin import neural_collapse as nc
from margin import quasi_homogeneous as qh


def test_cover_formula_values():
    assert perceptron.cover_probability(20, 10) == pytest.approx(0.5)  # P = 2N
    assert perceptron.cover_probability(5, 5) == 1.0
    # N = 1: only the two labelings that agree with sign(x) up to a global flip: 2 / 2^P
    assert perceptron.cover_probability(6, 1) == pytest.approx(2 / 2**6)


@pytest.mark.parametrize("p,n", [(6, 3), (5, 2)])
def test_cover_counting_by_exhaustive_enumeration(p, n):
    x = np.random.default_rng(p * 10 + n).normal(size=(p, n))
    expected = 2 * sum(math.comb(p - 1, k) for k in range(n))
    assert perceptron.count_separable_dichotomies(x) == expected
    assert expected / 2**p == pytest.approx(perceptron.cover_probability(p, n))


def test_cover_by_vmapped_draws():
    res = perceptron.cover_draws(jax.random.key(0), 4, [4, 8, 12], 150, num_iters=600)
    theory = np.array([perceptron.cover_probability(q, 4) for q in (4, 8, 12)])
    se = np.sqrt(theory * (1 - theory) / 150) + 1e-3
    assert np.all(np.abs(res["fraction"] - theory) < 4 * se + 0.02)
    assert res["fraction"][0] == 1.0


def test_etf_margin_formula_and_metrics_at_the_etf():
    k, d, m = 4, 6, 5
    feats, labels = nc.simplex_etf_features(k, d, m)
    # BatchNorm leaves these features unchanged: they already have per-dimension mean 0 and variance 1
    np.testing.assert_allclose(feats.mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(feats.var(0), 1, atol=1e-12)
    means = feats[::m]
    w = jnp.asarray(means.T * 0.7, jnp.float32)  # W ∝ class means (self-dual), b = 0
    out = nc.metrics(jnp.asarray(feats, jnp.float32), jnp.asarray(labels), w, jnp.zeros(k), k)
    np.testing.assert_allclose(out["margin"], math.sqrt(k * d) / (k - 1), rtol=1e-5)
    np.testing.assert_allclose(nc.etf_margin(k, d), math.sqrt(k * d) / (k - 1))
    for key in ("nc1", "nc2_cos_max_dev", "nc2_norm_cv", "nc3", "bias_ratio"):
        assert abs(float(out[key])) < 1e-5, key
    with pytest.raises(ValueError):
        nc.etf_margin(5, 3)


def _collapse_run(k, m, d, steps, chunks):
    layers = models.unconstrained_features(k * m, d, k)
    f = models.stack_fn(layers)
    x = jnp.eye(k * m)
    y = jnp.asarray(np.repeat(np.arange(k), m))
    spec = train.make_spec(
        f,
        models.StackInit(layers, k * m),
        qh.infer_rates(layers),
        loss="cross_entropy",
        step="sharpness",
        lr=0.5,
        log_every=10,
        probe=probes.Collapse(layers, k),
    )
    keys = jax.random.split(jax.random.key(0), 1)
    _, hist = train.train(spec, {"x": x, "y": y}, name="ufm", keys=keys, num_steps=steps, chunk_steps=steps // chunks)
    return hist


def test_unconstrained_features_reach_the_etf_by_training():
    # random features and classifier (far from the ETF at the start) trained past separability: the margin climbs
    # to γ_ETF from below and never passes it (γ_ETF is the program's optimum), the class means become a simplex
    k, m, d = 3, 2, 4
    hist = _collapse_run(k, m, d, 1600, 4)
    end = {key: float(v[0, -1]) for key, v in hist["end"].items()}
    etf = nc.etf_margin(k, d)
    assert hist["gamma"][0, 0] < 0.5 * etf  # far from the answer at step 9
    assert 0.95 * etf < end["margin"] <= etf * (1 + 1e-4), end
    assert np.all(hist["end"]["margin"][0] <= etf * (1 + 1e-4))
    assert end["nc2_cos_max_dev"] < 0.05 and end["nc1"] < 1e-2 and end["bias_ratio"] < 0.05, end


@pytest.mark.slow
def test_unconstrained_features_collapse_to_the_etf():
    k, m, d = 3, 4, 4
    hist = _collapse_run(k, m, d, 4000, 2)
    end = {key: float(v[0, -1]) for key, v in hist["end"].items()}
    # γ_ETF is the program's optimum: training approaches it from below and never passes it
    assert 0.95 * nc.etf_margin(k, d) < end["margin"] <= nc.etf_margin(k, d) * (1 + 1e-4), end
    assert np.all(hist["end"]["margin"][0] <= nc.etf_margin(k, d) * (1 + 1e-4))
    assert end["nc2_cos_max_dev"] < 0.1 and end["nc2_norm_cv"] < 0.05 and end["nc1"] < 1e-2, end
    assert end["bias_ratio"] < 0.05
    # collapse is progressive: NC1 falls over training
    assert hist["end"]["nc1"][0, -1] < hist["end"]["nc1"][0, 0]
