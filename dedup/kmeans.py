"""Spherical k-means in JAX, streamed over an (N, d) array or memmap in fixed-size mini-batches.

Points and centroids live on the unit sphere; a point belongs to the centroid with the largest
cosine similarity and a centroid is the normalised mean of its points (Dhillon & Modha 2001;
SemDeDup step 2 uses faiss with `spherical=True`). Every batch has the same padded shape, so each
function compiles once per (batch, K, d).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np


def normalize_rows(x: np.ndarray) -> np.ndarray:
    """Rows divided by their L2 norm (float32)."""
    x = np.asarray(x, np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _batches(x, batch_size: int, start: int = 0):
    """Yields (offset, padded float32 batch [batch_size, d], weight [batch_size])."""
    n = x.shape[0]
    for a in range(start, n, batch_size):
        b = min(a + batch_size, n)
        xb = np.zeros((batch_size, x.shape[1]), np.float32)
        xb[: b - a] = x[a:b]
        w = np.zeros((batch_size,), np.float32)
        w[: b - a] = 1.0
        yield a, xb, w


@functools.partial(jax.jit, static_argnames=("k",))
def _kmeanspp(key: jax.Array, x_sxd: jax.Array, k: int) -> jax.Array:
    s = x_sxd.shape[0]
    k0, key = jax.random.split(key)
    first = jax.random.randint(k0, (), 0, s)
    cent = jnp.zeros((k, x_sxd.shape[1]), x_sxd.dtype).at[0].set(x_sxd[first])
    d2 = jnp.maximum(2.0 - 2.0 * (x_sxd @ x_sxd[first]), 0.0)

    def body(i, carry):
        cent, d2 = carry
        # D² sampling by inverse CDF: one uniform draw instead of s Gumbel draws per step
        cdf = jnp.cumsum(d2)
        u = jax.random.uniform(jax.random.fold_in(key, i)) * cdf[-1]
        idx = jnp.minimum(jnp.searchsorted(cdf, u, side="right"), s - 1)
        c = x_sxd[idx]
        d2 = jnp.minimum(d2, jnp.maximum(2.0 - 2.0 * (x_sxd @ c), 0.0))
        return cent.at[i].set(c), d2

    cent, _ = jax.lax.fori_loop(1, k, body, (cent, d2))
    return cent


def init_centroids(key: jax.Array, x_sxd: np.ndarray, k: int, method: str = "kmeans++") -> np.ndarray:
    """Initial centroids from the (in-memory) rows x_sxd.

    kmeans++: D² sampling (Arthur & Vassilvitskii 2007) with the chordal distance |x - c|² = 2 - 2
    xᵀc.
    random: k distinct rows chosen uniformly.
    """
    if k > x_sxd.shape[0]:
        raise ValueError(f"k={k} exceeds the {x_sxd.shape[0]} points available for initialisation")
    if method == "kmeans++":
        return np.asarray(_kmeanspp(key, jnp.asarray(x_sxd, jnp.float32), k))
    if method == "random":
        idx = jax.random.choice(key, x_sxd.shape[0], (k,), replace=False)
        return np.asarray(x_sxd, np.float32)[np.sort(np.asarray(idx))]
    raise ValueError(f"init must be 'kmeans++' or 'random', got {method!r}")


@jax.jit
def _accumulate(sums_kxd, counts_k, obj, c_kxd, x_bxd, w_b):
    sim_bxk = x_bxd @ c_kxd.T
    lab = sim_bxk.argmax(axis=1)
    best = sim_bxk.max(axis=1)
    k = c_kxd.shape[0]
    # sorting first lets XLA's CPU scatter run over contiguous segments (measured faster than unsorted)
    o = jnp.argsort(lab)
    lab, xw, w = lab[o], (x_bxd * w_b[:, None])[o], w_b[o]
    sums_kxd = sums_kxd + jax.ops.segment_sum(xw, lab, num_segments=k, indices_are_sorted=True)
    counts_k = counts_k + jax.ops.segment_sum(w, lab, num_segments=k, indices_are_sorted=True)
    return sums_kxd, counts_k, obj + jnp.sum(w_b * best)


def lloyd_iteration(x, centroids_kxd: np.ndarray, batch_size: int) -> tuple[np.ndarray, np.ndarray, float]:
    """One spherical Lloyd step streamed over x in mini-batches.

    Returns (new centroids = normalised cluster sums, counts per cluster, mean similarity of points
    to their assigned *old* centroid). A cluster left empty keeps its previous centroid.
    """
    k, d = centroids_kxd.shape
    c = jnp.asarray(centroids_kxd, jnp.float32)
    sums = jnp.zeros((k, d), jnp.float32)
    counts = jnp.zeros((k,), jnp.float32)
    obj = jnp.zeros((), jnp.float32)
    for _, xb, w in _batches(x, batch_size):
        sums, counts, obj = _accumulate(sums, counts, obj, c, xb, w)
    sums, counts = np.asarray(sums), np.asarray(counts)
    norms = np.linalg.norm(sums, axis=1, keepdims=True)
    new = np.where(counts[:, None] > 0, sums / np.maximum(norms, 1e-30), centroids_kxd)
    return new.astype(np.float32), counts.astype(np.int64), float(obj) / x.shape[0]


@jax.jit
def _assign_batch(c_kxd, x_bxd):
    sim = x_bxd @ c_kxd.T
    return sim.argmax(axis=1).astype(jnp.int32), sim.max(axis=1)


def assign(
    x,
    centroids_kxd: np.ndarray,
    batch_size: int,
    labels_out: np.ndarray,
    sims_out: np.ndarray,
    start: int = 0,
    on_batch: Callable[[int], None] | None = None,
) -> None:
    """Nearest centroid (label) and its cosine similarity for every row of x from row `start` on,
    written into `labels_out` / `sims_out` (arrays or memmaps). `on_batch(rows_done)` is called
    after each batch."""
    c = jnp.asarray(centroids_kxd, jnp.float32)
    n = x.shape[0]
    for a, xb, _ in _batches(x, batch_size, start):
        b = min(a + batch_size, n)
        lab, sim = _assign_batch(c, xb)
        labels_out[a:b] = np.asarray(lab)[: b - a]
        sims_out[a:b] = np.asarray(sim)[: b - a]
        if on_batch is not None:
            on_batch(b)


def converged(objective: Sequence[float], tol: float) -> bool:
    """True when the last Lloyd step raised the mean similarity by less than tol (relative).

    objective[t] is measured against the centroids *before* step t, so it is non-decreasing."""
    if tol <= 0 or len(objective) < 2:
        return False
    return objective[-1] - objective[-2] < tol * abs(objective[-1])


def fit(
    x,
    k: int,
    key: jax.Array,
    *,
    iterations: int = 20,
    batch_size: int = 8192,
    init: str = "kmeans++",
    init_points: int = 0,
    tol: float = 0.0,
) -> tuple[np.ndarray, list[float]]:
    """Spherical k-means on x (in memory or memmap); returns (centroids [k, d], objective per
    iteration).

    init_points > 0 initialises from that many rows drawn uniformly (k-means++ is O(k · rows · d)).
    """
    n = x.shape[0]
    kinit, ksample = jax.random.split(key)
    if 0 < init_points < n:
        rows = np.sort(np.asarray(jax.random.choice(ksample, n, (init_points,), replace=False)))
        xs = np.asarray(x[rows], np.float32)
    else:
        xs = np.asarray(x, np.float32)
    c = init_centroids(kinit, xs, k, init)
    hist = []
    for _ in range(iterations):
        if converged(hist, tol):
            break
        c, _, obj = lloyd_iteration(x, c, batch_size)
        hist.append(obj)
    return c, hist
