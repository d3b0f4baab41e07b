"""SemDeDup at scale against the released approach (faiss-cpu k-means + per-cluster numpy), stage by stage.

    .venv/bin/python benchmarks/dedup_scale.py [--n 1000000] [--n 100000,1000000] [--repeat 3] [--dir DIR]

Synthetic 384-d embeddings with planted duplicates (dedup.synthetic); default N = 10⁶ (a few minutes on a quiet
machine; 10⁷ needs ~30 GB of disk: the 15 GB memmap and its copy in cluster order; run with --n 10000000
--skip-exact --repeat 1).

Every timed process runs in its best BLAS environment, chosen by measurement. OpenBLAS picks its kernels by the
CPU it detects, or by OPENBLAS_CORETYPE when set (OPENBLAS_L2_SIZE sets its cache size); an old build (faiss-cpu
ships OpenBLAS 0.3.15) may not know a new CPU and fall back to old SSE kernels, which is why machines set the
variable, while the same forced setting can slow a newer build (numpy's). So a probe child runs once per setting
(unset, Haswell, SkylakeX, Zen; OPENBLAS_L2_SIZE always unset), prints the BLAS libraries numpy and faiss load,
their core type and thread counts (threadpoolctl) and the fp32 GFLOP/s of numpy's sgemm, faiss's search (sgemm +
top-1) and XLA's dot on an 8192 x 384 x 1000 product; the faiss baseline then runs with the setting fastest for
faiss, ours with the one fastest for numpy. The matmul peak is the best of all of these; each stage's FLOP bound is
its multiply-add count at that peak.

For each N, in separate processes (so each peak RSS is its own), after generating the corpus once:
  ours   dedup/ stages cluster → dedup → select (k-means fitted on a 10⁵ sample, √N clusters, per-cluster rule),
         via the CLI, each repeat in a fresh pipeline folder sharing the embed stage;
  faiss  the released code's approach: faiss-cpu spherical k-means (same sample, clusters, and the
         iteration count ours stopped at), faiss assignment of every row, per-cluster numpy (S = E Eᵀ, strict
         upper triangle, column max) in the hard keep order;
  exact  blocked all-pairs in id order (M[j] = max_{i<j} xᵢ·xⱼ), numpy matmul: run in full up to
         --exact-max-n, otherwise timed on its first blocks and extrapolated by the pair count (marked ~).
ours and faiss alternate --repeat times (ours, faiss, ours, faiss, ...) and each stage reports its fastest repeat,
so a load that comes and goes hits both alike.
Scores at ε = 0.1 against the planted groups (precision, recall as in dedup.synthetic.planted_scores).
End-to-end = cluster + dedup + select (the embeddings exist on disk; generation is shown apart); ours's cluster
stage includes writing the embeddings in cluster order.
Prints one table, then per N the stage table (time, FLOP bound, time / bound; ours, faiss and their ratio) with
peak RSS, precision and recall of both, the load average, and `RESULT dedup_scale_ratio_<N>=<ours e2e / faiss e2e>
target=0.67` for the largest N.

FLOP counts (multiply-adds x 2): k-means fit = iterations x sample x k x d; assignment = N x k x d; per-cluster
rule = Σ_c n_c² x d (the Gram matrices, from ours's cluster sizes); select has none.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EPS = 0.1
TARGET_RATIO = 0.67  # ours / faiss end to end
DIM = 384
# OpenBLAS settings the environment may force; every child gets them chosen by measurement (see the docstring)
BLAS_OVERRIDES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
CORETYPES = ("", "Haswell", "SkylakeX", "Zen")  # "" = unset: OpenBLAS detects the CPU itself
_child_env = {"ours": "", "faiss": "", "probe": "", "exact": ""}  # kind -> OPENBLAS_CORETYPE ("" = unset)


def blas_env(coretype: str = "") -> dict:
    """The parent's environment without the forced OpenBLAS settings, plus OPENBLAS_CORETYPE=coretype if given."""
    env = dict(os.environ)
    for k in BLAS_OVERRIDES:
        env.pop(k, None)
    if coretype:
        env["OPENBLAS_CORETYPE"] = coretype
    return env


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cli(args: list[str], timeout: int) -> None:
    cmd = [sys.executable, "-m", "dedup.main", "--config=dedup/configs/default.py", *args]
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=blas_env(_child_env["ours"]))
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{p.stderr[-2000:]}")


