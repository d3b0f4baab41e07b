"""Teacher-student: label noise soft-thresholds the learned singular values."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from collapse import teacher_student as ts


def test_problem_matches_the_paper_setting():
    p = ts.make_problem(0)
    sv = np.linalg.svd(p.w, compute_uv=False)
    np.testing.assert_allclose(sv[:8], np.linspace(1.0, 0.5, 8), atol=1e-10)
    assert np.all(sv[8:] < 1e-10)
    # the SVD basis reconstructs X^T y
    w_hat = p.v_basis @ np.diag(p.s) @ p.u_basis
    assert ts.test_mse(p, p.s) == pytest.approx(np.mean((w_hat - p.w) ** 2))


def test_noiseless_gd_converges_to_the_data_singular_values():
    s = jnp.array([0.2, 0.7, 1.3])
    pf, _ = ts.train_modes(jax.random.key(0), s, 0.0, lr=3.0, num_samples=1024, num_steps=20000)
    np.testing.assert_allclose(pf, s, rtol=1e-3)


def test_time_average_is_the_soft_threshold():
    # Stationary law is Gamma(shape = s/(eta sigma^2) - 1/2, scale = eta sigma^2): mean max(s - eta sigma^2/2, 0)
    s = jnp.array([0.05, 0.1, 0.4, 0.7, 1.0])
    sigma, lr, n = 10.0, 3.0, 1024
    eta = lr / n
    f = jax.jit(
        jax.vmap(lambda k: ts.train_modes(k, s, sigma, lr=lr, num_samples=n, num_steps=30000, average_from=8000))
    )
    pf, pa = f(jax.random.split(jax.random.key(1), 32))
    pa = np.asarray(pa).mean(axis=0)
    expected = ts.soft_threshold(np.asarray(s), eta, sigma)
    assert expected[0] == 0 and expected[1] == 0  # below eta sigma^2 / 2 = 0.146
    # the shift itself is eta sigma^2 / 2 = 0.146; the Monte Carlo error is ~0.01
    np.testing.assert_allclose(pa[2:], expected[2:], rtol=0, atol=0.03)
    # modes below the threshold collapse: their average (which includes the early decay) is far below s,
    # and the typical final product is near zero (log p drifts down at 2 eta s - eta^2 sigma^2 < 0 per step)
    assert np.all(pa[:2] < 0.3 * np.asarray(s)[:2])
    assert np.all(np.median(np.asarray(pf)[:, :2], axis=0) < 1e-2)


def test_theory_products_and_collapsed_count():
    s = np.array([0.1, 0.5, 0.9])
    th = ts.theory_products(s, sigma=20.0, lr=3.0, num_samples=1024)  # threshold 0.586 at high lr
    np.testing.assert_allclose(th, [0.0, 0.0, 0.9 - 0.0586], rtol=1e-2)


def test_mean_field_curve_matches_noiseless_gd_and_the_recorded_history():
    """At sigma = 0 the logistic flow is gradient descent's own continuous limit: the recorded products of
    train_modes (every 500 steps, with a rate drop at 3000) follow it within 1% of s; the history's last row is the
    final product; the flow ends at the soft threshold."""
    s = jnp.array([0.05, 0.3, 0.7, 1.0])
    kw = dict(lr=3.0, num_samples=1024, num_steps=6000, drop_step=3000)
    pf, _, hist = ts.train_modes(jax.random.key(0), s, 0.0, record_every=500, **kw)
    steps = 500 * np.arange(1, 13)
    theory = ts.mean_field_products(np.asarray(s), 0.0, steps, lr=3.0, num_samples=1024, drop_step=3000)
    assert hist.shape == (12, 4)
    np.testing.assert_allclose(np.asarray(hist), theory, atol=0.01)
    np.testing.assert_array_equal(np.asarray(hist)[-1], np.asarray(pf))
    assert abs(float(hist[0, 0]) - 1.0) > 0.3  # the curve really moves (the weak mode decays from p0 = 1)
    late = ts.mean_field_products(np.asarray(s), 10.0, np.array([1e7]), lr=3.0, num_samples=1024)[0]
    np.testing.assert_allclose(late, ts.soft_threshold(np.asarray(s), 3.0 / 1024, 10.0), atol=1e-6)


def test_mean_field_curve_follows_the_noisy_mean_above_threshold():
    """With label noise the seed-averaged products of strong modes follow the shifted logistic flow (256 seeds:
    the stationary sd at sigma = 5 is ~0.2, so the mean's error is ~0.013), and a mode below eta sigma^2 / 2 = 0.037
    decays, as the flow says. The noiseless flow (no shift) is measurably further from the noisy mean."""
    s = jnp.array([0.03, 0.6, 1.0])
    sigma, kw = 5.0, dict(lr=3.0, num_samples=1024, num_steps=8000, record_every=1000)
    run = jax.jit(jax.vmap(lambda k: ts.train_modes(k, s, sigma, **kw)[2]))
    hist = np.asarray(run(jax.random.split(jax.random.key(3), 256))).mean(axis=0)
    steps = 1000 * np.arange(1, 9)
    theory = ts.mean_field_products(np.asarray(s), sigma, steps, lr=3.0, num_samples=1024)
    np.testing.assert_allclose(hist[:, 1:], theory[:, 1:], atol=0.05)
    no_shift = ts.mean_field_products(np.asarray(s), 0.0, steps, lr=3.0, num_samples=1024)
    assert np.abs(hist[-4:, 1:] - theory[-4:, 1:]).mean() < 0.5 * np.abs(hist[-4:, 1:] - no_shift[-4:, 1:]).mean()
    assert hist[-1, 0] < 0.05 and abs(hist[-1, 0] - theory[-1, 0]) < 0.01  # decaying from p0 = 1
    with pytest.raises(ValueError, match="record_every"):
        ts.train_modes(jax.random.key(0), s, 0.0, lr=3.0, num_samples=1024, num_steps=100, record_every=7)
