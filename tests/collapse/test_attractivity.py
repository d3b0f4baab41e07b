"""Attractivity: the curvature condition against closed forms, and the quartic-well threshold sqrt(3)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from collapse import attractivity as attr


def test_quartic_critical_noise_is_sqrt_3():
    zc = attr.critical_noise_1d(lambda t: attr.quartic_loss(t, 1.5), lambda t: t)
    assert zc == pytest.approx(np.sqrt(3.0), rel=1e-6)
    # margin L''(0) + D''(0)/2 changes sign at zeta_c, for any mu
    for mu in (0.5, 1.5, 3.0):
        zc = np.sqrt(2 * mu)
        loss = lambda t, mu=mu: attr.quartic_loss(t, mu)
        assert attr.margin_1d(loss, lambda t, z=0.95 * zc: z * t) < 0
        assert attr.margin_1d(loss, lambda t, z=1.05 * zc: z * t) > 0
    # a nonlinear noise shape with the same slope at 0 gives the same threshold
    assert attr.critical_noise_1d(attr.quartic_loss, jnp.sin) == pytest.approx(np.sqrt(3.0), rel=1e-6)
    # a minimum (L'' > 0) is attractive without noise
    assert attr.critical_noise_1d(lambda t: t**2, lambda t: t) == 0.0


def test_quartic_collapse_rare_well_below_common_well_above():
    zetas = np.array([1.2, 2.4])
    p = np.asarray(
        attr.quartic_collapse_probability(jax.random.key(0), zetas, num_seeds=400, dt=0.01, time=40.0, eps=1e-6)
    )
    assert p[0] < 0.05
    assert p[1] > 0.9


def test_single_neuron_closed_form_equals_generic_curvature_condition():
    x, y = attr.single_neuron_data(3)
    lin = attr.linearize(attr.single_neuron_output, jnp.asarray(x), jnp.asarray(y), 2)
    # Hbar = -mean(xy) [[0, 1], [1, 0]]: a saddle with eigenvalues -/+ mean(xy)
    h, e = lin.most_unstable()
    assert h == pytest.approx(-np.mean(x * y), rel=1e-5)
    assert abs(abs(e[0]) - abs(e[1])) < 1e-6
    for zeta in (0.5, 1.0, 2.0):
        assert lin.critical_lr(zeta, None) == pytest.approx(attr.single_neuron_critical_lr(x, y, zeta), rel=1e-5)
    # margin is zero exactly at the critical lr
    ec = lin.critical_lr(1.0, None)
    assert lin.margin(ec, 1.0, None) == pytest.approx(0.0, abs=1e-8)


def test_sgd_noise_curvature_matches_monte_carlo():
    x, y = attr.single_neuron_data(1, n=16)
    lin = attr.linearize(attr.single_neuron_output, jnp.asarray(x), jnp.asarray(y), 2)
    _, e = lin.most_unstable()
    rng = np.random.default_rng(0)
    b, zeta, draws = 4, 0.7, 200000
    idx = rng.integers(0, len(x), (draws, b))
    xi = zeta * rng.normal(size=(draws, b))
    qh = np.einsum("i,nij,j->n", e, lin.h0, e)
    qg = np.einsum("i,nij,j->n", e, lin.g, e)
    samples = (qh[idx] - xi * qg[idx]).mean(axis=1) - qh.mean()
    assert lin.noise_curvature(zeta, b, e) == pytest.approx(np.mean(samples**2), rel=0.02)


def test_lyapunov_exponent_changes_sign_near_the_curvature_prediction():
    # For the single-neuron model the normal-space matrices commute, so the second-order prediction is
    # accurate while eta * sqrt(s) << 1 (weak signal: y scaled down).
    x, y = attr.single_neuron_data(0, n=32)
    lin = attr.linearize(attr.single_neuron_output, jnp.asarray(x), 0.02 * jnp.asarray(y), 2)
    zeta, b = 1.0, 8
    ec = lin.critical_lr(zeta, b)
    lyap = np.asarray(
        attr.lyapunov_exponent(jax.random.key(0), lin, ec * np.array([0.5, 2.0]), zeta, b, num_steps=3000)
    )
    assert lyap[0] > 0 > lyap[1]


def test_linearize_rejects_a_non_invariant_point():
    with pytest.raises(ValueError, match="not a vanishing set"):
        attr.linearize(lambda z, x: z[0] * x + x, jnp.ones((3,)), jnp.ones((3,)), 1)


def test_hidden_neuron_problem_is_on_the_vanishing_set_and_a_saddle():
    prob = attr.make_hidden_neuron_problem(0, gd_steps=500)
    assert prob.params["w"][-1, 0] == 0 and prob.params["a"][-1] == 0
    lin = attr.hidden_neuron_linearization(prob)
    vals = np.linalg.eigvalsh(lin.hbar)
    assert vals[0] < 0 < vals[-1]  # saddle: GD alone would leave it
    assert vals[0] == pytest.approx(-vals[-1], rel=1e-5)


def test_crossing_and_root():
    assert attr.crossing([0, 1, 2], [0.0, 0.4, 0.8]) == pytest.approx(1.25)
    assert np.isnan(attr.crossing([0, 1], [0.1, 0.2]))
    assert attr.root([0, 1, 2], [1.0, 0.5, -0.5]) == pytest.approx(1.5)
