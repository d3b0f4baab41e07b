"""Attractivity: the curvature condition against closed forms, and the quartic-well threshold sqrt(3)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from collapse import attractivity as attr
from collapse import exit_problems


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


def test_crossing_rejects_empty_and_unsorted_grids():
    with pytest.raises(ValueError, match="increasing"):
        attr.crossing([2.5, 1.0], [0.99, 0.0])
    with pytest.raises(ValueError, match="non-empty"):
        attr.crossing([], [])
    with pytest.raises(ValueError, match="shape"):
        attr.root([0.0, 1.0], [1.0])


def test_euler_maruyama_threshold_tends_to_the_sde_threshold():
    # E log|1 + a + b eps| against Monte Carlo, and the map's critical zeta -> sqrt(2 mu) as dt -> 0 (from below).
    rng = np.random.default_rng(0)
    eps = rng.normal(size=2_000_000)
    for a, b in ((0.015, 0.17), (0.05, 0.6)):
        assert exit_problems.em_log_growth(a, b) == pytest.approx(
            np.mean(np.log(np.abs(1 + a + b * eps))), abs=2e-3 * b
        )
    zs = [exit_problems.em_critical_noise(1.5, dt) for dt in (0.04, 0.01, 0.0025, 0.000625)]
    assert all(z0 < z1 < np.sqrt(3.0) for z0, z1 in zip(zs[:-1], zs[1:], strict=True))
    assert np.sqrt(3.0) - zs[-1] < 2e-3
    assert zs[1] == pytest.approx(1.7114, abs=5e-4)  # dt = 0.01


def test_quartic_exit_probability_matches_the_gamblers_ruin_closed_form():
    # In the neighbourhood (r_out = 1e-2) the cubic term is negligible: log|theta| is a Brownian motion with the
    # Euler-Maruyama map's drift per step and variance zeta^2 dt per step.
    dt, r_in, r_out = 0.005, 1e-4, 1e-2
    zetas = np.array([1.4, 2.1])
    r = exit_problems.quartic_exit_probability(
        jax.random.key(0), zetas, dt=dt, time=40.0, r_in=r_in, r_out=r_out, num_seeds=2000
    )
    assert float(np.max(r["undecided"])) < 0.01
    for z, p in zip(zetas, np.asarray(r["reach"]), strict=True):
        drift = exit_problems.em_log_growth(1.5 * dt, z * np.sqrt(dt)) / dt
        want = exit_problems.exit_probability_log_bm(drift, z**2, np.sqrt(r_in * r_out), r_in, r_out)
        assert p == pytest.approx(want, abs=0.04)


def test_single_neuron_exit_matches_the_unstable_mode_closed_form():
    # Near w = 0 the mode u = (w1 + w2)/sqrt 2 is a geometric Brownian motion (rate c, noise s): started on it,
    # P(reach r_in first) is the gambler's-ruin formula with the Euler-Maruyama drift.
    x, y = attr.single_neuron_data(0, n=16)
    dt, r_in, r_out = 0.02, 1e-4, 1e-2
    lrs = np.array([1.0, 3.0])
    r = exit_problems.single_neuron_exit_probability(
        jax.random.key(1),
        x,
        y,
        lrs,
        1.0,
        num_seeds=1000,
        dt=dt,
        time=60.0,
        r_in=r_in,
        r_out=r_out,
        direction=np.array([1.0, 1.0]),
    )
    assert float(np.max(r["undecided"])) < 0.02
    for lr, p in zip(lrs, np.asarray(r["reach"]), strict=True):
        c, s = exit_problems.single_neuron_linear_rates(x, y, lr, 1.0)
        drift = exit_problems.em_log_growth(c * dt, s * np.sqrt(dt)) / dt
        want = exit_problems.exit_probability_log_bm(drift, s**2, np.sqrt(r_in * r_out), r_in, r_out)
        assert p == pytest.approx(want, abs=0.05)


def test_single_neuron_sde_finite_time_matches_the_lognormal_law():
    # simulate_single_neuron_sde, far above the threshold: |u_T| is lognormal given u_0 ~ N(0, init^2) and the
    # decaying mode v is negligible, so P(||w_T|| < thr) = E Phi((log thr - log|u_0| - a T) / (s sqrt T)).
    from scipy import stats

    x, y = attr.single_neuron_data(2, n=16)
    lr, t, init, thr, dt = 4.0, 4.0, 1e-3, 1e-4, 0.01
    p = float(
        attr.simulate_single_neuron_sde(
            jax.random.key(2), x, y, np.array([lr]), 1.0, num_seeds=2000, dt=dt, time=t, init_std=init, threshold=thr
        )[0]
    )
    c, s = exit_problems.single_neuron_linear_rates(x, y, lr, 1.0)
    a = exit_problems.em_log_growth(c * dt, s * np.sqrt(dt)) / dt
    u0 = np.abs(np.random.default_rng(0).normal(scale=init, size=200_000))
    want = np.mean(stats.norm.cdf((np.log(thr) - np.log(u0) - a * t) / (s * np.sqrt(t))))
    assert 0.2 < want < 0.8
    assert p == pytest.approx(want, abs=0.04)


def test_hidden_neuron_sgd_at_zero_lr_is_the_rayleigh_law():
    # simulate_hidden_neuron_sgd with lr = 0 never moves: P(||z_0|| < thr) for z_0 ~ init N(0, I_2) is Rayleigh.
    prob = attr.make_hidden_neuron_problem(0, gd_steps=200)
    p = attr.simulate_hidden_neuron_sgd(
        jax.random.key(3), prob, np.array([0.0]), 1.0, 4, num_seeds=4000, num_steps=3, init_std=1e-2, threshold=1e-2
    )
    assert float(p[0]) == pytest.approx(1 - np.exp(-0.5), abs=0.025)


def test_lyapunov_on_the_frozen_set_equals_the_linearised_map():
    # Two implementations of the same exponent: per-sample Hessians (lyapunov_exponent) and the jvp of the
    # nonlinear SGD step at z = 0 (lyapunov_on_set, rest frozen).
    prob = attr.make_hidden_neuron_problem(0, gd_steps=2000)
    lin = attr.hidden_neuron_linearization(prob)
    lrs = lin.critical_lr(1.0, 4) * np.array([0.5, 1.5])
    a = np.asarray(attr.lyapunov_exponent(jax.random.key(4), lin, lrs, 1.0, 4, num_steps=1500, num_seeds=32))
    b = np.asarray(
        exit_problems.lyapunov_on_set(
            jax.random.key(5), prob, lrs, 1.0, 4, num_steps=1500, num_seeds=32, train_rest=False
        )
    )
    np.testing.assert_allclose(a, b, atol=4e-3)
    assert a[0] > 0 > a[1] and b[0] > 0 > b[1]


def test_identical_pair_coordinates_and_invariance():
    prob = attr.make_merging_problem(0, gd_steps=500)
    p = jax.tree.map(jnp.asarray, prob.params)
    z = jnp.asarray([0.3, -0.2])
    np.testing.assert_allclose(attr.normal_coordinates("identical", attr.embed("identical", p, z)), z, atol=1e-6)
    np.testing.assert_array_equal(attr.normal_coordinates("identical", p), 0.0)
    # the difference coordinate's gradient vanishes on the set, so linearize accepts it; a saddle pair
    lin = attr.hidden_neuron_linearization(prob)
    assert lin.hbar.shape == (2, 2)
    # full-batch GD on noisy labels keeps the pair identical (bitwise), whatever the learning rate
    loss, draw = attr._sgd_parts(prob, 0.8, None)

    @jax.jit
    def steps(q):
        def body(i, q):
            idx, xi = draw(jax.random.fold_in(jax.random.key(0), i))
            return attr._sgd_step("identical", loss, q, idx, xi, 0.05, True)

        return jax.lax.fori_loop(0, 20, body, q)

    q = steps(p)
    np.testing.assert_array_equal(q["w"][0], q["w"][1])
    np.testing.assert_array_equal(q["a"][0], q["a"][1])
