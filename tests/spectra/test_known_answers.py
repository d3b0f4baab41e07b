"""Closed forms checked by hand: the BBP transition on both sides of its threshold c^(1/4), and the RIE's
shrinkage of the bulk against the theory's xi(y) = y - (1 - c)/y + 2 c y Re m(y^2) from the Dozier-Silverstein
Stieltjes transform (the data-driven estimate must follow the deterministic equivalent, not merely land near the
oracle's error)."""

from __future__ import annotations

import math

import jax
import numpy as np
import pytest

from spectra import denoise, signals, theory


def test_bbp_below_threshold_between_sqrt_c_and_fourth_root():
    # c = 0.3: sqrt(c) = 0.548 < theta = 0.65 < c^(1/4) = 0.740, so the spike is below the transition: the top
    # singular value sticks to the bulk edge 1 + sqrt(c) and both overlaps vanish.
    top, left, right = theory.bbp(0.65, 0.3)
    assert float(top) == pytest.approx(1.0 + math.sqrt(0.3), abs=1e-12)
    assert float(left) == 0.0 and float(right) == 0.0


@pytest.mark.parametrize(
    "theta,c,expected",
    [
        # theta = 1, c = 0.3: top = sqrt(2 * 1.3), left = 1 - 0.3 * 2 / 1.3, right = 1 - 1.3 / 2
        (1.0, 0.3, (math.sqrt(2.6), 1.0 - 0.6 / 1.3, 0.35)),
        # theta = 2, c = 1: top = sqrt(5 * 5) / 2 = 2.5, left = right = 1 - 5 / (4 * 5) = 0.75
        (2.0, 1.0, (2.5, 0.75, 0.75)),
        # just above c^(1/4) = 0.740 at c = 0.3: theta = 0.75, theta^2 = 0.5625
        (
            0.75,
            0.3,
            (math.sqrt(1.5625 * 0.8625) / 0.75, 1 - 0.3 * 1.5625 / (0.5625 * 0.8625), 1 - 0.8625 / (0.5625 * 1.5625)),
        ),
    ],
)
def test_bbp_above_threshold_hand_values(theta, c, expected):
    got = [float(v) for v in theory.bbp(theta, c)]
    assert got == pytest.approx(list(expected), abs=2e-4)


def test_rie_bulk_shrinkage_follows_the_theory_xi():
    # ESM with b = 0.5, s = 1.5 at c = 0.5 (two bulks) at N = 500. Over the bulk singular values (density above
    # a fifth of its maximum, no isolated outliers) the data-driven xi(y) is within 0.017 of the theory's on
    # average (measured); the O(eps) smoothing bias it removes is several times larger (a wrong-sign correction
    # gives 0.085).
    n, m, b, s = 500, 1000, 0.5, 1.5
    c = n / m
    ks, kx = jax.random.split(jax.random.key(2))
    y = signals.signal_matrix(ks, n, m, signals.esm_singular_values(n, b, s)) + signals.noise(kx, n, m)
    yv = np.sqrt(np.maximum(np.linalg.eigvalsh(y @ y.T), 0.0))
    xi, _, iso = denoise.rie_shrinkage(yv, c)
    t, w = theory.esm_spectrum(b, s)
    xi_theory = yv - (1 - c) / yv + 2 * c * yv * np.real(theory.stieltjes(yv**2, t, w, c))
    dens = theory.density(yv, t, w, c)
    bulk = ~iso & (dens > 0.2 * dens.max())
    assert bulk.sum() > 450
    assert np.mean(np.abs(xi - xi_theory)[bulk]) < 0.03
