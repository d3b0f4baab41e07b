"""Task diversity and the emergence of non-Bayesian in-context learning (Raventós et al. 2023), wired end to end.

For every batch size in the config, the whole sweep over M (2^a ... and inf) x seeds x learning rates is one
`jit(vmap(train))` through common.sweep, driven chunk by chunk by common.checkpoint.run_chunked (a killed run
resumes). The trained models are evaluated per context position on T_True and T_Pretrain against the exact Ridge and
dMMSE baselines; the threshold M* is estimated two ways; figures go to workdir/figures.

Losses are in "noiseless" units: mean over prompts and positions of (prediction - w^T x_k)^2 / D (the released code's
convention; the paper's Eq. 1 divided by D is this plus sigma^2/D).
"""

from __future__ import annotations

import math
import os
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging

from common import app, checkpoint, metrics, sweep
from common import validate as check
from icl import estimators, figures, tasks, thresholds, train, transformer

LOSS_UNITS = "noiseless"
_EVAL_TRUE_SEED = 1_000_003  # fixed evaluation keys, independent of the config seed
_EVAL_PRETRAIN_SEED = 1_000_033


def validate(config: ml_collections.ConfigDict) -> None:
    """Range and consistency checks; raises common.app.ConfigError naming the field."""
    check.positive_int(
        config,
        "task.dim",
        "task.num_points",
        "model.num_layers",
        "model.width",
        "model.num_heads",
        "sweep.num_seeds",
        "train.num_steps",
        "train.chunk_steps",
        "eval.num_prompts",
        "eval.dmmse_chunk",
    )
    check.positive(config, "task.noise_var")
    check.boolean(config, "sweep.include_infinite")
    if config.model.width % config.model.num_heads:
        raise app.ConfigError("model.num_heads", f"must divide model.width={config.model.width}")
    check.sorted_grid(config, "task.dims", kind=int, positive=True, allow_empty=True)  # empty = only task.dim
    if not config.sweep.log2_num_tasks and not config.sweep.include_infinite:
        raise app.ConfigError("sweep.log2_num_tasks", "empty, and sweep.include_infinite is False: nothing to run")
    check.sorted_grid(config, "sweep.log2_num_tasks", kind=int, low=0, high=24, allow_empty=True)
    check.sorted_grid(config, "sweep.lrs", positive=True)
    check.sorted_grid(config, "sweep.batch_sizes", kind=int, positive=True)
    if len(config.sweep.batch_sizes) > 2:
        raise app.ConfigError("sweep.batch_sizes", f"must be one or two sizes, got {tuple(config.sweep.batch_sizes)}")
    check.divides(config, "train.chunk_steps", "train.num_steps")
    check.probability(config, "train.warmup_fraction", open_low=True, open_high=True)


def _num_tasks_axis(config: ml_collections.ConfigDict) -> list[float]:
    values = [float(2**a) for a in config.sweep.log2_num_tasks]
    return values + ([math.inf] if config.sweep.include_infinite else [])


def _train_config(config, dim: int, num_points: int, noise_var: float, batch_size: int) -> train.TrainConfig:
    exps = list(config.sweep.log2_num_tasks)
    return train.TrainConfig(
        model=transformer.ModelConfig(
            dim=dim,
            num_points=num_points,
            num_layers=config.model.num_layers,
            width=config.model.width,
            num_heads=config.model.num_heads,
        ),
        batch_size=batch_size,
        num_steps=config.train.num_steps,
        noise_std=math.sqrt(noise_var),
        max_tasks=2 ** max(exps) if exps else 1,
        warmup_fraction=config.train.warmup_fraction,
    )


def train_sweep(
    tcfg: train.TrainConfig,
    grid: sweep.Grid,
    chunk_steps: int,
    ckpt_dir: str | None,
    writer: metrics.MetricWriter | None,
    desc: str,
) -> dict:
    """Trains every run of `grid` (one jit(vmap) per chunk), checkpointing under `ckpt_dir`; returns the state."""
    # Placed on the devices once; the state stays there between chunks (donated, fed back sharded).
    hparams = sweep.put({"num_tasks": grid.hparams["num_tasks"], "lr": grid.hparams["lr"]}, grid.size)
    init = sweep.vmapped(lambda key, hp: train.init_state(key, hp, tcfg))
    state0 = init(grid.keys(), hparams)
    chunk = sweep.vmapped(train.make_chunk(tcfg, chunk_steps), in_axes=(0, 0, None), donate_argnums=(0,))

    def chunk_fn(state, start_step):
        return chunk(state, hparams, np.int32(start_step))

    def on_chunk(step, m):
        loss = sweep.to_numpy(m["loss"], grid.size)
        metrics.check_finite(loss, what=f"{desc} training loss", step=step)
        if writer is not None:
            last = sweep.to_numpy(m["last_loss"], grid.size)
            for r in range(grid.size):
                writer.write(step, run=f"{desc}/{r}", loss=float(loss[r]), last_loss=float(last[r]))

    ckpt = checkpoint.Checkpointer(ckpt_dir, save_every=chunk_steps) if ckpt_dir else None
    try:
        return checkpoint.run_chunked(
            chunk_fn,
            state0,
            num_steps=tcfg.num_steps,
            chunk_steps=chunk_steps,
            checkpointer=ckpt,
            on_chunk=on_chunk,
            desc=desc,
            metric_writer=writer,
            metric_run_prefix=f"{desc}/",
        )
    finally:
        if ckpt is not None:
            ckpt.close()


