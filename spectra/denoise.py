"""Denoisers and covariance estimators for Y = S + noise (the command line is spectra/cli.py).

    spectra-denoise --input Y.npy --output S_hat.npy [--noise-std SIGMA|estimate|median] [--method rie]

Noise model: every entry of the noise has standard deviation `noise_std` (sigma, in the user's
units). Internally Y is converted to float64, divided by a power of two near max|Y| (exact, so no
finite matrix overflows or underflows its Gram matrix), transposed when N > M (c = min/max <= 1) and
normalised to Yn = Y / (sigma sqrt(M)), so that the noise has the package convention N(0, 1/M) (its
singular values fill [1 - sqrt(c), 1 + sqrt(c)]). Estimates come back in the user's units,
orientation and float dtype (native byte order).

Unknown sigma: noise_std="estimate" (the default, `DEFAULT_NOISE`, for the library and the command
line alike) fits the extensive spike model's spectrum (b, s) and the scale to the quantiles of the data's singular
values (`fit_noise_std`): unbiased on ESM signals of any rank (measured at N = 1000, M = 2000: within 1.4%), 1.48x
too high on singular values spread evenly on (0, 3] (no pure-noise directions at all). noise_std="median" (or None)
is Gavish & Donoho's (2014) rule sigma = y_med / sqrt(M mu_c), consistent for low-rank signals only (x1.39 for the
ESM with b = 0.5, s = 1.5; x1.92 for the spread spectrum).

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
import sys

import jax
import jax.numpy as jnp
import numpy as np

from spectra.noise import (  # noqa: F401  (the noise rules are part of this module's API)
    DEFAULT_NOISE,
    ESTIMATE,
    MEDIAN,
    _check_sigma,
    fit_noise_std,
    hard_threshold_coef,
    hard_threshold_omega,
    median_noise_std,
    mp_median,
)

# Smoothing widths eps = SMOOTHING / sqrt(N) (denoiser) and COV_SMOOTHING / sqrt(N) (covariance) in
# normalized singular-value units, chosen on ESM and continuous signals at N = 1000 (see README).
SMOOTHING = 1.5
COV_SMOOTHING = 0.5
ISOLATION = 2.0  # farther than ISOLATION / sqrt(N) from every other singular value: isolated outlier


def _as_matrix(y, name: str = "Y") -> np.ndarray:
    """Any real array (any float or integer dtype, either byte order) as a native float64 matrix."""
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
    a64 = a.astype(np.float64)  # native byte order; float16 / longdouble / integers alike
    if not np.all(np.isfinite(a64)):
        raise ValueError(f"{name}: {int(np.sum(~np.isfinite(a64)))} entries outside the float64 range")
    return a64


def _out_dtype(y) -> np.dtype:
    """The dtype results are returned in: the input's float type in native byte order (float64 for
    integers)."""
    dt = np.asarray(y).dtype
    return dt.newbyteorder("=") if dt.kind == "f" else np.dtype(np.float64)


def _pow2_scale(a: np.ndarray) -> float:
    """A power of two near max |a| (exact to divide by): entries of a / scale lie in [0.5, 1), so no
    finite matrix overflows or underflows its Gram matrix."""
    amax = float(np.max(np.abs(a))) if a.size else 0.0
    return math.ldexp(1.0, math.frexp(amax)[1]) if amax > 0 else 1.0


@jax.jit
def _eigh_gram(yn):
    lam, u = jnp.linalg.eigh(yn @ yn.T)
    return jnp.sqrt(jnp.maximum(lam, 0.0)), u


@jax.jit
def _reconstruct(u, ratio, yn):
    """U diag(ratio) U^T Yn = sum_i ratio_i y_i u_i v_i^T (no right vectors needed)."""
    return ((u * ratio[None, :]) @ u.T) @ yn


class _Problem:
    """Y in the package convention: float64, rescaled by a power of two (no overflow or underflow),
    transposed so N <= M, and with noise_std given, normalised so the noise is N(0, 1/M)."""

    def __init__(self, y, noise_std, *, need_sigma: bool = True):
        self.dtype = _out_dtype(y)
        a = _as_matrix(y)
        self.transposed = a.shape[0] > a.shape[1]
        a = a.T if self.transposed else a
        self.n, self.m = a.shape
        self.c = self.n / self.m
        self.unit = _pow2_scale(a)  # user units = unit * internal units
        a = a / self.unit
        sigma = _check_sigma(noise_std)
        with jax.enable_x64(True):
            y_raw, u = _eigh_gram(jnp.asarray(a))
            self.y_raw = np.asarray(y_raw, dtype=np.float64)  # internal units, ascending
        self.sigma_source = "given"
        if isinstance(sigma, float):
            sigma = sigma / self.unit
            if not (math.isfinite(sigma) and sigma > 0):
                raise ValueError("noise_std is out of range for this matrix's scale")
        elif need_sigma:
            if not np.max(self.y_raw) > 0:
                raise ValueError("Y: cannot estimate the noise level (the matrix is 0)")
            if sigma in (None, MEDIAN):
                sigma, self.sigma_source = median_noise_std(self.y_raw, self.m, self.c), "median"
            else:
                sigma, self.sigma_source = fit_noise_std(self.y_raw, self.m, self.c), "estimate"
            if not sigma > 0:
                raise ValueError("Y: cannot estimate the noise level (median singular value is 0)")
        else:
            sigma = None
        self.sigma = sigma  # internal units
        self.scale = sigma * math.sqrt(self.m) if sigma else 1.0
        self.a, self.u = a, u
        self.y = self.y_raw / self.scale  # normalized singular values (ascending)

    @property
    def noise_std(self) -> float | None:
        """sigma in the user's units."""
        return None if self.sigma is None else self.sigma * self.unit

    def rebuild(self, values: np.ndarray) -> np.ndarray:
        """Matrix with the data singular vectors and new singular values (user units, orientation,
        dtype)."""
        values = np.asarray(values, dtype=np.float64) * self.scale
        ratio = np.where(self.y_raw > 0, values / np.where(self.y_raw > 0, self.y_raw, 1.0), 0.0)
        with jax.enable_x64(True):
            out = np.asarray(_reconstruct(self.u, jnp.asarray(ratio), jnp.asarray(self.a)))
        out = (out * self.unit).astype(self.dtype, copy=False)
        return out.T if self.transposed else out

    def right_vectors(self) -> np.ndarray:
        ok = self.y_raw > 0
        return (self.a.T @ np.asarray(self.u)[:, ok]) / self.y_raw[ok][None, :]

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
            out = (u * v[None, :]) @ u.T
        else:
            ok = self.y_raw > 0
            right = self.right_vectors()
            null_u = float(null) * self.scale**2
            out = (right * (v[ok] - null_u)[None, :]) @ right.T
            out[np.diag_indices_from(out)] += null_u
        return (out * self.unit**2).astype(self.dtype, copy=False)


