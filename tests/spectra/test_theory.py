"""Theory checks: closed forms (Marchenko-Pastur, BBP), normalisation, branch, simulation."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

from spectra import signals, theory


def _mp_singular_density(y, c):
    lam = y**2
    lo, hi = (1 - math.sqrt(c)) ** 2, (1 + math.sqrt(c)) ** 2
    inside = (lam > lo) & (lam < hi)
    rho = np.sqrt(np.maximum((hi - lam) * (lam - lo), 0)) / (2 * np.pi * c * np.maximum(lam, 1e-300))
    return np.where(inside, 2 * y * rho, 0.0)


@pytest.mark.parametrize("c", [0.25, 0.5, 1.0])
def test_marchenko_pastur_density_and_edges(c):
    y = np.linspace(0.005, 2.2, 700)
    p = theory.density(y, [0.0], [1.0], c)
    assert np.max(np.abs(p - _mp_singular_density(y, c))) < 1e-6
    sup = theory.support([0.0], [1.0], c)
    assert len(sup) == 1
    lo = 1 - math.sqrt(c) if c < 1 else 0.0
    assert sup[0][1] == pytest.approx(1 + math.sqrt(c), abs=1e-7)
    assert sup[0][0] == pytest.approx(lo, abs=2e-3 if c == 1 else 1e-7)


@pytest.mark.parametrize(
    "t,w,c",
    [
        ([2.25, 0.0], [0.5, 0.5], 0.5),
        ([1.0, 0.0], [0.1, 0.9], 1.0),
        ([4.0, 1.0, 0.25, 0.0], [0.1, 0.2, 0.3, 0.4], 0.3),
    ],
)
def test_density_integrates_to_one(t, w, c):
    sup = theory.support(t, w, c)
    total = 0.0
    for lo, hi in sup:
        # Chebyshev-like clustering at the square-root edges keeps the quadrature accurate.
        u = 0.5 * (1 - np.cos(np.linspace(0, np.pi, 4001)))
        y = lo + (hi - lo) * u
        total += np.trapezoid(theory.density(y, t, w, c), y)
    assert total == pytest.approx(1.0, abs=2e-4)


def test_outside_support_and_gap_are_zero():
    t, w = theory.esm_spectrum(0.5, 1.5)
    sup = theory.support(t, w, 0.5)
    assert len(sup) == 2  # s = 1.5 > s_c(0.5, 0.5) ~ 1.436: two bulks
    gap = np.linspace(sup[0][1] + 1e-4, sup[1][0] - 1e-4, 20)
    y = np.concatenate([gap, [0.01, sup[1][1] + 0.01], np.linspace(0.5, 2.4, 50)])
    p = theory.density(y, t, w, 0.5)
    assert np.all(p[:22] == 0.0)
    assert np.all(p[22:][(y[22:] > sup[0][0]) & (y[22:] < sup[0][1])] > 0)


def _quartic_root(lam, eta, b, s, c):
    """ESM: m from the quartic in A (numpy.roots), the root with Im m > 0 and Im(z m) > 0."""
    z = lam + 1j * eta
    P = np.polynomial.polynomial
    am1 = np.array([-1.0, 1.0])  # A - 1
    sig = np.array([s * s, 1 - c, -z])  # s^2 + (1-c) A - z A^2
    lin = np.array([1 - c, -z])  # 1 - c - z A
    lhs = P.polymul(P.polymul(am1, sig), lin)
    rhs = c * P.polyadd(b * P.polymul([0, 1], lin), (1 - b) * sig)
    roots = np.roots(P.polysub(lhs, rhs)[::-1])
    ms = (roots - 1) / c
    ok = [m for m in ms if m.imag > 0 and (z * m).imag > 0]
    assert len(ok) == 1, f"{len(ok)} admissible roots at lam={lam}"
    return ok[0]


def test_branch_matches_quartic_roots_and_is_upper_half_plane():
    b, s, c = 0.3, 1.3, 0.5
    t, w = theory.esm_spectrum(b, s)
    lam = np.linspace(0.02, 7.0, 60)
    for eta in (0.05, 1e-3):
        m = theory.stieltjes(lam, t, w, c, eta=eta)
        ref = np.array([_quartic_root(x, eta, b, s, c) for x in lam])
        assert np.max(np.abs(m - ref)) < 1e-8
    m0 = theory.stieltjes(np.linspace(0.01, 8.0, 400), t, w, c)
    assert m0.dtype == np.complex128
    assert np.all(m0.imag >= 0)


def test_stieltjes_matches_resolvent_of_a_sample():
    n, m, b, s = 800, 1600, 0.25, 1.4
    key = jax.random.key(3)
    ks, kx = jax.random.split(key)
    y = np.asarray(signals.signal_matrix(ks, n, m, signals.esm_singular_values(n, b, s)), np.float64)
    y = y + np.asarray(signals.noise(kx, n, m), np.float64)
    lam = np.linalg.eigvalsh(y @ y.T)
    z = np.linspace(0.2, 5.0, 25) + 0.1j
    emp = np.mean(1.0 / (lam[None, :] - z[:, None]), axis=1)
    t, w = theory.esm_spectrum(b, s)
    th = theory.stieltjes(z.real, t, w, 0.5, eta=0.1)
    assert np.max(np.abs(th - emp)) < 0.02


def test_x64_is_local():
    theory.density(np.linspace(0.1, 2, 10), [0.0], [1.0], 0.5)
    assert jnp.ones(1).dtype == jnp.float32


def test_bbp_closed_form_matches_general_outlier_solver():
    thetas = np.array([0.5, 0.9, 1.2, 2.0, 4.0])
    for c in (0.3, 1.0):
        top, left, right = theory.bbp(thetas, c)
        y0, l0, r0 = theory.outliers(thetas**2, c)
        np.testing.assert_allclose(y0, top, atol=1e-7)
        np.testing.assert_allclose(l0, left, atol=1e-7)
        np.testing.assert_allclose(r0, right, atol=1e-7)


def test_bbp_against_simulation():
    n, m = 1000, 2000
    c = n / m
    for theta in (0.6, 1.5, 2.5):
        sims = []
        for seed in range(3):
            ku, kv, kx = jax.random.split(jax.random.key(seed), 3)
            a = np.asarray(signals.random_orthonormal(ku, n, 1), np.float64)[:, 0]
            bv = np.asarray(signals.random_orthonormal(kv, m, 1), np.float64)[:, 0]
            y = theta * np.outer(a, bv) + np.asarray(signals.noise(kx, n, m), np.float64)
            lam, u = scipy.linalg.eigh(y @ y.T, subset_by_index=[n - 1, n - 1])
            top = math.sqrt(lam[-1])
            v = y.T @ u[:, -1] / top
            sims.append([top, (a @ u[:, -1]) ** 2, (bv @ v) ** 2])
        sim = np.mean(sims, axis=0)
        pred = np.array([float(x) for x in theory.bbp(theta, c)])
        assert abs(sim[0] - pred[0]) < 0.03, (theta, sim, pred)
        assert np.all(np.abs(sim[1:] - pred[1:]) < 0.05), (theta, sim, pred)


def test_esm_overlaps_against_simulation_and_normalisation():
    n, m, b, s = 600, 1200, 0.3, 1.5
    c = n / m
    t, w = theory.esm_spectrum(b, s)
    k = int(round(b * n))
    ku, kv, kx = jax.random.split(jax.random.key(7), 3)
    a = np.asarray(signals.random_orthonormal(ku, n, k), np.float64)
    bm = np.asarray(signals.random_orthonormal(kv, m, k), np.float64)
    y = s * a @ bm.T + np.asarray(signals.noise(kx, n, m), np.float64)
    lam, u = np.linalg.eigh(y @ y.T)
    yv = np.sqrt(lam)
    v = (y.T @ u) / yv
    sim_l = np.sum((a.T @ u) ** 2, axis=0)
    sim_r = np.sum((bm.T @ v) ** 2, axis=0)
    th_l, th_r = theory.overlaps(yv, t, w, c)
    # Averaged over H the per-direction overlaps sum to one inside the bulk.
    inside = th_l[:, 0] > 0
    np.testing.assert_allclose((th_l @ w)[inside], 1.0, atol=1e-8)
    for sim, th in ((sim_l, w[0] * th_l[:, 0]), (sim_r, w[0] * th_r[:, 0])):
        for idx in np.array_split(np.arange(n), 10):
            assert abs(sim[idx].mean() - th[idx].mean()) < 0.06


def test_critical_strength_tends_to_bbp_threshold():
    c = 0.5
    d3 = theory.critical_strength(1e-3, c, tol=1e-4) - c**0.25
    d4 = theory.critical_strength(1e-4, c, tol=1e-4) - c**0.25
    assert 0 < d4 < d3 < 0.15
    assert d3 / d4 == pytest.approx(10 ** (1 / 3), rel=0.1)  # s_c - c^(1/4) ~ b^(1/3)
    assert theory.critical_strength(1e-4, 1.0, tol=1e-3) == pytest.approx(1.0, abs=0.06)


def test_support_count_brackets_critical_strength():
    b, c = 0.2, 0.5
    sc = theory.critical_strength(b, c, tol=1e-4)
    for s, k in ((sc - 0.005, 1), (sc + 0.005, 2)):
        t, w = theory.esm_spectrum(b, s)
        assert theory.num_components(t, w, c) == k


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="c = N/M"):
        theory.density([1.0], [0.0], [1.0], 2.0)
    with pytest.raises(ValueError, match="sum to 1"):
        theory.density([1.0], [1.0, 0.0], [0.5, 0.2], 0.5)
    with pytest.raises(ValueError, match="b must be"):
        theory.critical_strength(0.0, 0.5)


def test_batched_esm_counts_agree_with_the_general_solver():
    c = 0.5
    bs = np.array([0.05, 0.5])
    sc = theory.critical_strengths(bs, c, tol=1e-4)
    for b, s_c in zip(bs, sc, strict=True):  # one bisection for all b == the scalar one
        assert s_c == pytest.approx(theory.critical_strength(float(b), c, tol=1e-4), abs=2e-4)
    # Cells away from the boundary: the fast ESM grid and the general 2048-point grid agree.
    ss = np.array([[s_c - 0.05, s_c + 0.05] for s_c in sc])
    fast = theory.esm_num_components(bs[:, None], ss, c)
    for i, b in enumerate(bs):
        for j in range(2):
            assert fast[i, j] == theory.num_components(*theory.esm_spectrum(b, ss[i, j]), c) == 1 + j
    np.testing.assert_array_equal(theory.phase_map(bs, [0.3, 3.0], c), [[1] * 2, [2] * 2])


def test_phase_counts_against_simulation():
    """Independent check of the bulk counts: gaps in simulated spectra, not the theory's counter."""
    from spectra import experiment

    n, m, c = 600, 1200, 0.5
    for i, (b, s) in enumerate(((0.2, 1.0), (0.2, 2.0), (0.5, 1.2), (0.5, 2.0))):
        ks, kx = jax.random.split(jax.random.key(20 + i))
        y = signals.signal_matrix(ks, n, m, signals.esm_singular_values(n, b, s)) + signals.noise(kx, n, m)
        assert experiment._count_bulks(signals.singular_values(y)) == int(theory.esm_num_components(b, s, c)), (b, s)


def test_esm_quantiles_match_simulation():
    n, m, b, s = 500, 1000, 0.3, 1.5
    ks, kx = jax.random.split(jax.random.key(11))
    y = signals.signal_matrix(ks, n, m, signals.esm_singular_values(n, b, s)) + signals.noise(kx, n, m)
    levels = (np.arange(20) + 0.5) / 20
    q = theory.esm_quantiles(b, s, 0.5, levels)[0]
    assert np.max(np.abs(q - np.quantile(signals.singular_values(y), levels))) < 0.03