def _true_eval_batch(tcfg: train.TrainConfig, num_prompts: int) -> tasks.Batch:
    key = jax.random.key(_EVAL_TRUE_SEED)
    pool = jnp.zeros((1, tcfg.model.dim), jnp.float32)
    return tasks.sample_batch(key, pool, jnp.inf, num_prompts, tcfg.model.num_points, tcfg.noise_std)


def evaluate_sweep(
    tcfg: train.TrainConfig, grid: sweep.Grid, state: dict, num_prompts: int, dmmse_chunk: int
) -> dict[str, np.ndarray]:
    """Per-run, per-position losses of the model and the baselines on both distributions, and distances.

    Returns arrays with a leading runs axis: `loss_true`, `loss_pretrain`, `ridge_true`, `ridge_pretrain`,
    `dmmse_true`, `dmmse_pretrain`, `dist_ridge`, `dist_dmmse` (all [R, K], noiseless units; distances on T_True).
    dMMSE at M = inf is its M -> inf limit, the posterior mean under the N(0, I) prior, i.e. Ridge.
    """
    d, s2 = tcfg.model.dim, tcfg.noise_std**2
    true = _true_eval_batch(tcfg, num_prompts)
    target_true = tasks.noiseless_targets(true)
    ridge_true = estimators.ridge_predictions(true.xs, true.ys, s2)
    hparams = {"num_tasks": grid.hparams["num_tasks"], "lr": grid.hparams["lr"]}
    ev = sweep.vmapped(train.make_eval(tcfg, true, num_prompts, jax.random.key(_EVAL_PRETRAIN_SEED)), in_axes=(0, 0))
    out = sweep.to_numpy(ev(state, hparams), grid.size)
    keys = np.asarray(jax.random.key_data(grid.keys()))
    rows: dict[str, list] = {k: [] for k in _LIST_KEYS}
    ridge_true_err = np.asarray(estimators.squared_error(ridge_true, target_true, d))
    dmmse_cache: dict[tuple, np.ndarray] = {}
    for r in range(grid.size):
        m = float(grid.hparams["num_tasks"][r])
        pre = tasks.Batch(out["xs"][r], out["ws"][r], out["ys"][r])
        target_pre = tasks.noiseless_targets(pre)
        pred_true, pred_pre = out["pred_true"][r], out["pred_pretrain"][r]
        ridge_pre = estimators.ridge_predictions(pre.xs, pre.ys, s2)
        if math.isinf(m):
            dmmse_true, dmmse_pre = ridge_true, ridge_pre
        else:
            cache_key = (keys[r].tobytes(), m)
            if cache_key not in dmmse_cache:  # runs that differ only in lr share the pool and M
                pool = train.run_pool(jnp.asarray(keys[r]), tcfg)[: int(m)]
                dmmse_cache[cache_key] = (
                    estimators.dmmse_predictions(true.xs, true.ys, pool, s2, chunk_size=dmmse_chunk),
                    estimators.dmmse_predictions(pre.xs, pre.ys, pool, s2, chunk_size=dmmse_chunk),
                )
            dmmse_true, dmmse_pre = dmmse_cache[cache_key]
        rows["loss_true"].append(estimators.squared_error(pred_true, target_true, d))
        rows["loss_pretrain"].append(estimators.squared_error(pred_pre, target_pre, d))
        rows["ridge_true"].append(ridge_true_err)
        rows["ridge_pretrain"].append(estimators.squared_error(ridge_pre, target_pre, d))
        rows["dmmse_true"].append(estimators.squared_error(dmmse_true, target_true, d))
        rows["dmmse_pretrain"].append(estimators.squared_error(dmmse_pre, target_pre, d))
        rows["dist_ridge"].append(estimators.squared_error(pred_true, ridge_true, d))
        rows["dist_dmmse"].append(estimators.squared_error(pred_true, dmmse_true, d))
    return {k: np.stack([np.asarray(x) for x in v]) for k, v in rows.items()}


