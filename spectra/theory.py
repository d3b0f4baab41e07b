"""Spectra and singular vectors of Y = S + X for any signal spectrum (information-plus-noise).

Convention (used everywhere in spectra/): Y = S + X is N x M with c = N / M <= 1 and X_ij ~ N(0,
1/M), so that the noise singular values fill the Marchenko-Pastur interval [1 - sqrt(c), 1 +
sqrt(c)]. The signal enters only through H, the eigenvalue distribution of S S^T, given as a
discrete spectrum: squared singular values `signal_sq` (t_j) with weights `weights` (w_j, summing to
1). The extensive spike model (ESM) with K = b N singular values equal to s is `signal_sq=[s**2,
0]`, `weights=[b, 1 - b]` (see `esm_spectrum`). Matrices with N > M are handled by the estimators in
denoise.py (they transpose); the theory functions here require 0 < c <= 1.

Stieltjes transform m(z) = (1/N) tr (Y Y^T - z)^-1 of the eigenvalues lambda = y^2 of Y Y^T solves
the Dozier-Silverstein equation (paper, information-plus-noise; A = 1 + c m)

    m = sum_j w_j g_j,   g_j = 1 / (t_j / A - A z + 1 - c),                                    (1)

and the singular-value density is p(y) = 2 y Im m(y^2 + i0) / pi. Equation (1) is solved in float64
with Newton's method continued in the imaginary part: starting at z = lambda + 10 i L (where m =
-1/z is the only solution) and lowering Im z geometrically to 1e-12 L, the iterate follows the
physical branch (the one analytic in the upper half plane, with Im m > 0), and any Newton step that
lands in the lower half plane is reflected back. One lambda is one scalar problem; the grid is
handled with jax.vmap.

Overlaps (deterministic equivalents of the resolvents, Hachem-Loubaton-Najim form): in the basis of
the left singular vectors a_t of S, (Y Y^T - z)^-1 is diagonal with entries g_t, and in the basis of
the right singular vectors b_t, (Y^T Y - z)^-1 has entries T_t = 1 / (t / A~ - z A) with A~ = A - (1
- c) / z. Hence, for a data singular value y inside the bulk (lambda = y^2),

    N |<u_y, a_t>|^2 = Im g_t / Im m,     N |<v_y, b_t>|^2 = Im T_t / Im m.                     (2)

A finite-rank spike of squared strength t0 on top of a bulk H creates an outlier at the lambda0 >
bulk edge where f(lambda) = t0 / A - A lambda + 1 - c vanishes (A from the bulk, real there), with
squared overlaps -1 / f'(lambda0) (left) and -1 / h'(lambda0), h = t0 / A~ - lambda A (right); on a
pure-noise bulk this is Benaych-Georges and Nadakuditi's rank-one result, `bbp`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

ArrayLike = np.ndarray | Sequence[float] | float

_N_ETA = 30  # continuation steps in Im z (ratio ~0.36 per step from 10 L down to 1e-12 L)
_N_NEWTON = 3  # Newton iterations per continuation step
_ETA_FINAL_REL = 1e-12
_ZERO_REL = 1e-6  # density below 1e-6 * max is treated as zero (edges of the support)
_GRID = 2048  # coarse grid for support detection


def esm_spectrum(b: float, s: float) -> tuple[np.ndarray, np.ndarray]:
    """Signal spectrum of the extensive spike model: H = b delta_{s^2} + (1 - b) delta_0.

    Returns (signal_sq, weights) for the other functions of this module.
    """
    if not 0.0 < b <= 1.0:
        raise ValueError(f"b must be in (0, 1], got {b}")
    if b == 1.0:
        return np.array([float(s) ** 2]), np.array([1.0])
    return np.array([float(s) ** 2, 0.0]), np.array([b, 1.0 - b])


def _check_spectrum(signal_sq: ArrayLike, weights: ArrayLike, c: float) -> tuple[np.ndarray, np.ndarray]:
    t = np.atleast_1d(np.asarray(signal_sq, dtype=np.float64))
    w = np.atleast_1d(np.asarray(weights, dtype=np.float64))
    if t.ndim != 1 or t.shape != w.shape or t.size == 0:
        raise ValueError(f"signal_sq and weights must be 1-D of equal length, got {t.shape} and {w.shape}")
    if not (np.all(np.isfinite(t)) and np.all(t >= 0)):
        raise ValueError("signal_sq must be finite and >= 0 (squared singular values)")
    if not (np.all(np.isfinite(w)) and np.all(w >= 0) and abs(w.sum() - 1.0) < 1e-6):
        raise ValueError(f"weights must be >= 0 and sum to 1, got sum {w.sum()}")
    if not (0.0 < c <= 1.0) or not math.isfinite(c):
        raise ValueError(f"c = N/M must be in (0, 1], got {c} (put the smaller dimension first)")
    return t, w / w.sum()


def _scale(t: np.ndarray, c: float) -> float:
    """A length scale of the spectrum in lambda units (largest possible eigenvalue, roughly)."""
    return float((math.sqrt(t.max()) + 1.0 + math.sqrt(c)) ** 2)


def _newton_update(m, z, t, w, c):
    """One safeguarded Newton step for equation (1) at complex z."""
    a = 1.0 + c * m
    g = 1.0 / (t / a - a * z + 1.0 - c)
    f = m - jnp.sum(w * g)
    fm = 1.0 - c * jnp.sum(w * g * g * (t / a**2 + z))
    dm = -f / fm
    # Cap the step so one bad Jacobian cannot throw the iterate onto another branch.
    cap = 0.5 * (jnp.abs(m) + 1e-8)
    mag = jnp.abs(dm)
    dm = jnp.where(mag > cap, dm * (cap / jnp.maximum(mag, 1e-300)), dm)
    new = m + dm
    # The physical branch has Im m > 0 for Im z > 0: reflect steps that cross the real axis.
    new = jnp.where(jnp.imag(new) < 0, jnp.conj(new), new)
    return jnp.where(jnp.isfinite(new), new, m)


@jax.jit
def _solve_m(lam, t, w, c, etas):
    """m(lam + i etas[-1]) for every lam (vmapped), continuing from Im z = etas[0] down to
    etas[-1]."""

    def one(lam_i):
        def step(m, eta):
            z = lam_i + 1j * eta
            m = jax.lax.fori_loop(0, _N_NEWTON, lambda _, mm: _newton_update(mm, z, t, w, c), m)
            return m, None

        m0 = -1.0 / (lam_i + 1j * etas[0])
        m, _ = jax.lax.scan(step, m0, etas)
        return m

    return jax.vmap(one)(lam)


def _etas(scale: float, eta: float | None) -> np.ndarray:
    final = max(float(eta) if eta else 0.0, _ETA_FINAL_REL * scale)
    return np.geomspace(10.0 * scale, final, _N_ETA)


_solve_batch = jax.jit(jax.vmap(_solve_m.__wrapped__, in_axes=(0, 0, 0, None, 0)))


def _pad_rows(x: np.ndarray, rows: int) -> np.ndarray:
    return np.concatenate([x, np.repeat(x[-1:], rows - x.shape[0], axis=0)]) if rows > x.shape[0] else x


def _m_batch(lam: np.ndarray, t: np.ndarray, w: np.ndarray, c: float, eta: float | None = None) -> np.ndarray:
    """Stieltjes transforms of P problems at once: lam [P, G], atoms t, w [P, A] -> m [P, G].

    One jitted, vmapped solve for every point of every problem (problems padded to 1, 16 or a
    multiple of 64 rows, grids and atoms to fixed sizes, so a few compiled shapes cover every call).
    """
    lam = np.asarray(lam, dtype=np.float64)
    p, g = lam.shape
    rows = next((r for r in (1, 16, 64) if p <= r), 64 * -(-p // 64))  # few shapes: few compiles
    size = next((b for b in (16, 64, 256, 512, 2048, 4096) if g <= b), 4096 * -(-g // 4096))
    lam_p = _pad_rows(np.pad(lam, ((0, 0), (0, size - g)), mode="edge"), rows)
    n_atoms = 4 * -(-t.shape[1] // 4)
    t_p = _pad_rows(np.pad(t, ((0, 0), (0, n_atoms - t.shape[1]))), rows)
    w_p = _pad_rows(np.pad(w, ((0, 0), (0, n_atoms - w.shape[1]))), rows)
    etas = np.stack([_etas(_scale(ti, c), eta) for ti in t_p])
    with jax.enable_x64(True):
        out = _solve_batch(
            jnp.asarray(lam_p), jnp.asarray(t_p), jnp.asarray(w_p), jnp.asarray(c, dtype=jnp.float64), jnp.asarray(etas)
        )
        return np.asarray(out)[:p, :g]


def _m(lam: np.ndarray, t: np.ndarray, w: np.ndarray, c: float, eta: float | None = None) -> np.ndarray:
    """Stieltjes transform at lam + i eta (eta None: the real axis limit), complex128, shape of
    lam."""
    lam = np.asarray(lam, dtype=np.float64)
    flat = lam.ravel()
    # Pad to a few fixed sizes (and the atoms to a multiple of 4 with zero weight) so that a
    # handful of compiled shapes covers every call.
    size = next((b for b in (64, 512, 2048, 4096) if flat.size <= b), 4096 * -(-flat.size // 4096))
    flat = np.pad(flat, (0, size - flat.size), mode="edge") if flat.size else np.ones(size)
    n_atoms = 4 * -(-t.size // 4)
    with jax.enable_x64(True):
        out = _solve_m(
            jnp.asarray(flat),
            jnp.asarray(np.pad(t, (0, n_atoms - t.size))),
            jnp.asarray(np.pad(w, (0, n_atoms - w.size))),
            jnp.asarray(c, dtype=jnp.float64),
            jnp.asarray(_etas(_scale(t, c), eta)),
        )
        return np.asarray(out)[: lam.size].reshape(lam.shape)


def stieltjes(
    lam: ArrayLike, signal_sq: ArrayLike, weights: ArrayLike, c: float, eta: float | None = None
) -> np.ndarray:
    """Stieltjes transform m(z) = lim (1/N) tr (Y Y^T - z)^-1 at z = lam + i eta, eq. (1)
    (Dozier-Silverstein).

    eta None (default) gives the boundary value m(lam + i0) on the physical branch (Im m >= 0).
    Float64, complex.
    """
    t, w = _check_spectrum(signal_sq, weights, c)
    return _m(np.asarray(lam, dtype=np.float64), t, w, float(c), eta)


def _density_raw(y: np.ndarray, t: np.ndarray, w: np.ndarray, c: float) -> np.ndarray:
    m = _m(np.asarray(y, dtype=np.float64) ** 2, t, w, c)
    return np.maximum(2.0 * np.abs(y) * np.imag(m) / np.pi, 0.0)


def density(y: ArrayLike, signal_sq: ArrayLike, weights: ArrayLike, c: float) -> np.ndarray:
    """Limiting density p(y) = 2 y Im m(y^2 + i0) / pi of the singular values of Y = S + X
    (float64).

    Values below 1e-6 times the largest value on the grid `y` (or below 1e-9 for a single point) are
    set to zero, so gaps and the outside of the support read exactly 0.
    """
    t, w = _check_spectrum(signal_sq, weights, c)
    y = np.asarray(y, dtype=np.float64)
    p = _density_raw(y, t, w, float(c))
    floor = _ZERO_REL * p.max() if p.size > 1 else 1e-9
    return np.where(p > floor, p, 0.0)


def _density_batch(y: np.ndarray, t: np.ndarray, w: np.ndarray, c: float) -> np.ndarray:
    """p(y) for P problems at once: y [P, G], t, w [P, A] (no zero floor)."""
    m = _m_batch(np.asarray(y, dtype=np.float64) ** 2, t, w, c)
    return np.maximum(2.0 * np.abs(y) * np.imag(m) / np.pi, 0.0)


def _uniform_grids(t: np.ndarray, c: float, n: int = _GRID) -> np.ndarray:
    """[P, n] grids on (0, ymax] with ymax above every problem's support."""
    ymax = np.sqrt(t.max(axis=1)) + 1.0 + math.sqrt(c) + 0.25
    return ymax[:, None] * np.linspace(1e-6, 1.0, n)[None, :]


