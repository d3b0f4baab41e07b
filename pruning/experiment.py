"""What a winning ticket's mask encodes (Paul et al. 2023), wired end to end.

1. Instability against the rewind step k: for each k of `instability.rewind_steps`, two copies of the dense network
   trained from the same w_k with different SGD noise, and the error barrier between them.
2. One vmapped, checkpointed IMP sweep: for every seed, IMP rewinding to k > 0 (`imp`) and to k = 0
   (`no_rewind`), retraining from the final weights, one-shot pruning, and companions of the IMP run: a twin (other
   SGD noise), a perturbed rewind point, and open_lth's controls (the IMP mask shuffled within each layer; the IMP
   mask on a fresh initialisation trained from step k). Per level: density, test error, the error barrier to the
   previous level's solution, and the rank overlap of the next pruned set with the smallest weights at w_k.
3. Flatness (pruning/flatness.py): predicted vs measured largest fraction prunable in one iteration.
Figures go to workdir/figures; the results.json keys are documented in pruning/README.md.
"""

from __future__ import annotations

import dataclasses
import os

import jax
import ml_collections
import numpy as np
from absl import logging

from common import app, metrics, sweep
from pruning import figures, flatness, hessian, imp, masks, models, summary
from pruning.report import report  # noqa: F401  (common.app reads experiment.report)
from pruning.validation import load_data, validate  # noqa: F401  (common.app reads experiment.validate)


def make_setup(config, input_shape, num_classes: int, *, num_levels: int, snapshot_levels=()) -> imp.Setup:
    """The static IMP setup of a config."""
    n = config.net
    if n.arch == "mlp":
        model = models.MLP(int(np.prod(input_shape)), tuple(int(w) for w in n.widths), num_classes)
    elif n.arch == "cnn":
        model = models.CNN(
            tuple(int(w) for w in n.widths),
            tuple(int(s) for s in n.strides),
            num_classes,
            input_shape[-1],
            batchnorm=bool(n.get("batchnorm", False)),
        )
    else:
        model = models.ResNet(int(n.resnet_blocks), int(n.resnet_width), num_classes, int(input_shape[-1]))
    t = config.train
    return imp.Setup(
        model=model,
        batch_size=int(t.batch_size),
        steps=int(t.steps),
        num_levels=int(num_levels),
        momentum=float(t.momentum),
        lr_drops=tuple(int(d) for d in t.lr_drops),
        lr_gamma=float(t.lr_gamma),
        warmup_steps=int(t.warmup_steps),
        augment=bool(t.augment),
        output_rate=float(config.imp.output_rate),
        barrier_points=int(config.imp.barrier_points),
        snapshot_levels=tuple(int(x) for x in snapshot_levels),
        eval_batch=int(t.eval_batch),
    )


def _seeds(config) -> list[int]:
    return [config.seed + i for i in range(config.imp.num_seeds)]


def check_spectrum_size(config, setup: imp.Setup) -> None:
    """Refuses, before any training, a flatness level whose full spectrum exceeds `flatness.max_dim` weights."""
    params, _ = jax.eval_shape(setup.model.init, jax.random.key(0))
    rates = setup.rates(params)
    n = masks.size(masks.ones_masks(params), rates)
    for level in range(max(config.flatness.levels, default=-1) + 1):
        if level in config.flatness.levels and n > config.flatness.max_dim:
            raise app.UserError(
                f"flatness.max_dim: level {level} keeps {n} weights, above {config.flatness.max_dim} (full spectrum)"
            )
        n -= int(np.floor(config.imp.fraction * n + 0.5))


def instability(config, workdir: str, setup: imp.Setup, arrays, writer) -> dict:
    """Barrier between two copies trained from the same w_k with different SGD noise, per k (dense network)."""
    runs = []
    for seed in _seeds(config):
        for k in config.instability.rewind_steps:
            parent = len(runs)
            for name in ("imp", "twin"):
                runs.append(
                    imp.Run(seed, name, parent, float(config.train.lr), float(config.train.weight_decay), 0.0, int(k))
                )
    isetup = make_setup(config, arrays[0].shape[1:], setup.model.num_classes, num_levels=2)
    sw = imp.Sweep(isetup, runs, int(config.train.chunk_steps))
    state = sweep.to_numpy(sw.init(), len(runs))
    w_k = rewind_points(isetup, runs, max(config.instability.rewind_steps), arrays)
    state["w_rewind"], state["s_rewind"] = w_k["w_rewind"], w_k["s_rewind"]
    ckpt = os.path.join(workdir, "checkpoints", "instability")
    state = sw.run(state, arrays, first_level=1, num_levels=1, ckpt_dir=ckpt, writer=writer, desc="instability")
    return summary.instability(runs, imp.history(state, len(runs)))


