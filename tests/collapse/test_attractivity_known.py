"""The linearised SGD map's Lyapunov exponent against closed forms: without noise the top exponent of
z -> (I - eta H) z is max_j log|1 - eta h_j|; in one dimension with label noise it is E log|1 - eta h + eta zeta
N(0, 1) / sqrt(B)|, computed here by quadrature."""

import jax
import numpy as np
import pytest
from scipy import integrate, stats

from collapse import attractivity as attr


def test_noiseless_exponent_is_the_log_of_the_top_multiplier():
    # H = diag(-1, 2) (a saddle) for every sample, no label noise: multipliers 1 + eta and 1 - 2 eta.
    n = 4
    h0 = np.tile(np.diag([-1.0, 2.0]), (n, 1, 1))
    lin = attr.Linearization(h0=h0, g=np.zeros_like(h0))
    lrs = np.array([0.1, 0.3, 2.5])  # top multipliers 1.1; 1.3; |1 - 5| = 4 (the stable side overshoots)
    got = np.asarray(attr.lyapunov_exponent(jax.random.key(0), lin, lrs, 0.0, 2, num_steps=2000, num_seeds=4))
    np.testing.assert_allclose(got, np.log([1.1, 1.3, 4.0]), atol=2e-3)


def test_one_dimensional_noisy_exponent_matches_quadrature():
    # d = 1, h0_i = h, G_i = 1: each step multiplies z by 1 - eta (h - mean_batch xi), mean_batch xi ~ N(0, zeta^2 / B).
    h, zeta, b, eta = -0.5, 2.0, 4, 0.4
    lin = attr.Linearization(h0=np.full((3, 1, 1), h), g=np.ones((3, 1, 1)))
    a, s = -eta * h, eta * zeta / np.sqrt(b)

    def integrand(e):
        return np.log(np.abs(1.0 + a + s * e)) * stats.norm.pdf(e)

    sing = -(1.0 + a) / s  # the integrable log singularity
    want = integrate.quad(integrand, -30, sing, limit=200)[0] + integrate.quad(integrand, sing, 30, limit=200)[0]
    got = float(attr.lyapunov_exponent(jax.random.key(1), lin, np.array([eta]), zeta, b, num_steps=4000)[0])
    assert got == pytest.approx(want, abs=4e-3)
