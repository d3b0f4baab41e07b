"""Denoisers and covariance estimators for Y = S + noise, and the command-line denoiser.

    python -m spectra.denoise --input=Y.npy --output=S_hat.npy [--noise-std=SIGMA]

Noise model: every entry of the noise has standard deviation `noise_std` (sigma, in the user's
units). Internally Y is rescaled to Yn = Y / (sigma sqrt(M)), so that the noise has the package
convention N(0, 1/M) (its singular values fill [1 - sqrt(c), 1 + sqrt(c)]), and matrices with N > M
are transposed (c = min/max <= 1). Estimates are returned in the user's units and orientation.

Unknown sigma (noise_std=None) is estimated as in Gavish & Donoho (2014): sigma = y_med / sqrt(M
mu_c), with y_med the median singular value of Y and mu_c the median of the Marchenko-Pastur law.
This is consistent when the signal has low rank. An extensive signal (rank proportional to N) moves
the median singular value up, so sigma is then overestimated (measured at N = 1000, M = 2000: by 40%
for the ESM with b = 0.5, s = 1.5 and by 90% for singular values spread evenly on (0, 3]) and every
estimator built on it shrinks too much. Pass noise_std when it is known.

Estimators (all keep the data singular vectors and change the singular values; y = singular
values of Yn):
  - `rie_denoise`: optimal rotationally invariant denoiser (paper):
    xi(y) = y - (1 - c)/y + 2 c y Re m(y^2), with m the Stieltjes transform of Yn Yn^T estimated
    from the data spectrum itself (see `rie_shrinkage`).
  - `rie_covariance`: optimal rotationally invariant estimator of S S^T on the left singular
    vectors, c(lambda) = Im[A (1 - B m)] / Im m with A = 1 + c m, B = 1 - c - A lambda.
  - `gd_hard_threshold` (sigma known: y > lambda*(c); unknown: y > omega(c) median), `gd_shrink`
    (Frobenius-optimal shrinker of Gavish & Donoho 2017), `truncated_svd` (true rank),
    `oracle_denoise`, `oracle_covariance`.
"""

from __future__ import annotations

import functools
import math
import os
import sys
import tempfile

import jax
import jax.numpy as jnp
import numpy as np
from scipy import integrate, optimize

# Smoothing widths eps = SMOOTHING / sqrt(N) (denoiser) and COV_SMOOTHING / sqrt(N) (covariance) in
# normalized singular-value units, chosen on ESM and continuous signals at N = 1000 (see README).
SMOOTHING = 1.5
COV_SMOOTHING = 0.5
ISOLATION = 2.0  # farther than ISOLATION / sqrt(N) from every other singular value: isolated outlier


# ------------------------------------------------------------------------------------------------
# Marchenko-Pastur helpers (Gavish-Donoho constants).


@functools.lru_cache(maxsize=256)
def mp_median(c: float) -> float:
    """Median of the Marchenko-Pastur eigenvalue law of X X^T (X N x M, var 1/M, c = N/M <= 1)."""
    lo, hi = (1 - math.sqrt(c)) ** 2, (1 + math.sqrt(c)) ** 2

    def pdf(x):
        return math.sqrt(max((hi - x) * (x - lo), 0.0)) / (2 * math.pi * c * x)

    def cdf(x):
        return integrate.quad(pdf, lo, x, limit=200)[0]

    return float(optimize.brentq(lambda x: cdf(x) - 0.5, lo, hi, xtol=1e-12))


def hard_threshold_coef(c: float) -> float:
    """Gavish-Donoho optimal hard threshold lambda*(c) in units where the noise edge is 1 +
    sqrt(c)."""
    return math.sqrt(2 * (c + 1) + 8 * c / (c + 1 + math.sqrt(c * c + 14 * c + 1)))


def hard_threshold_omega(c: float) -> float:
    """omega(c) = lambda*(c) / sqrt(mu_c): threshold in units of the median singular value (sigma
    unknown)."""
    return hard_threshold_coef(c) / math.sqrt(mp_median(c))