# ------------------------------------------------------------------------------------------------
# The rotationally invariant estimators (pure functions of the normalized spectrum).

_BLOCK = 128  # rows per block of the O(N^2) sums: temporaries are O(_BLOCK N), not O(N^2)


def _groups(y: np.ndarray, iso_dist: float) -> np.ndarray:
    """Group label per (ascending) singular value for the leave-group-out transform, -1 for bulk.

    The spectrum splits into clusters at gaps wider than iso_dist. A cluster of at most sqrt(N)
    values (a single outlier, or a tight group of equal spikes) is a finite-rank group: its own
    share of m is below the kernel's resolution, so its members are treated as spikes (the
    Stieltjes transform of the rest, on the real axis). Larger clusters are bulks (smoothed).
    """
    n = y.size
    cid = np.concatenate([[0], np.cumsum(np.diff(y) > iso_dist)])
    sizes = np.bincount(cid)
    spike = sizes[cid] <= max(1.0, math.sqrt(n))
    return np.where(spike, cid, -1).astype(np.int32)


@functools.partial(jax.jit, static_argnames=("block",))
def _resolvent_sums(y, valid, group, eps, eps_cov, block=_BLOCK):
    """Per row i, over every other singular value k, in row blocks (no N x N temporary):

    G(w) = (1/N) sum_k w / (y_k^2 - w^2) = w m(w^2) and G'(w) at w = y_i + i eps, G at y_i + i
    eps_cov, and the leave-group-out transform on the real axis (k outside i's group; for bulk
    rows the plain leave-one-out one). y, valid, group padded to a multiple of `block`.
    """
    n_tot = y.shape[0]
    n = jnp.sum(valid)
    yk = y[None, :]
    vk = valid[None, :]
    gk = group[None, :]

    def rows(args):
        yi, gi, idx = args
        yi, gi, idx = yi[:, None], gi[:, None], idx[:, None]

        def kernel(e):
            w = yi + 1j * e
            d1, d2 = yk - w, yk + w
            g = jnp.sum(vk * 0.5 * (1 / d1 - 1 / d2), 1) / n
            gp = jnp.sum(vk * 0.5 * (1 / d1**2 + 1 / d2**2), 1) / n
            return g, gp

        g, gp = kernel(eps)
        gc, _ = kernel(eps_cov)
        k = jnp.arange(n_tot)[None, :]
        out = (k == idx) | ((gi >= 0) & (gk == gi)) | (vk == 0)
        safe = jnp.where(out, 1.0, yk - yi)
        g_loo = jnp.sum(jnp.where(out, 0.0, 0.5 * (1 / safe - 1 / (yk + yi))), 1) / n
        return g, gp, gc, g_loo

    nb = n_tot // block
    args = (y.reshape(nb, block), group.reshape(nb, block), jnp.arange(n_tot).reshape(nb, block))
    g, gp, gc, g_loo = jax.lax.map(rows, args)
    return g.ravel(), gp.ravel(), gc.ravel(), g_loo.ravel()