# --corpus hard: planted copies at cosines spread over [0.80, 0.999], so at ε = 0.1 (threshold 0.9) about half of
# them fall just inside and half just outside 1 − ε, over a background whose unrelated items of one topic have
# cosine ≈ 0.80 ± 0.01 (hard negatives); scored against exact all-pairs truth instead of the planted groups
CORPUS = {"planted": [], "hard": ["--config.synthetic.sim_min=0.8", "--config.synthetic.topic_strength=0.8"]}
_corpus = ["planted"]


def _common(n: int, pipe: str) -> list[str]:
    return [
        *CORPUS[_corpus[0]],
        f"--config.synthetic.n_items={n}",
        f"--config.pipeline_dir={pipe}",
        f"--config.eps=({EPS},)",
        f"--config.eval_eps={EPS}",
        "--config.figures=False",
    ]


def run_gen(n: int, base: str) -> dict:
    pipe = os.path.join(base, "pipeline")
    t = time.time()
    _cli([*_common(n, pipe), "--config.stages=embed", f"--workdir={os.path.join(base, 'gen')}"], 3600)
    return {"seconds": time.time() - t}


def run_ours(n: int, base: str, rep: int = 0) -> dict:
    """One timed run of ours in a fresh pipeline folder whose embed stage is the generated corpus (a link)."""
    pipe = os.path.join(base, f"pipeline_ours{rep}")
    shutil.rmtree(pipe, ignore_errors=True)
    os.makedirs(pipe)
    os.symlink(os.path.join(base, "pipeline", "embed"), os.path.join(pipe, "embed"))
    wd = os.path.join(base, f"ours{rep}")
    shutil.rmtree(wd, ignore_errors=True)
    t = time.time()
    args = _common(n, pipe)
    _cli([*args, "--config.stages=cluster,dedup,select", f"--workdir={wd}"], 3600)
    wall = time.time() - t
    with open(os.path.join(wd, "results.json")) as f:
        r = json.load(f)
    st = r["stage_seconds"]
    cs = r.get("cluster_seconds", {})
    sizes = np.diff(np.load(os.path.join(pipe, "cluster", "offsets.npy")))
    out = {
        "e2e": st["cluster"] + st["dedup"] + st["select"],
        "wall_with_startup": wall,
        "cluster": st["cluster"],
        "kmeans": cs.get("kmeans"),
        "assign": cs.get("assign"),
        "reorder": cs.get("reorder"),
        # the per-cluster rule's reads: writing the rows in cluster order (cluster stage) + the dedup stage
        "dedup": st["dedup"] + (cs.get("reorder") or 0),
        "select": st["select"],
        "peak_mb": r["peak_rss_mb"],
        "precision": r["precision"],
        "recall": r["recall"],
        "same_cluster": r["pairs_in_same_cluster"],
        "iters": r["kmeans_iterations"],
        "k": r["n_clusters"],
        "gram_pairs": float((sizes.astype(np.float64) ** 2).sum()),
        "kept_fraction": r["eps"][repr(EPS)]["kept_fraction"],
        "removed_path": os.path.join(wd, f"eps={EPS!r}"),
    }
    shutil.rmtree(pipe, ignore_errors=True)
    return out


# ---------------------------------------------------------------- baselines (run in child processes)


def _load(base: str):
    x = np.load(os.path.join(base, "pipeline", "embed", "embeddings.npy"), mmap_mode="r")
    group = np.load(os.path.join(base, "pipeline", "embed", "group.npy"))
    return x, group


def _scores(group, rem, dup):
    sys.path.insert(0, ROOT)
    from dedup import synthetic

    return synthetic.planted_scores(group, np.asarray(rem, np.int64), np.asarray(dup, np.int64))


def _blas_info() -> list[dict]:
    from threadpoolctl import threadpool_info

    keep = ("user_api", "internal_api", "prefix", "version", "architecture", "num_threads", "threading_layer")
    return [{k: v for k, v in lib.items() if k in keep} for lib in threadpool_info()]


