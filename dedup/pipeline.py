"""The four resumable stages: embed → cluster → dedup → select.

Every stage writes into its own folder of the pipeline directory. Arrays are written into
`<name>.partial.npy` memmaps with a progress file updated (atomically) after each flushed batch;
when complete they are renamed into place with os.replace, and `done.json` is written last. A killed
stage therefore continues from its last recorded batch (re-writing at most one batch, idempotently),
and never loses or duplicates an item. Each stage records the settings it was made with
(`manifest.json`) and refuses to mix outputs made with different settings.

Layout (P = pipeline directory):
  P/embed/embeddings.npy  (n, d) float32 unit rows; P/embed/ids.npy (n,) int64 original ids;
  P/embed/excluded_ids.npy, P/embed/group.npy (synthetic truth, per original id)
  P/cluster/centroids.npy, labels.npy, sims.npy (per row), order.npy (rows grouped by cluster),
  offsets.npy, ordered.npy (the embeddings in cluster order)
  P/dedup/units/c<start>-<stop>.npz  one file per range of `clusters_per_file` clusters
  <workdir>/eps=<ε>/kept_ids.npy, removed_ids.npy, duplicate_of.npy, similarity.npy   (select)
"""

from __future__ import annotations

import glob
import hashlib
import os
import time
from collections.abc import Callable, Sequence

import jax
import numpy as np

from common import app, metrics
from dedup import kmeans, semdedup
from dedup.embed_stage import (  # noqa: F401  (the stages' API)
    EmbedSource,
    _fmt_ids,
    _row_checks,
    load_user_embeddings,
    run_embed,
)
from dedup.stages import PartialArrays, ResumableArrays, Stage, StageDir, _file_digest, _key_hash  # noqa: F401

STAGES = ("embed", "cluster", "dedup", "select")


def eps_name(eps: float) -> str:
    """Directory/key name of a threshold: 'eps=0.05'. The shortest text that reads back as the same
    float (repr), so distinct thresholds never share a folder (0.1 and 0.1000001 are 'eps=0.1' and
    'eps=0.1000001')."""
    return f"eps={float(eps)!r}"


# ----------------------------------------------------------------------------------------- atomic
# files


# ----------------------------------------------------------------------------------------- cluster


def num_clusters(requested: int, n: int) -> int:
    """config.n_clusters, or round(√N) when it is 0 (this project's default: ~√N items per cluster, so the
    per-cluster work Σ n_c² is ~N^1.5; the paper's LAION-440M run used 50,000 clusters)."""
    k = int(requested) if requested > 0 else max(1, int(round(np.sqrt(n))))
    if k > n:
        raise app.UserError(f"n_clusters: {k} exceeds the number of items {n}")
    return k