def _zoom_min_batch(lo, hi, t, w, c, levels: int = 6, n: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Smallest density in each interval [lo_q, hi_q] of problem q (t, w [Q, A]), by repeated grid
    zooming; all intervals in one batched solve per level. Returns (location, value)."""
    a, b = np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)
    lo, hi = a.copy(), b.copy()
    best_y, best_p = a.copy(), np.full(a.shape, np.inf)
    frac = np.linspace(0.0, 1.0, n)
    for _ in range(levels):
        ys = lo[:, None] + (hi - lo)[:, None] * frac[None, :]
        ps = _density_batch(ys, t, w, c)
        i = np.argmin(ps, axis=1)
        rows = np.arange(ys.shape[0])
        y_i, p_i = ys[rows, i], ps[rows, i]
        better = p_i < best_p
        best_y, best_p = np.where(better, y_i, best_y), np.where(better, p_i, best_p)
        step = (hi - lo) / (n - 1)
        lo, hi = np.maximum(y_i - step, a), np.minimum(y_i + step, b)
    return best_y, best_p


_MAX_MINIMA = 4  # local minima zoomed per problem (the deepest ones)


def _scan_batch(
    t: np.ndarray, w: np.ndarray, c: float, grids: np.ndarray, max_minima: int = _MAX_MINIMA, zoom_n: int = 16
):
    """Density on each problem's grid and the zero points hidden in its local minima, for P problems.

    Returns (p [P, G], pos [P, G] density above 1e-6 of its max, thr [P], splits: list of arrays of
    zero points inside positive runs, per problem). Gaps narrower than a grid cell show up as local
    minima of a positive run; the deepest few per problem are zoomed into in one batched solve.
    """
    p = _density_batch(grids, t, w, c)
    thr = _ZERO_REL * p.max(axis=1)
    pos = p > thr[:, None]
    mid, left, right = p[:, 1:-1], p[:, :-2], p[:, 2:]
    is_min = pos[:, 1:-1] & (mid <= left) & (mid <= right) & ((mid < left) | (mid < right))
    rel = np.where(is_min, mid / np.maximum(p.max(axis=1, keepdims=True), 1e-300), np.inf)
    k = min(max_minima, rel.shape[1])
    cand = np.argsort(rel, axis=1)[:, :k]  # deepest minima first
    rows, cols = np.nonzero(np.isfinite(np.take_along_axis(rel, cand, axis=1)))
    splits = [np.zeros(0) for _ in range(p.shape[0])]
    if rows.size:
        idx = cand[rows, cols] + 1  # grid index of the minimum
        y0, p0 = _zoom_min_batch(grids[rows, idx - 1], grids[rows, idx + 1], t[rows], w[rows], c, n=zoom_n)
        hit = p0 <= thr[rows]
        for r in np.unique(rows[hit]):
            splits[r] = np.sort(y0[hit & (rows == r)])
    return p, pos, thr, splits


def _count_batch(t: np.ndarray, w: np.ndarray, c: float, grids: np.ndarray, **scan) -> np.ndarray:
    """Number of support intervals of each of P problems (runs of positive density + hidden gaps)."""
    _, pos, _, splits = _scan_batch(t, w, c, grids, **scan)
    runs = np.sum(pos[:, 1:] & ~pos[:, :-1], axis=1) + pos[:, 0]
    return runs + np.array([s.size for s in splits])


def _components(t: np.ndarray, w: np.ndarray, c: float, refine: bool) -> list[tuple[float, float]]:
    """Support intervals of p(y) (one problem); gaps hidden between grid points are found by zooming
    into local minima, edges refined by a vectorised bisection."""
    grid = _uniform_grids(t[None], c)[0]
    p, pos, thr, splits = _scan_batch(t[None], w[None], c, grid[None])
    pos, thr, splits = pos[0], float(thr[0]), splits[0]
    g = grid.size
    starts_i = np.flatnonzero(pos & ~np.concatenate([[False], pos[:-1]]))
    ends_i = np.flatnonzero(pos & ~np.concatenate([pos[1:], [False]]))
    lo_in, lo_out, hi_in, hi_out = [], [], [], []
    for i, j in zip(starts_i, ends_i, strict=True):
        inner = [s for s in splits if grid[i] < s < grid[j]]
        starts = [(grid[i], grid[i - 1] if i > 0 else 0.0)]
        ends = []
        for s in inner:
            # Positive points on either side of the zero point s, within one grid cell.
            k = int(np.searchsorted(grid, s))
            ends.append((grid[k - 1] if grid[k - 1] < s else grid[k - 2], s))
            starts.append((grid[k] if grid[k] > s else grid[k + 1], s))
        ends.append((grid[j], grid[j + 1] if j + 1 < g else grid[j] + 1.0))
        for (a_in, a_out), (b_in, b_out) in zip(starts, ends, strict=True):
            lo_in.append(a_in)
            lo_out.append(a_out)
            hi_in.append(b_in)
            hi_out.append(b_out)
    if not lo_in:
        return []
    if refine:
        both = _bisect_edges(np.array(lo_in + hi_in), np.array(lo_out + hi_out), t, w, c, thr)
        lo, hi = both[: len(lo_in)], both[len(lo_in) :]
    else:
        lo, hi = np.array(lo_in), np.array(hi_in)
    return [(float(a), float(b)) for a, b in zip(lo, hi, strict=True)]


def _bisect_edges(inside: np.ndarray, outside: np.ndarray, t, w, c, thr: float, iters: int = 44) -> np.ndarray:
    """For pairs (inside, outside) with p(inside) > thr >= p(outside), the crossing point
    (vectorised bisection)."""
    inside = np.asarray(inside, dtype=np.float64).copy()
    outside = np.asarray(outside, dtype=np.float64).copy()
    if inside.size == 0:
        return inside
    for _ in range(iters):
        mid = 0.5 * (inside + outside)
        pos = _density_raw(mid, t, w, c) > thr
        inside = np.where(pos, mid, inside)
        outside = np.where(pos, outside, mid)
    return 0.5 * (inside + outside)


def support(signal_sq: ArrayLike, weights: ArrayLike, c: float) -> list[tuple[float, float]]:
    """Support of the limiting singular-value density of Y = S + X: sorted list of intervals (lo,
    hi) in y units.

    Found on a grid (density below 1e-6 of its maximum counts as zero), with gaps narrower than the
    grid found by zooming into local minima, and every edge refined by bisection to ~1e-12.
    """
    t, w = _check_spectrum(signal_sq, weights, c)
    return _components(t, w, float(c), refine=True)


def overlaps(y: ArrayLike, signal_sq: ArrayLike, weights: ArrayLike, c: float) -> tuple[np.ndarray, np.ndarray]:
    """Expected squared overlaps of the data singular vectors at y (inside the bulk) with the
    signal's, eq. (2).

    Returns (left, right), each of shape [len(y), len(signal_sq)]: left[i, j] = N E|<u_{y_i},
    a_{t_j}>|^2 for one left signal direction with squared singular value t_j, right[i, j] = N
    E|<v_{y_i}, b_{t_j}>|^2 likewise. Averaged over H they sum to 1 (sum_j w_j left[i, j] = 1). The
    fraction of u_y lying in the span of the signal directions of atom j is w_j left[i, j]. Where
    the density is zero (no singular values) the overlaps are 0.
    """
    t, w = _check_spectrum(signal_sq, weights, c)
    lam = np.atleast_1d(np.asarray(y, dtype=np.float64)) ** 2
    m = _m(lam, t, w, float(c))[:, None]
    z = lam[:, None] + 0j
    a = 1.0 + c * m
    g = 1.0 / (t[None] / a - a * z + 1.0 - c)
    at = a - (1.0 - c) / z
    tt = 1.0 / (t[None] / at - z * a)
    im = np.imag(m)
    ok = im > _ZERO_REL * max(float(np.max(im)), 1e-300) if im.size > 1 else im > 1e-9
    left = np.where(ok, np.imag(g) / np.where(ok, im, 1.0), 0.0)
    right = np.where(ok, np.imag(tt) / np.where(ok, im, 1.0), 0.0)
    return np.maximum(left, 0.0), np.maximum(right, 0.0)


def bbp(theta: ArrayLike, c: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rank-one spike S = theta u v^T in the finite-rank limit (Benaych-Georges & Nadakuditi 2012).

    Returns (top singular value of Y, |<u, u~>|^2, |<v, v~>|^2). Above the threshold theta >
    c^(1/4): sqrt((1 + theta^2)(c + theta^2)) / theta, 1 - c (1 + theta^2) / (theta^2 (theta^2 +
    c)), 1 - (c + theta^2) / (theta^2 (theta^2 + 1)); below it the top singular value sticks to the
    edge 1 + sqrt(c) and both overlaps vanish. Left = the N-dimensional side.
    """
    if not (0.0 < c <= 1.0):
        raise ValueError(f"c must be in (0, 1], got {c}")
    th = np.asarray(theta, dtype=np.float64)
    th2 = th**2
    above = th > c**0.25
    safe = np.where(above, th2, 1.0)
    top = np.where(above, np.sqrt((1 + safe) * (c + safe)) / np.sqrt(safe), 1.0 + math.sqrt(c))
    left = np.where(above, 1.0 - c * (1 + safe) / (safe * (safe + c)), 0.0)
    right = np.where(above, 1.0 - (c + safe) / (safe * (safe + 1)), 0.0)
    return top, left, right


def _dm_dlam(m: np.ndarray, lam: np.ndarray, t: np.ndarray, w: np.ndarray, c: float) -> np.ndarray:
    """dm/dlambda by implicit differentiation of eq. (1) (real outside the support)."""
    a = 1.0 + c * m
    g = 1.0 / (t[None] / a[:, None] - a[:, None] * lam[:, None] + 1.0 - c)
    num = a * np.sum(w * g * g, axis=1)
    den = 1.0 - c * np.sum(w * g * g * (t[None] / a[:, None] ** 2 + lam[:, None]), axis=1)
    return num / den


def outliers(
    spike_sq: ArrayLike,
    c: float,
    signal_sq: ArrayLike = (0.0,),
    weights: ArrayLike = (1.0,),
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Isolated outliers created by finite-rank spikes (squared strengths spike_sq) on top of a bulk
    H.

    Solves f(lambda) = t0 / A - A lambda + 1 - c = 0 above the bulk's right edge (A = 1 + c
    m_H(lambda), real there) by bisection; returns (singular value y0 = sqrt(lambda0), left squared
    overlap -1/f'(lambda0), right squared overlap -1/h'(lambda0)) per spike, with (right edge, 0, 0)
    for spikes too weak to leave the bulk. With the default pure-noise bulk this reproduces `bbp`
    (tested).
    """
    t, w = _check_spectrum(signal_sq, weights, c)
    c = float(c)
    t0 = np.atleast_1d(np.asarray(spike_sq, dtype=np.float64))
    edge = _components(t, w, c, refine=True)[-1][1] ** 2
    lam_hi = np.full(t0.shape, 4.0 * _scale(np.append(t, t0), c))
    lam_lo = np.full(t0.shape, edge * (1 + 1e-9))

    def f(lam):
        m = np.real(_m(lam, t, w, c))
        a = 1.0 + c * m
        return t0 / a - a * lam + 1.0 - c, m

    f_lo, _ = f(lam_lo)
    has = f_lo > 0
    lo, hi = lam_lo.copy(), lam_hi.copy()
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        fm, _ = f(mid)
        lo = np.where(fm > 0, mid, lo)
        hi = np.where(fm > 0, hi, mid)
    lam0 = 0.5 * (lo + hi)
    m = np.real(_m(lam0, t, w, c))
    dm = _dm_dlam(m, lam0, t, w, c)
    a = 1.0 + c * m
    fp = -(t0 / a**2 + lam0) * c * dm - a
    at = a - (1.0 - c) / lam0
    atp = c * dm + (1.0 - c) / lam0**2
    hp = -t0 * atp / at**2 - a - lam0 * c * dm
    y0 = np.where(has, np.sqrt(lam0), math.sqrt(edge))
    return y0, np.where(has, -1.0 / fp, 0.0), np.where(has, -1.0 / hp, 0.0)


def num_components(signal_sq: ArrayLike, weights: ArrayLike, c: float) -> int:
    """Number of disjoint intervals in the support of the singular-value density."""
    t, w = _check_spectrum(signal_sq, weights, c)
    return len(_components(t, w, float(c), refine=False))


_ESM_GRID = 192  # uniform points of the ESM grid (plus _ESM_PATCH around the outlier location)
_ESM_PATCH = 64


def _esm_atoms(b: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[P, 2] atoms and weights of H = b delta_{s^2} + (1 - b) delta_0 for arrays b, s."""
    b, s = np.broadcast_arrays(np.asarray(b, dtype=np.float64), np.asarray(s, dtype=np.float64))
    t = np.stack([s.ravel() ** 2, np.zeros(s.size)], axis=1)
    w = np.stack([b.ravel(), 1.0 - b.ravel()], axis=1)
    return t, w


def _esm_grids(s: np.ndarray, c: float) -> np.ndarray:
    """Per-problem grids for the ESM: uniform on (0, ymax] plus a fine patch around the rank-one
    outlier location sqrt((1 + s^2)(c + s^2)) / s, where a narrow signal bulk (small b) sits."""
    s = np.asarray(s, dtype=np.float64).ravel()
    ymax = s + 1.0 + math.sqrt(c) + 0.25
    uniform = ymax[:, None] * np.linspace(1e-6, 1.0, _ESM_GRID)[None, :]
    y0 = np.asarray(bbp(np.maximum(s, 1e-3), c)[0])
    patch = y0[:, None] + np.linspace(-0.04, 0.04, _ESM_PATCH)[None, :]
    return np.sort(np.concatenate([uniform, np.clip(patch, 1e-6, ymax[:, None])], axis=1), axis=1)


def esm_num_components(b: ArrayLike, s: ArrayLike, c: float) -> np.ndarray:
    """Number of support intervals of the ESM singular-value density for every pair (b_i, s_i) at
    once (b and s broadcast together; result has their broadcast shape).

    All problems are solved in one batched call on a grid of 192 uniform points plus 64 around the
    rank-one outlier location (where a narrow signal bulk sits), with hidden gaps found by zooming
    into local minima; agrees with `num_components` (2048-point grid) away from the boundary (tested).
    """
    if not (0.0 < c <= 1.0):
        raise ValueError(f"c must be in (0, 1], got {c}")
    bb, ss = np.broadcast_arrays(np.asarray(b, dtype=np.float64), np.asarray(s, dtype=np.float64))
    if bb.size == 0:
        return np.zeros(bb.shape, dtype=int)
    if not (np.all((bb > 0) & (bb <= 1)) and np.all(ss >= 0)):
        raise ValueError("b must be in (0, 1] and s >= 0")
    t, w = _esm_atoms(bb, ss)
    # Two atoms: at most two interior minima matter (the closing gap and the hard edge at c = 1).
    return _count_batch(t, w, float(c), _esm_grids(ss, float(c)), max_minima=2, zoom_n=12).reshape(bb.shape)


def critical_strengths(bs: ArrayLike, c: float, tol: float = 1e-5) -> np.ndarray:
    """s_c(b, c) for every b at once: one bisection in s, vmapped over b (each step is one batched
    solve of `esm_num_components`). See `critical_strength`."""
    if not (0.0 < c <= 1.0):
        raise ValueError(f"c must be in (0, 1], got {c}")
    b = np.atleast_1d(np.asarray(bs, dtype=np.float64))
    if not np.all((b > 0) & (b <= 1)):
        raise ValueError(f"b must be in (0, 1], got {b}")
    c = float(c)
    out = np.full(b.shape, np.inf)
    act = b < 1.0  # b = 1: no noise bulk to separate from
    if not np.any(act):
        return out
    bb = b[act]

    def split(s):
        return esm_num_components(bb, s, c) >= 2

    lo = np.full(bb.shape, c**0.25)
    bad = split(lo)  # never seen; kept so the bracket is honest
    lo = np.where(bad, 0.5 * lo, lo)
    nan = bad & split(lo)
    hi = np.full(bb.shape, 2.0 * c**0.25)
    found = split(hi)
    while not np.all(found) and np.max(hi[~found]) <= 100.0:
        hi = np.where(found, hi, 1.5 * hi)
        found = split(hi)
    for _ in range(int(math.ceil(math.log2(max(float(np.max(hi - lo)), tol) / tol)))):
        mid = 0.5 * (lo + hi)
        up = split(mid)
        hi, lo = np.where(up, mid, hi), np.where(up, lo, mid)
    res = np.where(found, 0.5 * (lo + hi), np.inf)
    out[act] = np.where(nan, np.nan, res)
    return out


def phase_map(bs: ArrayLike, ss: ArrayLike, c: float) -> np.ndarray:
    """ESM bulk counts on the grid: out[i, j] = number of support intervals at (b_j, s_i), in one
    batched solve (the phase diagram's map)."""
    b = np.asarray(bs, dtype=np.float64)
    s = np.asarray(ss, dtype=np.float64)
    return esm_num_components(b[None, :], s[:, None], c)


@functools.lru_cache(maxsize=4096)
def _critical_strength(b: float, c: float, tol: float) -> float:
    return float(critical_strengths([b], c, tol)[0])


def critical_strength(b: float, c: float, tol: float = 1e-5) -> float:
    """ESM signal strength s_c(b, c) above which the signal bulk separates from the noise bulk
    (phase boundary).

    Bisection in s on "the support of p(y) has two or more intervals" for H = b delta_{s^2} + (1 -
    b) delta_0 (`esm_num_components`; `critical_strengths` does many b at once). Tends to the BBP
    threshold c^(1/4) as b -> 0 (with s_c - c^(1/4) ~ b^(1/3)). Returns inf for b = 1 (no noise
    bulk to separate from) or if no split is found for s <= 100.
    """
    if not (0.0 < c <= 1.0):
        raise ValueError(f"c must be in (0, 1], got {c}")
    if not (0.0 < b <= 1.0):
        raise ValueError(f"b must be in (0, 1], got {b}")
    if b == 1.0:
        return float("inf")
    return _critical_strength(float(b), float(c), float(tol))


def esm_quantiles(b: ArrayLike, s: ArrayLike, c: float, levels: ArrayLike) -> np.ndarray:
    """Quantiles of the limiting ESM singular-value law at `levels` (in (0, 1)) for every pair
    (b_i, s_i) at once: out[i, j] = F_i^{-1}(levels[j]), F_i the CDF of p(y) for H = b_i
    delta_{s_i^2} + (1 - b_i) delta_0 (trapezoid on the `esm_num_components` grid, one batched
    solve). Used to fit the noise level to a spectrum (`denoise.fit_noise_std`)."""
    bb, ss = np.broadcast_arrays(np.asarray(b, dtype=np.float64), np.asarray(s, dtype=np.float64))
    bb, ss = bb.ravel(), ss.ravel()
    q = np.asarray(levels, dtype=np.float64)
    t, w = _esm_atoms(bb, ss)
    grids = _esm_grids(ss, float(c))
    p = _density_batch(grids, t, w, float(c))
    cdf = np.concatenate([np.zeros((p.shape[0], 1)), np.cumsum(0.5 * (p[:, 1:] + p[:, :-1]) * np.diff(grids), 1)], 1)
    cdf = cdf / np.maximum(cdf[:, -1:], 1e-300)
    return np.stack([np.interp(q, cdf[i], grids[i]) for i in range(p.shape[0])])
