"""The per-cluster SemDeDup rule, compiled once per padded cluster shape and sharded over devices.

Within one cluster the items are ordered (keep = hard: farthest from the centroid first; easy:
nearest first; random), the cosine-similarity matrix S = E Eᵀ is formed and, for each item j,

    M[j] = max_{i < j} S[i, j]                  (strict upper triangle, column maximum)

Item j is removed at threshold ε when M[j] > 1 − ε (paper, Sec. 3 / released `semdedup.py`). One
pass gives every ε, since M does not depend on ε. The rule is *not transitive*: j is removed when it
is similar to any earlier item, even one that is itself removed. In a chain A~B, B~C with A≁C (order
A, B, C) both B and C are removed and only A survives, although C duplicates nothing that is kept.
The `greedy` rule compares j only with earlier items that were kept (per ε), so in that chain A and
C survive.

Two engines (`pick_engine`). On a CPU backend the paper rule runs on the host BLAS, one cluster at a
time (`paper_rule_numpy`: one sgemm, then a masked row max and argmax; no padding, no compilation).
Otherwise (accelerators, and the greedy rule everywhere) clusters are padded to a few fixed sizes
(`bucket_sizes`) and processed in fixed-size batches through one compiled kernel (Gram, masked column
maximum and threshold), so each shape is compiled once; the last, partial batch of a size runs on the
host (paper rule) or is padded only to the next (device count)·2^k clusters (`tail_batch`, greedy). The
batch axis is sharded over this process's devices with a NamedSharding.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType, NamedSharding, PartitionSpec
from threadpoolctl import threadpool_limits

NEG = -np.inf
_MIN_BUCKET = 16


def bucket_sizes(max_size: int) -> list[int]:
    """Padded cluster sizes up to the first >= max_size: 16, 24, 32, 48, ..., 384, 512 (2^k and
    3·2^(k-1)), then four steps per doubling (640, 768, 896, 1024, 1280, ...).

    Above 512, where the similarity work lies, padding wastes at most a factor 1.25 in size; every
    size above 1024 is a multiple of 256, so the row-block scan divides it evenly.
    """
    sizes = [_MIN_BUCKET]
    while sizes[-1] < max_size:
        s = sizes[-1]
        if s < 512:
            sizes.append(s * 3 // 2 if (s & (s - 1)) == 0 else s * 4 // 3)
        else:
            sizes.append(s + (1 << (s.bit_length() - 1)) // 4)
    return sizes


def pick_bucket(n: int, sizes: Sequence[int]) -> int:
    """The smallest padded size that holds a cluster of n items."""
    i = int(np.searchsorted(np.asarray(sizes), n, side="left"))
    if i >= len(sizes):
        raise ValueError(f"cluster of {n} items exceeds the largest bucket {sizes[-1]}")
    return int(sizes[i])


def _row_block(n: int) -> int:
    return n if n <= 1024 else 256


def paper_rule_single(e_nxd: jax.Array, valid_n: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """For one padded, ordered cluster: (M, argmax, nn) with M[j] = max_{i<j} S[i,j] over valid i.

    M[j] = -inf when no valid i < j exists (the first item is always kept). argmax is the position
    of the earliest maximiser (the item j duplicates). nn[j] = max_{i != j} S[i, j]
    (nearest-neighbour similarity in the cluster). Computed in row blocks so memory is (block x n),
    not n x n.
    """
    n, d = e_nxd.shape
    t = _row_block(n)
    nb = n // t
    e_bxtxd = e_nxd.reshape(nb, t, d)
    valid_bxt = valid_n.reshape(nb, t)
    cols = jnp.arange(n)

    def body(carry, xs):
        colmax, colarg = carry
        blk, eb_txd, vb_t = xs
        rows = blk * t + jnp.arange(t)
        s_txn = eb_txd @ e_nxd.T
        upper = (rows[:, None] < cols[None, :]) & vb_t[:, None] & valid_n[None, :]
        masked = jnp.where(upper, s_txn, NEG)
        barg_local = masked.argmax(axis=0)  # earliest maximiser
        bmax = jnp.take_along_axis(masked, barg_local[None, :], axis=0)[0]  # one pass, not max + argmax
        better = bmax > colmax  # strict: ties keep the earlier row block
        colmax = jnp.where(better, bmax, colmax)
        colarg = jnp.where(better, blk * t + barg_local, colarg)
        # by symmetry, the row maxima of the same strict upper triangle are max_{k > i} S[i, k]: with the
        # column maxima (max_{k < j}) they give the nearest neighbour without a second masked pass
        rowmax_t = masked.max(axis=1)
        return (colmax, colarg), rowmax_t

    init = (jnp.full((n,), NEG, e_nxd.dtype), jnp.zeros((n,), jnp.int32))
    (colmax, colarg), rowmax_bxt = jax.lax.scan(body, init, (jnp.arange(nb), e_bxtxd, valid_bxt))
    colmax = jnp.where(valid_n, colmax, NEG)
    nn = jnp.where(valid_n, jnp.maximum(colmax, rowmax_bxt.reshape(n)), NEG)
    return colmax, colarg, nn


def greedy_rule_single(
    e_nxd: jax.Array, valid_n: jax.Array, thr_e: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Greedy variant for one padded, ordered cluster, for every threshold 1 - ε at once.

    Item j is removed at ε when some earlier *kept* item i has S[i, j] > 1 - ε. Returns (removed [E,
    n] bool, partner position [E, n] int32, partner similarity [E, n]); partner = the most similar
    earlier kept item.
    """
    n, _ = e_nxd.shape
    num_e = thr_e.shape[0]
    idx = jnp.arange(n)

    def step(j, carry):
        kept, partner, psim = carry
        s_n = e_nxd @ e_nxd[j]
        cand = (idx[None, :] < j) & kept & (s_n[None, :] > thr_e[:, None])
        rem = cand.any(axis=1) & valid_n[j]
        best = jnp.where(cand, s_n[None, :], NEG)
        kept = kept.at[:, j].set(valid_n[j] & ~rem)
        partner = partner.at[:, j].set(best.argmax(axis=1).astype(jnp.int32))
        psim = psim.at[:, j].set(best.max(axis=1))
        return kept, partner, psim

    init = (
        jnp.zeros((num_e, n), bool),
        jnp.zeros((num_e, n), jnp.int32),
        jnp.full((num_e, n), NEG, e_nxd.dtype),
    )
    kept, partner, psim = jax.lax.fori_loop(0, n, step, init)
    removed = valid_n[None, :] & ~kept
    return removed, partner, psim


