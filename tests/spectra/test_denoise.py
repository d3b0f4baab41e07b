"""Estimators: pure-noise limit, rank-one agreement with Gavish-Donoho, near-oracle error, invariances."""

from __future__ import annotations

import math

import jax
import numpy as np
import pytest

from spectra import denoise, signals, theory


def _sample(seed, n, m, sv):
    ks, kx = jax.random.split(jax.random.key(seed))
    s = signals.signal_matrix(ks, n, m, sv)
    return s, s + signals.noise(kx, n, m)


def test_gavish_donoho_constants():
    assert denoise.hard_threshold_coef(1.0) == pytest.approx(4 / math.sqrt(3), abs=1e-12)
    # Gavish & Donoho (2014): mu_1 = 0.6528 (median of MP with beta = 1, i.e. of lambda on [0, 4]
    # with density sqrt(4 - x) / (2 pi sqrt x)); omega(1) = 2.858.
    assert denoise.mp_median(1.0) == pytest.approx(0.6528, abs=2e-4)
    assert denoise.hard_threshold_omega(1.0) == pytest.approx(2.858, abs=2e-3)


def test_rie_is_nearly_zero_on_pure_noise():
    n, m = 400, 800
    x = signals.noise(jax.random.key(0), n, m)
    s_hat = denoise.rie_denoise(x, 1 / math.sqrt(m))
    assert np.linalg.norm(s_hat) / np.linalg.norm(x) < 0.06
    assert np.linalg.norm(denoise.gd_hard_threshold(x, 1 / math.sqrt(m))) == 0.0
    assert np.linalg.norm(denoise.gd_shrink(x, 1 / math.sqrt(m))) / np.linalg.norm(x) < 0.02


def test_rie_matches_gavish_donoho_for_a_rank_one_spike():
    n, m, theta = 500, 1000, 2.0
    c = n / m
    s, y = _sample(1, n, m, np.array([theta]))
    yv = np.sqrt(np.linalg.eigvalsh(y @ y.T))
    xi, cov, iso = denoise.rie_shrinkage(yv, c)
    assert iso[-1] and not iso[-2]
    assert xi[-1] == pytest.approx(float(denoise.gd_shrink_values(yv[-1:], c)[0]), rel=0.01)
    # Outlier covariance value ~ theta^2 |<u, a>|^2 (BBP) up to finite-N fluctuations.
    assert cov[-1] == pytest.approx(theta**2 * float(theory.bbp(theta, c)[1]), rel=0.06)
    e_rie = denoise.relative_error(denoise.rie_denoise(y, 1 / math.sqrt(m)), s)
    e_gd = denoise.relative_error(denoise.gd_shrink(y, 1 / math.sqrt(m)), s)
    assert abs(e_rie - e_gd) < 0.03


def test_rie_within_a_few_percent_of_oracle_on_extensive_signal():
    n, m = 500, 1000
    sv = signals.esm_singular_values(n, 0.5, 1.5)
    s, y = _sample(2, n, m, sv)
    den, cov, info = denoise.compare_estimators(y, s, 1 / math.sqrt(m), sv.size)
    assert den["rie"] <= 1.03 * den["oracle"]
    assert den["rie"] < den["gd_shrink"] - 0.1  # the extensive signal defeats the finite-rank shrinker
    assert cov["rie_covariance"] <= 1.03 * cov["oracle"]
    assert cov["rie_covariance"] < cov["rie_denoise_squared"]  # c(lambda) != xi(y)^2
    assert info["sigma_hat_over_sigma"] > 1.2  # the median estimator is biased by extensive signals
    # The public functions agree with compare_estimators (same decomposition and formulas).
    assert denoise.relative_error(denoise.rie_denoise(y, 1 / math.sqrt(m)), s) == pytest.approx(den["rie"], rel=1e-6)
    c_hat = denoise.rie_covariance(y, 1 / math.sqrt(m))
    assert denoise.relative_error(c_hat, s @ s.T) == pytest.approx(cov["rie_covariance"], rel=1e-6)
    o_hat = denoise.oracle_denoise(y, s)
    assert denoise.relative_error(o_hat, s) == pytest.approx(den["oracle"], rel=1e-6)


def test_units_and_orientation_equivariance():
    n, m = 120, 300
    sv = signals.esm_singular_values(n, 0.3, 1.5)
    _, y = _sample(3, n, m, sv)
    sigma = 1 / math.sqrt(m)
    base = denoise.rie_denoise(y, sigma)
    np.testing.assert_allclose(denoise.rie_denoise(7.0 * y, 7.0 * sigma), 7.0 * base, atol=1e-9)
    np.testing.assert_allclose(denoise.rie_denoise(y.T, sigma), base.T, atol=1e-9)
    np.testing.assert_allclose(denoise.gd_shrink(y.T, sigma), denoise.gd_shrink(y, sigma).T, atol=1e-9)
    assert denoise.rie_denoise(y.astype(np.float32), sigma).dtype == np.float32


def test_noise_estimate_on_pure_noise():
    n, m, sigma = 300, 600, 0.37
    x = sigma * math.sqrt(m) * signals.noise(jax.random.key(4), n, m)
    assert denoise.estimate_noise_std(x) == pytest.approx(sigma, rel=0.02)


def test_truncated_svd_matches_numpy():
    rng = np.random.default_rng(0)
    y = rng.standard_normal((30, 50))
    u, s, vt = np.linalg.svd(y, full_matrices=False)
    ref = (u[:, :4] * s[:4]) @ vt[:4]
    np.testing.assert_allclose(denoise.truncated_svd(y, 4), ref, atol=1e-9)
    np.testing.assert_allclose(denoise.truncated_svd(y.T, 4), ref.T, atol=1e-9)