def _sums(y: np.ndarray, group: np.ndarray, eps: float, eps_cov: float):
    """_resolvent_sums on the unpadded spectrum (float64)."""
    n = y.size
    block = min(_BLOCK, 8 * -(-n // 8))
    pad = (-n) % block
    yp = np.pad(y, (0, pad), constant_values=float(y.max()) + 1.0 if n else 1.0)
    vp = np.pad(np.ones(n), (0, pad))
    gp_ = np.pad(group, (0, pad), constant_values=-1)
    with jax.enable_x64(True):
        out = _resolvent_sums(
            jnp.asarray(yp),
            jnp.asarray(vp),
            jnp.asarray(gp_, dtype=jnp.int32),
            jnp.float64(eps),
            jnp.float64(eps_cov),
            block=block,
        )
        return tuple(np.asarray(o)[:n] for o in out)


def _pure_noise_bulk(ys: np.ndarray, spike: np.ndarray, c: float) -> bool:
    """Whether the singular values outside the spike groups are pure noise by the theory: inside
    the Marchenko-Pastur support [1 - sqrt(c), 1 + sqrt(c)] up to a few Tracy-Widom widths, with
    the noise's mean of y^2 (1) up to what the spikes displace (a few K / N)."""
    bulk = ys[~spike]
    n = ys.size
    if bulk.size < 2:
        return False
    tol = 4.0 * n ** (-2.0 / 3.0)
    rc = math.sqrt(c)
    inside = bulk.max() <= (1 + rc) * (1 + tol) and (c >= 1 or bulk.min() >= (1 - rc) * (1 - tol) - tol)
    k = n - bulk.size
    mean_ok = abs(float(np.mean(bulk * bulk)) - 1.0) <= 5.0 / math.sqrt(n * n / c) + 3.0 * k / n
    return bool(inside and mean_ok)


def _rie_values(y, c, g, gp, gc, g_loo, isolated, eps):
    """xi and cov per singular value from the resolvent sums (see rie_shrinkage)."""
    w = y + 1j * eps
    # Bulk: f(w) = w - (1 - c)/w + 2 c G(w) is analytic above the real axis and xi(y) = Re f(y + i0);
    # the first-order extrapolation Re[f(w) - i eps f'(w)] removes the O(eps) smoothing bias.
    f = w - (1 - c) / w + 2 * c * g
    fp = 1 + (1 - c) / w**2 + 2 * c * gp
    xi_bulk = np.real(f - 1j * eps * fp)
    ys = np.maximum(y, 1e-30)
    xi_iso = y - (1 - c) / ys + 2 * c * g_loo
    xi = np.where(isolated, xi_iso, xi_bulk)
    return xi, g_loo / ys, ys


def _eps(n: int, smoothing: float) -> float:
    if not (math.isfinite(smoothing) and smoothing > 0):
        raise ValueError(f"smoothing must be > 0, got {smoothing}")
    return smoothing / math.sqrt(n)


def _spectrum_parts(y, c, smoothing, cov_smoothing):
    y = np.asarray(y, dtype=np.float64)
    order = np.argsort(y, kind="stable")
    ys = y[order]
    n = y.size
    eps, eps_cov = _eps(n, smoothing), _eps(n, cov_smoothing)
    group = _groups(ys, ISOLATION / math.sqrt(n))
    g, gp, gc, g_loo = _sums(ys, group, eps, eps_cov)
    return order, ys, group >= 0, g, gp, gc, g_loo, eps, eps_cov


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
    which cancels the O(eps) smoothing bias. For cov, eps = cov_smoothing / sqrt(N).
    Spikes: the spectrum is cut into clusters at gaps wider than 2 / sqrt(N); a cluster of at most
    sqrt(N) values (an isolated outlier or a tight group of equal spikes) is treated as finite-rank
    spikes: the closed forms use the real-axis transform of the other singular values, leaving the
    whole group out (so xi is Gavish-Donoho's shrinker sqrt((y^2 - 1 - c)^2 - 4c)/y on a noise
    bulk), and cov = d/dm[A (1 - B m)] at that m (-> theta^2 |<u,a>|^2). When the rest of the
    spectrum is pure noise by the theory's support (inside the Marchenko-Pastur interval up to a few
    Tracy-Widom widths, with the noise's mean y^2), its values are set to their limit 0, as
    Gavish-Donoho's are (the kernel estimate would leak a little noise there). The O(N^2) sums run in
    blocks of 128 rows, so memory is O(N) beyond the spectrum (measured in the benchmark).
    """
    order, ys, iso, g, gp, gc, g_loo, eps, eps_cov = _spectrum_parts(y, c, smoothing, cov_smoothing)
    xi, mb, yss = _rie_values(ys, c, g, gp, gc, g_loo, iso, eps)
    wc = ys + 1j * eps_cov
    z = wc * wc
    m = gc / wc
    a = 1 + c * m
    bb = 1 - c - a * z
    cov_bulk = np.imag(a * (1 - bb * m)) / np.imag(m)
    ab = 1 + c * mb
    cov_iso = c - (1 - c) * (ab + c * mb) + ys * ys * (2 * ab * c * mb + ab * ab)
    cov = np.where(iso, cov_iso, cov_bulk)
    if _pure_noise_bulk(ys, iso, c):  # no extensive signal: the bulk's optimal values are 0 (as GD's)
        xi, cov = np.where(iso, xi, 0.0), np.where(iso, cov, 0.0)
    out = [np.empty_like(ys), np.empty_like(ys), np.empty(ys.shape, dtype=bool)]
    for o, v in zip(out, (np.maximum(xi, 0.0), np.maximum(cov, 0.0), iso), strict=True):
        o[order] = v
    return tuple(out)


def _right_covariance_values(y: np.ndarray, c: float, smoothing: float) -> tuple[np.ndarray, float]:
    """RI estimate of v^T S^T S v on the right singular vectors (used when the user's N > M).

    With m the Stieltjes transform of Yn Yn^T (the small side), A = 1 + c m, A~ = A - (1 - c)/z:
    c_R(lambda) = Im F_R(m) / Im m, F_R(m) = A~ (1 + A z m - (1 - c) m) (= int t T_t dH from the
    right-resolvent deterministic equivalent); spikes d/dm F_R at the leave-group-out m; on the
    M - N null directions the z -> 0 limit, c (1 - (1 - c) m(0)) with m(0) = mean(1/y^2).
    """
    order, ys, iso, _, _, gc, g_loo, _, eps = _spectrum_parts(y, c, smoothing, smoothing)
    w = ys + 1j * eps
    z = w * w
    m = gc / w
    a = 1 + c * m
    at = a - (1 - c) / z
    bulk = np.imag(at * (1 + a * z * m - (1 - c) * m)) / np.imag(m)
    yss = np.maximum(ys, 1e-30)
    lam = yss * yss
    mb = g_loo / yss
    ab = 1 + c * mb
    atb = ab - (1 - c) / lam
    spike = c * (1 + ab * lam * mb - (1 - c) * mb) + atb * (c * lam * mb + ab * lam - (1 - c))
    null = c * (1 - (1 - c) * np.mean(1 / np.maximum(ys * ys, 1e-300)))
    vals_s = np.where(iso, spike, bulk)
    if _pure_noise_bulk(ys, iso, c):
        vals_s, null = np.where(iso, vals_s, 0.0), 0.0
    vals = np.empty_like(ys)
    vals[order] = np.maximum(vals_s, 0.0)
    return vals, max(float(null), 0.0)


def rie_denoise(y: np.ndarray, noise_std=DEFAULT_NOISE, *, smoothing: float = SMOOTHING) -> np.ndarray:
    """Optimal rotationally invariant estimate of S from Y = S + noise (paper's rectangular RIE).

    Keeps the singular vectors of Y and replaces each singular value by xi(y) (see `rie_shrinkage`),
    computed from the spectrum of Y alone. noise_std: per-entry noise standard deviation in Y's
    units; "estimate" (default) fits it to the spectrum (`fit_noise_std`); "median" (or None) uses the
    median rule (biased upwards for extensive signals). Same shape and dtype as Y (native byte order).
    """
    p = _Problem(y, noise_std)
    xi, _, _ = rie_shrinkage(p.y, p.c, smoothing)
    return p.rebuild(xi)


def _rie_covariance(p: _Problem, smoothing: float) -> np.ndarray:
    if not p.transposed:
        _, cov, _ = rie_shrinkage(p.y, p.c, cov_smoothing=smoothing)
        return p.covariance(cov)
    vals, null = _right_covariance_values(p.y, p.c, smoothing)
    return p.covariance(vals, null)


def rie_covariance(y: np.ndarray, noise_std=DEFAULT_NOISE, *, smoothing: float = COV_SMOOTHING) -> np.ndarray:
    """Optimal rotationally invariant estimate of S S^T (N x N, N = rows of Y) from Y = S + noise.

    N <= M: eigenvectors of Y Y^T with eigenvalues c(lambda) = Im[A (1 - B m)] / Im m (not xi^2;
    see `rie_shrinkage`). N > M: the rows are the long side, so the estimate lives on the right
    singular vectors of the transposed problem, c_R(lambda) = Im[A~ (1 + A z m - (1 - c) m)] / Im m
    with A~ = A - (1 - c)/z, plus c (1 - (1 - c) m(0)) on the N - M directions orthogonal to them
    (the z -> 0 limit of the same expression; 0 on pure noise). noise_std as in `rie_denoise`.
    """
    return _rie_covariance(_Problem(y, noise_std), smoothing)


def gd_hard_threshold(y: np.ndarray, noise_std: float | str | None = DEFAULT_NOISE) -> np.ndarray:
    """Gavish-Donoho (2014) optimal hard threshold: keep the singular values above the threshold,
    unchanged.

    sigma known or estimated (a number, "estimate" (default) or "median"): threshold lambda*(c) sigma
    sqrt(M); None: Gavish-Donoho's sigma-unknown rule, omega(c) times the median singular value.
    """
    p = _Problem(y, noise_std, need_sigma=noise_std is not None)
    return p.rebuild(np.where(_hard_keep(p, noise_std is None), p.y, 0.0))


def _hard_keep(p: _Problem, median_rule: bool) -> np.ndarray:
    """Singular values kept by the Gavish-Donoho hard threshold (omega(c) median(y) when
    median_rule, else lambda*(c) in noise units)."""
    if median_rule:
        return p.y_raw > hard_threshold_omega(p.c) * float(np.median(p.y_raw))
    return p.y > hard_threshold_coef(p.c)


def gd_shrink_values(y: np.ndarray, c: float) -> np.ndarray:
    """Frobenius-optimal shrinker (Gavish & Donoho 2017): sqrt((y^2 - c - 1)^2 - 4c) / y above 1 +
    sqrt(c), else 0."""
    y = np.asarray(y, dtype=np.float64)
    above = y > 1 + math.sqrt(c)
    ys = np.where(above, y, 2.0 + 2 * math.sqrt(c))
    return np.where(above, np.sqrt(np.maximum((ys**2 - c - 1) ** 2 - 4 * c, 0.0)) / ys, 0.0)


def gd_shrink(y: np.ndarray, noise_std: float | str | None = DEFAULT_NOISE) -> np.ndarray:
    """Gavish-Donoho Frobenius-optimal singular value shrinkage (noise_std as in `rie_denoise`)."""
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
    """Oracle values u_i^T S v_i and u_i^T S S^T u_i in internal units (unnormalised)."""
    s = _as_matrix(s, "S") / p.unit
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
    s_t = _as_matrix(s, "S").T / p.unit  # = the transposed problem's signal
    if s_t.shape != p.a.shape:
        raise ValueError(f"S: shape {s_t.T.shape} does not match Y")
    ok = p.y_raw > 0
    right = p.right_vectors()
    sv = s_t @ right
    vals = np.zeros(p.n)
    vals[ok] = np.sum(sv * sv, axis=0)
    rest = right.shape[0] - right.shape[1]
    null = (np.sum(s_t * s_t) - vals.sum()) / rest if rest > 0 else 0.0
    return p.covariance(vals, null)


def estimate_noise_std(y: np.ndarray, method: str = DEFAULT_NOISE) -> float:
    """Per-entry noise standard deviation of Y: "estimate" (default; `fit_noise_std`, fitted to the
    whole spectrum) or "median" (Gavish-Donoho; biased upwards by extensive signals)."""
    if method not in (MEDIAN, ESTIMATE):
        raise ValueError(f"method must be {MEDIAN!r} or {ESTIMATE!r}, got {method!r}")
    return float(_Problem(y, method).noise_std)


def shrinkage_curves(
    y: np.ndarray, s: np.ndarray, noise_std: float, smoothing: float = SMOOTHING, cov_smoothing: float = COV_SMOOTHING
) -> dict[str, np.ndarray]:
    """Normalized singular values y of Y with the RIE values xi(y), cov(y), the Gavish-Donoho
    shrinker and the oracle values u^T S v and u^T S S^T u (normalized units), ascending."""
    p = _Problem(y, noise_std)
    d_or, c_or = _oracle_values(p, s)
    xi, cov, iso = rie_shrinkage(p.y, p.c, smoothing, cov_smoothing)
    return {
        "y": p.y,
        "xi": xi,
        "cov": cov,
        "spike": iso,
        "gd": gd_shrink_values(p.y, p.c),
        "oracle_xi": d_or / p.scale,
        "oracle_cov": c_or / p.scale**2,
    }


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
    fit_sigma: bool = False,
) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
    """Relative Frobenius errors of every estimator on one matrix, from one decomposition of Y.

    Returns (denoise, covariance, info): denoise[name] = ||S_hat - S||_F / ||S||_F for rie, rie
    (sigma from the median rule; with fit_sigma also from `fit_noise_std`), Gavish-Donoho hard
    threshold (sigma known / unknown), GD shrinkage (known / unknown), truncated SVD at the true
    rank and the oracle; covariance[name] = the same for S S^T with rie_covariance, the squared
    RIE (S_hat S_hat^T), squared GD shrinkage, the bias-corrected sample Y Y^T - sigma^2 M I and
    the oracle (N <= M only). info: sigma_hat / sigma for the median rule (and the fit).
    """
    p = _Problem(y, noise_std)
    s64 = _as_matrix(s, "S")
    d_or, c_or = _oracle_values(p, s)
    xi, cov, _ = rie_shrinkage(p.y, p.c, smoothing, cov_smoothing)
    keep = np.zeros(p.n, dtype=bool)
    keep[p.n - rank :] = rank > 0
    values = {
        "rie": xi,
        "gd_hard": np.where(_hard_keep(p, False), p.y, 0.0),
        "gd_hard_sigma_unknown": np.where(_hard_keep(p, True), p.y, 0.0),
        "gd_shrink": gd_shrink_values(p.y, p.c),
        "tsvd_true_rank": np.where(keep, p.y, 0.0),
        "oracle": d_or / p.scale,
    }
    info = {}
    rules = [("sigma_unknown", median_noise_std(p.y_raw, p.m, p.c), "sigma_hat_over_sigma")]
    if fit_sigma:
        rules.append(("sigma_estimated", fit_noise_std(p.y_raw, p.m, p.c), "sigma_fit_over_sigma"))
    for suffix, sigma_hat, info_key in rules:
        ratio = sigma_hat / p.sigma  # converts values in those units back to p.y units
        y_hat = p.y / ratio  # normalized with the estimated sigma
        values[f"rie_{suffix}"] = rie_shrinkage(y_hat, p.c, smoothing, cov_smoothing)[0] * ratio
        values[f"gd_shrink_{suffix}"] = gd_shrink_values(y_hat, p.c) * ratio
        info[info_key] = ratio
    den = {k: relative_error(p.rebuild(v), s64) for k, v in values.items()}
    covs = {}
    if not p.transposed:
        target = s64 @ s64.T
        covs["rie_covariance"] = relative_error(p.covariance(cov), target)
        covs["rie_denoise_squared"] = relative_error(p.covariance(xi**2), target)
        covs["gd_shrink_squared"] = relative_error(p.covariance(gd_shrink_values(p.y, p.c) ** 2), target)
        covs["sample_minus_noise"] = relative_error(p.covariance(p.y**2 - 1.0), target)
        covs["oracle"] = relative_error(p.covariance(c_or / p.scale**2), target)
    return den, covs, info


if __name__ == "__main__":  # `python -m spectra.denoise` is the command line (spectra/cli.py)
    from spectra import cli

    sys.exit(cli.main())