def run_cluster(root: str, cfg, seed: int, embed_hash: str) -> dict:
    """Stage 2: spherical k-means (resumable per Lloyd iteration) and the assignment of every
    row."""
    x = np.load(os.path.join(root, "embed", "embeddings.npy"), mmap_mode="r")
    n, d = x.shape
    k = num_clusters(cfg.n_clusters, n)
    km = cfg.kmeans
    key = {"embed": embed_hash, "k": k, "seed": seed, **km.to_dict()}
    stage = StageDir(root, "cluster", key)
    if stage.done():
        return stage.info()
    stage.open()
    bs = int(km.batch_size)
    init_n = min(int(km.init_points) or n, int(km.sample_size) or n, n)
    if k > init_n:
        raise app.UserError(f"n_clusters: {k} exceeds the {init_n} points used to initialise")
    t_fit = time.time()
    prog = metrics.progress(max(int(km.iterations), 1), "cluster: k-means iterations")
    c, objective = kmeans.fit(
        x,
        k,
        jax.random.key(seed),
        iterations=int(km.iterations),
        batch_size=bs,
        init=km.init,
        init_points=int(km.init_points),
        tol=float(km.tol),
        sample_size=int(km.sample_size),
        state_path=stage.path("kmeans_state.npz"),
        on_iteration=lambda _: prog.update(1),
    )
    it = len(objective)
    prog.close()
    t_assign = time.time()
    pa = ResumableArrays(stage, "assign", {"labels": ((n,), "int32"), "sims": ((n,), "float32")})
    if not pa.finals_exist():
        arrs, done = pa.open()
        prog = metrics.progress(n - done, "cluster: assignment")
        last = [done]

        def on_batch(b, arrs=arrs, prog=prog, last=last):
            pa.mark(arrs, b)
            prog.update(b - last[0])
            last[0] = b

        kmeans.assign(x, c, bs, arrs["labels"], arrs["sims"], start=done, on_batch=on_batch)
        prog.close()
        pa.complete(arrs)
    labels = np.load(stage.path("labels.npy"))
    order = np.argsort(labels, kind="stable").astype(np.int64)
    sizes = np.bincount(labels, minlength=k)
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    metrics.atomic_save_npy(stage.path("centroids.npy"), c)
    metrics.atomic_save_npy(stage.path("order.npy"), order)
    metrics.atomic_save_npy(stage.path("offsets.npy"), offsets)
    t_reorder = time.time()
    if wants_ordered(str(cfg.get("reorder", "auto")), x.size * x.itemsize):
        write_ordered(stage, x, order)
    t_end = time.time()
    stage.finish(
        {
            "n_clusters": k,
            "iterations": it,
            "objective": objective,
            "largest_cluster": int(sizes.max()),
            "empty_clusters": int((sizes == 0).sum()),
            # this process's seconds (a resumed part is not counted twice)
            "seconds": {
                "kmeans": round(t_assign - t_fit, 2),
                "assign": round(t_reorder - t_assign, 2),
                "reorder": round(t_end - t_reorder, 2),
            },
        }
    )
    return stage.info()


