"""The effective dimension of class manifolds and their boundaries (Fort et al. 2022), wired end to end.

``run(config, workdir)``:
1. known-answer regions in R^D (a halfspace, tubes of codimension 1-3) with the estimator's budget (and its
   convergence check) and the released one (`estimates.known_answer`);
2. the classifiers, trained through `common.train_loop` (`training.train_models`);
3. d* per class and of k-class boundaries; each trend over seeds: over training from the initialisation, width,
   training-set size at equal epochs, random labels, ensembles, the certainty threshold; robustness over distinct
   better-than-chance models (`trends`); each trend's change against the paper's sign (`summary`);
4. figures (`figures`) and the report rows (`report`).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import ml_collections

from common import metrics
from manifolds import estimates, figures, summary, training, trends
from manifolds.report import report  # noqa: F401 - the experiment's report hook
from manifolds.validation import validate  # noqa: F401 - the experiment's validate hook


def _measure(config, ds: dict, trained: dict, est: estimates.Estimator) -> dict[str, Any]:
    """Every d* measurement on the trained models (results keys, see the README)."""
    main = trained["mlp"]
    true = [m for m in main if m.labels["kind"] == "true"]
    d_star, sets, by_k = trends.per_class(est, config, true[0])
    out: dict[str, Any] = {"d_star": d_star, "d_star_boundary_sets": sets, "d_star_boundary": by_k}
    out["models"] = {"per_class": true[0].name}
    out["d_star_by_epoch"] = trends.over_training(est, config, true, len(ds["y"]) / config.train.batch_size)
    random = [m for m in main if m.labels["kind"] == "random"]
    labels = {"true": true, "random": random} if random else {}
    out["d_star_random_labels"] = trends.by_variable(est, config, labels)
    if config.estimator.starts == "test":  # and from training images, which the random-label nets memorised
        out["d_star_random_labels_train_starts"] = trends.by_variable(est, config, labels, starts="train")
    widths = {str(config.mlp.width): true}
    for m in trained.get("mlp_widths", []):
        widths.setdefault(str(m.labels["width"]), []).append(m)
    out["d_star_by_width"] = trends.by_variable(est, config, dict(sorted(widths.items(), key=lambda kv: int(kv[0]))))
    sizes = {str(len(ds["y"])): true}
    for m in main:
        if m.labels["kind"] == "train_size":
            sizes.setdefault(str(m.labels["train_size"]), []).append(m)
    out["d_star_by_train_size"] = trends.by_variable(
        est, config, dict(sorted(sizes.items(), key=lambda kv: int(kv[0])))
    )
    pool = trained.get("ensemble", [])
    out["d_star_ensemble"] = trends.ensembles(est, config, pool) if pool else {}
    out["d_star_by_threshold"] = trends.thresholds(est, config, true)
    cnn = trained.get("cnn", [])
    out["d_star_cnn"] = trends.by_variable(est, config, {"cnn": cnn})["cnn"] if cnn else None
    resnets = {m.labels["arch"]: [] for ms in trained.values() for m in ms if m.labels["kind"] == "resnet"}
    for ms in trained.values():
        for m in (m for m in ms if m.labels["kind"] == "resnet"):
            resnets[m.labels["arch"]].append(m)
    out["d_star_resnets"] = trends.by_variable(est, config, resnets)
    n_singles = config.train.num_seeds if 1 in config.ensemble.members else 0
    distinct = true + list(trained.get("mlp_widths", [])) + [m for m in main if m.labels["kind"] == "train_size"]
    distinct += pool[:n_singles] + cnn + [m for ms in resnets.values() for m in ms]
    out["robustness"] = trends.robustness(est, config, ds, distinct)
    out["robustness_sigma"] = float(config.robustness.sigma)
    return out


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    """Trains the classifiers and measures every d*; returns the results (keys in manifolds/README.md)."""
    ds = training.load_data(config)
    with metrics.MetricWriter(os.path.join(workdir, "metrics.jsonl")) as writer:
        est = estimates.Estimator(config, ds, writer)
        known = estimates.known_answer(config, ds["dim"], est)
        trained = training.train_models(config, ds, workdir, writer)
        results = _measure(config, ds, trained, est)
    results["trends"] = summary.trends(results)
    results["trends_probability_fit"] = summary.trends(results, fit="probability")
    rho = results["trends"].get("robustness", {}).get("delta", float("nan"))
    results["robustness_spearman_effective_dimension_vs_corrupted_acc"] = rho
    results |= {
        "data_source": ds["source"],
        "D": ds["dim"],
        "effective_dimension": {c: ds["dim"] - r["value"] for c, r in results["d_star"].items()},
        "converged": summary.convergence(est.records),
        "known_answer": known,
        "test_acc": {m.name: m.test_acc for ms in trained.values() for m in ms},
        "estimator": {
            "dims": list(est.dims),
            "repeats": int(config.estimator.repeats),
            "num_starts": int(config.estimator.num_starts),
            "starts": config.estimator.starts,
            "bounds": est.bounds,
            "budget": dataclasses.asdict(est.budget),
            "check_budget": None if est.check is None else dataclasses.asdict(est.check),
        },
    }
    figures.draw(workdir, results, est, config)
    return results
