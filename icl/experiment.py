"""Task diversity and the emergence of non-Bayesian in-context learning (Raventós et al. 2023), wired end to end.

The module common.app runs: `validate` (icl.validation), `run` (below), `report` (icl.report). For every batch size
and model size in the config, the whole sweep over M x seeds x learning rates x weight decays is one
`jit(vmap(train))` through common.sweep, driven chunk by chunk by common.train_loop (a killed run
resumes), with evaluation curves filled inside the compiled sweep; the trained models are then evaluated in one
compiled masked pass (icl.evaluation) against the exact Ridge and dMMSE baselines, summarised over seeds
(icl.summary), M* is estimated (icl.thresholds), and figures go to workdir/figures (icl.figures).

Losses are in "noiseless" units: mean over prompts and positions of (prediction - w^T x_k)^2 / D (the released code's
convention; the paper's Eq. 1 divided by D is this plus sigma^2/D).
"""

from __future__ import annotations

import math
import os
from typing import Any

import jax
import ml_collections
import numpy as np
from absl import logging

from common import metrics, sweep, train_loop
from icl import evaluation, figures, summary, thresholds, train, transformer
from icl.report import report  # noqa: F401  (the experiment contract of common.app)
from icl.validation import validate  # noqa: F401

LOSS_UNITS = "noiseless"
OUTPUTS = ("figures",)


def num_tasks_axis(config: ml_collections.ConfigDict) -> list[float]:
    """The sweep's values of M: `sweep.num_tasks` if given, else 2^`sweep.log2_num_tasks`, then inf if included."""
    values = [float(m) for m in config.sweep.num_tasks] or [float(2**a) for a in config.sweep.log2_num_tasks]
    return values + ([math.inf] if config.sweep.include_infinite else [])


def train_config(config, dim: int, num_points: int, noise_var: float, batch_size: int, layers: int, width: int):
    """The static TrainConfig of one compiled sweep."""
    finite = [m for m in num_tasks_axis(config) if not math.isinf(m)]
    return train.TrainConfig(
        model=transformer.ModelConfig(
            dim=dim, num_points=num_points, num_layers=layers, width=width, num_heads=config.model.num_heads
        ),
        batch_size=batch_size,
        num_steps=config.train.num_steps,
        noise_std=math.sqrt(noise_var),
        max_tasks=int(max(finite)) if finite else 1,
        warmup_fraction=config.train.warmup_fraction,
        eval_every=config.train.eval_every,
        eval_prompts=config.train.eval_prompts,
        nested_pools=bool(config.sweep.nested_pools),
    )


def make_grid(config) -> sweep.Grid:
    seeds = [config.seed + i for i in range(config.sweep.num_seeds)]
    return sweep.grid(
        seeds,
        num_tasks=num_tasks_axis(config),
        lr=[float(x) for x in config.sweep.lrs],
        weight_decay=[float(x) for x in config.sweep.weight_decays],
    )


def _hparams(grid: sweep.Grid) -> dict:
    return {k: grid.hparams[k] for k in ("num_tasks", "lr", "weight_decay")}


def train_sweep(
    tcfg, grid: sweep.Grid, chunk_steps: int, workdir: str | None, writer, desc: str, map_batch: int = 0
) -> train_loop.Result:
    """Trains every run of `grid` through common.train_loop (one compiled call per chunk, checkpoints under
    `workdir/checkpoints/<desc>`); returns the driver's result (final state on the host and on the devices).

    `map_batch` (common.sweep.vmapped): 0 vectorises each device's runs; k > 0 loops over them k at a time.
    """
    return train_loop.train(
        name=desc,
        init=train.init_one,
        chunk=train.chunk_one,
        static=(tcfg, chunk_steps),
        keys=grid.keys(),
        hparams=_hparams(grid),
        num_steps=tcfg.num_steps,
        chunk_steps=chunk_steps,
        workdir=workdir,
        writer=writer,
        labels=grid.rows(),
        map_batch=map_batch,
    )