def child_probe() -> dict:
    """The BLAS libraries and threads numpy, faiss and JAX use in this (clean) environment, and the fp32 matmul peak:
    the best of numpy's sgemm and XLA's dot on an 8192 x 384 x 1000 product, best of 5 after a warm-up."""
    import jax
    import jax.numpy as jnp

    try:
        import faiss  # noqa: F401 - loads its BLAS so threadpoolctl lists it
    except ImportError:
        pass
    rng = np.random.default_rng(0)
    a = rng.standard_normal((8192, DIM)).astype(np.float32)
    b = rng.standard_normal((1000, DIM)).astype(np.float32)
    flop = 2.0 * a.shape[0] * b.shape[0] * DIM

    def best(f, reps=5):
        f()
        ts = []
        for _ in range(reps):
            t = time.perf_counter()
            f()
            ts.append(time.perf_counter() - t)
        return flop / min(ts) / 1e9

    xa, xb = jnp.asarray(a), jnp.asarray(b)
    dot = jax.jit(lambda u, v: u @ v.T)
    out = {
        "blas": _blas_info(),
        "numpy_gflops": best(lambda: a @ b.T),
        "xla_gflops": best(lambda: dot(xa, xb).block_until_ready()),
        "jax_devices": jax.device_count(),
    }
    try:
        import faiss

        index = faiss.IndexFlatIP(DIM)
        index.add(b)
        out["faiss_gflops"] = best(lambda: index.search(a, 1))  # sgemm + top-1, as its assignment
    except ImportError:
        pass
    return out


def child_faiss(base: str, niter: int) -> dict:
    import faiss

    x, group = _load(base)
    n, d = x.shape
    k = int(round(np.sqrt(n)))
    t0 = time.time()
    rows = np.sort(np.random.default_rng(0).choice(n, min(n, 100_000), replace=False))
    xs = np.ascontiguousarray(x[rows], np.float32)
    km = faiss.Kmeans(d, k, niter=niter, spherical=True, seed=0, verbose=False, max_points_per_centroid=xs.shape[0])
    km.train(xs)
    t_fit = time.time()
    index = faiss.IndexFlatIP(d)
    index.add(km.centroids)
    labels = np.empty(n, np.int64)
    sims = np.empty(n, np.float32)
    for a in range(0, n, 65536):
        s, i = index.search(np.ascontiguousarray(x[a : a + 65536], np.float32), 1)
        labels[a : a + 65536], sims[a : a + 65536] = i[:, 0], s[:, 0]
    t1 = time.time()
    order = np.argsort(labels, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(np.bincount(labels, minlength=k))])
    rem, dup = [], []
    for c in range(k):
        pos = np.sort(order[bounds[c] : bounds[c + 1]])
        if pos.size < 2:
            continue
        pos = pos[np.argsort(sims[pos], kind="stable")]  # hard: farthest from the centroid first
        e = np.asarray(x[pos], np.float32)
        s = np.triu(e @ e.T, 1)
        s[np.tril_indices(pos.size)] = -np.inf
        m = s.max(axis=0)
        j = np.flatnonzero(m > 1 - EPS)
        rem.append(pos[j])
        dup.append(pos[s[:, j].argmax(axis=0)])
    t2 = time.time()
    # select: the kept and removed ids, sorted, as ours writes them
    rem = np.concatenate(rem) if rem else np.zeros(0, np.int64)
    dup = np.concatenate(dup) if dup else np.zeros(0, np.int64)
    o = np.argsort(rem, kind="stable")
    rem, dup = rem[o], dup[o]
    keep_mask = np.ones(n, bool)
    keep_mask[rem] = False
    kept = np.flatnonzero(keep_mask)
    t3 = time.time()
    assert kept.size + rem.size == n
    np.savez(os.path.join(base, "faiss_removed.npz"), removed=rem, duplicate_of=dup)
    p, r = _scores(group, rem, dup)
    return {
        "e2e": t3 - t0,
        "cluster": t1 - t0,
        "kmeans": t_fit - t0,
        "assign": t1 - t_fit,
        "dedup": t2 - t1,
        "select": t3 - t2,
        "peak_mb": _peak_mb(),
        "precision": p,
        "recall": r,
        "kept_fraction": 1 - rem.size / n,
        "faiss_threads": faiss.omp_get_max_threads(),
        "blas": _blas_info(),
    }