_LIST_KEYS = (
    "loss_true",
    "loss_pretrain",
    "ridge_true",
    "ridge_pretrain",
    "dmmse_true",
    "dmmse_pretrain",
    "dist_ridge",
    "dist_dmmse",
)


def summarize(grid: sweep.Grid, per_run: dict[str, np.ndarray], lr: float) -> dict[str, Any]:
    """Means and standard deviations over seeds for each M (runs at learning rate `lr`).

    Returns, for each metric, `<name>` and `<name>_std` lists over M (mean over positions), `<name>_per_position`
    ([M][K] mean over seeds) and `<name>_per_seed` ([seed][M]).
    """
    ms = sorted(set(grid.hparams["num_tasks"].tolist()))
    seeds = sorted(set(grid.seeds.tolist()))
    out: dict[str, Any] = {}
    for name in _LIST_KEYS:
        curve = np.full((len(seeds), len(ms)), np.nan)
        pos = np.full((len(seeds), len(ms), per_run[name].shape[1]), np.nan)
        for i, s in enumerate(seeds):
            for j, m in enumerate(ms):
                r = grid.index(seed=s, num_tasks=m, lr=lr)
                curve[i, j] = per_run[name][r].mean()
                pos[i, j] = per_run[name][r]
        out[name] = curve.mean(0).tolist()
        out[name + "_std"] = curve.std(0).tolist()
        out[name + "_per_position"] = pos.mean(0).tolist()
        out[name + "_per_seed"] = curve.tolist()
    return out


def _m_labels(ms: list[float]) -> list:
    return ["inf" if math.isinf(m) else int(m) for m in ms]


def run_dim(config, workdir: str, dim: int, num_points: int, noise_var: float, writer, tag: str) -> dict:
    """The whole experiment at one D: train every batch size's sweep, evaluate, summarize, estimate M*."""
    seeds = [config.seed + i for i in range(config.sweep.num_seeds)]
    grid = sweep.grid(seeds, num_tasks=_num_tasks_axis(config), lr=list(config.sweep.lrs))
    ms = sorted(set(grid.hparams["num_tasks"].tolist()))
    lr0 = float(np.float32(config.sweep.lrs[0]))
    by_batch = {}
    for b in config.sweep.batch_sizes:
        tcfg = _train_config(config, dim, num_points, noise_var, b)
        desc = f"{tag}B{b}"
        logging.info("%s: %d runs (M x seeds x lr) as one jit(vmap), %d steps", desc, grid.size, tcfg.num_steps)
        state = train_sweep(
            tcfg, grid, config.train.chunk_steps, os.path.join(workdir, "checkpoints", desc), writer, desc
        )
        per_run = evaluate_sweep(tcfg, grid, state, config.eval.num_prompts, config.eval.dmmse_chunk)
        by_batch[b] = summarize(grid, per_run, lr0)
    main = by_batch[config.sweep.batch_sizes[0]]
    res: dict[str, Any] = {"M": _m_labels(ms), "D": dim, "K": num_points, "noise_var": noise_var}
    res.update(main)
    res["batch_sizes"] = list(config.sweep.batch_sizes)
    res["by_batch_size"] = {
        str(b): {
            k: v[k]
            for k in (
                "loss_true",
                "loss_true_std",
                "loss_pretrain",
                "loss_pretrain_std",
                "dist_ridge",
                "dist_ridge_std",
                "dist_dmmse",
                "dist_dmmse_std",
                "dist_ridge_per_seed",
            )
        }
        for b, v in by_batch.items()
    }
    finite = [j for j, m in enumerate(ms) if not math.isinf(m)]
    log2_ms = [math.log2(ms[j]) for j in finite]
    th: dict[str, Any] = {
        "closer_to_ridge": thresholds.closer_to_ridge(
            log2_ms,
            np.asarray(main["loss_true_per_seed"])[:, finite],
            np.asarray(main["ridge_true_per_seed"])[:, finite],
            np.asarray(main["dmmse_true_per_seed"])[:, finite],
        )
    }
    if len(config.sweep.batch_sizes) == 2:
        small, large = (by_batch[b] for b in config.sweep.batch_sizes)
        th["batch_crossing"] = thresholds.batch_crossing(
            log2_ms,
            np.asarray(small["dist_ridge_per_seed"])[:, finite],
            np.asarray(large["dist_ridge_per_seed"])[:, finite],
        )
    res["threshold_M"] = th
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
            by_dim = {d: run_dim(config, workdir, d, 2 * d, d / 32.0, writer, f"D{d}_") for d in dims}
            main_dim = config.task.dim if config.task.dim in by_dim else dims[0]
            results = dict(by_dim[main_dim])
            results["by_dim"] = by_dim
    results["loss_units"] = LOSS_UNITS
    results["num_steps"] = config.train.num_steps
    results["num_runs_per_sweep"] = len(_num_tasks_axis(config)) * config.sweep.num_seeds * len(config.sweep.lrs)
    figures.loss_vs_m(results, os.path.join(fig_dir, "loss_vs_M.png"))
    figures.distance_vs_m(results, os.path.join(fig_dir, "distance_vs_M.png"))
    figures.loss_vs_position(results, os.path.join(fig_dir, "loss_vs_position.png"))
    if dims:
        figures.threshold_vs_dim(by_dim, os.path.join(fig_dir, "threshold_vs_D.png"))
    return results