def evaluate_sweep(tcfg, grid: sweep.Grid, res: train_loop.Result, ev_cfg) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Every run evaluated in one compiled pass: ({key: [R, K]} (evaluation.KEYS), curves [R, num_evals, 2])."""
    static = (tcfg, ev_cfg.num_prompts, ev_cfg.prompt_chunk, ev_cfg.dmmse_chunk)
    out = res.evaluate(evaluation.evaluate_one, static=static)
    return {k: np.asarray(out[k], float) for k in evaluation.KEYS}, res.state["curves"]


def run_group(config, workdir, tcfg, writer, desc) -> tuple[sweep.Grid, dict, np.ndarray, int]:
    """Trains and evaluates one compiled sweep; returns (grid, per-run results, curves, parameter count)."""
    grid = make_grid(config)
    logging.info("%s: %d runs (M x seeds x lr x decay) as one jit(vmap), %d steps", desc, grid.size, tcfg.num_steps)
    res = train_sweep(
        tcfg, grid, config.train.chunk_steps, workdir, writer, desc, map_batch=config.sweep.get("map_batch", 0)
    )
    per_run, curves = evaluate_sweep(tcfg, grid, res, config.eval)
    n_params = transformer.num_params(jax.tree.map(lambda x: x[0], res.state["params"]))
    return grid, per_run, curves, n_params


def _m_labels(ms: list[float]) -> list:
    return ["inf" if math.isinf(m) else int(m) for m in ms]


def _estimates(ms, tab: dict, crossing: tuple[dict, dict] | None) -> dict:
    finite = [j for j, m in enumerate(ms) if not math.isinf(m)]
    log2_ms = [math.log2(ms[j]) for j in finite]
    out = {
        "closer_to_ridge": thresholds.closer_to_ridge(
            log2_ms,
            np.asarray(tab["dist_ridge_per_seed"])[:, finite],
            np.asarray(tab["dist_dmmse_per_seed"])[:, finite],
        )
    }
    if crossing is not None:
        small, large = crossing
        out["batch_crossing"] = thresholds.batch_crossing(
            log2_ms,
            np.asarray(small["dist_ridge_per_seed"])[:, finite],
            np.asarray(large["dist_ridge_per_seed"])[:, finite],
        )
    return out


def run_dim(config, workdir: str, dim: int, num_points: int, noise_var: float, writer, tag: str) -> dict:
    """The whole experiment at one D: every batch size's and model size's sweep, evaluated and summarised."""
    ms = num_tasks_axis(config)
    wd0 = float(np.float32(config.sweep.weight_decays[0]))
    report_b = config.sweep.batch_sizes[0]
    res: dict[str, Any] = {"M": _m_labels(ms), "D": dim, "K": num_points, "noise_var": noise_var}
    by_batch, main = {}, None
    for b in config.sweep.batch_sizes:
        tcfg = train_config(config, dim, num_points, noise_var, b, config.model.num_layers, config.model.width)
        grid, per_run, curves, n_params = run_group(config, workdir, tcfg, writer, f"{tag}B{b}")
        best = summary.best_lrs(grid, curves, wd0)
        by_batch[b] = summary.table(grid, per_run, weight_decay=wd0, lrs=best)
        if b == report_b:
            main = (grid, per_run, curves, tcfg, best, n_params)
    grid, per_run, curves, tcfg, best, n_params = main
    tab = by_batch[report_b]
    res.update(tab)
    res["best_lr"] = best
    res["num_params"] = n_params
    res["batch_sizes"] = list(config.sweep.batch_sizes)
    res["reported_batch_size"] = report_b
    res["by_batch_size"] = {str(b): summary.subset(v) for b, v in by_batch.items()}
    crossing = None
    if len(by_batch) == 2:
        small, large = sorted(by_batch)
        crossing = (by_batch[small], by_batch[large])
    res["threshold_M"] = _estimates(ms, tab, crossing)
    if len(config.sweep.lrs) > 1:
        res["by_lr"] = {
            repr(float(lr)): summary.subset(summary.table(grid, per_run, weight_decay=wd0, lrs=[float(lr)] * len(ms)))
            for lr in config.sweep.lrs
        }
    steps = [tcfg.eval_interval * (i + 1) for i in range(tcfg.num_evals)]
    res["curves"], res["early_stop_step"] = summary.curves(grid, curves, steps, wd0, best)
    res["by_weight_decay"] = {}
    for wd in config.sweep.weight_decays:
        wdf = float(np.float32(wd))
        lrs_wd = summary.best_lrs(grid, curves, wdf)
        t = summary.table(grid, per_run, weight_decay=wdf, lrs=lrs_wd)
        entry = summary.subset(t)
        entry["threshold_M"] = _estimates(ms, t, None)
        entry["curves"], entry["early_stop_step"] = summary.curves(grid, curves, steps, wdf, lrs_wd)
        res["by_weight_decay"][repr(float(wd))] = entry
    sizes = [(config.model.num_layers, config.model.width, tab, n_params)]
    size_config = config.copy_and_resolve_references()  # model sizes train at the reported decay only
    size_config.sweep.weight_decays = (config.sweep.weight_decays[0],)
    for layers, width in config.sweep.model_sizes:
        t2 = train_config(config, dim, num_points, noise_var, report_b, layers, width)
        g2, pr2, c2, np2 = run_group(size_config, workdir, t2, writer, f"{tag}B{report_b}_L{layers}W{width}")
        sizes.append((layers, width, summary.table(g2, pr2, weight_decay=wd0, lrs=summary.best_lrs(g2, c2, wd0)), np2))
    res["by_model_size"] = {}
    for layers, width, t, n in sorted(sizes, key=lambda s: s[3]):
        entry = {"num_layers": layers, "width": width, "num_params": n, **summary.subset(t)}
        entry["threshold_M"] = _estimates(ms, t, None)
        res["by_model_size"][f"L{layers}xW{width}"] = entry
    return res


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """Runs the experiment (see the module docstring) and returns the results dict (keys in icl/README.md)."""
    fig_dir = os.path.join(workdir, "figures")
    dims = list(config.task.dims)
    with metrics.MetricWriter(os.path.join(workdir, "metrics.jsonl")) as writer:
        if not dims:
            results = run_dim(
                config, workdir, config.task.dim, config.task.num_points, config.task.noise_var, writer, ""
            )
            by_dim = {config.task.dim: results}
        else:
            kd, sd = config.task.dims_points_per_dim, config.task.dims_noise_var_per_dim
            by_dim = {d: run_dim(config, workdir, d, kd * d, sd * d, writer, f"D{d}_") for d in dims}
            main_dim = config.task.dim if config.task.dim in by_dim else dims[0]
            results = dict(by_dim[main_dim])
            results["by_dim"] = by_dim
            results["dims_rule"] = {"num_points": f"{kd} * D", "noise_var": f"{sd} * D"}
    results["loss_units"] = LOSS_UNITS
    results["num_steps"] = config.train.num_steps
    results["num_runs_per_sweep"] = make_grid(config).size
    results["report_thresholds"] = config.report.to_dict()
    figures.loss_vs_m(results, os.path.join(fig_dir, "loss_vs_M.png"))
    figures.distance_vs_m(results, os.path.join(fig_dir, "distance_vs_M.png"))
    figures.loss_vs_position(results, os.path.join(fig_dir, "loss_vs_position.png"))
    figures.early_stopping(results, os.path.join(fig_dir, "early_stopping.png"))
    if len(results["by_weight_decay"]) > 1:
        figures.weight_decay(results, os.path.join(fig_dir, "weight_decay.png"))
    if len(results["by_model_size"]) > 1:
        figures.model_size(results, os.path.join(fig_dir, "model_size.png"))
    if dims:
        figures.threshold_vs_dim(by_dim, os.path.join(fig_dir, "threshold_vs_D.png"))
    return results
