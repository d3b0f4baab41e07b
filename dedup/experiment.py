"""SemDeDup end to end: embed → cluster → dedup → select, with figures and scores on planted
duplicates."""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import time

import ml_collections
import numpy as np
from absl import logging

from common import app, metrics, plotting
from common import validate as check
from dedup import pipeline, synthetic, text

# Kept fraction per ε on LAION-440M with 50k clusters (constants in the released code), for the
# figure.
PAPER_LAION = {0.00095: 0.796, 0.03: 0.721, 0.07: 0.634, 0.124: 0.499, 0.205: 0.305, 0.26: 0.198}


# Outputs beyond the standard files, removed by --config.overwrite=True: the per-ε selections and the pipeline's
# stage outputs (when they live in the workdir).
OUTPUTS = ("eps=*", "pipeline")


def _stages(config) -> list[str]:
    s = config.stages.strip()
    if s == "all":
        return list(pipeline.STAGES)
    return [x.strip() for x in s.split(",") if x.strip()]


def validate(config: ml_collections.ConfigDict) -> None:
    """Range and consistency checks; raises app.ConfigError naming the field."""
    check.sorted_grid(config, "eps", positive=True)  # a tuple of distinct thresholds, increasing
    names = [pipeline.eps_name(e) for e in config.eps]
    if len(set(names)) != len(names):  # cannot happen for distinct floats (repr round-trips); kept as a guard
        raise app.ConfigError("eps", f"thresholds {tuple(config.eps)!r} would share an output folder")
    if max(config.eps) >= 2.0:
        raise app.ConfigError("eps", f"every ε must be in (0, 2) (cosine distance), got {tuple(config.eps)!r}")
    using_synth = not config.embeddings and not config.texts
    if using_synth and float(config.eval_eps) not in [float(e) for e in config.eps]:
        raise app.ConfigError("eval_eps", f"must be one of eps {tuple(config.eps)}")
    if config.embeddings and config.texts:
        raise app.ConfigError("texts", "give either embeddings or texts, not both")
    if config.embeddings and not os.path.isfile(config.embeddings):
        raise app.ConfigError("embeddings", f"no such file {config.embeddings}")
    if config.texts and config.texts != "builtin" and not os.path.isfile(config.texts):
        raise app.ConfigError("texts", f"no such file {config.texts}")
    bad = [s for s in _stages(config) if s not in pipeline.STAGES]
    if bad or not _stages(config):
        raise app.ConfigError("stages", f"'all' or a comma list of {','.join(pipeline.STAGES)}")
    check.one_of(config, "keep", ("hard", "easy", "random"))
    check.one_of(config, "rule", ("paper", "greedy"))
    check.one_of(config, "tie_break", pipeline.TIE_BREAKS)
    check.boolean(config, "figures")
    if config.id_rank and not os.path.isfile(config.id_rank):
        raise app.ConfigError("id_rank", f"no such file {config.id_rank}")
    check.non_negative(config, "kmeans.tol")
    check.one_of(config, "kmeans.init", ("kmeans++", "random"))
    check.one_of(config, "reorder", ("auto", "always", "never"))
    # 0 = derived (n_clusters = round(sqrt(N)), n_topics = 2 round(sqrt(N))) or "all rows" / "isotropic"
    check.non_negative_int(
        config,
        "n_clusters",
        "kmeans.iterations",
        "kmeans.sample_size",
        "kmeans.init_points",
        "shard",
        "synthetic.n_topics",
        "synthetic.noise_rank",
    )
    check.positive_int(
        config, "kmeans.batch_size", "clusters_per_file", "num_shards", "text_batch_size", "synthetic.dim"
    )
    check.integer(config, "synthetic.n_items", "synthetic.max_group_size")
    check.in_range(config, "synthetic.n_items", 2)
    check.in_range(config, "synthetic.max_group_size", 2)
    if config.shard >= config.num_shards:
        raise app.ConfigError("shard", f"must be < num_shards={config.num_shards}, got {config.shard}")
    if metrics.process_count() > 1 and config.num_shards > 1:
        raise app.ConfigError(
            "num_shards",
            "a jax.distributed run splits the dedup stage over its processes itself; leave shard and num_shards "
            "at 0 and 1 (they are for separate jobs sharing a pipeline_dir)",
        )
    check.probability(config, "synthetic.topic_strength", "synthetic.dup_fraction", open_high=True)
    s = config.synthetic
    if not 0.0 < s.sim_min <= s.sim_max <= 1.0:
        raise app.ConfigError("synthetic.sim_min", "need 0 < sim_min <= sim_max <= 1")