def rewind_points(setup: imp.Setup, runs, k_max: int, arrays) -> dict:
    """w_k (and BatchNorm statistics) of every run: its seed's dense network trained from w_0 to its rewind step
    (the first k_max + 1 steps of level 0, the same minibatches and rates as the full schedule's), so the copies
    from w_k need not train level 0 to its end."""
    prefix = dataclasses.replace(setup, steps=k_max + 1, num_levels=1)
    seeds = sorted({r.seed for r in runs})
    ks = sorted({r.rewind_step for r in runs})
    pruns = [imp.Run(s, "imp", 0, runs[0].lr, runs[0].weight_decay, 0.0, k) for s in seeds for k in ks]
    pruns = [dataclasses.replace(r, parent=i) for i, r in enumerate(pruns)]
    psw = imp.Sweep(prefix, pruns, prefix.steps)
    state = psw.run(psw.init(), arrays, desc="rewind_points")
    idx = np.asarray([seeds.index(r.seed) * len(ks) + ks.index(r.rewind_step) for r in runs])
    return {
        name: jax.tree.map(lambda a: np.asarray(a)[idx], sweep.to_numpy(state[name], len(pruns)))
        for name in ("w_rewind", "s_rewind")
    }


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """Runs the experiment (see the module docstring) and returns the results dict (keys in pruning/README.md)."""
    arrays, source, num_classes = load_data(config)
    levels = tuple(int(x) for x in config.flatness.levels)
    shape = arrays[0].shape[1:]
    setup = make_setup(config, shape, num_classes, num_levels=config.imp.num_levels, snapshot_levels=levels)
    check_spectrum_size(config, setup)
    runs = imp.make_runs(
        _seeds(config),
        list(config.imp.runs),
        lr=float(config.train.lr),
        weight_decay=float(config.train.weight_decay),
        fraction=float(config.imp.fraction),
        rewind_step=int(config.train.rewind_step),
    )
    logging.info("IMP sweep: %d runs as one jit(vmap), %d levels x %d steps", len(runs), setup.num_levels, setup.steps)
    sw = imp.Sweep(setup, runs, int(config.train.chunk_steps))
    fig_dir = os.path.join(workdir, "figures")
    tol, btol = float(config.imp.matching_tolerance), float(config.imp.barrier_tolerance)
    with metrics.MetricWriter(os.path.join(workdir, "metrics.jsonl")) as writer:
        inst = instability(config, workdir, setup, arrays, writer) if config.instability.rewind_steps else None
        state = sw.run(sw.init(), arrays, ckpt_dir=os.path.join(workdir, "checkpoints", "imp"), writer=writer)
        hist = imp.history(state, len(runs))
        res = summary.summarize(runs, hist, tol, btol)
        fsetup = make_setup(config, shape, num_classes, num_levels=2)
        flat = flatness.analyse(config, workdir, setup, fsetup, runs, state, arrays, writer) if levels else {}
    res["max_prune_fraction"] = flat
    if inst is not None:
        res["instability"] = inst
    res.update(
        data_source=source,
        num_train=int(arrays[1].shape[0]),
        num_test=int(arrays[3].shape[0]),
        num_seeds=int(config.imp.num_seeds),
        fraction_per_level=float(config.imp.fraction),
        num_runs=len(runs),
        runs=[r.name for r in runs],
        per_run={k: hist[k].tolist() for k in ("density", "test_error", "barrier_error", "barrier_loss")},
    )
    _figures(config, res, setup, runs, state, levels, fig_dir)
    return res


def _figures(config, res: dict, setup, runs, state, levels, fig_dir: str) -> None:
    figures.figure_error_vs_density(res, os.path.join(fig_dir, "test_error_vs_density.png"))
    figures.figure_barrier_vs_density(res, os.path.join(fig_dir, "barrier_vs_density.png"))
    if "instability" in res:
        figures.figure_instability(
            res["instability"], res["barrier_tolerance"], os.path.join(fig_dir, "instability.png")
        )
    if not levels:
        return
    figures.figure_prune_fraction(res["max_prune_fraction"], os.path.join(fig_dir, "max_prune_fraction.png"))
    j = next((j for j, lv in enumerate(levels) if lv > 0), None)
    if j is None:
        return
    mags = weight_magnitudes(setup, runs, state, j)
    frac = float(config.imp.fraction)
    res["weight_magnitudes"] = {
        "level": levels[j],
        "median_before": float(np.median(mags["before"])),
        "median_after": float(np.median(mags["after"])),
        "below_next_threshold_before": float(np.mean(mags["before"] < np.quantile(mags["after"], frac))),
    }
    figures.figure_magnitudes(mags, frac, levels[j], os.path.join(fig_dir, "weight_magnitudes.png"))


def weight_magnitudes(setup: imp.Setup, runs, state, level_index: int) -> dict[str, np.ndarray]:
    """|w| of the surviving kernel weights of the first IMP run at a snapshot level: at the rewind point (before
    retraining) and at the level's solution (after)."""
    r = [i for i, run in enumerate(runs) if run.name == "imp"][0]
    params = jax.tree.map(lambda a: np.asarray(a[r, level_index]), sweep.to_numpy(state["snap_params"]))
    mask = jax.tree.map(lambda a: np.asarray(a[r, level_index]), sweep.to_numpy(state["snap_masks"]))
    w_k = jax.tree.map(lambda a: np.asarray(a[r]), sweep.to_numpy(state["w_rewind"]))
    rates = setup.rates(params)
    return {
        "before": np.abs(hessian.flat_weights(w_k, mask, rates)),
        "after": np.abs(hessian.flat_weights(params, mask, rates)),
    }