def _mesh() -> jax.sharding.Mesh:
    """This process's devices: under jax.distributed every process runs its own clusters, so the batch axis is
    sharded over the local devices only (never a global computation)."""
    return jax.sharding.Mesh(np.asarray(jax.local_devices()), ("clusters",), axis_types=(AxisType.Auto,))


@functools.cache
def _compiled(rule: str, n: int, d: int, batch: int, num_e: int):
    """jit(vmap(rule)) for one (bucket, batch) shape, batch axis sharded over devices; cached per
    shape."""
    mesh = _mesh()
    shard = NamedSharding(mesh, PartitionSpec("clusters"))
    repl = NamedSharding(mesh, PartitionSpec())

    def fn(e_bxnxd, valid_bxn, thr_e):
        colmax, colarg, nn = jax.vmap(paper_rule_single)(e_bxnxd, valid_bxn)
        if rule == "paper":
            removed = (colmax[:, None, :] > thr_e[None, :, None]) & valid_bxn[:, None, :]
            partner = jnp.broadcast_to(colarg[:, None, :], removed.shape)
            psim = jnp.broadcast_to(colmax[:, None, :], removed.shape)
        else:
            removed, partner, psim = jax.vmap(greedy_rule_single, in_axes=(0, 0, None))(e_bxnxd, valid_bxn, thr_e)
        return removed, partner, psim, nn

    return (
        jax.jit(fn, in_shardings=(shard, shard, repl), out_shardings=shard),
        shard,
        repl,
    )