# ------------------------------------------------------------------------------------------------
# Input handling and the shared decomposition.


def _as_matrix(y, name: str = "Y") -> np.ndarray:
    a = np.asarray(y)
    if a.dtype.kind not in "fiu":
        raise ValueError(f"{name}: expected a real numeric array, got dtype {a.dtype}")
    if a.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D matrix, got {a.ndim} dimensions (shape {a.shape})")
    if min(a.shape) < 2:
        raise ValueError(f"{name}: both dimensions must be >= 2, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        bad = int(np.sum(~np.isfinite(a)))
        raise ValueError(f"{name}: {bad} non-finite entries (NaN or inf)")
    return a if a.dtype.kind == "f" else a.astype(np.float64)


def _check_sigma(noise_std) -> float | None:
    if noise_std is None:
        return None
    s = float(noise_std)
    if not (math.isfinite(s) and s > 0):
        raise ValueError(f"noise_std must be a finite number > 0, got {noise_std}")
    return s


@jax.jit
def _eigh_gram(yn):
    lam, u = jnp.linalg.eigh(yn @ yn.T)
    return jnp.sqrt(jnp.maximum(lam, 0.0)), u


@jax.jit
def _reconstruct(u, ratio, yn):
    """U diag(ratio) U^T Yn = sum_i ratio_i y_i u_i v_i^T (no right vectors needed)."""
    return ((u * ratio[None, :]) @ u.T) @ yn


class _Problem:
    """Y in the package convention: transposed so N <= M, scaled so the noise is N(0, 1/M)."""

    def __init__(self, y, noise_std, *, need_sigma: bool = True):
        a = _as_matrix(y)
        self.dtype = a.dtype
        self.transposed = a.shape[0] > a.shape[1]
        a = a.T if self.transposed else a
        self.n, self.m = a.shape
        self.c = self.n / self.m
        self.x64 = a.dtype == np.float64
        sigma = _check_sigma(noise_std)
        with jax.enable_x64(self.x64):
            raw = jnp.asarray(a)
            y_raw, u = _eigh_gram(raw)
            self.y_raw = np.asarray(y_raw, dtype=np.float64)
        if sigma is None and need_sigma:
            sigma = float(np.median(self.y_raw)) / math.sqrt(self.m * mp_median(self.c))
            if not sigma > 0:
                raise ValueError("Y: cannot estimate the noise level (median singular value is 0)")
        self.sigma = sigma
        self.scale = sigma * math.sqrt(self.m) if sigma else 1.0
        self.a, self.u = a, u
        self.y = self.y_raw / self.scale  # normalized singular values (ascending)

    def rebuild(self, values: np.ndarray) -> np.ndarray:
        """Matrix with the data singular vectors and new singular values (user units, orientation,
        dtype)."""
        values = np.asarray(values, dtype=np.float64) * self.scale
        ratio = np.where(self.y_raw > 0, values / np.where(self.y_raw > 0, self.y_raw, 1.0), 0.0)
        with jax.enable_x64(self.x64):
            out = np.asarray(_reconstruct(self.u, jnp.asarray(ratio, dtype=self.u.dtype), self.a))
        out = out.astype(self.dtype, copy=False)
        return out.T if self.transposed else out

    def covariance(self, values: np.ndarray, null: float = 0.0) -> np.ndarray:
        """Estimate of S S^T (user units, N x N for the user's N rows) from per-vector values.

        N <= M: U diag(values) U^T on the left singular vectors. N > M (transposed internally): the
        user's rows are the right side here, so V diag(values) V^T + null (I - V V^T), with
        V = Yn^T U / y the right singular vectors and `null` the value on the N - M directions
        orthogonal to them. Values in normalized units of lambda.
        """
        v = np.asarray(values, dtype=np.float64) * self.scale**2
        u = np.asarray(self.u, dtype=np.float64)
        if not self.transposed:
            return ((u * v[None, :]) @ u.T).astype(self.dtype, copy=False)
        y = self.y_raw
        ok = y > 0
        right = (np.asarray(self.a, dtype=np.float64).T @ u[:, ok]) / y[ok][None, :]
        null_u = float(null) * self.scale**2
        out = (right * (v[ok] - null_u)[None, :]) @ right.T
        out[np.diag_indices_from(out)] += null_u
        return out.astype(self.dtype, copy=False)


# ------------------------------------------------------------------------------------------------
# The rotationally invariant estimators (pure functions of the normalized spectrum).


@jax.jit
def _rie_core(y, c, eps, eps_cov, iso_dist):
    n = y.shape[0]
    eye = jnp.eye(n, dtype=bool)
    isolated = jnp.min(jnp.abs(y[:, None] - y[None, :]) + jnp.where(eye, jnp.inf, 0.0), 1) > iso_dist

    def smoothed(e):
        # G(w) = (1/N) sum_k w / (y_k^2 - w^2) = w m(w^2) and G'(w), at w = y_i + i e.
        w = y + 1j * e
        d1 = y[None, :] - w[:, None]
        d2 = y[None, :] + w[:, None]
        return w, jnp.mean(0.5 * (1 / d1 - 1 / d2), 1), jnp.mean(0.5 * (1 / d1**2 + 1 / d2**2), 1)

    # Bulk: f(w) = w - (1 - c)/w + 2 c G(w) is analytic above the real axis and xi(y) = Re f(y + i0);
    # the first-order extrapolation Re[f(w) - i eps f'(w)] removes the O(eps) smoothing bias.
    w, g, gp = smoothed(eps)
    f = w - (1 - c) / w + 2 * c * g
    fp = 1 + (1 - c) / w**2 + 2 * c * gp
    xi_bulk = jnp.real(f - 1j * eps * fp)
    # Isolated outliers: leave-one-out G on the real axis (the bulk is at a finite distance).
    safe = jnp.where(eye, 1.0, y[None, :] - y[:, None])
    g_loo = jnp.sum(jnp.where(eye, 0.0, 0.5 * (1 / safe - 1 / (y[None, :] + y[:, None]))), 1) / n
    ys = jnp.maximum(y, 1e-30)
    xi_iso = y - (1 - c) / ys + 2 * c * g_loo
    xi = jnp.where(isolated, xi_iso, xi_bulk)
    # Covariance: Im[A (1 - B m)] / Im m (bulk); d/dm [A (1 - B m)] at the bulk m (outlier).
    wc, gc, _ = smoothed(eps_cov)
    z = wc * wc
    m = gc / wc
    a = 1 + c * m
    bb = 1 - c - a * z
    cov_bulk = jnp.imag(a * (1 - bb * m)) / jnp.imag(m)
    mb = g_loo / ys
    ab = 1 + c * mb
    cov_iso = c - (1 - c) * (ab + c * mb) + y * y * (2 * ab * c * mb + ab * ab)
    cov = jnp.where(isolated, cov_iso, cov_bulk)
    return jnp.maximum(xi, 0.0), jnp.maximum(cov, 0.0), isolated


@jax.jit
def _right_cov_core(y, c, eps, iso_dist):
    """RI estimate of u^T S^T S u... on the right singular vectors (used when the user's N > M).

    With m the Stieltjes transform of Yn Yn^T (the small side), A = 1 + c m, A~ = A - (1 - c)/z:
    c_R(lambda) = Im F_R(m) / Im m, F_R(m) = A~ (1 + A z m - (1 - c) m) (= int t T_t dH from the
    right-resolvent deterministic equivalent); isolated outliers d/dm F_R at the bulk m; on the
    M - N null directions the z -> 0 limit, c (1 - (1 - c) m(0)) with m(0) = mean(1/y^2).
    """
    n = y.shape[0]
    eye = jnp.eye(n, dtype=bool)
    isolated = jnp.min(jnp.abs(y[:, None] - y[None, :]) + jnp.where(eye, jnp.inf, 0.0), 1) > iso_dist
    w = y + 1j * eps
    g = jnp.mean(0.5 * (1 / (y[None, :] - w[:, None]) - 1 / (y[None, :] + w[:, None])), 1)
    z = w * w
    m = g / w
    a = 1 + c * m
    at = a - (1 - c) / z
    bulk = jnp.imag(at * (1 + a * z * m - (1 - c) * m)) / jnp.imag(m)
    safe = jnp.where(eye, 1.0, y[None, :] - y[:, None])
    g_loo = jnp.sum(jnp.where(eye, 0.0, 0.5 * (1 / safe - 1 / (y[None, :] + y[:, None]))), 1) / n
    ys = jnp.maximum(y, 1e-30)
    lam = ys * ys
    mb = g_loo / ys
    ab = 1 + c * mb
    atb = ab - (1 - c) / lam
    iso = c * (1 + ab * lam * mb - (1 - c) * mb) + atb * (c * lam * mb + ab * lam - (1 - c))
    null = c * (1 - (1 - c) * jnp.mean(1 / jnp.maximum(y * y, 1e-300)))
    return jnp.maximum(jnp.where(isolated, iso, bulk), 0.0), jnp.maximum(null, 0.0)


def _eps(n: int, smoothing: float) -> float:
    if not (math.isfinite(smoothing) and smoothing > 0):
        raise ValueError(f"smoothing must be > 0, got {smoothing}")
    return smoothing / math.sqrt(n)


def rie_shrinkage(
    y: np.ndarray,
    c: float,
    smoothing: float = SMOOTHING,
    cov_smoothing: float = COV_SMOOTHING,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Data-driven optimal RI singular values and covariance values from normalized singular values.

    Returns (xi, cov, isolated) per singular value y (float64):
      xi(y)  = y - (1 - c)/y + 2 c y Re m(y^2)            (rectangular RIE: the oracle u^T S v),
      cov(y) = Im[A (1 - B m)] / Im m, A = 1 + c m, B = 1 - c - A y^2  (the oracle u^T S S^T u).
    m is estimated from the data through G(w) = w m(w^2) = (1/N) sum_k w / (y_k^2 - w^2), the
    Stieltjes transform of the symmetrised singular values, at w = y + i eps (a Cauchy kernel;
    Im z = 2 y eps in lambda units). For xi, eps = smoothing / sqrt(N) and the value is extrapolated
    to the real axis to first order, xi = Re[f(w) - i eps f'(w)] with f(w) = w - (1 - c)/w + 2 c G(w),
    which cancels the O(eps) smoothing bias (pure noise, N = 1000: sum xi^2 = 0.05, against 0.36
    without the correction at the best eps, 0.5 / sqrt(N)).
    For cov, eps = cov_smoothing / sqrt(N). A singular value farther than 2 / sqrt(N) from every
    other one is an isolated outlier: there the closed forms use the real-axis leave-one-out G (the
    bulk is at a finite distance), so xi is Gavish-Donoho's shrinker sqrt((y^2 - 1 - c)^2 - 4c)/y
    when the bulk is pure noise, and cov = d/dm[A (1 - B m)] at the bulk m (-> theta^2 |<u,a>|^2).
    """
    y = np.asarray(y, dtype=np.float64)
    n = y.size
    with jax.enable_x64(True):
        xi, cov, iso = _rie_core(
            jnp.asarray(y),
            jnp.float64(c),
            jnp.float64(_eps(n, smoothing)),
            jnp.float64(_eps(n, cov_smoothing)),
            jnp.float64(ISOLATION / math.sqrt(n)),
        )
        return np.asarray(xi), np.asarray(cov), np.asarray(iso)


def rie_denoise(y: np.ndarray, noise_std: float | None = None, *, smoothing: float = SMOOTHING) -> np.ndarray:
    """Optimal rotationally invariant estimate of S from Y = S + noise (paper's rectangular RIE).

    Keeps the singular vectors of Y and replaces each singular value by xi(y) (see `rie_shrinkage`),
    computed from the spectrum of Y alone. noise_std: per-entry noise standard deviation in Y's
    units; None estimates it (see the module docstring; biased upwards for extensive signals). Same
    shape and dtype as Y.
    """
    p = _Problem(y, noise_std)
    xi, _, _ = rie_shrinkage(p.y, p.c, smoothing)
    return p.rebuild(xi)


def rie_covariance(y: np.ndarray, noise_std: float | None = None, *, smoothing: float = COV_SMOOTHING) -> np.ndarray:
    """Optimal rotationally invariant estimate of S S^T (N x N, N = rows of Y) from Y = S + noise.

    N <= M: eigenvectors of Y Y^T with eigenvalues c(lambda) = Im[A (1 - B m)] / Im m (not xi^2;
    see `rie_shrinkage`). N > M: the rows are the long side, so the estimate lives on the right
    singular vectors of the transposed problem, c_R(lambda) = Im[A~ (1 + A z m - (1 - c) m)] / Im m
    with A~ = A - (1 - c)/z, plus c (1 - (1 - c) m(0)) on the N - M directions orthogonal to them
    (the z -> 0 limit of the same expression; 0 on pure noise).
    """
    p = _Problem(y, noise_std)
    if not p.transposed:
        _, cov, _ = rie_shrinkage(p.y, p.c, cov_smoothing=smoothing)
        return p.covariance(cov)
    n = p.y.size
    with jax.enable_x64(True):
        vals, null = _right_cov_core(
            jnp.asarray(p.y),
            jnp.float64(p.c),
            jnp.float64(_eps(n, smoothing)),
            jnp.float64(ISOLATION / math.sqrt(n)),
        )
        vals, null = np.asarray(vals), float(null)
    return p.covariance(vals, null)


def gd_hard_threshold(y: np.ndarray, noise_std: float | None = None) -> np.ndarray:
    """Gavish-Donoho (2014) optimal hard threshold: keep the singular values above the threshold,
    unchanged.

    sigma known: threshold lambda*(c) sigma sqrt(M); unknown: omega(c) times the median singular
    value.
    """
    p = _Problem(y, noise_std, need_sigma=noise_std is not None)
    if noise_std is None:
        keep = p.y_raw > hard_threshold_omega(p.c) * float(np.median(p.y_raw))
    else:
        keep = p.y > hard_threshold_coef(p.c)
    return p.rebuild(np.where(keep, p.y, 0.0))


def gd_shrink_values(y: np.ndarray, c: float) -> np.ndarray:
    """Frobenius-optimal shrinker (Gavish & Donoho 2017): sqrt((y^2 - c - 1)^2 - 4c) / y above 1 +
    sqrt(c), else 0."""
    y = np.asarray(y, dtype=np.float64)
    above = y > 1 + math.sqrt(c)
    ys = np.where(above, y, 2.0 + 2 * math.sqrt(c))
    return np.where(above, np.sqrt(np.maximum((ys**2 - c - 1) ** 2 - 4 * c, 0.0)) / ys, 0.0)


def gd_shrink(y: np.ndarray, noise_std: float | None = None) -> np.ndarray:
    """Gavish-Donoho Frobenius-optimal singular value shrinkage (sigma estimated when None)."""
    p = _Problem(y, noise_std)
    return p.rebuild(gd_shrink_values(p.y, p.c))


def truncated_svd(y: np.ndarray, rank: int) -> np.ndarray:
    """Best rank-`rank` approximation of Y (the top singular triplets, unchanged)."""
    p = _Problem(y, None, need_sigma=False)
    if not (isinstance(rank, int | np.integer) and 0 <= rank <= p.n):
        raise ValueError(f"rank must be an integer in [0, {p.n}], got {rank}")
    keep = np.zeros(p.n, dtype=bool)
    if rank:
        keep[-rank:] = True  # ascending order
    return p.rebuild(np.where(keep, p.y, 0.0))


def _oracle_values(p: _Problem, s) -> tuple[np.ndarray, np.ndarray]:
    s = _as_matrix(s, "S")
    s = s.T if p.transposed else s
    if s.shape != p.a.shape:
        raise ValueError(f"S: shape {s.shape} does not match Y")
    u = np.asarray(p.u, dtype=np.float64)
    us = u.T @ s
    uy = u.T @ np.asarray(p.a, dtype=np.float64)
    y = p.y_raw
    d = np.where(y > 0, np.sum(us * uy, axis=1) / np.where(y > 0, y, 1.0), 0.0)
    return d, np.sum(us * us, axis=1)


def oracle_denoise(y: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Oracle RI estimate: data singular vectors u_i, v_i with the true values u_i^T S v_i (needs
    S)."""
    p = _Problem(y, None, need_sigma=False)
    d, _ = _oracle_values(p, s)
    return p.rebuild(d)


def oracle_covariance(y: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Oracle RI estimate of S S^T: on the singular vectors of Y on the rows' side, the true values
    x^T S S^T x (needs S); for N > M also the true mean value on the N - M remaining directions."""
    p = _Problem(y, None, need_sigma=False)
    if not p.transposed:
        _, cv = _oracle_values(p, s)
        return p.covariance(cv)
    s_t = np.asarray(_as_matrix(s, "S"), dtype=np.float64).T  # = the transposed problem's signal
    if s_t.shape != p.a.shape:
        raise ValueError(f"S: shape {s_t.T.shape} does not match Y")
    u = np.asarray(p.u, dtype=np.float64)
    ok = p.y_raw > 0
    right = (np.asarray(p.a, dtype=np.float64).T @ u[:, ok]) / p.y_raw[ok][None, :]
    sv = s_t @ right
    vals = np.zeros(p.n)
    vals[ok] = np.sum(sv * sv, axis=0)
    rest = right.shape[0] - right.shape[1]
    null = (np.sum(s_t * s_t) - vals.sum()) / rest if rest > 0 else 0.0
    return p.covariance(vals, null)


def estimate_noise_std(y: np.ndarray) -> float:
    """Per-entry noise standard deviation from the median singular value (Gavish-Donoho; see module
    doc)."""
    return float(_Problem(y, None).sigma)


def relative_error(estimate: np.ndarray, target: np.ndarray) -> float:
    """||estimate - target||_F / ||target||_F (float64)."""
    e = np.asarray(estimate, dtype=np.float64)
    t = np.asarray(target, dtype=np.float64)
    return float(np.linalg.norm(e - t) / np.linalg.norm(t))


def compare_estimators(
    y: np.ndarray,
    s: np.ndarray,
    noise_std: float,
    rank: int,
    *,
    smoothing: float = SMOOTHING,
    cov_smoothing: float = COV_SMOOTHING,
) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
    """Relative Frobenius errors of every estimator on one matrix, from one decomposition of Y.

    Returns (denoise, covariance, info): denoise[name] = ||S_hat - S||_F / ||S||_F for rie, rie
    (sigma unknown), Gavish-Donoho hard threshold (sigma known / unknown), GD shrinkage (known /
    unknown), truncated SVD at the true rank and the oracle; covariance[name] = the same for S S^T
    with rie_covariance, the squared RIE (S_hat S_hat^T), squared GD shrinkage, the bias-corrected
    sample Y Y^T - sigma^2 M I and the oracle (N <= M only). info: sigma_hat / sigma.
    """
    p = _Problem(y, noise_std)
    s64 = np.asarray(s, dtype=np.float64)
    d_or, c_or = _oracle_values(p, s)
    sigma_hat = float(np.median(p.y_raw)) / math.sqrt(p.m * mp_median(p.c))
    y_unk = p.y_raw / (sigma_hat * math.sqrt(p.m))  # normalized with the estimated sigma
    ratio = sigma_hat / p.sigma  # converts values in those units back to p.y units
    xi, cov, _ = rie_shrinkage(p.y, p.c, smoothing, cov_smoothing)
    xi_u, _, _ = rie_shrinkage(y_unk, p.c, smoothing, cov_smoothing)
    keep = np.zeros(p.n, dtype=bool)
    keep[p.n - rank :] = rank > 0
    omega_thr = hard_threshold_omega(p.c) * float(np.median(p.y_raw)) / p.scale
    values = {
        "rie": xi,
        "rie_sigma_unknown": xi_u * ratio,
        "gd_hard": np.where(p.y > hard_threshold_coef(p.c), p.y, 0.0),
        "gd_hard_sigma_unknown": np.where(p.y > omega_thr, p.y, 0.0),
        "gd_shrink": gd_shrink_values(p.y, p.c),
        "gd_shrink_sigma_unknown": gd_shrink_values(y_unk, p.c) * ratio,
        "tsvd_true_rank": np.where(keep, p.y, 0.0),
        "oracle": d_or / p.scale,
    }
    den = {k: relative_error(p.rebuild(v), s64) for k, v in values.items()}
    covs = {}
    if not p.transposed:
        target = s64 @ s64.T
        covs["rie_covariance"] = relative_error(p.covariance(cov), target)
        covs["rie_denoise_squared"] = relative_error(p.covariance(xi**2), target)
        covs["gd_shrink_squared"] = relative_error(p.covariance(gd_shrink_values(p.y, p.c) ** 2), target)
        covs["sample_minus_noise"] = relative_error(p.covariance(p.y**2 - 1.0), target)
        covs["oracle"] = relative_error(p.covariance(c_or / p.scale**2), target)
    return den, covs, {"sigma_hat_over_sigma": ratio}


# ------------------------------------------------------------------------------------------------
# Command line.


class _Usage(Exception):
    pass


def _parse(argv: list[str]) -> dict:
    opts = {"input": None, "output": None, "noise-std": None}
    for arg in argv:
        if arg in ("-h", "--help"):
            raise _Usage("")
        if not arg.startswith("--") or "=" not in arg:
            raise _Usage(f"unexpected argument {arg!r} (use --name=value)")
        key, value = arg[2:].split("=", 1)
        key = key.replace("_", "-")
        if key not in opts:
            raise _Usage(f"unknown flag --{key}")
        opts[key] = value
    for key in ("input", "output"):
        if not opts[key]:
            raise _Usage(f"--{key} is required")
    if opts["noise-std"] is not None:
        try:
            sigma = float(opts["noise-std"])
        except ValueError:
            raise _Usage(f"--noise-std: not a number: {opts['noise-std']!r}") from None
        if not (math.isfinite(sigma) and sigma > 0):
            raise _Usage(f"--noise-std: must be a finite number > 0, got {opts['noise-std']}")
        opts["noise-std"] = sigma
    return opts


def _save_atomic(path: str, array: np.ndarray) -> None:
    directory = os.path.dirname(os.path.abspath(path)) or "."
    if not os.path.isdir(directory):
        raise OSError(f"output directory does not exist: {directory}")
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp.", suffix=".npy")
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, array, allow_pickle=False)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def main(argv: list[str] | None = None) -> int:
    """CLI: denoise the matrix in --input (.npy) with the RIE and write S_hat to --output (.npy),
    atomically."""
    argv = sys.argv[1:] if argv is None else argv
    usage = "usage: python -m spectra.denoise --input=Y.npy --output=S_hat.npy [--noise-std=SIGMA]"
    try:
        opts = _parse(argv)
    except _Usage as e:
        print(f"error: {e}\n{usage}" if str(e) else usage, file=sys.stderr)
        return 2 if str(e) else 0
    try:
        y = np.load(opts["input"], allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        print(f"error: --input={opts['input']}: cannot read a .npy array ({first})", file=sys.stderr)
        return 2
    if not isinstance(y, np.ndarray):
        print(f"error: --input={opts['input']}: not a single .npy array", file=sys.stderr)
        return 2
    try:
        s_hat = rie_denoise(y, opts["noise-std"])
    except ValueError as e:
        print(f"error: --input={opts['input']}: {e}", file=sys.stderr)
        return 2
    try:
        _save_atomic(opts["output"], s_hat)
    except OSError as e:
        print(f"error: --output={opts['output']}: {e}", file=sys.stderr)
        return 2
    print(f"wrote {opts['output']} ({s_hat.shape[0]} x {s_hat.shape[1]}, {s_hat.dtype})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
