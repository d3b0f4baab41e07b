"""Spherical k-means in JAX, streamed over an (N, d) array or memmap in fixed-size mini-batches.

Points and centroids live on the unit sphere; a point belongs to the centroid with the largest
cosine similarity and a centroid is the normalised mean of its points (Dhillon & Modha 2001;
SemDeDup step 2 uses faiss with `spherical=True`). On a CPU backend the distance products and the argmax
run on the host BLAS (`use_host_blas`); on an accelerator every batch has the same padded shape, so each
jitted function compiles once per (batch, K, d).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse


def normalize_rows(x: np.ndarray) -> np.ndarray:
    """Rows divided by their L2 norm, computed in float64, returned as float32 (the embed stage's
    normalisation)."""
    x = np.asarray(x, np.float64)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


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


def pp_per_round(k: int) -> int:
    """Centres drawn per D² round of k-means++: 1 (exact k-means++) below k = 512, then k // 128 (about 128
    rounds). A round reads every init row about twice (the product packs its operand), so batching pays from a
    few centres a round on (measured: 2 a round was slower than exact at k = 316)."""
    return 1 if k < 512 else k // 128


@functools.partial(jax.jit, static_argnames=("k", "per_round"))
def _kmeanspp(key: jax.Array, x_sxd: jax.Array, k: int, per_round: int = 1) -> jax.Array:
    s, d = x_sxd.shape
    b = per_round
    rounds = -(-(k - 1) // b)
    k0, key = jax.random.split(key)
    first = jax.random.randint(k0, (), 0, s)
    cent = jnp.zeros((1 + rounds * b, d), x_sxd.dtype).at[0].set(x_sxd[first])
    d2 = jnp.maximum(2.0 - 2.0 * (x_sxd @ x_sxd[first]), 0.0)

    def body(r, carry):
        cent, d2 = carry
        # D² sampling by inverse CDF: b uniform draws instead of s Gumbel draws per round
        cdf = jnp.cumsum(d2)
        u = jax.random.uniform(jax.random.fold_in(key, r + 1), (b,)) * cdf[-1]
        idx = jnp.minimum(jnp.searchsorted(cdf, u, side="right"), s - 1)
        c_bxd = x_sxd[idx]
        d2 = jnp.minimum(d2, jnp.maximum(2.0 - 2.0 * (x_sxd @ c_bxd.T).max(axis=1), 0.0))
        return jax.lax.dynamic_update_slice(cent, c_bxd, (1 + r * b, 0)), d2

    cent, _ = jax.lax.fori_loop(0, rounds, body, (cent, d2))
    return cent[:k]


def _kmeanspp_host(key: jax.Array, x_sxd: np.ndarray, k: int, per_round: int = 1) -> np.ndarray:
    """`_kmeanspp` in numpy on the host BLAS (no compilation), with a numpy generator derived from the key."""
    from threadpoolctl import threadpool_limits

    x = np.ascontiguousarray(x_sxd, np.float32)
    s = x.shape[0]
    rng = _rng(key, 2)
    idx = [int(rng.integers(s))]
    d2 = np.maximum(2.0 - 2.0 * (x @ x[idx[0]]), 0.0)
    with threadpool_limits(1, user_api="blas"):  # memory-bound products: one thread (measured 1.8x under load)
        _pp_rounds(x, d2, idx, rng, k, per_round)
    return x[np.asarray(idx[:k])]


def _pp_rounds(x: np.ndarray, d2: np.ndarray, idx: list, rng: np.random.Generator, k: int, per_round: int) -> None:
    s = x.shape[0]
    while len(idx) < k:
        # D² sampling by inverse CDF, per_round draws before the distances are updated
        cdf = np.cumsum(d2, dtype=np.float64)
        new = np.minimum(np.searchsorted(cdf, rng.random(per_round) * cdf[-1], side="right"), s - 1)
        idx += new.tolist()
        sim = x @ x[new].T if per_round > 1 else (x @ x[new[0]])[:, None]
        np.minimum(d2, np.maximum(2.0 - 2.0 * sim.max(axis=1), 0.0), out=d2)


def init_centroids(key: jax.Array, x_sxd: np.ndarray, k: int, method: str = "kmeans++") -> np.ndarray:
    """Initial centroids from the (in-memory) rows x_sxd.

    kmeans++: D² sampling (Arthur & Vassilvitskii 2007) with the chordal distance |x - c|² = 2 - 2
    xᵀc. From k = 512 on each round draws `pp_per_round(k)` centres from the same D² distribution before the
    distances are updated (one small matrix product instead of that many passes over the rows: each pass reads
    every row, so the init cost was k full reads; now about 128), in the spirit of k-means|| (Bahmani et al.
    2012), with ~128 rounds, so at most 1/128 of the centres are drawn without seeing each other.
    random: k distinct rows chosen uniformly.
    """
    if k > x_sxd.shape[0]:
        raise ValueError(f"k={k} exceeds the {x_sxd.shape[0]} points available for initialisation")
    if method == "kmeans++":
        if use_host_blas():
            return _kmeanspp_host(key, x_sxd, k, pp_per_round(k))
        return np.asarray(_kmeanspp(key, jnp.asarray(x_sxd, jnp.float32), k, pp_per_round(k)))
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


def use_host_blas() -> bool:
    """True on a CPU backend: the distance products run on the host BLAS (numpy sgemm), whose kernel is faster
    than XLA's CPU dot, and the row argmax in numpy (XLA's CPU argmax reduction took longer than the product in
    the measurements); on an accelerator the jitted functions run on the device."""
    return jax.default_backend() == "cpu"


def nearest_host(xb_bxd: np.ndarray, c_kxd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(label, cosine) of the nearest centroid for each row, on the host BLAS: one sgemm and a row argmax
    (the earliest maximiser, as jnp.argmax)."""
    s = np.asarray(xb_bxd, np.float32) @ c_kxd.T
    lab = s.argmax(axis=1)
    return lab.astype(np.int32), s[np.arange(lab.size), lab]