def batch_size_for(n: int, d: int, budget_floats: int = 1 << 23, max_batch: int = 256) -> int:
    """Clusters per call for padded size n: the (block x n) similarity and (n x d) inputs fit the
    budget, at most max_batch, rounded up to a multiple of the device count."""
    per = _row_block(n) * n + n * d
    b = max(1, min(max_batch, budget_floats // per))
    ndev = jax.local_device_count()
    return int(math.ceil(b / ndev) * ndev)


_TRIU_CACHE: dict[int, np.ndarray] = {}


def _triu_mask(n: int) -> np.ndarray:
    """Boolean (n, n) mask of the upper triangle with the diagonal (i <= j), cached per n."""
    m = _TRIU_CACHE.get(n)
    if m is None:
        if len(_TRIU_CACHE) > 64:
            _TRIU_CACHE.clear()
        m = _TRIU_CACHE[n] = np.triu(np.ones((n, n), bool))
    return m


_SPLIT_ABOVE = 768  # clusters larger than this compute only the lower half of S (two products, 3/4 of the work)


def paper_rule_numpy(e_nxd: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The paper rule for one ordered cluster, unpadded, on the host BLAS: (M, argmax, nn) as
    `paper_rule_single`.

    S = E Eᵀ by sgemm (E times a copy of E, so BLAS runs its general kernel rather than the slower
    symmetric rank-k update numpy picks for `E @ E.T`). Row j of the strictly *lower* triangle holds
    S[j, i] for i < j, so M[j] = max_{i<j} S[i, j] and its earliest maximiser are a row max and a row
    argmax over contiguous memory (S is symmetric: S[j, i] and S[i, j] are the same dot product); the
    column maxima of the same triangle, max_{j>i} S[j, i], complete the nearest neighbour. Above
    `_SPLIT_ABOVE` rows only the lower half is formed: rows [0, h) against columns [0, h), rows [h, n)
    against all columns (3/4 of the products; each row's similarities still come from one product, so
    exact duplicates still tie exactly). No padding, no compilation: the host engine of `dedup_clusters`."""
    e = np.ascontiguousarray(e_nxd, np.float32)
    n = e.shape[0]
    if n == 1:
        return np.full(1, NEG, np.float32), np.zeros(1, np.int32), np.full(1, NEG, np.float32)
    et = e.copy()
    h = n // 2 if n > _SPLIT_ABOVE else n
    colmax = np.empty(n, np.float32)
    arg = np.empty(n, np.int64)
    below = np.full(n, NEG, np.float32)  # max_{j>i} S[j, i]: column maxima of the lower triangle
    for a, b in ((0, h), (h, n)):
        if a == b:
            continue
        s = e[a:b] @ et[:b].T  # rows a..b against columns 0..b
        np.putmask(s[:, a:b], _triu_mask(b - a), NEG)  # keep column i < row j only
        arg[a:b] = s.argmax(axis=1)
        colmax[a:b] = s[np.arange(b - a), arg[a:b]]
        np.maximum(below[:b], s.max(axis=0), out=below[:b])
    nn = np.maximum(colmax, below)
    return colmax, arg.astype(np.int32), nn.astype(np.float32)


def host_workers() -> int:
    """Threads for host BLAS work: the cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def host_map(fn, items: Sequence) -> list:
    """[fn(x) for x in items] on `host_workers()` threads, each with a single-threaded BLAS, results in order.

    Many small products (a cluster's Gram matrix, a k-means batch) run faster side by side than one at a time
    with every core inside each call: measured 1.1-8x on 2 shared cores (the multi-threaded BLAS waits on a
    descheduled thread at every call under load). numpy's BLAS calls and reductions release the GIL."""
    items = list(items)
    w = min(host_workers(), len(items))
    with threadpool_limits(1, user_api="blas"):
        if w <= 1:
            return [fn(x) for x in items]
        with ThreadPoolExecutor(w) as ex:
            return list(ex.map(fn, items))


def host_imap(fn, items: Sequence, window: int = 4):
    """Yields fn(x) for x in items, in order, computed `host_workers()` at a time on threads with a
    single-threaded BLAS (as `host_map`), at most window x workers ahead of the consumer (bounded memory)."""
    items = list(items)
    w = min(host_workers(), len(items))
    with threadpool_limits(1, user_api="blas"):
        if w <= 1:
            for x in items:
                yield fn(x)
            return
        with ThreadPoolExecutor(w) as ex:
            ahead = window * w
            futs = [ex.submit(fn, x) for x in items[:ahead]]
            for i in range(len(items)):
                if i + ahead < len(items):
                    futs.append(ex.submit(fn, items[i + ahead]))
                yield futs[i].result()
                futs[i] = None


def first_copy(e_nxd: np.ndarray) -> np.ndarray:
    """For each row, the first row with exactly the same values (itself when it has no earlier copy).

    A float32 product need not give identical columns identical results (measured: single-threaded OpenBLAS
    sgemm put two exact copies 1 ulp apart in one product), so the argmax over earlier items can name a later
    copy of the earliest maximiser; mapping the partner to its first copy restores the released tie rule
    ("the earliest most similar earlier item") for exact duplicates."""
    e = np.ascontiguousarray(e_nxd)
    if e.shape[0] < 2:
        return np.arange(e.shape[0])
    keys = e.view(np.dtype((np.void, e.dtype.itemsize * e.shape[1]))).ravel()
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    return first[inverse.ravel()]


def _paper_rule_host(e_nxd: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    colmax, arg, nn = paper_rule_numpy(e_nxd)
    return colmax, first_copy(e_nxd)[arg].astype(np.int32), nn


ENGINES = ("auto", "host", "compiled")


def pick_engine(engine: str, rule: str) -> str:
    """'host' (numpy BLAS, one sgemm per cluster) or 'compiled' (XLA, batches of padded clusters sharded over
    devices). auto: host for the paper rule on a CPU backend (measured faster there: no padding, no compilation,
    and the host BLAS kernel beats XLA's CPU dot), compiled otherwise (accelerators; the greedy rule, a sequential
    loop per cluster)."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    if engine != "auto":
        return engine
    return "host" if rule == "paper" and jax.default_backend() == "cpu" else "compiled"


def tail_batch(m: int, full: int) -> int:
    """Batch size for the last, partial chunk of m clusters: the smallest (device count)·2^k >= m,
    at most the full batch. Padding the tail to the full batch wasted up to (full - 1) clusters of
    work per bucket (a lone 1,100-item cluster ran as 10); this wastes < 2x on the tail only and adds
    at most log2(full) shapes per bucket."""
    ndev = jax.local_device_count()
    b = ndev
    while b < m:
        b *= 2
    return int(min(b, full))


def run_bucket(
    rule: str, e_bxnxd: np.ndarray, valid_bxn: np.ndarray, eps: Sequence[float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Runs the compiled rule on one full batch of padded clusters; returns numpy
    (removed [B, E, n], partner position [B, E, n], partner sim [B, E, n], nn sim [B, n])."""
    b, n, d = e_bxnxd.shape
    thr = np.asarray([1.0 - float(x) for x in eps], np.float32)
    fn, shard, repl = _compiled(rule, n, d, b, len(thr))
    out = fn(jax.device_put(e_bxnxd, shard), jax.device_put(valid_bxn, shard), jax.device_put(thr, repl))
    return tuple(np.asarray(x) for x in out)


def dedup_clusters(
    clusters: Sequence[np.ndarray],
    eps: Sequence[float],
    rule: str = "paper",
    sizes: Sequence[int] | None = None,
    budget_floats: int = 1 << 23,
    max_batch: int = 256,
    engine: str = "auto",
) -> list[dict[str, np.ndarray]]:
    """Applies the rule to each cluster (a list of ordered, unit-norm (n_c, d) float32 arrays).

    Returns, per cluster, `removed` [n_c, E] bool, `partner` [n_c, E] int (position within the
    cluster, -1 when kept), `partner_sim` [n_c, E] float32 (nan when kept), `nn_sim` [n_c]
    (nearest-neighbour similarity, -inf for a singleton).

    engine (`pick_engine`): 'host' runs the paper rule cluster by cluster on the host BLAS; 'compiled' groups
    clusters by padded size and runs full batches through the compiled kernel (every call a fixed
    (batch, size, d) shape), the last partial batch of a size unpadded on the host (paper rule) or padded to
    `tail_batch` (greedy).
    """
    if rule not in ("paper", "greedy"):
        raise ValueError(f"rule must be 'paper' or 'greedy', got {rule!r}")
    engine = pick_engine(engine, rule)
    if engine == "host" and rule != "paper":
        raise ValueError("the host engine runs the paper rule only; use engine='compiled' for greedy")
    out: list[dict[str, np.ndarray] | None] = [None] * len(clusters)
    if not clusters:
        return []
    d = int(clusters[0].shape[1])
    max_n = max(int(c.shape[0]) for c in clusters)
    sizes = list(sizes) if sizes is not None else bucket_sizes(max(max_n, 1))
    groups: dict[int, list[int]] = {}
    for ci, c in enumerate(clusters):
        groups.setdefault(pick_bucket(max(int(c.shape[0]), 1), sizes), []).append(ci)
    num_e = len(eps)
    on_host: list[int] = []  # clusters for the host engine, run together at the end
    for n_pad in sorted(groups):
        members = groups[n_pad]
        bsz = batch_size_for(n_pad, d, budget_floats, max_batch)
        for start in range(0, len(members), bsz):
            chunk = members[start : start + bsz]
            if rule == "paper" and (engine == "host" or len(chunk) < bsz):
                on_host += chunk
                continue
            b = bsz if len(chunk) == bsz else tail_batch(len(chunk), bsz)
            e = np.zeros((b, n_pad, d), np.float32)
            v = np.zeros((b, n_pad), bool)
            for k, ci in enumerate(chunk):
                m = clusters[ci].shape[0]
                e[k, :m] = clusters[ci]
                v[k, :m] = True
            removed, partner, psim, nn = run_bucket(rule, e, v, eps)
            for k, ci in enumerate(chunk):
                m = clusters[ci].shape[0]
                rem = removed[k, :, :m].T.copy()
                pk = partner[k, :, :m].T
                if rule == "paper":  # greedy names a kept item, which an earlier exact copy is not
                    pk = first_copy(clusters[ci])[pk]
                par = np.where(rem, pk, -1).astype(np.int64)
                ps = np.where(rem, psim[k, :, :m].T, np.nan).astype(np.float32)
                out[ci] = {"removed": rem, "partner": par, "partner_sim": ps, "nn_sim": nn[k, :m]}
                assert rem.shape == (m, num_e)
    thr = np.asarray([1.0 - float(x) for x in eps], np.float32)
    for ci, (colmax, colarg, nn) in zip(
        on_host, host_map(_paper_rule_host, [clusters[i] for i in on_host]), strict=True
    ):
        rem = colmax[:, None] > thr[None, :]
        par = np.where(rem, colarg[:, None], -1).astype(np.int64)
        ps = np.where(rem, colmax[:, None], np.nan).astype(np.float32)
        out[ci] = {"removed": rem, "partner": par, "partner_sim": ps, "nn_sim": nn}
    return out  # type: ignore[return-value]


def brute_force(e_nxd: np.ndarray, eps: Sequence[float], rule: str = "paper") -> np.ndarray:
    """Reference: removed [n, E] by a literal double loop over pairs (float64), for tests."""
    e = np.asarray(e_nxd, np.float64)
    n = e.shape[0]
    out = np.zeros((n, len(eps)), bool)
    for k, x in enumerate(eps):
        thr = 1.0 - x
        kept: list[int] = []
        for j in range(n):
            if rule == "paper":
                dup = any(float(e[i] @ e[j]) > thr for i in range(j))
            else:
                dup = any(float(e[i] @ e[j]) > thr for i in kept)
            out[j, k] = dup
            if not dup:
                kept.append(j)
    return out
