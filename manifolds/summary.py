"""Summaries of the estimates: means and standard errors over seeds, each trend's change against the paper's sign.

A trend's change is measured between its first and last point as the mean over seeds of the paired per-seed
differences (seed s at the first point against seed s at the last), with the standard error of those differences;
it *holds* when its sign is the paper's and it exceeds twice its standard error. Everything is in d* (the paper's
statements about the effective dimension D − d* have the opposite sign).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

# trend -> (results key, the sign of the change in d* from the first to the last point the paper reports, claim)
TRENDS = {
    "over_training": ("d_star_by_epoch", -1, "d* falls during training (effective dimension rises)"),
    "width": ("d_star_by_width", -1, "wider, better models: lower d* (higher-dimensional CMs)"),
    "train_size": ("d_star_by_train_size", -1, "more training data: lower d*"),
    "random_labels": ("d_star_random_labels", +1, "random labels raise d* (lower-dimensional CMs)"),
    "random_labels_train_starts": (
        "d_star_random_labels_train_starts",
        +1,
        "random labels raise d*, from training images (as the paper starts)",
    ),
    "ensemble": ("d_star_ensemble", +1, "ensembles intersect their members' CMs: d* rises with members"),
    "threshold": ("d_star_by_threshold", +1, "higher certainty: smaller manifolds, d* rises with the threshold"),
}


def _sem(x: np.ndarray) -> float:
    x = x[np.isfinite(x)]
    return float(x.std(ddof=1) / math.sqrt(len(x))) if len(x) >= 2 else math.nan


def over_seeds(per_seed: Sequence[float], converged: bool | None) -> dict[str, Any]:
    """{value: mean over seeds, error: standard error, per_seed, n, converged} (non-finite seeds left out)."""
    x = np.asarray(per_seed, float)
    fin = x[np.isfinite(x)]
    return {
        "value": float(fin.mean()) if fin.size else math.nan,
        "error": _sem(x),
        "per_seed": x.tolist(),
        "n": int(fin.size),
        "converged": converged,
    }


def trend_change(points: dict[str, dict], sign: int) -> dict[str, Any]:
    """The change of d* from the first to the last point (paired over seeds), its error, and whether it holds."""
    keys = list(points)
    first = np.asarray(points[keys[0]]["per_seed"], float)
    last = np.asarray(points[keys[-1]]["per_seed"], float)
    if first.shape == last.shape:
        diff = last - first
        delta, err = float(np.nanmean(diff)), _sem(diff)
    else:
        delta = points[keys[-1]]["value"] - points[keys[0]]["value"]
        err = math.hypot(points[keys[0]]["error"], points[keys[-1]]["error"])
    z = delta / err if err and math.isfinite(err) and err > 0 else math.nan
    right = math.isfinite(delta) and np.sign(delta) == sign
    return {
        "from": keys[0],
        "to": keys[-1],
        "delta": delta,
        "error": err,
        "z": z,
        "paper_sign": sign,
        "holds": bool(right and math.isfinite(z) and abs(z) > 2),
        "opposite": bool(math.isfinite(delta) and np.sign(delta) == -sign and math.isfinite(z) and abs(z) > 2),
    }


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return math.nan
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def spearman_with_error(a, b, num_boot: int = 200, seed: int = 0) -> tuple[float, float]:
    """Spearman's rank correlation and its bootstrap standard error over the models."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    rho = spearman(a, b)
    rng = np.random.default_rng(seed)
    boots = [spearman(a[i], b[i]) for i in rng.integers(0, len(a), (num_boot, len(a)))] if len(a) >= 3 else []
    boots = np.asarray([x for x in boots if math.isfinite(x)])
    return rho, float(boots.std()) if boots.size > 1 else math.nan


def trends(results: dict, fit: str | None = None) -> dict[str, dict]:
    """Every trend's change (see `trend_change`), plus robustness as Spearman(effective dimension, corrupted
    accuracy) with its bootstrap error (paper: positive). `fit="probability"`: the same trends with the released
    probability fit (points that carry it; no robustness)."""
    out = {}
    for name, (key, sign, claim) in TRENDS.items():
        points = results.get(key) or {}
        if fit is not None:
            points = {k: p[fit] for k, p in points.items() if fit in p}
        if len(points) >= 2:
            out[name] = {**trend_change(points, sign), "claim": claim}
    if fit is not None:
        return out
    rob = results.get("robustness") or {}
    if len(rob) >= 3:
        eff = [r["effective_dimension"] for r in rob.values()]
        acc = [r["corrupted_acc"] for r in rob.values()]
        rho, err = spearman_with_error(eff, acc)
        z = rho / err if math.isfinite(rho) and err and math.isfinite(err) and err > 0 else math.nan
        out["robustness"] = {
            "delta": rho,
            "error": err,
            "z": z,
            "paper_sign": +1,
            "holds": bool(math.isfinite(z) and rho > 0 and z > 2),
            "opposite": bool(math.isfinite(z) and rho < 0 and z < -2),
            "claim": "more robust models have higher-dimensional CMs: Spearman(D - d*, corrupted acc) > 0",
            "models": len(rob),
        }
    return out


def convergence(records: dict[str, dict]) -> dict[str, Any]:
    """{all, fraction, by_estimate}: the share of estimates whose d* moved by at most its error with more steps."""
    conv = {n: r["converged"] for n, r in records.items() if r.get("converged") is not None}
    vals = list(conv.values())
    return {"all": bool(all(vals)), "fraction": float(np.mean(vals)) if vals else math.nan, "by_estimate": conv}
