"""The sigmoid fit in log d and its crossing: d* from success rates or maximal target probabilities.

Fort et al. fit y(d) = lo + (hi − lo)·σ((log d − μ)/w) to the per-d means and read d*₅₀ where the fit crosses the
target level (0.5). Here the fits are batched (one projected Levenberg-Marquardt over many curves, so bootstrap
resamples cost one call), with a fit-free fallback (log-linear interpolation) and the smallest swept d reaching
the level (`grid_crossing`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np


def _sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def _mid_crossing(x: np.ndarray, y: np.ndarray, mid: np.ndarray) -> np.ndarray:
    """Per row of y [B, n]: log-linear interpolation of the first crossing of `mid` [B] (x[0] if y[:, 0] >= mid)."""
    above = y >= mid[:, None]
    j = np.where(above.any(axis=1), above.argmax(axis=1), y.shape[1] - 1)
    jm = np.maximum(j - 1, 0)
    rows = np.arange(y.shape[0])
    y0, y1 = y[rows, jm], y[rows, j]
    f = np.clip((mid - y0) / np.maximum(y1 - y0, 1e-9), 0.0, 1.0)
    return np.where(j == 0, x[0], x[jm] + f * (x[j] - x[jm]))


def fit_sigmoids(
    dims: Sequence[float], values: np.ndarray, *, free_levels: bool = True, init: np.ndarray | None = None
) -> np.ndarray:
    """Least-squares fits of y(d) = lo + (hi − lo)·σ((log d − μ)/w) to each row of `values` [B, len(dims)].

    lo = 0 and hi = 1 unless `free_levels`. Batched projected Levenberg-Marquardt (60 iterations, bounds
    0.02 <= w <= 10·span, 0 <= lo <= hi <= 1), started from `init` [B, 4] or from the log-linear interpolation of
    each row's crossing of its mid level. Returns [B, 4] = (μ, w, lo, hi).
    """
    x = np.log(np.asarray(dims, np.float64))
    y = np.atleast_2d(np.asarray(values, np.float64))
    b = y.shape[0]
    span = max(x[-1] - x[0], 1.0)
    if init is None:
        mid = 0.5 * (y.min(axis=1) + y.max(axis=1)) if free_levels else np.full(b, 0.5)
        q = np.stack([_mid_crossing(x, y, mid), np.full(b, 0.3 * span), y.min(axis=1), y.max(axis=1)], axis=1)
    else:
        q = np.array(np.broadcast_to(init, (b, 4)), np.float64)
    if not free_levels:
        q[:, 2], q[:, 3] = 0.0, 1.0
    return _levenberg_marquardt(x, y, q, n_free=4 if free_levels else 2)


def _residual_jacobian(x: np.ndarray, y: np.ndarray, q: np.ndarray, n_free: int):
    """Residuals [B, n] of the sigmoid fit at parameters q [B, 4] and their Jacobian [B, n, n_free]."""
    mu, w, lo, hi = (q[:, i : i + 1] for i in range(4))
    z = (x[None] - mu) / w
    s = _sigmoid(z)
    ds = s * (1 - s)
    r = lo + (hi - lo) * s - y
    jac = np.stack([-(hi - lo) * ds / w, -(hi - lo) * ds * z / w, 1 - s, s], axis=2)[:, :, :n_free]
    return r, jac


def _levenberg_marquardt(x: np.ndarray, y: np.ndarray, q: np.ndarray, n_free: int) -> np.ndarray:
    """60 batched projected Levenberg-Marquardt steps of the sigmoid fit from `q` [B, 4] (first `n_free` free)."""
    b = y.shape[0]
    span = max(x[-1] - x[0], 1.0)
    lb = np.array([x[0] - 3 * span, 0.02, 0.0, 0.0])
    ub = np.array([x[-1] + 3 * span, 10 * span, 1.0, 1.0])

    def project(q):
        q = np.clip(q, lb, ub)
        q[:, 3] = np.maximum(q[:, 3], q[:, 2] + 1e-6)
        return q

    def resid_jac(q):
        return _residual_jacobian(x, y, q, n_free)

    q = project(q)
    lam = np.full(b, 1e-2)
    r, jac = resid_jac(q)
    loss = np.sum(r * r, axis=1)
    eye = np.eye(n_free)
    for _ in range(60):
        jtj = np.einsum("bni,bnj->bij", jac, jac)
        g = np.einsum("bni,bn->bi", jac, r)
        damp = lam[:, None, None] * eye * np.maximum(np.diagonal(jtj, axis1=1, axis2=2)[:, None, :], 1e-9)
        step = -np.linalg.solve(jtj + damp + 1e-10 * eye, g[..., None])[..., 0]
        cand = q.copy()
        cand[:, :n_free] += step
        cand = project(cand)
        r_new, jac_new = resid_jac(cand)
        loss_new = np.sum(r_new * r_new, axis=1)
        better = loss_new < loss
        q = np.where(better[:, None], cand, q)
        r = np.where(better[:, None], r_new, r)
        jac = np.where(better[:, None, None], jac_new, jac)
        loss = np.where(better, loss_new, loss)
        lam = np.where(better, lam * 0.3, lam * 10.0)
    return q


def crossings(
    dims: Sequence[float], values: np.ndarray, level: float = 0.5, *, free_levels: bool = True, init=None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row of `values` [B, len(dims)]: the d at which the sigmoid fitted in log d crosses `level`.

    Returns (d [B], bracket [B] in {"below", "inside", "above"}, fits [B, 4]). "below": the row already reaches
    `level` at the smallest d (d is reported as dims[0], an upper bound); "above": it never does (d = inf).
    Where the fitted curve misses the level the crossing falls back on log-linear interpolation of the data;
    crossings are clipped to [dims[0], dims[-1]].
    """
    dims_a = np.asarray(dims, np.float64)
    x = np.log(dims_a)
    y = np.atleast_2d(np.asarray(values, np.float64))
    fits = fit_sigmoids(dims_a, y, free_levels=free_levels, init=init)
    frac = (level - fits[:, 2]) / np.maximum(fits[:, 3] - fits[:, 2], 1e-12)
    ok = (frac > 0) & (frac < 1)
    fr = np.clip(frac, 1e-12, 1 - 1e-12)
    x_fit = fits[:, 0] + fits[:, 1] * np.log(fr / (1 - fr))
    x_lin = _mid_crossing(x, y, np.full(y.shape[0], level))
    d = np.exp(np.clip(np.where(ok, x_fit, x_lin), x[0], x[-1]))
    below = y[:, 0] >= level
    above = y.max(axis=1) < level
    d = np.where(below, dims_a[0], np.where(above, np.inf, d))
    bracket = np.where(below, "below", np.where(above, "above", "inside"))
    return d, bracket, fits


