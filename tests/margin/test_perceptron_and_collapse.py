"""Known answers: Cover's counting by exhaustive enumeration and by draws, teacher-student theory, the ETF margin."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from margin import models, perceptron, train
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
    res = perceptron.cover_draws(0, 4, [4, 8, 12], 150, num_iters=600)
    theory = np.array([perceptron.cover_probability(q, 4) for q in (4, 8, 12)])
    se = np.sqrt(theory * (1 - theory) / 150) + 1e-3
    assert np.all(np.abs(res["fraction"] - theory) < 4 * se + 0.02)
    assert res["fraction"][0] == 1.0


def test_teacher_student_theory_limits():
    # Hebb: R = sqrt(2α/π)/sqrt(1 + 2α/π); large α: ε ≈ 1/sqrt(2πα)
    np.testing.assert_allclose(perceptron.hebb_error(1e4), 1 / np.sqrt(2 * np.pi * 1e4), rtol=1e-3)
    # max margin: ε -> 0.5005/α (Opper et al.), and below Hebb at every α
    a = 50.0
    assert perceptron.max_margin_error(a)[0] * a == pytest.approx(0.5005, rel=3e-3)
    alphas = np.array([0.5, 1.0, 3.0])
    assert np.all(perceptron.max_margin_error(alphas) < perceptron.hebb_error(alphas))
    # α -> 0: nothing learnt, ε -> 1/2
    assert perceptron.max_margin_error(1e-3)[0] > 0.48


@pytest.mark.slow
def test_teacher_student_simulation_matches_theory():
    alphas = [1.0, 3.0]
    res = perceptron.teacher_student_draws(0, 60, alphas, 12, num_iters=1500)
    np.testing.assert_allclose(res["hebb"].mean(1), perceptron.hebb_error(np.array(alphas)), atol=0.025)
    np.testing.assert_allclose(res["max_margin"].mean(1), perceptron.max_margin_error(np.array(alphas)), atol=0.025)


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
    # no other W, b does better on these features (the ETF solves the program): random perturbations lose margin
    rng = np.random.default_rng(0)
    for _ in range(20):
        dw = jnp.asarray(rng.normal(size=w.shape) * 0.05, jnp.float32)
        db = jnp.asarray(rng.normal(size=k) * 0.05, jnp.float32)
        assert float(nc.metrics(jnp.asarray(feats, jnp.float32), jnp.asarray(labels), w + dw, db, k)["margin"]) < float(
            out["margin"]
        )
    with pytest.raises(ValueError):
        nc.etf_margin(5, 3)


@pytest.mark.slow
def test_unconstrained_features_collapse_to_the_etf():
    k, m, d = 3, 4, 4
    layers = models.unconstrained_features(k * m, d, k)
    f = models.stack_fn(layers)
    rates = qh.infer_rates(layers)
    x = jnp.eye(k * m)
    y = jnp.asarray(np.repeat(np.arange(k), m))
    params0 = jax.tree.map(lambda a: a[None], models.init_stack(jax.random.key(0), layers, k * m))

    def chunk_metrics(p, dat):
        _, feats = models.apply_stack(p, layers, dat["x"], return_features=True)
        return nc.metrics(feats, dat["y"], p["classifier"]["w"], p["classifier"]["b"], k)

    spec = train.Spec(
        f, rates, loss="cross_entropy", step="sharpness", lr=0.5, log_every=50, chunk_metrics=chunk_metrics
    )
    _, hist = train.train(spec, params0, {"x": x, "y": y}, num_steps=3000, chunk_steps=1500, num_runs=1)
    end = {key: float(v[0, -1]) for key, v in hist["end"].items()}
    # γ_ETF is the program's optimum: training approaches it from below and never passes it
    assert 0.95 * nc.etf_margin(k, d) < end["margin"] <= nc.etf_margin(k, d) * (1 + 1e-4), end
    assert np.all(hist["end"]["margin"][0] <= nc.etf_margin(k, d) * (1 + 1e-4))
    assert end["nc2_cos_max_dev"] < 0.1 and end["nc2_norm_cv"] < 0.05 and end["nc1"] < 1e-2, end
    assert end["bias_ratio"] < 0.05
    # collapse is progressive: NC1 falls over training
    assert hist["end"]["nc1"][0, -1] < hist["end"]["nc1"][0, 0]