def _seeds_found(per_seed: list | None) -> str:
    """' (k of n seeds)' when the estimate exists for only some seeds, else ''."""
    if not per_seed:
        return ""
    k = sum(v is not None for v in per_seed)
    return "" if k == len(per_seed) else f" ({k} of {len(per_seed)} seeds)"


def report(results: dict) -> list[dict]:
    """Headline numbers for runs/REPORT.md."""
    ms = results["M"]
    finite = [j for j, m in enumerate(ms) if m != "inf"]
    first, last = finite[0], finite[-1]
    out = []
    # Bayesian phase: at the smallest M the model is as good as dMMSE on T_Pretrain (and bad on T_True).
    ratio_small = results["loss_pretrain"][first] / max(results["dmmse_pretrain"][first], 1e-12)
    out.append(
        {
            "name": f"loss_pretrain / dMMSE at M={ms[first]}",
            "value": round(ratio_small, 3),
            "paper": "~1 for small M (the model is the Bayes estimator of T_Pretrain)",
            "ok": bool(ratio_small < 1.5 or results["loss_pretrain"][first] < 0.02),
        }
    )
    # Ridge phase: at the largest finite M the model's T_True loss is Ridge's (the paper's headline) ...
    lt, rt, dt = results["loss_true"][last], results["ridge_true"][last], results["dmmse_true"][last]
    out.append(
        {
            "name": f"loss_true / Ridge at M={ms[last]}",
            "value": round(lt / rt, 3),
            "paper": "-> 1 above M* (dMMSE stays ~1.24x Ridge at 2^15, D=8)",
            "ok": bool(lt / rt < 1.15),
        }
    )
    # ... which splits into: the model is nearer Ridge than dMMSE (Delta on T_True) ...
    d_r, d_d = results["dist_ridge"][last], results["dist_dmmse"][last]
    out.append(
        {
            "name": f"Delta(model, Ridge) / Delta(model, dMMSE) at M={ms[last]}",
            "value": round(d_r / max(d_d, 1e-12), 3),
            "paper": "< 1 above M* (the model implements Ridge, not the pool's Bayes estimator)",
            "ok": bool(d_r < d_d),
        }
    )
    # ... and it generalises as well as a model pretrained on infinitely many tasks (T_True loss flat in M).
    if "inf" in ms:
        li = results["loss_true"][ms.index("inf")]
        out.append(
            {
                "name": f"loss_true at M={ms[last]} / loss_true at M=inf",
                "value": round(lt / li, 3),
                "paper": "~1 above M* (task diversity beyond M* does not help)",
                "ok": bool(abs(lt / li - 1.0) < 0.1),
            }
        )
    out.append(
        {
            "name": f"dMMSE_true / Ridge at M={ms[last]}",
            "value": round(dt / rt, 3),
            "paper": "> 1: the Bayes estimator of T_Pretrain generalises worse than the transformer",
            "ok": None,
        }
    )
    th = results["threshold_M"]
    c = th["closer_to_ridge"]
    out.append(
        {
            "name": "log2 M* (loss closer to Ridge than dMMSE)",
            "value": "n/a"
            if c["log2_M_mean"] is None
            else f"{c['log2_M_mean']:.2f} +- {c['log2_M_std']:.2f}" + _seeds_found(c.get("per_seed_log2")),
            "paper": "between 3 and 7 at this CPU scale (notes); 14-15 for the paper's base model",
            "ok": None if c["log2_M_mean"] is None else bool(2 <= c["log2_M_mean"] <= 8),
        }
    )
    if "batch_crossing" in th:
        x = th["batch_crossing"]
        out.append(
            {
                "name": "log2 M* (distance-to-Ridge curves of two batch sizes cross)",
                "value": "n/a" if x["log2_M"] is None else round(x["log2_M"], 2),
                "paper": "between 3 and 7 at this CPU scale (notes); 14-15 for the paper's base model",
                "ok": None if x["log2_M"] is None else bool(2 <= x["log2_M"] <= 8),
            }
        )
    return out