@pytest.mark.parametrize(
    "bad,match",
    [
        (np.ones(5), "2-D"),
        (np.ones((3, 3, 3)), "2-D"),
        (np.array([[1.0, np.nan], [0.0, 1.0]]), "non-finite"),
        (np.array([["a", "b"], ["c", "d"]]), "numeric"),
        (np.ones((1, 5)), ">= 2"),
    ],
)
def test_bad_input_raises(bad, match):
    with pytest.raises(ValueError, match=match):
        denoise.rie_denoise(bad, 1.0)


def test_bad_noise_std_and_rank():
    y = np.random.default_rng(0).standard_normal((10, 20))
    with pytest.raises(ValueError, match="noise_std"):
        denoise.rie_denoise(y, -1.0)
    with pytest.raises(ValueError, match="rank"):
        denoise.truncated_svd(y, 11)


def test_covariance_of_a_tall_matrix_uses_the_right_side():
    # N > M: S S^T is N x N with N - M directions outside the right singular vectors of Y^T.
    n, m = 600, 300
    sigma = 1 / math.sqrt(n)  # noise N(0, 1/N): the package convention after transposition
    kx, ks = jax.random.split(jax.random.key(5))
    x = signals.noise(kx, n, n)[:, :m]
    assert np.linalg.norm(denoise.rie_covariance(x, sigma)) < 0.02 * np.linalg.norm(x @ x.T)
    s = signals.signal_matrix(ks, n, m, signals.esm_singular_values(m, 0.5, 1.5))
    y = s + x
    target = s @ s.T
    e_rie = denoise.relative_error(denoise.rie_covariance(y, sigma), target)
    e_oracle = denoise.relative_error(denoise.oracle_covariance(y, s), target)
    e_sample = denoise.relative_error(y @ y.T - (m / n) * np.eye(n), target)
    assert e_oracle <= e_rie <= 1.03 * e_oracle
    assert e_rie < 0.7 * e_sample
    # Same estimate from the transposed problem's point of view: Y^T = S^T + X^T has the rows as
    # columns, so its right-side estimate of S^T S (M x M) is the ordinary left one.
    left = denoise.rie_covariance(y.T, sigma)
    assert denoise.relative_error(left, s.T @ s) <= 1.03 * denoise.relative_error(
        denoise.oracle_covariance(y.T, s.T), s.T @ s
    )


def test_equal_spike_group_is_treated_as_spikes():
    # b = 0.02 at N = 300: six equal spikes s = 3. Never worse than Gavish-Donoho by > 0.5%.
    n, m = 300, 600
    sv = signals.esm_singular_values(n, 0.02, 3.0)
    for seed in range(2):
        s, y = _sample(10 + seed, n, m, sv)
        den, _, _ = denoise.compare_estimators(y, s, 1 / math.sqrt(m), sv.size)
        assert den["rie"] <= 1.005 * den["gd_shrink"], seed
        yv = np.sqrt(np.linalg.eigvalsh(y @ y.T))
        xi, _, spike = denoise.rie_shrinkage(yv, n / m)
        assert spike[-sv.size :].all() and not spike[: -sv.size].any()
        np.testing.assert_allclose(xi[-sv.size :], denoise.gd_shrink_values(yv[-sv.size :], n / m), rtol=0.02)
        assert np.all(xi[: -sv.size] == 0.0)  # a pure-noise bulk by the MP support: 0, as GD


@pytest.mark.slow  # the spectrum fit compiles three batched theory solves
def test_fitted_noise_level_is_unbiased_on_extensive_signals():
    n, m = 400, 800
    sigma = 1 / math.sqrt(m)
    _, y = _sample(6, n, m, signals.esm_singular_values(n, 0.5, 1.5))
    assert denoise.estimate_noise_std(y, "estimate") == pytest.approx(sigma, rel=0.03)
    assert denoise.estimate_noise_std(y, "median") > 1.3 * sigma  # the median rule's bias


def test_rie_memory_is_linear_in_n():
    import jax.numpy as jnp

    sizes = {}
    for n in (2048, 8192):
        with jax.enable_x64(True):
            f = jax.ShapeDtypeStruct((n,), jnp.float64)
            g = jax.ShapeDtypeStruct((n,), jnp.int32)
            sc = jax.ShapeDtypeStruct((), jnp.float64)
            ma = denoise._resolvent_sums.lower(f, f, g, sc, sc, block=denoise._BLOCK).compile().memory_analysis()
        sizes[n] = ma.argument_size_in_bytes + ma.temp_size_in_bytes + ma.output_size_in_bytes
        assert sizes[n] < n * n * 8  # below the N x N float64 Gram matrix (old kernel: 10x it)
    assert sizes[8192] < 5 * sizes[2048]  # O(N), not O(N^2) (which would be 16x)


def test_extreme_scales_and_dtypes_in_the_library():
    n, m = 60, 120
    sv = signals.esm_singular_values(n, 0.2, 2.0)
    _, y = _sample(8, n, m, sv)
    sigma = 1 / math.sqrt(m)
    base = denoise.rie_denoise(y, sigma)
    for scale in (1e158, 1e-170):
        np.testing.assert_allclose(denoise.rie_denoise(y * scale, sigma * scale) / scale, base, rtol=0, atol=1e-9)
    out = denoise.rie_denoise(y.astype(">f8"), sigma)
    assert out.dtype == np.float64 and out.dtype.byteorder in "=|<"
    np.testing.assert_allclose(out, base, atol=1e-12)
    assert denoise.rie_denoise(y.astype(np.float16), sigma).dtype == np.float16
