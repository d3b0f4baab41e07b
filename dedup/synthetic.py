"""A synthetic embedding corpus with planted duplicate groups (known truth), and the scores against
that truth.

Items are unit vectors around `n_topics` random topic directions (lognormal topic sizes, so clusters
have uneven sizes like real data): x = normalise(√a·c_t + √(1-a)·g/√d). A duplicate group is an
original plus copies x' = normalise(x + τ·h/√d) with τ = √(1/s² − 1), so cos(x, x') ≈ s, drawn
uniformly in [sim_min, sim_max]. Generation is chunked and seeded per chunk, so N is bounded by
disk, not memory.
"""

from __future__ import annotations

import numpy as np

CHUNK = 65536


def num_topics(requested: int, n: int) -> int:
    """config.synthetic.n_topics, or 2·round(√N) when 0 (about two topics per √N-cluster)."""
    return int(requested) if requested > 0 else max(1, 2 * int(round(np.sqrt(n))))


def topic_model(seed: int, n_topics: int, dim: int, rank: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Topic directions [T, d] (unit), topic probabilities [T] (lognormal, sigma 1) and, when rank > 0, an
    orthonormal basis [d, rank] of the shared low-dimensional subspace the within-topic variation lives in."""
    rng = np.random.default_rng([seed, 0x70])
    c = rng.normal(size=(n_topics, dim)).astype(np.float32)
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    w = rng.lognormal(0.0, 1.0, n_topics)
    basis = None
    if rank > 0:
        q, _ = np.linalg.qr(rng.normal(size=(dim, min(rank, dim))))
        basis = q.astype(np.float32)
    return c, w / w.sum(), basis


def generate_chunk(
    seed: int,
    chunk: int,
    rows: int,
    first_id: int,
    centers: np.ndarray,
    probs: np.ndarray,
    basis: np.ndarray | None = None,
    *,
    topic_strength: float,
    dup_fraction: float,
    max_group_size: int,
    sim_min: float,
    sim_max: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Rows [rows, d] float32 (unit) and their group ids [rows] int64 (-1: no planted duplicate;
    otherwise the global id of one member, shared by the group)."""
    rng = np.random.default_rng([seed, 0xC4, chunk])
    d = centers.shape[1]
    # group sizes: originals with 1..max_group_size-1 copies, until the copies reach dup_fraction
    # of the rows
    sizes: list[int] = []
    copies = used = 0
    target = int(round(dup_fraction * rows))
    while copies < target and used < rows:
        g = int(min(rng.integers(2, max_group_size + 1), rows - used, target - copies + 1))
        if g < 2:
            break
        sizes.append(g)
        copies += g - 1
        used += g
    sizes += [1] * (rows - used)
    n_orig = len(sizes)
    topics = rng.choice(len(probs), size=n_orig, p=probs)
    a = topic_strength
    g = rng.normal(size=(n_orig, d)).astype(np.float32) / np.sqrt(d)
    if basis is not None:
        # mostly low-rank variation (real embeddings have low intrinsic dimension) + 10% isotropic
        r = basis.shape[1]
        z = rng.normal(size=(n_orig, r)).astype(np.float32) / np.sqrt(r)
        g = np.sqrt(0.9) * (z @ basis.T) + np.sqrt(0.1) * g
    orig = np.sqrt(a) * centers[topics] + np.sqrt(1 - a) * g
    orig /= np.linalg.norm(orig, axis=1, keepdims=True)
    sizes_arr = np.asarray(sizes)
    parent = np.repeat(np.arange(n_orig), sizes_arr)
    is_copy = np.ones(rows, bool)
    starts = np.concatenate([[0], np.cumsum(sizes_arr)[:-1]])
    is_copy[starts] = False
    x = orig[parent].copy()
    nc = int(is_copy.sum())
    s = rng.uniform(sim_min, sim_max, nc)
    tau = np.sqrt(1.0 / s**2 - 1.0).astype(np.float32)
    h = rng.normal(size=(nc, d)).astype(np.float32) / np.sqrt(d)
    x[is_copy] += tau[:, None] * h
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    perm = rng.permutation(rows)
    x, parent = x[perm], parent[perm]
    grouped = sizes_arr[parent] > 1
    # group id: global id of the group's first member after the shuffle
    first_pos = np.full(n_orig, -1, np.int64)
    order = np.argsort(parent, kind="stable")
    pos_sorted = np.arange(rows)[order]
    par_sorted = parent[order]
    head = np.ones(rows, bool)
    head[1:] = par_sorted[1:] != par_sorted[:-1]
    first_pos[par_sorted[head]] = pos_sorted[head]
    group = np.where(grouped, first_id + first_pos[parent], -1).astype(np.int64)
    return x.astype(np.float32), group


def generate(
    out_x,
    out_group,
    seed: int,
    *,
    n_topics: int,
    noise_rank: int = 0,
    topic_strength: float,
    dup_fraction: float,
    max_group_size: int,
    sim_min: float,
    sim_max: float,
    start_chunk: int = 0,
    on_chunk=None,
) -> None:
    """Fills out_x [N, d] and out_group [N] (arrays or memmaps) chunk by chunk from chunk
    `start_chunk`; `on_chunk(chunks_done)` runs after each chunk (for resumable writes)."""
    n, d = out_x.shape
    centers, probs, basis = topic_model(seed, n_topics, d, noise_rank)
    nchunks = -(-n // CHUNK)
    for c in range(start_chunk, nchunks):
        a, b = c * CHUNK, min((c + 1) * CHUNK, n)
        x, grp = generate_chunk(
            seed,
            c,
            b - a,
            a,
            centers,
            probs,
            basis,
            topic_strength=topic_strength,
            dup_fraction=dup_fraction,
            max_group_size=max_group_size,
            sim_min=sim_min,
            sim_max=sim_max,
        )
        out_x[a:b] = x
        out_group[a:b] = grp
        if on_chunk is not None:
            on_chunk(c + 1)


def planted_scores(group: np.ndarray, removed_ids: np.ndarray, duplicate_of: np.ndarray) -> tuple[float, float]:
    """(precision, recall) of removals against the planted groups.

    A removal is correct when the item and the item it duplicates are in the same planted group.
    Recall counts, per group of size g, min(correct removals, g − 1) over Σ (g − 1): everything but
    one member should go.
    """
    removed_ids = np.asarray(removed_ids, np.int64)
    duplicate_of = np.asarray(duplicate_of, np.int64)
    g_r = group[removed_ids]
    correct = (g_r >= 0) & (g_r == group[duplicate_of])
    precision = float(correct.mean()) if removed_ids.size else 1.0
    gids, sizes = np.unique(group[group >= 0], return_counts=True)
    need = int((sizes - 1).sum())
    if need == 0:
        return precision, 1.0
    hit_g, hit_n = np.unique(g_r[correct], return_counts=True)
    cap = sizes[np.searchsorted(gids, hit_g)] - 1
    recall = float(np.minimum(hit_n, cap).sum()) / need
    return precision, recall


def pairs_in_same_cluster(group: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of planted duplicate pairs (all pairs within each group) whose two items share a
    cluster."""
    m = group >= 0
    g, lab = group[m], labels[m]
    if g.size == 0:
        return 1.0
    _, gsz = np.unique(g, return_counts=True)
    total = float((gsz * (gsz - 1) // 2).sum())
    key = np.stack([g, lab.astype(np.int64)], axis=1)
    _, cnt = np.unique(key, axis=0, return_counts=True)
    same = float((cnt * (cnt - 1) // 2).sum())
    return same / total if total else 1.0
