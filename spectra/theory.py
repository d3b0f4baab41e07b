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


def _pmax(t: np.ndarray, w: np.ndarray, c: float) -> tuple[np.ndarray, np.ndarray, float]:
    ymax = math.sqrt(t.max()) + 1.0 + math.sqrt(c) + 0.25
    grid = np.linspace(ymax * 1e-6, ymax, _GRID)
    p = _density_raw(grid, t, w, c)
    return grid, p, float(p.max())


def _zoom_min(a: float, b: float, t, w, c, levels: int = 6, n: int = 33) -> tuple[float, float]:
    """Location and value of the smallest density in [a, b], by repeated grid zooming (fixed
    shapes)."""
    lo, hi = a, b
    best_y, best_p = a, np.inf
    for _ in range(levels):
        ys = np.linspace(lo, hi, n)
        ps = _density_raw(ys, t, w, c)
        i = int(np.argmin(ps))
        if ps[i] < best_p:
            best_y, best_p = float(ys[i]), float(ps[i])
        step = (hi - lo) / (n - 1)
        lo, hi = max(ys[i] - step, a), min(ys[i] + step, b)
    return best_y, best_p


def _bisect_edges(inside: np.ndarray, outside: np.ndarray, t, w, c, thr: float, iters: int = 44) -> np.ndarray:
    """For pairs (inside, outside) with p(inside) > thr >= p(outside), the crossing point
    (vectorised bisection)."""
    inside = np.asarray(inside, dtype=np.float64).copy()
    outside = np.asarray(outside, dtype=np.float64).copy()
    k = inside.size
    if k == 0:
        return inside
    for _ in range(iters):
        mid = 0.5 * (inside + outside)
        p = _density_raw(mid, t, w, c)
        pos = p > thr
        inside = np.where(pos, mid, inside)
        outside = np.where(pos, outside, mid)
    return 0.5 * (inside + outside)


def _components(t: np.ndarray, w: np.ndarray, c: float, refine: bool) -> list[tuple[float, float]]:
    """Support intervals of p(y); gaps hidden between grid points are found by zooming into local
    minima."""
    grid, p, pmax = _pmax(t, w, c)
    thr = _ZERO_REL * pmax
    pos = p > thr
    # Split points: zero-density points found inside local minima of a positive run.
    splits = []
    for i in range(1, _GRID - 1):
        if pos[i] and p[i] <= p[i - 1] and p[i] <= p[i + 1] and (p[i] < p[i - 1] or p[i] < p[i + 1]):
            y0, p0 = _zoom_min(grid[i - 1], grid[i + 1], t, w, c)
            if p0 <= thr:
                splits.append(y0)
    # Coarse runs.
    runs = []
    i = 0
    while i < _GRID:
        if pos[i]:
            j = i
            while j + 1 < _GRID and pos[j + 1]:
                j += 1
            runs.append((i, j))
            i = j + 1
        else:
            i += 1
    # Edges: (inside point, outside point) pairs to bisect.
    lo_in, lo_out, hi_in, hi_out = [], [], [], []
    for i, j in runs:
        inner = sorted(s for s in splits if grid[i] < s < grid[j])
        starts = [(grid[i], grid[i - 1] if i > 0 else 0.0)]
        ends = []
        for s in inner:
            # Positive points on either side of the zero point s, within one grid cell.
            k = int(np.searchsorted(grid, s))
            ends.append((grid[k - 1] if grid[k - 1] < s else grid[k - 2], s))
            starts.append((grid[k] if grid[k] > s else grid[k + 1], s))
        ends.append((grid[j], grid[j + 1] if j + 1 < _GRID else grid[j] + 1.0))
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


@functools.lru_cache(maxsize=4096)
def _critical_strength(b: float, c: float, tol: float) -> float:
    def split(s: float) -> bool:
        t, w = esm_spectrum(b, s)
        return len(_components(t, w, c, refine=False)) >= 2

    lo = c**0.25
    if split(lo):  # never seen; kept so the bracket is honest
        lo = 0.5 * lo
        if split(lo):
            return float("nan")
    hi = 2.0 * c**0.25
    while not split(hi):
        hi *= 1.5
        if hi > 100.0:
            return float("inf")
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        if split(mid):
            hi = mid
        else:
            lo = mid
    return 0.5 * (lo + hi)


def critical_strength(b: float, c: float, tol: float = 1e-5) -> float:
    """ESM signal strength s_c(b, c) above which the signal bulk separates from the noise bulk
    (phase boundary).

    Bisection in s on "the support of p(y) has two or more intervals" for H = b delta_{s^2} + (1 -
    b) delta_0. Tends to the BBP threshold c^(1/4) as b -> 0 (with s_c - c^(1/4) ~ b^(1/3)). Returns
    inf for b = 1 (no noise bulk to separate from) or if no split is found for s <= 100.
    """
    if not (0.0 < c <= 1.0):
        raise ValueError(f"c must be in (0, 1], got {c}")
    if not (0.0 < b <= 1.0):
        raise ValueError(f"b must be in (0, 1], got {b}")
    if b == 1.0:
        return float("inf")
    return _critical_strength(float(b), float(c), float(tol))
