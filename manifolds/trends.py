"""The paper's measurements on the trained models: d* per class and of boundaries, and each trend over seeds.

Each trend point is the mean over `variable_classes` of d* for one model, then the mean and standard error over the
seeds (`num_seeds` models per point). Estimates are named after their model (`mlp/true0/class4`,
`mlp/true0/step11/class4`, `ensemble2_1/class4`, ...), so a model measured by two trends is estimated once.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import numpy as np

from manifolds import cutting_planes as cp
from manifolds import models, summary, train
from manifolds.estimates import Estimator
from manifolds.training import Model

_NOISE = 20  # fold_in purpose of the corruption noise


def _lp(m: Model):
    return models.LogProb(m.apply)


def per_class(est: Estimator, config, m: Model) -> tuple[dict, dict, dict]:
    """(d* per class, d* per boundary set, d* by k) of model `m`."""
    d_star = {str(c): est(f"{m.name}/class{c}", _lp(m), m.params, int(c)) for c in config.classes}
    sets = {}
    for s in config.boundary_sets:
        label = "-".join(map(str, s))
        sets[label] = est(f"{m.name}/boundary{label}", _lp(m), m.params, tuple(int(c) for c in s))
    by_k = {"1": {"value": float(np.nanmean([r["value"] for r in d_star.values()]))}}
    for k in sorted({len(s) for s in config.boundary_sets}):
        vals = [sets["-".join(map(str, s))]["value"] for s in config.boundary_sets if len(s) == k]
        by_k[str(k)] = {"value": float(np.nanmean(vals)), "sets": len(vals)}
    return d_star, sets, by_k


def _point(est: Estimator, config, named: list[tuple[str, Any, Any]], starts: str | None = None) -> dict:
    """One trend point: d* (mean over variable classes) of each (name, log_prob, params), summarised over seeds."""
    classes = [int(c) for c in config.variable_classes]
    recs = [est.mean_over(name, lp, p, classes, starts) for name, lp, p in named]
    out = summary.over_seeds([r["value"] for r in recs], converged=all(r["converged"] for r in recs))
    return out | {"probability": summary.over_seeds([r["probability"] for r in recs], converged=None)}


def over_training(est: Estimator, config, true: list[Model], steps_per_epoch: float) -> dict:
    out = {}
    for j, step in enumerate(config.over_training.steps):
        named = [(f"{m.name}/step{step}", _lp(m), jax.tree.map(lambda a, j=j: a[j], m.snaps)) for m in true]
        out[str(step)] = {**_point(est, config, named), "epoch": step / steps_per_epoch}
    final = _point(est, config, [(m.name, _lp(m), m.params) for m in true])
    out[str(config.train.num_steps)] = {**final, "epoch": config.train.num_steps / steps_per_epoch}
    return out


def by_variable(est: Estimator, config, groups: dict[str, list[Model]], starts: str | None = None) -> dict:
    """{x: point} for models grouped by the value of a variable (width, training-set size, labels); `starts`:
    other start points than `estimator.starts` (estimates named <model>/<starts>_starts/class<c>)."""
    sfx = f"/{starts}_starts" if starts else ""
    return {x: _point(est, config, [(m.name + sfx, _lp(m), m.params) for m in ms], starts) for x, ms in groups.items()}


def ensembles(est: Estimator, config, pool: list[Model]) -> dict:
    """num_seeds disjoint ensembles of each size k from the pool (ensemble r of size k: members r·k ... r·k+k−1)."""
    out = {}
    for k in config.ensemble.members:
        named = []
        for r in range(config.train.num_seeds):
            members = pool[r * k : (r + 1) * k]
            if k == 1:
                named.append((members[0].name, _lp(members[0]), members[0].params))
                continue
            stacked = jax.tree.map(lambda *a: np.stack(a), *[m.params for m in members])
            named.append((f"ensemble{k}_{r}", cp.Ensemble(members[0].apply, config.ensemble.mode), stacked))
        out[str(k)] = _point(est, config, named)
    return out


def thresholds(est: Estimator, config, true: list[Model]) -> dict:
    """d* of {p_class >= τ} for each threshold τ, read from the final models' class estimates (same subspaces)."""
    classes = [int(c) for c in config.variable_classes]
    out = {}
    for tau in config.thresholds:
        per_seed = []
        for m in true:
            vals = [
                est.curves[f"{m.name}/class{c}"].at_threshold(float(tau), num_boot=0)["d_star"]
                for c in classes
                if f"{m.name}/class{c}" in est.curves
            ]
            per_seed.append(float(np.mean(vals)) if vals else math.nan)
        out[f"{tau:g}"] = summary.over_seeds(per_seed, converged=None)
    return out


def robustness(est: Estimator, config, ds: dict, models_: list[Model]) -> dict:
    """Clean and Gaussian-corrupted test accuracy against the effective dimension, for distinct models better than
    chance (random-label networks and snapshots are left out)."""
    sigma = float(config.robustness.sigma)
    key = jax.random.fold_in(jax.random.key(config.seed), _NOISE)
    chance = 1.0 / ds["classes"]
    out = {}
    for m in models_:
        clean = float(train.accuracy(m.apply, m.params, ds["xt"], ds["yt"]))
        if clean < 2 * chance:
            continue
        rec = est.mean_over(m.name, _lp(m), m.params, [int(c) for c in config.variable_classes])
        noisy = float(train.corrupted_accuracy(m.apply, m.params, ds["xt"], ds["yt"], sigma, key))
        out[m.name] = {
            "d_star": rec["value"],
            "effective_dimension": ds["dim"] - rec["value"],
            "clean_acc": clean,
            "corrupted_acc": noisy,
        }
    return out