def child_exact(base: str, full: bool, budget_s: float) -> dict:
    x, group = _load(base)
    n, _ = x.shape
    blk = 4096
    colmax = np.full(n, -np.inf, np.float32)
    colarg = np.zeros(n, np.int64)
    t0 = time.time()
    pairs_done = 0
    done_cols = 0
    cand = []
    for b in range(0, n, blk):
        cols = np.asarray(x[b : b + blk], np.float32)
        m = cols.shape[0]
        for a in range(0, b + m, blk):
            rows = np.asarray(x[a : a + blk], np.float32)
            s = rows @ cols.T
            if a == b:
                s[np.tril_indices(m, 0, s.shape[1])] = -np.inf
            if full:  # candidate pairs near or above the threshold, re-checked in float64 below
                ii, jj = np.nonzero(s > 1 - EPS - 1e-3)
                cand.append(np.stack([a + ii, b + jj], 1))
            mx = s.max(axis=0)
            better = mx > colmax[b : b + m]
            colarg[b : b + m][better] = a + s.argmax(axis=0)[better]
            colmax[b : b + m][better] = mx[better]
        pairs_done += (b + m) * m
        done_cols = b + m
        if not full and time.time() - t0 > budget_s:
            break
    elapsed = time.time() - t0
    total_pairs = n * n
    out = {"peak_mb": _peak_mb()}
    if done_cols >= n:
        ij = np.concatenate(cand) if cand else np.zeros((0, 2), np.int64)
        c64 = np.einsum("ij,ij->i", np.asarray(x[ij[:, 0]], np.float64), np.asarray(x[ij[:, 1]], np.float64))
        np.save(os.path.join(base, "truth_pairs.npy"), ij[c64 > 1 - EPS])  # exact all-pairs truth at ε
        rem = np.flatnonzero(colmax > 1 - EPS)
        p, r = _scores(group, rem, colarg[rem])
        out.update(e2e=elapsed, precision=p, recall=r, kept_fraction=1 - rem.size / n, extrapolated=False)
    else:
        out.update(
            e2e=elapsed * total_pairs / pairs_done,
            extrapolated=True,
            measured_seconds=elapsed,
            measured_fraction=pairs_done / total_pairs,
        )
    return out


def _child(kind: str, base: str, *extra: str, timeout: int = 3600, coretype: str | None = None) -> dict | None:
    out = os.path.join(base, f"{kind}.json")
    env = blas_env(_child_env[kind] if coretype is None else coretype)
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--child",
        kind,
        "--dir",
        base,
        *extra,
        "--out",
        out,
        "--corpus",
        _corpus[0],
    ]
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)
    if p.returncode != 0:
        print(f"  {kind} failed: {p.stderr[-600:]}", flush=True)
        return None
    with open(out) as f:
        return json.load(f)


def _fmt(v, spec=".1f", tilde=False) -> str:
    if v is None:
        return "-"
    s = format(v, spec)
    return ("~" + s) if tilde else s


def all_pairs_scores(base: str, rem: np.ndarray, dup: np.ndarray) -> dict:
    """Against exact all-pairs truth T = {(i, j): cos > 1 − ε in float64}: precision = fraction of removed items
    whose named duplicate is in T (float64 cosine > 1 − ε); pair recall = fraction of the pairs of T with at least
    one member removed (a pair with both kept is a surviving duplicate)."""
    x = np.load(os.path.join(base, "pipeline", "embed", "embeddings.npy"), mmap_mode="r")
    t = np.load(os.path.join(base, "truth_pairs.npy"))
    c = np.einsum("ij,ij->i", np.asarray(x[rem], np.float64), np.asarray(x[dup], np.float64))
    removed = np.zeros(x.shape[0], bool)
    removed[rem] = True
    hit = removed[t[:, 0]] | removed[t[:, 1]]
    return {
        "precision": float((c > 1 - EPS).mean()) if rem.size else 1.0,
        "pair_recall": float(hit.mean()) if t.size else 1.0,
        "truth_pairs": int(t.shape[0]),
        "near_threshold_pairs": int(((c > 1 - EPS - 0.02) & (c < 1 - EPS + 0.02)).sum()),
    }