def _source(config) -> pipeline.EmbedSource:
    if config.embeddings:
        return pipeline.EmbedSource("file", config.embeddings)
    if config.texts:
        path = text.builtin_path() if config.texts == "builtin" else config.texts
        return pipeline.EmbedSource("texts", path)
    return pipeline.EmbedSource("synthetic")


def _need(root: str, name: str) -> dict:
    p = os.path.join(root, name, "done.json")
    if not os.path.exists(p):
        raise app.UserError(f"stages: the {name} stage has not finished in {root}; include it in stages")
    return metrics.read_json(p)


def _data_source(source: pipeline.EmbedSource) -> str:
    """What the run deduplicated, as recorded in results.json (`data_source`, as in every package)."""
    if source.kind == "synthetic":
        return "synthetic:planted_duplicates (dedup.synthetic)"
    return f"{'embeddings' if source.kind == 'file' else 'texts'}:{os.path.abspath(source.path)}"


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """Runs the selected stages into config.pipeline_dir (default <workdir>/pipeline) and, after
    select, returns n_items, n_clusters, eps → {kept, removed, kept_fraction} and, on synthetic
    data, precision, recall and pairs_in_same_cluster at eval_eps."""
    root = config.pipeline_dir or os.path.join(workdir, "pipeline")
    if config.overwrite and not config.pipeline_dir and os.path.isdir(root) and metrics.is_writer():
        shutil.rmtree(root)
    os.makedirs(root, exist_ok=True)
    stages = _stages(config)
    source = _source(config)
    seed = int(config.seed)
    timings: dict[str, float] = {}
    results: dict = {
        "source": source.kind if source.kind != "texts" else f"texts:{source.path}",
        "data_source": _data_source(source),
        "stages_run": stages,
    }

    last = max(pipeline.STAGES.index(st) for st in stages)
    # a jax.distributed run: process 0 runs embed, cluster and select; every process runs its share of the
    # dedup units (split by work); between the stages every process waits for process 0's outcome
    nproc, proc = metrics.process_count(), metrics.process_index()
    t = time.time()
    einfo = None
    if "embed" in stages:
        with _on_process_0("embed", nproc, proc) as mine:
            if mine:
                einfo = pipeline.run_embed(root, source, config, seed)
                timings["embed"] = time.time() - t
    einfo = einfo or _need(root, "embed")
    results["n_items"] = einfo["n_items"]
    results["n_total"] = einfo["n_total"]
    results["excluded"] = {k: len(v) for k, v in einfo.get("excluded", {}).items()}
    if results["excluded"]:
        results["excluded_ids"] = {k: v[:100] for k, v in einfo["excluded"].items()}

    if last >= 1:
        t = time.time()
        cinfo = None
        if "cluster" in stages:
            with _on_process_0("cluster", nproc, proc) as mine:
                if mine:
                    cinfo = pipeline.run_cluster(root, config, seed, einfo["hash"])
                    timings["cluster"] = time.time() - t
        cinfo = cinfo or _need(root, "cluster")
        results["n_clusters"] = cinfo["n_clusters"]
        results["kmeans_objective"] = cinfo["objective"][-1] if cinfo["objective"] else None
        results["kmeans_iterations"] = cinfo["iterations"]
        if "cluster" in timings and "seconds" in cinfo:
            results["cluster_seconds"] = cinfo["seconds"]  # k-means fit and assignment of every row

    if "dedup" in stages:
        t = time.time()
        shard, shards = (proc, nproc) if nproc > 1 else (int(config.shard), int(config.num_shards))
        results["dedup_units"] = pipeline.run_dedup(root, config, seed, cinfo["hash"], shard, shards)
        timings["dedup"] = time.time() - t
        _all_done("dedup", nproc)
        if nproc > 1:
            results["dedup_units"]["process"] = f"{proc} of {nproc}"
    if "select" in stages and proc == 0:
        t = time.time()
        # refuses unit files made with other eps/keep/rule (raises UserError naming the settings)
        pipeline.dedup_stage(root, config, seed, cinfo["hash"]).check()
        ids = np.load(os.path.join(root, "embed", "ids.npy"))
        sel = pipeline.run_select(root, workdir, config, ids)
        timings["select"] = time.time() - t
        _summarise(results, sel, config, root, workdir, source)
    results["stage_seconds"] = {k: round(v, 2) for k, v in timings.items()}
    results["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return results


@contextlib.contextmanager
def _on_process_0(stage: str, nproc: int, proc: int):
    """Runs the block's stage on process 0 only (yields whether this process runs it); then every process of a
    jax.distributed run learns whether it succeeded (process 0 broadcasts it), so a failure there stops the others
    with one line instead of leaving them waiting. In one process: just runs the block."""
    if nproc == 1:
        yield True
        return
    from jax.experimental import multihost_utils

    ok = False
    try:
        yield proc == 0
        ok = True
    finally:
        flag = multihost_utils.broadcast_one_to_all(np.int32(ok))
    if not bool(flag):
        raise app.UserError(f"stopped: the {stage} stage failed on process 0 (its log says why)")


def _all_done(stage: str, nproc: int) -> None:
    """Every process of a jax.distributed run waits here until all have finished the stage (no-op in one)."""
    if nproc > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(f"dedup: {stage} done")


def _score(results: dict, per_eps: dict, labels: np.ndarray, eval_eps: float) -> None:
    """Precision and recall per ε against known duplicate groups (`labels`: group per id, -1 = none),
    and at eval_eps as the headline."""
    for name, (_, r, dup, _) in per_eps.items():
        p, rc = synthetic.planted_scores(labels, r, dup)
        results["eps"][name[4:]].update(precision=p, recall=rc)
    ev = results["eps"][pipeline.eps_name(eval_eps)[4:]]
    results["precision"], results["recall"] = ev["precision"], ev["recall"]
    results["eval_eps"] = float(eval_eps)


def _summarise(results: dict, sel: dict, config, root: str, workdir: str, source) -> None:
    n = results["n_items"]
    per_eps = sel["per_eps"]
    results["eps"] = {
        name[4:]: {"kept": int(k.size), "removed": int(r.size), "kept_fraction": k.size / n}
        for name, (k, r, _, _) in per_eps.items()
    }
    offsets = np.load(os.path.join(root, "cluster", "offsets.npy"))
    sizes = np.diff(offsets)
    nn = sel["units"]["nn_sim"]
    group = None
    if source.kind == "synthetic":
        group = np.load(os.path.join(root, "embed", "group.npy"))
        labels_by_row = np.load(os.path.join(root, "cluster", "labels.npy"))
        results["pairs_in_same_cluster"] = synthetic.pairs_in_same_cluster(group, labels_by_row)
        _score(results, per_eps, group, config.eval_eps)
        results["planted_duplicates"] = int((group >= 0).sum() - np.unique(group[group >= 0]).size)
    if source.kind == "texts":
        lines = text.read_documents(source.path, config.text_field)
        _, r, dup, sim = (
            per_eps[pipeline.eps_name(config.eval_eps)]
            if pipeline.eps_name(config.eval_eps) in per_eps
            else list(per_eps.values())[-1]
        )
        order = np.argsort(-sim)
        results["examples"] = [
            {
                "removed": lines[int(r[i])],
                "duplicate_of": lines[int(dup[i])],
                "similarity": float(sim[i]),
            }
            for i in order
        ]
        for ex in results["examples"]:
            logging.info("duplicate (%.3f): %r  ~  %r", ex["similarity"], ex["removed"], ex["duplicate_of"])
        if os.path.abspath(source.path) == os.path.abspath(text.builtin_path()):
            # the shipped set has hand-labelled paraphrase groups: score against them
            labels = text.builtin_groups(len(lines))
            _score(results, per_eps, labels, config.eval_eps)
    if config.figures:
        _figures(workdir, results, sizes, nn, sel, group, config)


@plotting.styled
def _figures(workdir, results, sizes, nn, sel, group, config) -> None:
    figdir = os.path.join(workdir, "figures")
    eps = sorted(float(e) for e in results["eps"])
    kf = [results["eps"][pipeline.eps_name(e)[4:]]["kept_fraction"] for e in eps]
    fig, ax = plotting.figure(width=5.0, height=3.6)
    col = plotting.palette(3)
    ax.plot(eps, kf, "o-", color=col[0], label="this run")
    ax.plot(
        list(PAPER_LAION),
        list(PAPER_LAION.values()),
        "s--",
        color=col[1],
        alpha=0.7,
        label="paper: LAION-440M, 50k clusters",
    )
    if group is not None:
        ideal = 1.0 - results["planted_duplicates"] / results["n_items"]
        ax.axhline(ideal, color=col[2], ls=":", label="planted truth (one per group kept)")
    ax.set_xlabel("ε  (remove if cos > 1 − ε)")
    ax.set_ylabel("kept fraction")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"Kept fraction vs ε (N={results['n_items']:,}, rule={config.rule}, keep={config.keep})")
    ax.legend()
    plotting.save(fig, os.path.join(figdir, "kept_fraction_vs_eps.png"))

    fig, ax = plotting.figure(width=5.0, height=3.6)
    ax.hist(sizes, bins=min(60, max(5, sizes.size // 4)), color=col[0])
    ax.set_xlabel("cluster size (items)")
    ax.set_ylabel("clusters")
    ax.set_title(f"{sizes.size} clusters: median {int(np.median(sizes))}, max {int(sizes.max())}")
    plotting.save(fig, os.path.join(figdir, "cluster_sizes.png"))

    fig, ax = plotting.figure(width=5.0, height=3.6)
    fin = np.isfinite(nn)
    ids = sel["units"]["ids"]
    bins = np.linspace(float(nn[fin].min()) if fin.any() else 0, 1.0, 80)
    if group is not None:
        planted = group[ids] >= 0
        ax.hist(nn[fin & ~planted], bins=bins, color=col[0], alpha=0.7, label="no planted duplicate")
        ax.hist(nn[fin & planted], bins=bins, color=col[1], alpha=0.7, label="in a planted group")
    else:
        ax.hist(nn[fin], bins=bins, color=col[0], alpha=0.8, label="items")
    ev = float(config.eval_eps)
    ax.axvline(1 - ev, color="k", ls="--", lw=1, label=f"1 − ε (ε={ev:g})")
    ax.set_yscale("log")
    ax.set_xlabel("cosine similarity to nearest neighbour in its cluster")
    ax.set_ylabel("items")
    ax.set_title("Nearest-neighbour similarity")
    ax.legend()
    plotting.save(fig, os.path.join(figdir, "nn_similarity.png"))


def report(results: dict) -> list[dict]:
    """Headline numbers for runs/REPORT.md."""
    rows = []
    if "recall" in results:
        rows.append(
            {
                "name": f"recall of planted duplicates (ε={results['eval_eps']:g})",
                "value": results["recall"],
                "paper": "≥ 0.99 (this project's target on planted duplicates; the paper reports none)",
                "ok": results["recall"] >= 0.99,
            }
        )
        rows.append(
            {
                "name": f"precision (ε={results['eval_eps']:g})",
                "value": results["precision"],
                "paper": "≥ 0.99 (this project's target on planted duplicates)",
                "ok": results["precision"] >= 0.99,
            }
        )
        rows.append(
            {
                "name": "planted pairs in the same cluster",
                "value": results["pairs_in_same_cluster"],
                "paper": "released code: ~√N clusters keep most near-duplicates together",
                "ok": None,
            }
        )
    if "eps" in results:
        for e, v in results["eps"].items():
            rows.append(
                {
                    "name": f"kept fraction ε={e}",
                    "value": v["kept_fraction"],
                    "paper": f"LAION: {PAPER_LAION[float(e)]:.3f}" if float(e) in PAPER_LAION else "-",
                    "ok": None,
                }
            )
    return rows