def _rows(x, a: int, b: int) -> np.ndarray:
    return np.asarray(x[a:b], np.float32)


def _lloyd_host(x, c_kxd: np.ndarray, batch_size: int) -> tuple[np.ndarray, np.ndarray, float]:
    from dedup.semdedup import host_imap

    k, d = c_kxd.shape
    c = np.ascontiguousarray(c_kxd, np.float32)
    n = x.shape[0]

    def batch(a: int):
        xb = _rows(x, a, min(a + batch_size, n))
        lab, best = nearest_host(xb, c)
        # cluster sums as a sparse (k x rows) indicator times the rows: one pass over the batch (measured 4x
        # faster than np.add.reduceat over label-sorted rows, which was as slow as the distance product)
        m = scipy.sparse.csr_matrix((np.ones(lab.size, np.float32), (lab, np.arange(lab.size))), shape=(k, lab.size))
        return m @ xb, np.bincount(lab, minlength=k), float(best.sum(dtype=np.float64))

    sums = np.zeros((k, d), np.float64)
    counts = np.zeros(k, np.int64)
    obj = 0.0
    for s, cnt, o in host_imap(batch, range(0, n, batch_size)):  # summed in batch order: deterministic
        sums += s
        counts += cnt
        obj += o
    return sums, counts, obj


def lloyd_iteration(x, centroids_kxd: np.ndarray, batch_size: int) -> tuple[np.ndarray, np.ndarray, float]:
    """One spherical Lloyd step streamed over x in mini-batches.

    Returns (new centroids = normalised cluster sums, counts per cluster, mean similarity of points
    to their assigned *old* centroid). A cluster left empty keeps its previous centroid.
    """
    k, d = centroids_kxd.shape
    if use_host_blas():
        sums, counts, obj = _lloyd_host(x, centroids_kxd, batch_size)
    else:
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
    n = x.shape[0]
    if use_host_blas():
        from dedup.semdedup import host_imap

        c = np.ascontiguousarray(centroids_kxd, np.float32)
        starts = range(start, n, batch_size)
        for a, (lab, sim) in zip(
            starts, host_imap(lambda a: nearest_host(_rows(x, a, min(a + batch_size, n)), c), starts), strict=True
        ):
            b = min(a + batch_size, n)
            labels_out[a:b], sims_out[a:b] = lab, sim
            if on_batch is not None:
                on_batch(b)
        return
    c = jnp.asarray(centroids_kxd, jnp.float32)
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


def _rng(key: jax.Array, tag: int) -> np.random.Generator:
    """A numpy generator derived from a JAX key (row sampling without a device-side permutation of N)."""
    return np.random.default_rng([*np.asarray(jax.random.key_data(key)).ravel().tolist(), tag])


def sample_rows(key: jax.Array, n: int, m: int, tag: int) -> np.ndarray | None:
    """m distinct rows of n drawn uniformly (sorted, for sequential memmap reads); None when m is 0 or >= n."""
    if not 0 < m < n:
        return None
    return np.sort(_rng(key, tag).choice(n, int(m), replace=False))


def save_state(path: str, centroids: np.ndarray, objective: Sequence[float]) -> None:
    """Centroids, iteration count and objective history in one file, written atomically (temp + rename)."""
    from common import metrics

    metrics.atomic_savez(
        path,
        centroids=np.asarray(centroids, np.float32),
        iteration=np.asarray(len(objective), np.int64),
        objective=np.asarray(objective, np.float64),
    )


def load_state(path: str) -> tuple[np.ndarray, list[float]]:
    with np.load(path, allow_pickle=False) as z:
        c, obj = z["centroids"], [float(v) for v in z["objective"]]
        assert int(z["iteration"]) == len(obj)
    return c, obj


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
    sample_size: int = 0,
    state_path: str | None = None,
    on_iteration: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, list[float]]:
    """Spherical k-means on x (in memory or memmap); returns (centroids [k, d], objective per
    iteration). The one implementation: the pipeline's cluster stage calls it.

    sample_size > 0 fits on that many rows drawn uniformly (held in memory); init_points > 0
    initialises from that many of the fit rows (k-means++ is O(k · rows · d)). Stops after
    `iterations` Lloyd steps or when a step raises the mean similarity by less than tol (relative).

    state_path: the centroids, iteration count and objective are saved there after the
    initialisation and after every step, in one atomically replaced file; a call that finds the
    file continues from it, so a run killed at any point ends with byte-identical centroids.
    """
    n = x.shape[0]
    ksample, kinit, kpoints = jax.random.split(key, 3)
    rows = sample_rows(ksample, n, sample_size, 0)
    fit_x = x if rows is None else np.asarray(x[rows], np.float32)
    if state_path is not None and os.path.exists(state_path):
        c, hist = load_state(state_path)
    else:
        r = sample_rows(kpoints, fit_x.shape[0], init_points, 1)
        xs = np.asarray(fit_x if r is None else fit_x[r], np.float32)
        c = init_centroids(kinit, xs, k, init)
        hist = []
        if state_path is not None:
            save_state(state_path, c, hist)
    while len(hist) < iterations and not converged(hist, tol):
        c, _, obj = lloyd_iteration(fit_x, c, batch_size)
        hist.append(obj)
        if state_path is not None:
            save_state(state_path, c, hist)
        if on_iteration is not None:
            on_iteration(len(hist))
    return c, hist