def flop_counts(n: int, o: dict, sample: int = 100_000) -> dict:
    """Multiply-add FLOP (x 2) per stage for N rows, k clusters and ours's iteration count and cluster sizes."""
    k, it = o["k"], o["iters"]
    f = {
        "kmeans": 2.0 * it * min(n, sample) * k * DIM,
        "assign": 2.0 * n * k * DIM,
        "dedup": 2.0 * o["gram_pairs"] * DIM,
        "select": 0.0,
    }
    f["e2e"] = sum(f.values())
    return f


def _best(runs: list[dict]) -> dict:
    """Per key, the fastest repeat (times) or the first run's value (everything else)."""
    out = dict(runs[0])
    for key in ("e2e", "cluster", "kmeans", "assign", "reorder", "dedup", "select", "wall_with_startup"):
        vals = [r[key] for r in runs if r.get(key) is not None]
        if vals:
            out[key] = min(vals)
    out["peak_mb"] = max(r["peak_mb"] for r in runs)
    out["repeats"] = [round(r["e2e"], 2) for r in runs]
    return out


def _stage_table(n: int, o: dict, fa: dict | None, peak: float) -> None:
    print(
        f"\nN={n:,}: stage seconds, fastest of {len(o['repeats'])} (ours vs faiss-cpu k-means + per-cluster numpy, "
        f"same sample/clusters/iterations); bound = FLOP / {peak:.0f} GFLOP/s"
    )
    print(f"  {'stage':<24} {'ours':>8} {'faiss':>8} {'ours/faiss':>10} {'bound':>8} {'ours/bnd':>8} {'faiss/bnd':>9}")
    fl = flop_counts(n, o)
    for key, label in (
        ("kmeans", "k-means fit"),
        ("assign", "assignment (all rows)"),
        ("dedup", "per-cluster rule"),
        ("select", "select"),
        ("e2e", "end to end"),
    ):
        a = o.get(key)
        b = fa.get(key) if fa else None
        bound = fl[key] / (peak * 1e9) if fl[key] else None
        ratio = f"{a / b:.2f}" if a is not None and b else "-"
        ob = f"{a / bound:.2f}" if a is not None and bound else "-"
        fb = f"{b / bound:.2f}" if b is not None and bound else "-"
        print(f"  {label:<24} {_fmt(a):>8} {_fmt(b):>8} {ratio:>10} {_fmt(bound, '.2f'):>8} {ob:>8} {fb:>9}")
    if o.get("reorder") is not None:
        print(f"  (ours's per-cluster rule includes {o['reorder']:.1f} s writing the rows in cluster order)")
    print(f"  {'peak RSS MB':<24} {_fmt(o['peak_mb'], '.0f'):>8} {_fmt(fa and fa['peak_mb'], '.0f'):>8}")
    print(
        f"  {'precision / recall':<24} {o['precision']:.4f} / {o['recall']:.4f}   faiss "
        f"{_fmt(fa and fa['precision'], '.4f')} / {_fmt(fa and fa['recall'], '.4f')}"
    )
    print(f"  end-to-end repeats: ours {o['repeats']}" + (f", faiss {fa['repeats']}" if fa else ""))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", default=None, help="corpus size(s), comma-separated (default 1000000)")
    ap.add_argument("--sizes", default=None, help="same as --n")
    ap.add_argument("--dir", default=None, help="scratch directory (default: a temporary one, removed)")
    ap.add_argument("--repeat", type=int, default=3, help="ours and faiss alternate this many times; fastest kept")
    ap.add_argument("--probe-rounds", type=int, default=2, help="rounds of the BLAS probe over the core types")
    ap.add_argument("--exact-max-n", type=int, default=100_000, help="exact all-pairs run in full up to this N")
    ap.add_argument("--exact-budget", type=float, default=60.0, help="seconds timed before extrapolating")
    ap.add_argument("--exact-extrapolate", action="store_true", help="time and extrapolate exact above --exact-max-n")
    ap.add_argument("--skip-exact", action="store_true")
    ap.add_argument("--child", default=None)
    ap.add_argument("--full", action="store_true")
    ap.add_argument("--out", default=None)
    ap.add_argument("--niter", type=int, default=20)
    ap.add_argument("--corpus", default="planted", choices=sorted(CORPUS), help="planted (easy) or hard (see CORPUS)")
    a = ap.parse_args()
    _corpus[0] = a.corpus
    if a.child:
        if a.child == "faiss":
            res = child_faiss(a.dir, a.niter)
        elif a.child == "probe":
            res = child_probe()
        else:
            res = child_exact(a.dir, a.full, a.exact_budget)
        with open(a.out, "w") as f:
            json.dump(res, f)
        return
    if a.repeat < 1:
        ap.error("--repeat: must be >= 1")

    try:
        import faiss  # noqa: F401

        have_faiss = True
    except ImportError:
        have_faiss = False
        print("faiss is not importable: the faiss column is skipped (pip install faiss-cpu)")
    sizes = [int(float(v)) for v in (a.n or a.sizes or "1000000").split(",")]
    scratch = a.dir or tempfile.mkdtemp(prefix="dedup_bench_")
    os.makedirs(scratch, exist_ok=True)
    print("load before:", open("/proc/loadavg").read().split()[:3] if os.path.exists("/proc/loadavg") else "?")
    forced = {k: os.environ[k] for k in BLAS_OVERRIDES if k in os.environ}
    print(f"OpenBLAS settings in this environment: {forced or 'none'}; each child's are chosen by measurement:")
    probes: dict[str, dict] = {}
    for _ in range(a.probe_rounds):  # the settings alternate; each keeps its best round
        for ct in CORETYPES:
            pr = _child("probe", scratch, coretype=ct)
            if pr is None:
                continue
            old = probes.setdefault(ct, pr)
            for key in ("numpy_gflops", "xla_gflops", "faiss_gflops"):
                if key in pr:
                    old[key] = max(old.get(key, 0.0), pr[key])
    for ct, pr in probes.items():
        libs = ", ".join(
            f"{lib.get('prefix')} {lib.get('version')} core {lib.get('architecture')} {lib.get('num_threads')} threads"
            for lib in pr["blas"]
            if lib.get("user_api") == "blas"
        )
        omp = [lib.get("num_threads") for lib in pr["blas"] if lib.get("user_api") == "openmp"]
        print(
            f"  OPENBLAS_CORETYPE={ct or '(unset)':<9} numpy {pr['numpy_gflops']:5.0f}  faiss "
            f"{pr.get('faiss_gflops', float('nan')):5.0f}  XLA {pr['xla_gflops']:5.0f} GFLOP/s  [{libs}; OpenMP {omp}]"
        )
    if probes:
        _child_env["ours"] = _child_env["exact"] = max(probes, key=lambda c: probes[c]["numpy_gflops"])
        _child_env["faiss"] = max(probes, key=lambda c: probes[c].get("faiss_gflops", 0.0))
    peak = max((v for pr in probes.values() for k, v in pr.items() if k.endswith("_gflops")), default=float("nan"))
    print(
        f"ours runs with OPENBLAS_CORETYPE={_child_env['ours'] or '(unset)'} (its best numpy sgemm), faiss + numpy "
        f"with {_child_env['faiss'] or '(unset)'} (faiss's best); matmul peak (fp32, 8192x384x1000, best of every "
        f"library and setting): {peak:.0f} GFLOP/s"
    )
    rows = []
    try:
        for n in sizes:
            base = os.path.join(scratch, f"n{n}")
            shutil.rmtree(base, ignore_errors=True)
            os.makedirs(base)
            print(f"N={n:,}: generating ...", flush=True)
            gen = run_gen(n, base)
            file_mb = os.path.getsize(os.path.join(base, "pipeline", "embed", "embeddings.npy")) / 2**20
            ours_runs, fa_runs = [], []
            for rep in range(a.repeat):
                print(f"N={n:,}: ours (repeat {rep + 1}/{a.repeat}) ...", flush=True)
                ours_runs.append(run_ours(n, base, rep))
                if have_faiss:
                    print(f"N={n:,}: faiss + numpy (repeat {rep + 1}/{a.repeat}) ...", flush=True)
                    r = _child("faiss", base, "--niter", str(ours_runs[0]["iters"]))
                    if r is not None:
                        fa_runs.append(r)
                print(
                    f"  e2e ours {ours_runs[-1]['e2e']:.1f} s"
                    + (f", faiss {fa_runs[-1]['e2e']:.1f} s" if fa_runs and len(fa_runs) == rep + 1 else ""),
                    flush=True,
                )
            ours = _best(ours_runs)
            fa = _best(fa_runs) if fa_runs else None
            if fa_runs:
                print(f"  faiss {fa_runs[0]['faiss_threads']} OpenMP threads; BLAS as probed", flush=True)
            ex = None
            if not a.skip_exact and (n <= a.exact_max_n or a.exact_extrapolate):
                print(f"N={n:,}: exact all-pairs ...", flush=True)
                ex = _child(
                    "exact", base, *(["--full"] if n <= a.exact_max_n else []), "--exact-budget", str(a.exact_budget)
                )
            if ex is not None and os.path.exists(os.path.join(base, "truth_pairs.npy")):
                wd = ours["removed_path"]
                ours["all_pairs"] = all_pairs_scores(
                    base, np.load(os.path.join(wd, "removed_ids.npy")), np.load(os.path.join(wd, "duplicate_of.npy"))
                )
                if fa is not None:
                    z = np.load(os.path.join(base, "faiss_removed.npz"))
                    fa["all_pairs"] = all_pairs_scores(base, z["removed"], z["duplicate_of"])
            rows.append((n, file_mb, gen, ours, fa, ex))
            shutil.rmtree(os.path.join(base, "pipeline"), ignore_errors=True)
    finally:
        if a.dir is None:
            shutil.rmtree(scratch, ignore_errors=True)

    print()
    print("ε = 0.1; times in seconds; peak = peak RSS of the process (MB); ~ = extrapolated by pair count")
    hdr = (
        f"{'N':>9} {'file MB':>8} {'gen s':>6} | {'ours e2e':>8} {'peak':>6} {'peak/file':>9} {'prec':>6} "
        f"{'recall':>6} {'same-cl':>7} | {'faiss e2e':>9} {'peak':>6} {'prec':>6} {'recall':>6} | "
        f"{'exact e2e':>9} {'recall':>6} | {'ours/faiss':>10}"
    )
    print(hdr)
    print("-" * len(hdr))
    for n, file_mb, gen, o, fa, ex in rows:
        fa_e = fa["e2e"] if fa else None
        ex_e = ex["e2e"] if ex else None
        print(
            f"{n:>9,} {file_mb:>8.0f} {gen['seconds']:>6.0f} | {o['e2e']:>8.1f} {o['peak_mb']:>6.0f} "
            f"{o['peak_mb'] / file_mb:>9.2f} {o['precision']:>6.4f} {o['recall']:>6.4f} {o['same_cluster']:>7.4f} | "
            f"{_fmt(fa_e):>9} {_fmt(fa and fa['peak_mb'], '.0f'):>6} {_fmt(fa and fa['precision'], '.4f'):>6} "
            f"{_fmt(fa and fa['recall'], '.4f'):>6} | "
            f"{_fmt(ex_e, '.0f', bool(ex and ex['extrapolated'])):>9} "
            f"{_fmt(ex and ex.get('recall'), '.4f'):>6} | "
            f"{_fmt(fa_e and o['e2e'] / fa_e, '.2f'):>10}"
        )
    for n, _, _, o, fa, _ in rows:
        _stage_table(n, o, fa, peak)
        print(f"  ours: {o['iters']} k-means iterations (tol 1e-4), {o['k']} clusters; faiss ran the same")
    for n, _, _, o, fa, _ in rows:
        if "all_pairs" in o:
            ap_, fp = o["all_pairs"], (fa or {}).get("all_pairs")
            print(
                f"\nN={n:,} against exact all-pairs truth at ε={EPS} ({ap_['truth_pairs']:,} pairs above 1 − ε): "
                f"ours precision {ap_['precision']:.4f}, pair recall {ap_['pair_recall']:.4f}"
                + (f"; faiss precision {fp['precision']:.4f}, pair recall {fp['pair_recall']:.4f}" if fp else "")
            )
    print("load after:", open("/proc/loadavg").read().split()[:3] if os.path.exists("/proc/loadavg") else "?")
    n, _, _, o, fa, _ = rows[-1]
    if fa:
        print(f"RESULT dedup_scale_ratio_{n}={o['e2e'] / fa['e2e']:.3f} target={TARGET_RATIO}")
    else:
        print(f"RESULT dedup_scale_e2e_seconds_{n}={o['e2e']:.1f} (no faiss: ratio not measured)")


if __name__ == "__main__":
    main()