def crossing(dims: Sequence[float], values: Sequence[float], level: float = 0.5, *, free_levels: bool = True):
    """`crossings` for one curve: (d, bracket, fit dict or None when the data do not bracket `level`)."""
    d, br, fits = crossings(dims, np.asarray(values, np.float64)[None], level, free_levels=free_levels)
    fit = None if br[0] != "inside" else dict(zip(("mu", "w", "lo", "hi"), map(float, fits[0]), strict=True))
    return float(d[0]), str(br[0]), fit


def bootstrap_crossing(
    dims: Sequence[int],
    samples: np.ndarray,
    level: float = 0.5,
    *,
    free_levels: bool = True,
    num_boot: int = 200,
    seed: int = 0,
) -> dict[str, Any]:
    """d*: the crossing of the sigmoid fitted to the per-d means of `samples` [len(dims), n], with a bootstrap error.

    The n samples at each d are resampled with replacement `num_boot` times and refitted (from the fit to the full
    data); the error is the standard deviation of the finite bootstrap d*, with the 16th/84th percentiles.
    """
    samples = np.asarray(samples, np.float64).reshape(len(dims), -1)
    mean = samples.mean(axis=1)
    d, bracket, fit = crossing(dims, mean, level, free_levels=free_levels)
    out = {"d_star": d, "error": math.nan, "low": math.nan, "high": math.nan, "bracket": bracket, "fit": fit}
    if num_boot <= 0:
        return out
    rng = np.random.default_rng(seed)
    n = samples.shape[1]
    idx = rng.integers(0, n, size=(num_boot, len(dims), n))
    boot_y = np.take_along_axis(samples[None].repeat(num_boot, 0), idx, 2).mean(axis=2)
    init = None if fit is None else np.array([fit["mu"], fit["w"], fit["lo"], fit["hi"]])
    boots = crossings(dims, boot_y, level, free_levels=free_levels, init=init)[0]
    fin = boots[np.isfinite(boots)]
    if fin.size > 1:
        out.update(error=float(fin.std()), low=float(np.percentile(fin, 16)), high=float(np.percentile(fin, 84)))
    return out


def grid_crossing(dims: Sequence[int], rates: Sequence[float], level: float = 0.5) -> float:
    """The smallest swept d whose rate reaches `level` (inf if none): the fit-free estimate."""
    hit = [d for d, r in zip(dims, rates, strict=True) if r >= level]
    return float(hit[0]) if hit else math.inf
