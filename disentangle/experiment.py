"""Disentanglement with biological constraints (Whittington, Dorrell, Ganguli, Behrens 2023), wired end to end.

`run(config, workdir)`:
  (a) Theorem 1's example: analytic energy of rotated nonnegative codes vs Monte Carlo (`energy_theorem`);
  (b) the ablation on every task in `ablation.tasks`: constraint variants and controls x seeds as one sweep per task
      (`groups.synthetic`), scored by MIR / MIG / InfoM / InfoC / modularity and reconstruction;
  (c) correlated factors (full support, each rho) and a support with corners cut off, trained with the headline
      task in the same sweep, every encoder scored on its own and on independent factors;
  (d) VAE variants on an image set with known factors (`vae`);
  (e) path-integrating codes in worlds with objects: separation into position and object cells (`cells`).
validation.py checks the config, groups.py trains, summary.py scores, report.py judges, figures.py draws.
Keys are documented in disentangle/README.md.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import ml_collections
import numpy as np

from common import metrics
from disentangle import cells as cells_lib
from disentangle import figures, groups, summary, theory
from disentangle import validation as _validation
from disentangle.report import report  # noqa: F401  (the report hook of common.reproduce)

validate = _validation.validate


def energy_theorem(config, fig_dir: str) -> dict[str, Any]:
    """Analytic vs simulated energy of the rotated nonnegative code over theta in [0, pi/2]."""
    thetas = np.linspace(0.0, np.pi / 2, config.energy.num_thetas).astype(np.float32)
    analytic = np.asarray(theory.rotated_code_energy(thetas))
    key = jax.random.fold_in(jax.random.key(config.seed), 0)
    sim = np.asarray(theory.simulated_code_energy(key, thetas, num_samples=config.energy.num_samples))
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


def _ablation(config, workdir, writer, fig_dir: str, results: dict) -> None:
    by_task: dict[str, dict] = {}
    for i, task in enumerate(config.ablation.tasks):
        per_row = groups.synthetic(config, task, workdir, writer, with_correlated=(i == 0))
        scored = {label: [summary.synthetic_scores(o, config) for o in outs] for label, outs in per_row.items()}
        variants = config.ablation.variants
        keys = summary.KEYS + ("mir_on_independent", "mig_on_independent")
        by_task[task] = {name: summary.summarise(scored[("ablation", name)], keys) for name in variants}
        figures.mi_matrices({n: scored[("ablation", n)][0]["mi"] for n in variants},
                            {n: by_task[task][n]["mir"] for n in variants},
                            os.path.join(fig_dir, f"mi_matrices_{task}.png"))  # fmt: skip
        figures.ablation_bars(by_task[task], os.path.join(fig_dir, f"ablation_{task}.png"), f"{task}: MIR and MIG")
        if i == 0:
            _correlated(config, scored, fig_dir, results)
    first = config.ablation.tasks[0]
    results["ablation"] = {
        name: {k: s[k] for k in ("mir", "mir_std", "mig", "mig_std", "recon", "recon_std")}
        for name, s in by_task[first].items()
    }
    results["ablation_task"] = first
    results["ablation_by_task"] = by_task


def _correlated(config, scored: dict, fig_dir: str, results: dict) -> None:
    keys = ("mir", "mig", "mir_on_independent", "mig_on_independent", "recon")
    corr = {float(r): summary.summarise(scored[("correlated", float(r))], keys) for r in config.correlated.rhos}
    results["correlated"] = {str(r): s["mir"] for r, s in corr.items()}
    results["correlated_on_independent"] = {str(r): s["mir_on_independent"] for r, s in corr.items()}
    results["correlated_detail"] = {str(r): s for r, s in corr.items()}
    ent = None
    if config.correlated.corner > 0:
        ent = {"corner": float(config.correlated.corner), **summary.summarise(scored[("entangling", None)], keys)}
        results["entangling"] = ent
    if corr:
        figures.correlated(corr, ent, os.path.join(fig_dir, "correlated_mir.png"))


def _vae(config, workdir, writer, fig_dir: str, results: dict) -> None:
    v = groups.vae(config, workdir, writer)
    scored = {n: [summary.vae_scores(o, v["factors"], config) for o in outs] for n, outs in v["per_variant"].items()}
    keys = ("mig", "mir", "info_c", "num_active", "nll", "kl")
    summ = {n: summary.summarise(runs, keys) for n, runs in scored.items()}
    mis = {n: runs[0]["mi"] for n, runs in scored.items() if runs[0]["mi"] is not None}
    if mis:
        figures.mi_matrices(mis, {n: summ[n]["mir"] for n in mis}, os.path.join(fig_dir, "vae_mi_matrices.png"),
                            "/".join(v["names"]))  # fmt: skip
    figures.vae_mig(summ, os.path.join(fig_dir, "vae_mig.png"))
    results["vae"] = {n: s["mig"] for n, s in summ.items()}
    results["vae_detail"] = {"summary": summ, "data_source": v["source"], "factor_names": list(v["names"]),
                             "num_images": int(v["num_images"])}  # fmt: skip
    results["data_source"] = v["source"]


def _cells(config, workdir, writer, fig_dir: str, results: dict) -> None:
    per = groups.cells(config, workdir, writer)
    scored = {
        n: [{**cells_lib.separation_score(o["code"], o["x"], o["d"]), "functional": float(o["functional"])}
            for o in outs]
        for n, outs in per.items()
    }  # fmt: skip
    detail = {}
    for n, runs in scored.items():
        s = summary.summarise(runs, ("score", "functional"))
        detail[n] = {"score": s["score"], "score_std": s["score_std"], "functional": s["functional"],
                     "per_seed": s["score_per_seed"]}  # fmt: skip
    figures.cells({n: runs[0] for n, runs in scored.items()}, os.path.join(fig_dir, "cells_information.png"))
    results["cells"] = {n: s["score"] for n, s in detail.items()}
    results["cells_detail"] = detail


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """Runs (a)-(e) (see the module docstring) and returns the results dict (keys in disentangle/README.md)."""
    fig_dir = os.path.join(workdir, "figures")
    results: dict[str, Any] = {}
    curve = energy_theorem(config, fig_dir)
    results["energy_theorem"] = curve["max_deviation"]
    results["energy_theorem_curve"] = curve
    with metrics.MetricWriter(os.path.join(workdir, "metrics.jsonl")) as writer:
        _ablation(config, workdir, writer, fig_dir, results)
        results.setdefault("correlated", {})
        results["vae"], results["cells"] = {}, {}
        if config.vae.variants:
            _vae(config, workdir, writer, fig_dir, results)
        if config.cells.variants:
            _cells(config, workdir, writer, fig_dir, results)
    results["mi_estimator"] = (
        f"histogram plug-in, nats: {config.eval.num_bins} bins per latent; synthetic factors in "
        f"{config.eval.factor_bins} equal-width bins, image factors one class per value (disentanglement_lib); "
        f"activity_threshold {config.eval.activity_threshold}"
    )
    return results