def available_memory_bytes() -> int:
    """MemAvailable of /proc/meminfo (free memory plus reclaimable page cache); physical memory elsewhere."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def wants_ordered(mode: str, nbytes: int, available: int | None = None) -> bool:
    """Whether the cluster stage writes the embeddings in cluster order (`reorder`: auto | always | never).

    auto: only when the embeddings exceed half the available memory. Below that their pages stay cached after
    the assignment pass and the dedup stage's gathers read memory (at 10⁶ x 384 the copy cost as much as the
    gathers it saved); above it a gather per cluster reads the disk at random, and one sequential copy pays."""
    if mode not in ("auto", "always", "never"):
        raise ValueError(f"reorder must be auto, always or never, got {mode!r}")
    if mode != "auto":
        return mode == "always"
    return nbytes > 0.5 * (available_memory_bytes() if available is None else available)


def write_ordered(stage: StageDir, x, order: np.ndarray, chunk: int = 65536) -> None:
    """`ordered.npy`: the embeddings with their rows in cluster order (row order[i] at i), so the dedup stage
    reads each cluster as one contiguous range instead of gathering its rows from all over the file (at 10⁷
    rows the embeddings no longer fit the page cache). Written front to back with plain writes (the input's
    pages are mapped already by the assignment pass; a scattered write into a new memory map faulted every
    page in and cost more than the whole rule at 10⁵ rows), to a temporary name renamed when complete: a
    killed write is redone, and a file of the wrong size is rebuilt."""
    n, d = x.shape
    final = stage.path("ordered.npy")
    if os.path.exists(final):
        try:
            if np.load(final, mmap_mode="r").shape == (n, d):
                return
        except ValueError:
            pass
    tmp = stage.path("ordered.partial.npy")
    with open(tmp, "wb") as f:
        header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)), "fortran_order": False, "shape": (n, d)}
        np.lib.format.write_array_header_1_0(f, header)
        for a in range(0, n, chunk):
            f.write(np.ascontiguousarray(x[order[a : a + chunk]], np.float32).data)
    os.replace(tmp, final)


class RowReader:
    """Reads row ranges of a 2-D float32 .npy with positioned reads (no memory map: no page faults, one copy)."""

    def __init__(self, path: str):
        m = np.load(path, mmap_mode="r")
        assert m.dtype == np.float32 and m.ndim == 2 and m.flags.c_contiguous, path
        self.shape, self.offset = m.shape, int(m.offset)
        del m
        self.fd = os.open(path, os.O_RDONLY)

    def rows(self, a: int, b: int) -> np.ndarray:
        d = self.shape[1]
        out = np.empty((b - a, d), np.float32)
        view, pos = memoryview(out).cast("B"), self.offset + a * d * 4
        while view.nbytes:
            got = os.preadv(self.fd, [view], pos)
            if got <= 0:
                raise OSError(f"short read at byte {pos}")
            view, pos = view[got:], pos + got
        return out

    def close(self) -> None:
        os.close(self.fd)


# ----------------------------------------------------------------------------------------- dedup


def unit_cost(unit: np.ndarray, sizes: np.ndarray) -> float:
    """The work of a unit: its Gram matrices (Σ n_c², times d) plus reading its rows (n_c · d, weighted 64x: a row
    read costs about as much as 64 multiply-adds of its Gram row)."""
    n = sizes[np.asarray(unit, np.int64)].astype(np.float64)
    return float((n * n).sum() + 64.0 * n.sum())


def split_units(units: Sequence[np.ndarray], sizes: np.ndarray, num_shards: int) -> np.ndarray:
    """The shard (process) that runs each unit, chosen so the shards' work is balanced: units in decreasing
    `unit_cost` (ties by first cluster id) each go to the shard with the least work so far (ties: the lowest
    shard), the longest-processing-time rule (at most 4/3 of the best split). Deterministic, so every process
    computes the same split from the same plan."""
    owner = np.zeros(len(units), np.int64)
    load = np.zeros(num_shards, np.float64)
    costs = [unit_cost(u, sizes) for u in units]
    for i in sorted(range(len(units)), key=lambda i: (-costs[i], int(units[i][0]))):
        s = int(np.argmin(load))
        owner[i] = s
        load[s] += costs[i]
    return owner


def plan_units(
    clusters: Sequence[int], sizes: np.ndarray, buckets: Sequence[int], per_file: int, dim: int | None = None
) -> list[np.ndarray]:
    """Groups clusters into output units: clusters of one padded size together, in id order, at most
    per_file clusters a unit. Given the embedding width `dim`, a unit holds a whole number of
    compiled batches (`semdedup.batch_size_for`), so only the last unit of a size has a partial batch."""
    by_bucket: dict[int, list[int]] = {}
    for c in clusters:
        by_bucket.setdefault(semdedup.pick_bucket(max(int(sizes[c]), 1), buckets), []).append(int(c))
    units = []
    for b in sorted(by_bucket):
        cs = by_bucket[b]
        step = per_file
        if dim is not None:
            bsz = semdedup.batch_size_for(b, dim, max_batch=per_file)
            step = max(bsz, (per_file // bsz) * bsz)
        units += [np.asarray(cs[i : i + step], np.int64) for i in range(0, len(cs), step)]
    return units


def unit_path(root: str, clusters: np.ndarray) -> str:
    """Unit file name: first cluster id and a digest of the whole cluster list (unique, stable)."""
    h = hashlib.sha1(np.asarray(clusters, np.int64).tobytes()).hexdigest()[:12]
    return os.path.join(root, "dedup", "units", f"c{int(clusters[0]):07d}-{h}.npz")


def covered_clusters(root: str, k: int) -> tuple[np.ndarray, list[str]]:
    """How many unit files cover each cluster (0, 1, or more on an overlap) and the file list."""
    files = sorted(glob.glob(os.path.join(root, "dedup", "units", "c*.npz")))
    cover = np.zeros(k, np.int64)
    for f in files:
        with np.load(f, allow_pickle=False) as z:
            cover[z["clusters"]] += 1
    return cover, files


TIE_BREAKS = ("released", "lowest_id")


def keep_order(
    pos: np.ndarray,
    sims: np.ndarray,
    keep: str,
    seed: int,
    cluster: int,
    tie_break: str = "released",
    tie_key: np.ndarray | None = None,
) -> np.ndarray:
    """Positions of one cluster in processing order (the first item of a duplicate group is kept).

    As released (`sort_clusters.rank_within_cluster` + `semdedup.py`): the cluster's rows in
    ascending row order are sorted *stably* by the float32 distance to the centroid, 1 − cos,
    descending (`sorted(..., reverse=True)`, which keeps equal keys in their original order), so
    hard: farthest from the centroid first, exact ties by ascending row;
    easy: that list reversed: nearest first, exact ties by *descending* row (the highest row of a
    tie group is kept);
    random: a permutation seeded by (seed, cluster), the same however clusters are split over
    processes (the released code shuffles with one Python RNG per job, so its permutation depends on
    the job layout).
    tie_break="lowest_id" breaks exact ties by ascending `tie_key` (default: the position) under both
    hard and easy instead, so the lowest id of a tie group is kept.
    """
    if keep == "random":
        return pos[np.random.default_rng([seed, 0xD0, cluster]).permutation(pos.size)]
    if keep not in ("hard", "easy"):
        raise ValueError(f"keep must be hard, easy or random, got {keep!r}")
    if tie_break not in TIE_BREAKS:
        raise ValueError(f"tie_break must be one of {TIE_BREAKS}, got {tie_break!r}")
    pos = np.sort(np.asarray(pos))
    dist = np.float32(1.0) - np.asarray(sims[pos], np.float32)  # float32, as the released code
    if tie_break == "released":
        hard = pos[np.argsort(-dist, kind="stable")]  # stable: ties stay in ascending row order
        return hard if keep == "hard" else hard[::-1].copy()
    tie = pos if tie_key is None else np.asarray(tie_key)[pos]
    primary = -dist if keep == "hard" else dist
    return pos[np.lexsort((tie, primary))]


def _write_unit(path: str, arrays: dict[str, np.ndarray]) -> None:
    metrics.atomic_savez(path, **arrays)


def dedup_unit(
    root: str,
    clusters: np.ndarray,
    x,
    ids,
    sims,
    order,
    offsets,
    buckets,
    cfg,
    seed: int,
    tie_key=None,
    ordered=None,
) -> None:
    """Runs the per-cluster rule for the given clusters and writes their unit file atomically.

    ordered: a `RowReader` of the embeddings in cluster order (`write_ordered`); each cluster is then one
    contiguous read.
    Without it the unit's rows are gathered from x (sorted reads).
    tie_key (per row, for tie_break="lowest_id"): the rank of each row's id; default the row's id."""
    eps = [float(e) for e in cfg.eps]
    if tie_key is None:
        tie_key = ids
    positions, blocks = [], []
    for c in clusters:
        a, b = int(offsets[c]), int(offsets[c + 1])
        pos = order[a:b]  # ascending rows (a stable argsort of the labels)
        p = keep_order(pos, sims, cfg.keep, seed, int(c), cfg.tie_break, tie_key)
        positions.append((int(c), p))
        if ordered is not None:
            blocks.append(ordered.rows(a, b)[np.searchsorted(pos, p)])
    if ordered is None:
        allpos = np.concatenate([p for _, p in positions])
        srt = np.argsort(allpos, kind="stable")
        rows = np.empty((allpos.size, x.shape[1]), np.float32)
        rows[srt] = x[allpos[srt]]  # sorted reads from the memmap
        start = 0
        for _, p in positions:
            blocks.append(rows[start : start + p.size])
            start += p.size
    res = semdedup.dedup_clusters(blocks, eps, cfg.rule, sizes=buckets, max_batch=int(cfg.clusters_per_file))
    out_ids, out_cl, rem, par, psim, nn = [], [], [], [], [], []
    for (c, p), r in zip(positions, res, strict=True):
        cid = ids[p]
        out_ids.append(cid)
        out_cl.append(np.full(p.size, c, np.int32))
        rem.append(r["removed"])
        par.append(np.where(r["partner"] >= 0, cid[np.maximum(r["partner"], 0)], -1))
        psim.append(r["partner_sim"])
        nn.append(r["nn_sim"].astype(np.float32))
    _write_unit(
        unit_path(root, clusters),
        {
            "clusters": np.asarray(clusters, np.int64),
            "ids": np.concatenate(out_ids).astype(np.int64),
            "cluster": np.concatenate(out_cl),
            "removed": np.concatenate(rem),
            "duplicate_of": np.concatenate(par).astype(np.int64),
            "similarity": np.concatenate(psim),
            "nn_sim": np.concatenate(nn),
        },
    )


def dedup_stage(root: str, cfg, seed: int, cluster_hash: str) -> StageDir:
    """The dedup stage folder with the settings its unit files depend on."""
    key = {
        "cluster": cluster_hash,
        "eps": [float(e) for e in cfg.eps],
        "keep": cfg.keep,
        "rule": cfg.rule,
        "tie_break": cfg.tie_break,
        "id_rank": _file_digest(cfg.id_rank) if cfg.id_rank and cfg.tie_break == "lowest_id" else "",
        "clusters_per_file": int(cfg.clusters_per_file),
        "seed": seed,
        "plan": 2,  # units planned over all clusters, whole batches per unit
    }
    return StageDir(root, "dedup", key)


def run_dedup(
    root: str,
    cfg,
    seed: int,
    cluster_hash: str,
    shard: int = 0,
    num_shards: int = 1,
    on_unit: Callable[[int, int], None] | None = None,
) -> dict:
    """Stage 3: the per-cluster rule for this process's share of the units, one atomic file per unit.

    The units are split over `num_shards` processes by their work (`split_units`), so processes finish
    together. Units whose file exists are skipped, so a killed or pre-empted process resumes, and processes
    given different shards (a job array, or the processes of a jax.distributed run) fill disjoint units of
    the same folder.
    """
    stage = dedup_stage(root, cfg, seed, cluster_hash)
    stage.open()
    cdir = os.path.join(root, "cluster")
    k = int(metrics.read_json(os.path.join(cdir, "done.json"))["n_clusters"])
    offsets = np.load(os.path.join(cdir, "offsets.npy"))
    sizes = np.diff(offsets)
    buckets = semdedup.bucket_sizes(max(int(sizes.max()), 1))  # the same for every process
    dim = int(np.load(os.path.join(root, "embed", "embeddings.npy"), mmap_mode="r").shape[1])
    # one plan over all clusters, the same in every process: a unit (and so every batch) has the same
    # members however the clusters are split over processes; this process runs the units the size-balanced
    # split gives it and whose file is not there yet
    plan = plan_units([c for c in range(k) if sizes[c] > 0], sizes, buckets, int(cfg.clusters_per_file), dim)
    owner = split_units(plan, sizes, num_shards)
    mine = [u for u, o in zip(plan, owner, strict=True) if o == shard]
    units = [u for u in mine if not os.path.exists(unit_path(root, u))]
    if units:
        x = np.load(os.path.join(root, "embed", "embeddings.npy"), mmap_mode="r")
        ids = np.load(os.path.join(root, "embed", "ids.npy"))
        sims = np.load(os.path.join(cdir, "sims.npy"))
        order = np.load(os.path.join(cdir, "order.npy"))
        op = os.path.join(cdir, "ordered.npy")
        ordered = RowReader(op) if os.path.exists(op) else None
        tie_key = None
        if cfg.tie_break == "lowest_id" and cfg.id_rank:
            tie_key = np.load(cfg.id_rank)[ids]  # rank of the user's id of each row
        prog = metrics.progress(len(units), f"dedup: cluster files (shard {shard}/{num_shards})")
        for u in units:
            dedup_unit(root, u, x, ids, sims, order, offsets, buckets, cfg, seed, tie_key, ordered)
            prog.update(1)
            if on_unit is not None:
                on_unit(int(u[0]), int(u[-1]))
        prog.close()
        if ordered is not None:
            ordered.close()
    cover, files = covered_clusters(root, k)
    nonempty = sizes > 0
    return {
        "clusters_assigned": int(sum(u.size for u in mine)),
        "units_assigned": len(mine),
        "work_assigned": round(
            sum(unit_cost(u, sizes) for u in mine) / max(sum(unit_cost(u, sizes) for u in plan), 1), 4
        ),
        "units_run": len(units),
        "clusters_done": int((cover[nonempty] > 0).sum()),
        "clusters_total": int(nonempty.sum()),
        "unit_files": len(files),
    }


def load_units(root: str, k: int, sizes: np.ndarray) -> dict[str, np.ndarray]:
    """Concatenates every unit file, checking they cover each non-empty cluster exactly once
    (UserError naming the missing or doubly covered clusters otherwise)."""
    cover, files = covered_clusters(root, k)
    need = sizes > 0
    missing = np.flatnonzero(need & (cover == 0))
    if missing.size:
        raise app.UserError(
            f"dedup: clusters {_fmt_ids(missing, 8)} have no output in {root}/dedup/units; run "
            f"the dedup stage for the remaining shards first"
        )
    double = np.flatnonzero(cover > 1)
    if double.size:
        raise app.UserError(
            f"dedup: clusters {_fmt_ids(double, 8)} are covered by more than one file in "
            f"{root}/dedup/units (outputs of different runs mixed); remove that folder and rerun"
        )
    parts: dict[str, list[np.ndarray]] = {}
    for f in files:
        with np.load(f, allow_pickle=False) as z:
            for name in z.files:
                parts.setdefault(name, []).append(z[name])
    return {name: np.concatenate(v) for name, v in parts.items()}


def run_select(root: str, workdir: str, cfg, all_ids: np.ndarray) -> dict:
    """Stage 4: merges the unit files and writes, per ε, the kept and removed ids (sorted int64),
    and for each removed id the id it duplicates and their similarity. Checks kept ∪ removed = all
    ids, disjoint, once each."""
    k = int(metrics.read_json(os.path.join(root, "cluster", "done.json"))["n_clusters"])
    if not os.path.exists(os.path.join(root, "dedup", "manifest.json")):
        raise app.UserError(f"stages: the dedup stage has not run in {root}; include it in stages")
    sizes = np.diff(np.load(os.path.join(root, "cluster", "offsets.npy")))
    u = load_units(root, k, sizes)
    ids = u["ids"]
    all_sorted = np.sort(all_ids)
    if ids.size != all_sorted.size or not np.array_equal(np.sort(ids), all_sorted):
        raise RuntimeError("dedup outputs do not cover every item exactly once")
    out = {}
    for e_i, e in enumerate(cfg.eps):
        rem = u["removed"][:, e_i]
        kept_ids = np.sort(ids[~rem])
        ri = np.argsort(ids[rem], kind="stable")
        removed_ids = ids[rem][ri]
        dup_of = u["duplicate_of"][rem, e_i][ri]
        sim = u["similarity"][rem, e_i][ri]
        both = np.concatenate([kept_ids, removed_ids])
        if both.size != all_sorted.size or not np.array_equal(np.sort(both), all_sorted):
            raise RuntimeError(f"{eps_name(e)}: kept ∪ removed is not a partition of the ids")
        d = os.path.join(workdir, eps_name(e))
        metrics.atomic_save_npy(os.path.join(d, "kept_ids.npy"), kept_ids.astype(np.int64))
        metrics.atomic_save_npy(os.path.join(d, "removed_ids.npy"), removed_ids.astype(np.int64))
        metrics.atomic_save_npy(os.path.join(d, "duplicate_of.npy"), dup_of.astype(np.int64))
        metrics.atomic_save_npy(os.path.join(d, "similarity.npy"), sim.astype(np.float32))
        out[eps_name(e)] = (kept_ids, removed_ids, dup_of, sim)
    return {"per_eps": out, "units": u}
