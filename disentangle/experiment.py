"""Disentanglement with biological constraints (Whittington, Dorrell, Ganguli, Behrens 2023), wired end to end.

`run(config, workdir)`:
  (a) Theorem 1's example: analytic energy of rotated nonnegative codes vs Monte Carlo (`energy_theorem`);
  (b) the ablation on every task in `ablation.tasks`: constraint variants x seeds as one vmapped, checkpointed sweep
      per task, scored by MIR / MIG / InfoM / InfoC / modularity and reconstruction (`ablation`, the first task;
      `ablation_by_task`), MI matrices as figures;
  (c) correlated factors: the constrained model of the first task at each rho, in the same sweep (`correlated`);
  (d) a beta-VAE with and without a ReLU on the posterior mean (and energy) on a sprites set (`vae`);
  (e) path-integrating codes in worlds with objects: separation into position and object cells (`cells`).
Keys are documented in disentangle/README.md.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import ml_collections
import numpy as np
from absl import logging

from common import app, checkpoint, metrics, sweep
from common import validate as v
from disentangle import cells as cells_lib
from disentangle import figures, models, tasks, theory, train
from disentangle import metrics as dm

# Which of Eq. 2's terms each variant switches on: (nonneg penalty, activity energy, weight energy, ReLU).
VARIANTS = {
    "none": (0.0, 0.0, 0.0, 0.0),
    "energy": (0.0, 1.0, 1.0, 0.0),
    "nonneg": (1.0, 0.0, 0.0, 0.0),
    "all": (1.0, 1.0, 1.0, 0.0),
    "relu_energy": (0.0, 1.0, 1.0, 1.0),
}
VAE_VARIANTS = {"beta_vae": (0.0, 0.0, 0.0, 0.0), "relu": (0.0, 0.0, 0.0, 1.0), "relu_energy": (0.0, 1.0, 1.0, 1.0)}
CELL_VARIANTS = ("unconstrained", "constrained", "constrained_entangled", "unconstrained_entangled")
TASKS = ("linear_ae", "deep_ae", "supervised")
_EVAL_SEED = 1_000_003
_INDEPENDENT = 1_000  # jitter >= side: objects uniform over the torus


# ----------------------------------------------------------------------------------------------------------
# validation


def validate(config: ml_collections.ConfigDict) -> None:
    """Range and consistency checks; raises common.app.ConfigError naming the field."""
    v.positive_int(config, "energy.num_thetas", "energy.num_samples", "eval.num_samples", "eval.num_bins")
    v.in_range(config, "eval.activity_threshold", 0.0, 0.99)
    if config.eval.num_bins < 2:
        raise app.ConfigError("eval.num_bins", f"must be >= 2, got {config.eval.num_bins}")
    tasks_ = list(v.get(config, "ablation.tasks"))
    if not tasks_:
        raise app.ConfigError("ablation.tasks", "must name at least one task")
    for t in tasks_:
        if t not in TASKS:
            raise app.ConfigError("ablation.tasks", f"unknown task {t!r}; expected some of {TASKS}")
    variants = list(v.get(config, "ablation.variants"))
    if not variants or any(x not in VARIANTS for x in variants) or len(set(variants)) != len(variants):
        raise app.ConfigError("ablation.variants", f"must be distinct names from {tuple(VARIANTS)}, got {variants}")
    v.positive_int(config, "ablation.num_seeds")
    for t in tasks_:
        p = f"{t}."
        v.positive_int(config, *(p + k for k in ("input_dim", "code_dim", "num_factors", "batch_size")))
        v.positive_int(config, p + "num_steps", p + "chunk_steps")
        v.divides(config, p + "chunk_steps", p + "num_steps")
        v.positive(config, p + "lr")
        v.non_negative(config, p + "beta_nonneg", p + "beta_activity", p + "beta_weight")
        hidden = v.get(config, p + "hidden")
        if not isinstance(hidden, (tuple, list)) or any(not isinstance(h, int) or h <= 0 for h in hidden):
            raise app.ConfigError(p + "hidden", f"must be a tuple of positive widths, got {hidden!r}")
        if t == "deep_ae" and not hidden:
            raise app.ConfigError(p + "hidden", "the deep autoencoder needs at least one hidden layer")
    v.sorted_grid(config, "correlated.rhos", non_negative=True, high=0.99, allow_empty=True)
    v.one_of(config, "correlated.variant", tuple(VARIANTS))
    vae_variants = list(v.get(config, "vae.variants"))
    if any(x not in VAE_VARIANTS for x in vae_variants) or len(set(vae_variants)) != len(vae_variants):
        raise app.ConfigError("vae.variants", f"must be distinct names from {tuple(VAE_VARIANTS)}, got {vae_variants}")
    v.one_of(config, "vae.dataset", ("sprites", "dsprites", "shapes3d"))
    v.positive_int(config, "vae.image_size", "vae.num_scales", "vae.num_positions", "vae.code_dim")
    v.positive_int(config, "vae.batch_size", "vae.num_steps", "vae.chunk_steps", "vae.num_seeds", "vae.max_images")
    v.divides(config, "vae.chunk_steps", "vae.num_steps")
    v.positive(config, "vae.lr", "vae.beta_kl")
    v.non_negative(config, "vae.beta_activity", "vae.beta_weight")
    if config.vae.image_size < 8:
        raise app.ConfigError("vae.image_size", f"must be >= 8, got {config.vae.image_size}")
    cell_variants = list(v.get(config, "cells.variants"))
    if any(x not in CELL_VARIANTS for x in cell_variants) or len(set(cell_variants)) != len(cell_variants):
        raise app.ConfigError("cells.variants", f"must be distinct names from {CELL_VARIANTS}, got {cell_variants}")
    v.positive_int(config, "cells.side", "cells.num_worlds", "cells.num_neurons", "cells.num_seeds")
    v.positive_int(config, "cells.num_steps", "cells.chunk_steps")
    v.divides(config, "cells.chunk_steps", "cells.num_steps")
    v.non_negative_int(config, "cells.jitter")
    v.positive(config, "cells.lr")
    v.non_negative(config, "cells.beta_nonneg", "cells.beta_activity", "cells.beta_weight")
    if config.cells.side < 3:
        raise app.ConfigError("cells.side", f"must be >= 3, got {config.cells.side}")
    if config.cells.jitter >= config.cells.side:
        raise app.ConfigError("cells.jitter", f"must be < cells.side={config.cells.side}, got {config.cells.jitter}")


# ----------------------------------------------------------------------------------------------------------
# shared driver


def _train_group(
    desc: str,
    grid: sweep.Grid,
    hp: dict[str, np.ndarray],
    init_fn,
    chunk_fn,
    num_steps: int,
    chunk_steps: int,
    workdir: str,
    writer: metrics.MetricWriter,
    shared: tuple = (),
):
    """One vmapped init, then checkpointed vmapped chunks (run_chunked) over every run of `grid`."""
    init = sweep.vmapped(init_fn)
    state0 = init(grid.keys(), hp)
    chunk = sweep.vmapped(chunk_fn, in_axes=(0, 0, None) + (None,) * len(shared))

    def step(state, start):
        return chunk(state, hp, np.int32(start), *shared)

    def on_chunk(end, m):
        loss = np.asarray(m["loss"])
        metrics.check_finite(loss, what=f"{desc} training loss", step=end)
        func = np.asarray(m["functional"])
        for r in range(grid.size):
            writer.write(end, run=f"{desc}/{r}", loss=float(loss[r]), functional=float(func[r]))

    return checkpoint.run_chunked(
        step,
        state0,
        num_steps=num_steps,
        chunk_steps=chunk_steps,
        checkpoint_dir=os.path.join(workdir, "checkpoints", desc),
        on_chunk=on_chunk,
        metric_writer=writer,
        metric_run_prefix=f"{desc}/",
        desc=desc,
    )


def _grid(seeds: list[int], rows: list[dict[str, float]]) -> tuple[sweep.Grid, dict[str, np.ndarray]]:
    """Every (seed, row) pair as one run; rows are dicts of traced hyperparameters."""
    seed_col = np.array([s for _ in rows for s in seeds], np.int64)
    keys = sorted({k for r in rows for k in r})
    hp = {k: np.array([r.get(k, 0.0) for r in rows for _ in seeds], np.float32) for k in keys}
    return sweep.Grid(seed_col, hp), hp


def _mean_std(values: list[float]) -> tuple[float, float]:
    a = np.asarray(values, np.float64)
    return float(a.mean()), float(a.std())


# ----------------------------------------------------------------------------------------------------------
# (a) Theorem 1


def energy_theorem(config, fig_dir: str) -> dict[str, Any]:
    """Analytic vs simulated energy of the rotated nonnegative code over theta in [0, pi/2]."""
    thetas = np.linspace(0.0, np.pi / 2, config.energy.num_thetas).astype(np.float32)
    analytic = np.asarray(theory.rotated_code_energy(thetas))
    sim = np.asarray(
        theory.simulated_code_energy(jax.random.key(config.seed), thetas, num_samples=config.energy.num_samples)
    )
    figures.energy_vs_theta(thetas, analytic, sim, os.path.join(fig_dir, "energy_vs_theta.png"))
    dev = np.abs(sim - analytic)
    return {
        "max_deviation": float(dev.max()),
        "max_relative_deviation": float((dev / analytic).max()),
        "argmin_theta_simulated": float(thetas[int(np.argmin(sim))]),
        "thetas": thetas.tolist(),
        "analytic": analytic.tolist(),
        "simulated": sim.tolist(),
    }


# ----------------------------------------------------------------------------------------------------------
# (b, c) ablation and correlated factors


def _task_config(config, task: str) -> train.TrainConfig:
    t = config[task]
    out_dim = t.input_dim if task != "supervised" else t.output_dim
    mcfg = models.ModelConfig(task, t.input_dim, out_dim, t.code_dim, tuple(t.hidden))
    return train.TrainConfig(mcfg, t.num_factors, t.batch_size, t.num_steps, cubic=bool(t.get("cubic", False)))


def _constraint_row(task_cfg, variant: str, table=VARIANTS) -> dict[str, float]:
    n, a, w, relu = table[variant]
    return {
        "beta_nonneg": n * task_cfg.beta_nonneg,
        "beta_activity": a * task_cfg.beta_activity,
        "beta_weight": w * task_cfg.beta_weight,
        "relu": relu,
        "lr": task_cfg.lr,
    }


def run_task(config, task: str, workdir: str, writer, with_correlated: bool) -> dict[str, Any]:
    """Ablation (and correlated rows when asked) of one task as one sweep; returns per-run scores and MI matrices."""
    tc = _task_config(config, task)
    seeds = [config.seed + i for i in range(config.ablation.num_seeds)]
    rows, labels = [], []
    for name in config.ablation.variants:
        rows.append({**_constraint_row(config[task], name), "rho": 0.0})
        labels.append(("ablation", name))
    if with_correlated:
        for rho in config.correlated.rhos:
            if rho == 0.0 and config.correlated.variant in config.ablation.variants:
                continue  # the same runs as the ablation's row for that variant
            rows.append({**_constraint_row(config[task], config.correlated.variant), "rho": float(rho)})
            labels.append(("correlated", float(rho)))
    grid, hp = _grid(seeds, rows)
    logging.info("%s: %d runs (variants x seeds) as one jit(vmap), %d steps", task, grid.size, tc.num_steps)
    state = _train_group(
        task,
        grid,
        hp,
        lambda k, h: train.init_state(k, h, tc),
        train.make_chunk(tc, config[task].chunk_steps),
        tc.num_steps,
        config[task].chunk_steps,
        workdir,
        writer,
    )
    ev = sweep.vmapped(train.make_eval(tc, config.eval.num_samples, jax.random.key(_EVAL_SEED)))
    out = sweep.to_numpy(ev(state, hp))
    per_row: dict[Any, list] = {}
    for r in range(grid.size):
        row = r // len(seeds)
        m = dm.mutual_information(
            out["code"][r],
            out["factors"][r],
            num_bins=config.eval.num_bins,
            activity_threshold=config.eval.activity_threshold,
        )
        s = dm.scores(m)
        s["recon"] = float(out["recon"][r])
        s["mi"] = m.mi
        per_row.setdefault(labels[row], []).append(s)
    if with_correlated and 0.0 in [float(r) for r in config.correlated.rhos]:
        per_row.setdefault(("correlated", 0.0), per_row.get(("ablation", config.correlated.variant), []))
    return per_row


def _summary(runs: list[dict]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k in ("mir", "mig", "recon", "info_m", "info_c", "modularity", "num_active"):
        out[k], out[k + "_std"] = _mean_std([r[k] for r in runs])
        out[k + "_per_seed"] = [float(r[k]) for r in runs]
    return out


# ----------------------------------------------------------------------------------------------------------
# (d) beta-VAE


def vae_images(config) -> tuple[np.ndarray, np.ndarray, tuple, str]:
    """(images [N, P] in [0, 1], factors [N, F], factor names, data_source) for config.vae.dataset."""
    c = config.vae
    if c.dataset == "sprites":
        x, f, names = tasks.sprites(c.image_size, c.num_scales, c.num_positions)
        return (
            x,
            f,
            names,
            f"generated:sprites({c.image_size}px, 3 shapes x {c.num_scales} scales x {c.num_positions}^2)",
        )
    try:
        x, f, names = tasks.tfds_factor_images(c.dataset, c.image_size, c.max_images, config.get("data_dir"))
    except tasks.FactorDataUnavailable as e:
        raise app.UserError(str(e)) from None
    return x, f, names, f"tfds:{c.dataset}"


def run_vae(config, workdir: str, writer, fig_dir: str) -> dict[str, Any]:
    """beta-VAE variants x seeds as one sweep on the image set; MIG of the posterior means."""
    c = config.vae
    images, factors, names, source = vae_images(config)
    mcfg = models.ModelConfig("vae", images.shape[1], images.shape[1], c.code_dim, tuple(c.hidden))
    tc = train.TrainConfig(mcfg, factors.shape[1], c.batch_size, c.num_steps)
    seeds = [config.seed + i for i in range(c.num_seeds)]
    rows = [{**_constraint_row(c, name, VAE_VARIANTS), "beta_kl": c.beta_kl} for name in c.variants]
    grid, hp = _grid(seeds, rows)
    logging.info("vae: %d runs on %d images (%s), %d steps", grid.size, images.shape[0], source, c.num_steps)
    state = _train_group(
        "vae",
        grid,
        hp,
        lambda k, h: train.init_state(k, h, tc),
        train.make_chunk(tc, c.chunk_steps),
        c.num_steps,
        c.chunk_steps,
        workdir,
        writer,
        shared=(images,),
    )
    out = sweep.to_numpy(sweep.vmapped(train.make_vae_eval(tc), in_axes=(0, 0, None))(state, hp, images))
    per: dict[str, list] = {}
    mis: dict[str, np.ndarray] = {}
    for r in range(grid.size):
        name = c.variants[r // len(seeds)]
        try:
            m = dm.mutual_information(out["code"][r], factors, activity_threshold=config.eval.activity_threshold)
            s = dm.scores(m)
            mis.setdefault(name, m.mi)
        except ValueError as e:  # every posterior mean collapsed to a constant: no information at all
            logging.warning("vae %s seed %d: %s", name, grid.seeds[r], e)
            s = {"mig": 0.0, "mir": 0.0, "num_active": 0}
        s.update(nll=float(out["nll"][r]), kl=float(out["kl"][r]))
        per.setdefault(name, []).append(s)
    summary = {}
    for name, runs in per.items():
        summary[name] = {}
        for k in ("mig", "mir", "num_active", "nll", "kl"):
            summary[name][k], summary[name][k + "_std"] = _mean_std([r[k] for r in runs])
        summary[name]["mig_per_seed"] = [float(r["mig"]) for r in runs]
    if mis:
        figures.mi_matrices(
            mis, {k: summary[k]["mir"] for k in mis}, os.path.join(fig_dir, "vae_mi_matrices.png"), "/".join(names)
        )
    figures.vae_mig(
        {k: s["mig"] for k, s in summary.items()},
        {k: s["mig_std"] for k, s in summary.items()},
        os.path.join(fig_dir, "vae_mig.png"),
    )
    return {"summary": summary, "data_source": source, "factor_names": list(names), "num_images": int(len(images))}


# ----------------------------------------------------------------------------------------------------------
# (e) cells


def _cell_row(c, name: str) -> dict[str, float]:
    constrained = name.startswith("constrained")
    return {
        "lr": c.lr,
        "beta_nonneg": c.beta_nonneg if constrained else 0.0,
        "beta_activity": c.beta_activity if constrained else 0.0,
        "beta_weight": c.beta_weight if constrained else 0.0,
        "relu": 0.0,
        "jitter": float(c.jitter if name.endswith("entangled") else _INDEPENDENT),
    }


def run_cells(config, workdir: str, writer, fig_dir: str) -> dict[str, Any]:
    """Cell variants x seeds as one sweep; separation score of each trained code."""
    c = config.cells
    cfg = cells_lib.CellConfig(c.side, c.num_worlds, c.num_neurons, c.num_steps)
    seeds = [config.seed + i for i in range(c.num_seeds)]
    grid, hp = _grid(seeds, [_cell_row(c, n) for n in c.variants])
    state = _train_group(
        "cells",
        grid,
        hp,
        lambda k, h: cells_lib.init_state(k, h, cfg),
        cells_lib.make_chunk(cfg, c.chunk_steps),
        c.num_steps,
        c.chunk_steps,
        workdir,
        writer,
    )
    out = sweep.to_numpy(sweep.vmapped(cells_lib.make_eval(cfg))(state, hp))
    per: dict[str, list] = {}
    for r in range(grid.size):
        name = c.variants[r // len(seeds)]
        s = cells_lib.separation_score(out["code"][r], out["x"][r], out["d"][r])
        s["functional"] = float(out["functional"][r])
        per.setdefault(name, []).append(s)
    summary = {}
    for name, runs in per.items():
        score, std = _mean_std([r["score"] for r in runs])
        func, _ = _mean_std([r["functional"] for r in runs])
        summary[name] = {"score": score, "score_std": std, "functional": func, "per_seed": [r["score"] for r in runs]}
    figures.cells({n: per[n][0] for n in c.variants}, os.path.join(fig_dir, "cells_information.png"))
    return summary


# ----------------------------------------------------------------------------------------------------------
# run


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """Runs (a)-(e) (see the module docstring) and returns the results dict (keys in disentangle/README.md)."""
    fig_dir = os.path.join(workdir, "figures")
    results: dict[str, Any] = {}
    curve = energy_theorem(config, fig_dir)
    results["energy_theorem"] = curve["max_deviation"]
    results["energy_theorem_curve"] = curve
    with metrics.MetricWriter(os.path.join(workdir, "metrics.jsonl")) as writer:
        by_task: dict[str, dict] = {}
        for i, task in enumerate(config.ablation.tasks):
            per_row = run_task(config, task, workdir, writer, with_correlated=(i == 0 and len(config.correlated.rhos)))
            ablation = {name: _summary(per_row[("ablation", name)]) for name in config.ablation.variants}
            by_task[task] = ablation
            figures.mi_matrices(
                {name: per_row[("ablation", name)][0]["mi"] for name in config.ablation.variants},
                {name: ablation[name]["mir"] for name in config.ablation.variants},
                os.path.join(fig_dir, f"mi_matrices_{task}.png"),
            )
            figures.ablation_bars(ablation, os.path.join(fig_dir, f"ablation_{task}.png"), f"{task}: MIR and MIG")
            if i == 0 and config.correlated.rhos:
                corr = {float(r): _summary(per_row[("correlated", float(r))]) for r in config.correlated.rhos}
                results["correlated"] = {str(r): s["mir"] for r, s in corr.items()}
                results["correlated_detail"] = {str(r): s for r, s in corr.items()}
                rhos = list(corr)
                figures.correlated(
                    rhos,
                    [corr[r]["mir"] for r in rhos],
                    [corr[r]["mir_std"] for r in rhos],
                    os.path.join(fig_dir, "correlated_mir.png"),
                )
        first = config.ablation.tasks[0]
        results["ablation"] = {
            name: {k: s[k] for k in ("mir", "mir_std", "mig", "mig_std", "recon", "recon_std")}
            for name, s in by_task[first].items()
        }
        results["ablation_task"] = first
        results["ablation_by_task"] = by_task
        results.setdefault("correlated", {})
        if config.vae.variants:
            vae = run_vae(config, workdir, writer, fig_dir)
            results["vae"] = {k: s["mig"] for k, s in vae["summary"].items()}
            results["vae_detail"] = vae
            results["data_source"] = vae["data_source"]
        else:
            results["vae"] = {}
        if config.cells.variants:
            cell = run_cells(config, workdir, writer, fig_dir)
            results["cells"] = {k: s["score"] for k, s in cell.items()}
            results["cells_detail"] = cell
        else:
            results["cells"] = {}
    results["mi_estimator"] = f"histogram, {config.eval.num_bins} bins, nats"
    return results


# ----------------------------------------------------------------------------------------------------------
# report


def _axis_aligned(theta: float) -> bool:
    return min(abs(theta), abs(theta - np.pi / 2)) < 1e-6


def report(results: dict) -> list[dict]:
    """Headline checks for runs/REPORT.md: the constraints together disentangle, each alone does not, correlation
    degrades MIR, the energy theorem holds; the VAE and cell results are shown with what they found."""
    out = []
    ab = results["ablation"]
    task = results.get("ablation_task", "linear_ae")
    if "all" in ab:
        out.append(
            {
                "name": f"MIR, all three constraints ({task})",
                "value": f"{ab['all']['mir']:.3f} +- {ab['all']['mir_std']:.3f}",
                "paper": "~1 (disentangled); 0.955 measured at CPU scale in the notes",
                "ok": bool(ab["all"]["mir"] > 0.85),
            }
        )
    if "relu_energy" in ab:
        out.append(
            {
                "name": f"MIR, ReLU + activity + weight energy ({task})",
                "value": f"{ab['relu_energy']['mir']:.3f} +- {ab['relu_energy']['mir_std']:.3f}",
                "paper": "~1; 0.94 at CPU scale in the notes",
                "ok": bool(ab["relu_energy"]["mir"] > 0.85),
            }
        )
    for name, label in (("none", "no constraint"), ("energy", "energy only"), ("nonneg", "nonnegativity only")):
        if name in ab:
            ok = ab[name]["mir"] < 0.7 and ("all" not in ab or ab[name]["mir"] < ab["all"]["mir"] - 0.2)
            out.append(
                {
                    "name": f"MIR, {label} ({task})",
                    "value": f"{ab[name]['mir']:.3f} +- {ab[name]['mir_std']:.3f}",
                    "paper": "entangled: ~0.4-0.55 (histogram MI bias); 0.40-0.46 at CPU scale in the notes",
                    "ok": bool(ok),
                }
            )
    worst = max(s["recon"] for s in ab.values())
    out.append(
        {
            "name": "reconstruction error (unexplained variance), worst variant",
            "value": f"{worst:.2e}",
            "paper": "essentially perfect in every variant",
            "ok": bool(worst < 0.05),
        }
    )
    corr = results.get("correlated") or {}
    if len(corr) >= 2:
        rhos = sorted(corr, key=float)
        lo, hi = corr[rhos[0]], corr[rhos[-1]]
        out.append(
            {
                "name": f"MIR at rho={rhos[0]} -> rho={rhos[-1]}",
                "value": f"{lo:.3f} -> {hi:.3f}",
                "paper": "disentangling degrades as factors become correlated (entangled tasks)",
                "ok": bool(hi < lo - 0.1),
            }
        )
    curve = results.get("energy_theorem_curve", {})
    rel = curve.get("max_relative_deviation", float("nan"))
    out.append(
        {
            "name": "Theorem 1 energy: max |simulated - analytic| over theta",
            "value": f"{results['energy_theorem']:.4f} (relative {rel:.4f})",
            "paper": "E||z||^2 = 2/3 + 2(|cos|+|sin|)^2, minimal at axis alignment",
            "ok": bool(rel < 0.01 and _axis_aligned(curve.get("argmin_theta_simulated", 1.0))),
        }
    )
    vae = results.get("vae") or {}
    if vae:
        base = vae.get("beta_vae")
        best = max(vae, key=vae.get)
        std = {k: s.get("mig_std", 0.0) for k, s in (results.get("vae_detail", {}).get("summary", {})).items()}
        resolved = base is not None and vae[best] - base > max(std.get(best, 0.0), std.get("beta_vae", 0.0))
        out.append(
            {
                "name": "beta-VAE MIG on " + results.get("data_source", "?"),
                "value": ", ".join(f"{k} {x:.3f}" for k, x in vae.items()),
                "paper": "ReLU on the posterior mean (+ energy) raises MIG over the plain beta-VAE",
                # None: no variant beats the plain beta-VAE by more than the seed spread (not resolved at this scale)
                "ok": True if resolved and best != "beta_vae" else None,
            }
        )
    cells = results.get("cells") or {}
    if cells:
        con, unc, ent = cells.get("constrained"), cells.get("unconstrained"), cells.get("constrained_entangled")
        ok = None
        if con is not None and unc is not None:
            ok = con > unc + 0.2 and (ent is None or con > ent + 0.2)
        out.append(
            {
                "name": "cell separation (position vs object cells)",
                "value": ", ".join(f"{k} {x:.2f}" for k, x in cells.items()),
                "paper": "constrained: cells split into grid-like and object-vector types; entangled task: they mix",
                "ok": None if ok is None else bool(ok),
            }
        )
    return out
