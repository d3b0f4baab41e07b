"""Statistical mechanics of learning: teacher-student theory limits, the version-space sampler, the committee ODEs."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from margin import committee as cm
from margin import teacher_student as ts


def test_teacher_student_theory_limits():
    # Hebb: R = sqrt(2α/π)/sqrt(1 + 2α/π); large α: ε ≈ 1/sqrt(2πα)
    np.testing.assert_allclose(ts.hebb_error(1e4), 1 / np.sqrt(2 * np.pi * 1e4), rtol=1e-3)
    # max margin: ε -> 0.5005/α (Opper et al.); Gibbs 0.625/α, Bayes 0.442/α (Engel & Van den Broeck)
    a = 50.0
    assert ts.max_margin_error(a)[0] * a == pytest.approx(0.5005, rel=3e-3)
    assert ts.gibbs_error(200.0)[0] * 200 == pytest.approx(0.625, rel=3e-3)
    assert ts.bayes_error(200.0)[0] * 200 == pytest.approx(0.442, rel=3e-3)
    # small α: R_Gibbs ≈ 2α/π (the right-hand side at R = 0 is 2α/π)
    assert ts.gibbs_overlap(1e-3) == pytest.approx(2e-3 / np.pi, rel=1e-3)
    # Bayes is the best of the four at every α, Gibbs is worse than max-margin; ε -> 1/2 as α -> 0
    alphas = np.array([0.5, 1.0, 3.0])
    bayes, gibbs, mm, hebb = (ts.THEORY[k](alphas) for k in ("bayes", "gibbs", "max_margin", "hebb"))
    assert np.all(bayes < mm) and np.all(mm < gibbs) and np.all(mm < hebb)
    np.testing.assert_allclose(bayes, np.arccos(np.sqrt(np.cos(np.pi * gibbs))) / np.pi, rtol=1e-12)
    assert ts.max_margin_error(1e-3)[0] > 0.48 and ts.gibbs_error(1e-3)[0] > 0.49


def test_gibbs_overlap_solves_its_saddle_point_equation():
    # independent check of the root: the integral by scipy.quad instead of the module's grid
    from scipy import integrate
    from scipy.stats import norm

    for alpha in (0.7, 3.0):
        r = ts.gibbs_overlap(alpha)
        rhs = integrate.quad(lambda t, r=r: norm.pdf(t) * np.exp(-r * t * t / 2) / norm.cdf(np.sqrt(r) * t), -30, 30)
        assert r / math.sqrt(1 - r) == pytest.approx(alpha / np.pi * rhs[0], rel=1e-6)


def _hmc_mean(z, steps=3000, burn=200):
    z = jnp.asarray(z, jnp.float32)
    j0 = jnp.asarray(np.linalg.lstsq(np.asarray(z), np.ones(z.shape[0]), rcond=None)[0], jnp.float32)
    out = jax.jit(ts.exact_hmc, static_argnums=(4, 5))(
        jax.random.key(0), z, jnp.ones(z.shape[0], bool), j0, steps, burn
    )
    return np.asarray(out["mean_direction"]), np.asarray(out["last"])


def test_exact_hmc_is_uniform_on_a_wedge():
    # N = 2, the wedge between the directions at angles ±θ/2 around e1: a uniform direction there has mean
    # e1 · sin(θ/2)/(θ/2); one wall (a half-plane): mean (2/π) z/|z|
    theta = 1.0
    walls = np.array([[np.sin(theta / 2), np.cos(theta / 2)], [np.sin(theta / 2), -np.cos(theta / 2)]])
    mean, last = _hmc_mean(walls)
    np.testing.assert_allclose(mean, [np.sin(theta / 2) / (theta / 2), 0.0], atol=0.01)
    assert np.all(walls @ last > 0)
    mean, _ = _hmc_mean(np.array([[0.0, 2.0]]))
    np.testing.assert_allclose(mean, [0.0, 2 / np.pi], atol=0.02)


@pytest.mark.slow
def test_teacher_student_simulation_matches_theory():
    alphas = [1.0, 3.0]
    res = ts.teacher_student_draws(jax.random.key(0), 100, alphas, 12, num_iters=1500, chain_steps=60, burn_in=10)
    for name, fn in ts.THEORY.items():
        np.testing.assert_allclose(res[name].mean(1), fn(np.array(alphas)), atol=0.025, err_msg=name)


def test_committee_gaussian_averages_match_monte_carlo():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4, 4))
    c = a @ a.T / 4 + 0.3 * np.eye(4)
    u = rng.multivariate_normal(np.zeros(4), c, size=200_000)
    g = np.asarray(cm.g(jnp.asarray(u)))
    gp = np.sqrt(2 / np.pi) * np.exp(-(u**2) / 2)
    cj = jnp.asarray(c, jnp.float32)
    i2, i3, i4 = np.asarray(cm._i2(cj)), np.asarray(cm._i3(cj)), np.asarray(cm._i4(cj))
    se = 4 / np.sqrt(u.shape[0])
    for p, q in [(0, 1), (2, 2), (3, 1)]:
        assert abs(i2[p, q] - np.mean(g[:, p] * g[:, q])) < se
    for p, q, r in [(0, 1, 2), (1, 1, 3), (2, 0, 0), (3, 2, 1)]:
        assert abs(i3[p, q, r] - np.mean(gp[:, p] * u[:, q] * g[:, r])) < 2 * se, (p, q, r)
    for p, q, r, s in [(0, 1, 2, 3), (1, 1, 3, 3), (2, 0, 0, 1), (3, 2, 2, 2)]:
        assert abs(i4[p, q, r, s] - np.mean(gp[:, p] * gp[:, q] * g[:, r] * g[:, s])) < se, (p, q, r, s)


def test_committee_ode_fixed_point_and_error():
    t = jnp.eye(2)
    # the student that equals the teacher: ε_g = 0 and it does not move (dQ = dR = 0 at every η)
    dq, dr = cm.ode_rhs(t, t, t, 1.3)
    np.testing.assert_allclose(dq, 0, atol=1e-6)
    np.testing.assert_allclose(dr, 0, atol=1e-6)
    assert abs(float(cm.generalization_error(t, t, t))) < 1e-7
    # a zero student: ε_g = ½ <τ²> = ½ Σ_nm (2/π) arcsin(T_nm / 2) = (1/π) · 2 · π/6 for T = I
    z = jnp.zeros((2, 2))
    np.testing.assert_allclose(cm.generalization_error(z, z, t), 1 / 3, rtol=1e-6)


def test_committee_online_sgd_follows_the_odes():
    # K = M = 1 (no plateau): the simulated ε_g follows the ODE integrated from the run's own start
    keys = jax.random.split(jax.random.key(0), 4)
    out = cm.compare(keys, k=1, m=1, n=400, eta=0.5, alpha_max=8.0, records=8, init_std=0.5, d_alpha=0.02)
    np.testing.assert_allclose(out["eps_sim"][:, 0], out["eps_ode"][:, 0], rtol=1e-5)
    sim, ode = out["eps_sim"].mean(0), out["eps_ode"].mean(0)
    assert ode[-1] < 0.1 * ode[0]  # it learns
    np.testing.assert_allclose(sim, ode, rtol=0.15, atol=2e-3)
