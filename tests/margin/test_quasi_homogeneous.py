"""Rates Λ: the scaling identity and Euler's identity for every model, inferred Λ of known stacks, wrong Λ named."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from margin import models
from margin import quasi_homogeneous as qh


def _random_params(layers, in_dim, seed):
    """Gaussian parameters with the stack's structure (nonzero biases: zero biases would hide a wrong bias rate).

    Shapes from jax.eval_shape (nothing compiled), values from numpy: keeps the test fast.
    """
    shapes = jax.eval_shape(lambda k: models.init_stack(k, layers, in_dim), jax.random.key(0))
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda s: jnp.asarray(rng.normal(size=s.shape) / np.sqrt(s.shape[0]), jnp.float32), shapes)


STACKS = {
    "residual_net": (models.residual_net(6), 2, True),
    "plain_net": (models.plain_net(5), 2, True),
    "ufm": (models.unconstrained_features(12, 4, 3), 12, False),
    "bn_mlp": (models.bn_mlp((7, 5), 4, 3), 6, False),
    "layernorm": ((models.Dense("a", 5), models.LayerNorm(), models.ReLU(), models.Dense("b", 2)), 3, False),
}


def _stack_case(name):
    layers, in_dim, squeeze = STACKS[name]
    params = _random_params(layers, in_dim, 1)
    rng = np.random.default_rng(2)
    x = jnp.eye(in_dim) if name == "ufm" else jnp.asarray(rng.normal(size=(12, in_dim)), jnp.float32)
    return models.stack_fn(layers, squeeze=squeeze), params, qh.infer_rates(layers), x


@pytest.mark.parametrize("name", sorted(STACKS))
def test_inferred_rates_satisfy_scaling_and_euler(name):
    f, params, rates, x = _stack_case(name)
    assert qh.check_rates(f, params, rates, x) < 1e-4
    resid = qh.euler_residual(f, params, rates, x)
    assert float(jnp.max(jnp.abs(resid))) < 1e-4 * float(jnp.max(jnp.abs(f(params, x))))


def test_toys_declared_rates_and_euler():
    x = jnp.asarray(np.random.default_rng(0).normal(size=(9, 2)), jnp.float32)
    for f, params, rates in (
        (models.linear, {"w": jnp.array([0.7, -1.3])}, models.LINEAR_RATES),
        (models.toy_quasi_homogeneous, {"w": 0.7, "u": 1.1, "v": -0.4}, models.TOY_RATES),
    ):
        params = jax.tree.map(jnp.float32, params)
        assert qh.check_rates(f, params, rates, x) < 1e-5
        assert float(jnp.max(jnp.abs(qh.euler_residual(f, params, rates, x)))) < 1e-5


def test_known_rates_of_architectures():
    # bias after L layers: rate l/L; a residual branch's weights 0, its bias the stream's rate
    r = qh.infer_rates(models.residual_net(4))
    assert r == {"in": {"w": 0.5, "b": 0.5}, "block": {"w": 0.0, "b": 0.5}, "out": {"w": 0.5, "b": 1.0}}
    mlp = (models.Dense("a", 3), models.ReLU(), models.Dense("b", 3), models.ReLU(), models.Dense("c", 1))
    r = qh.infer_rates(mlp)
    np.testing.assert_allclose([r["a"]["w"], r["b"]["w"], r["c"]["w"]], [1 / 3] * 3)
    np.testing.assert_allclose([r["a"]["b"], r["b"]["b"], r["c"]["b"]], [1 / 3, 2 / 3, 1.0])
    # everything feeding a normalisation has rate 0; only the classifier after the last BatchNorm scales
    r = qh.infer_rates(models.bn_mlp((8, 8), 4, 3))
    assert all(v == 0.0 for k in ("hidden0", "hidden1", "features") for v in r[k].values())
    assert r["classifier"] == {"w": 1.0, "b": 1.0}
    with pytest.raises(NotImplementedError):
        qh.infer_rates((models.Dense("a", 3), models.Residual((models.LayerNorm(), models.Dense("b", 3)))))


def test_wrong_rate_is_rejected_naming_the_parameter():
    f, params, rates, x = _stack_case("residual_net")
    bad = {k: dict(v) for k, v in rates.items()}
    bad["block"]["b"] = 1.0  # should be 0.5: the stream's rate
    with pytest.raises(qh.NotQuasiHomogeneous, match=r"'block/b' \(declared rate 1; rate 0.5 would hold\)"):
        qh.check_rates(f, params, bad, x)
    bad = {k: dict(v) for k, v in rates.items()}
    bad["out"]["b"] = 0.5  # the output bias after two layers has the summed rate 1
    with pytest.raises(qh.NotQuasiHomogeneous, match=r"'out/b'.*rate 1 would hold"):
        qh.check_rates(f, params, bad, x)
    # the toy: w declared at 1/2 -> the rate that holds is 1
    p = jax.tree.map(jnp.float32, {"w": 0.7, "u": 1.1, "v": -0.4})
    with pytest.raises(qh.NotQuasiHomogeneous, match=r"'w' \(declared rate 0.5; rate 1 would hold\)"):
        qh.check_rates(models.toy_quasi_homogeneous, p, {"w": 0.5, "u": 0.5, "v": 0.5}, x[:, :2])


def test_not_quasi_homogeneous_model_is_rejected():
    f = lambda p, x: jnp.tanh(x @ p["w"])  # tanh is not homogeneous: no Λ works
    p = {"w": jnp.array([1.5, -0.5])}
    with pytest.raises(qh.NotQuasiHomogeneous, match="no single parameter"):
        qh.check_rates(f, p, {"w": 1.0}, jnp.asarray(np.random.default_rng(0).normal(size=(8, 2)), jnp.float32))


def test_seminorm_margin_and_normalisation_invariances():
    f, params, rates, x = _stack_case("residual_net")
    y = jnp.asarray(np.sign(np.random.default_rng(5).normal(size=x.shape[0])), jnp.float32)
    g0 = qh.normalized_margin(f(params, x), y, params, rates)
    for a in (-0.7, 0.9):
        s = qh.scale(params, rates, a)
        # only the rate-λ_max leaf (out/b) counts: ‖e^{αΛ}θ‖_Λ = e^{αλ_max}‖θ‖_Λ
        np.testing.assert_allclose(qh.seminorm(s, rates), np.exp(a) * qh.seminorm(params, rates), rtol=1e-5)
        np.testing.assert_allclose(qh.normalized_margin(f(s, x), y, s, rates), g0, rtol=1e-4)
        # the normalised point does not depend on where on the curve we start
        n0, n1 = qh.normalize(params, rates), qh.normalize(s, rates)
        for a0, a1 in zip(jax.tree.leaves(n0), jax.tree.leaves(n1), strict=True):
            np.testing.assert_allclose(a0, a1, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(qh.seminorm(params, rates), jnp.abs(params["out"]["b"]).sum(), rtol=1e-6)


def test_multiclass_margins():
    out = jnp.array([[2.0, 0.5, 1.0], [0.0, 3.0, -1.0]])
    np.testing.assert_allclose(qh.margins(out, jnp.array([0, 2])), [1.0, -4.0])
