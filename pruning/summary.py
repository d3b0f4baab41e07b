"""Host-side summaries of an IMP sweep's per-level histories: matching, barriers, the confusion between matching and
zero barrier, stability, and the largest prune fraction that succeeds."""

from __future__ import annotations

from typing import Any

import numpy as np

from pruning import imp

STABILITY = ("twin", "perturbed")  # companions summarised as stability / robustness, not as ablations


def mean_std(x: np.ndarray) -> dict[str, list]:
    """Mean and std over the first axis, ignoring NaN (a column of NaN gives NaN, with no warning)."""
    x = np.asarray(x, np.float64)
    ok = np.isfinite(x)
    n = ok.sum(axis=0)
    filled = np.where(ok, x, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, filled.sum(axis=0) / np.maximum(n, 1), np.nan)
        var = np.where(ok, np.square(x - mean), 0.0).sum(axis=0) / np.maximum(n, 1)
    std = np.where(n > 0, np.sqrt(var), np.nan)
    return {"mean": np.asarray(mean).tolist(), "std": np.asarray(std).tolist()}


def summarize(runs: list[imp.Run], hist: dict[str, np.ndarray], tolerance: float, barrier_tol: float) -> dict:
    """Per run name, per level: density, test_error / barriers (mean, std over seeds), matching; stability;
    the matching / zero-barrier confusion and the lowest matching density per rewind step."""
    names = list(dict.fromkeys(r.name for r in runs))
    idx = {n: [i for i, r in enumerate(runs) if r.name == n] for n in names}
    dense = hist["test_error"][idx["imp"], 0]
    dense_mean = float(np.mean(dense))
    out: dict[str, Any] = {
        "dense_test_error": {"mean": dense_mean, "std": float(np.std(dense))},
        "matching_tolerance": tolerance,
        "matching_threshold": dense_mean + tolerance,
        "barrier_tolerance": barrier_tol,
    }
    per_name = {}
    for n in names:
        if n in STABILITY:
            continue
        rows = idx[n]
        err = hist["test_error"][rows]
        entry = {
            "density": hist["density"][rows].mean(axis=0).tolist(),
            "test_error": mean_std(err),
            "train_loss": mean_std(hist["train_loss"][rows]),
            "barrier_loss": mean_std(hist["barrier_loss"][rows]),
            "barrier_error": mean_std(hist["barrier_error"][rows]),
            "matching": (err.mean(axis=0) <= dense_mean + tolerance).tolist(),
            "matching_per_seed": (err <= dense_mean + tolerance).tolist(),
        }
        entry["lowest_matching_density"] = lowest_matching_density(entry["density"], entry["matching"])
        per_name[n] = entry
    out["imp"] = per_name["imp"]
    out["ablations"] = {n: e for n, e in per_name.items() if n != "imp"}
    out["stability"] = stability(idx, hist, per_name["imp"]["density"])
    k = next(r.rewind_step for r in runs if r.name == "imp")
    by_k = {str(k): "imp", **({"0": "no_rewind"} if "no_rewind" in idx and k != 0 else {})}
    out["rewind"] = {kk: per_name[n]["lowest_matching_density"] for kk, n in by_k.items()}
    out["lmc_confusion"] = {
        kk: lmc_confusion(
            hist["test_error"][idx[n]], hist["barrier_error"][idx[n]], dense_mean + tolerance, barrier_tol
        )
        for kk, n in by_k.items()
    }
    overlap = hist["rank_overlap"][idx["imp"]]
    out["new_small_weights"] = {"rank_overlap": mean_std(overlap), "chance": float(runs[idx["imp"][0]].fraction)}
    return out


def stability(idx: dict[str, list[int]], hist: dict[str, np.ndarray], density: list[float]) -> dict[str, Any]:
    """Twin (other SGD noise) and perturbed-rewind-point barriers to the parent's solution, per level."""
    stab: dict[str, Any] = {"density": density}
    for c in STABILITY:
        if c in idx:
            stab[f"{c}_barrier_loss"] = mean_std(hist["parent_barrier_loss"][idx[c]])
            stab[f"{c}_barrier_error"] = mean_std(hist["parent_barrier_error"][idx[c]])
            stab[f"{c}_test_error"] = mean_std(hist["test_error"][idx[c]])
    stab["rewind_distance"] = mean_std(hist["rewind_distance"][idx["imp"]])
    return stab


def lmc_confusion(test_error: np.ndarray, barrier: np.ndarray, threshold: float, barrier_tol: float) -> dict:
    """Counts of levels >= 1 over seeds ([seeds, levels] arrays): matching (error <= threshold) or not, against a
    zero barrier to the previous level's solution (barrier <= barrier_tol, "flat") or not."""
    match = np.asarray(test_error)[:, 1:] <= threshold
    flat = np.asarray(barrier)[:, 1:] <= barrier_tol
    return {
        "match_flat": int(np.sum(match & flat)),
        "match_barrier": int(np.sum(match & ~flat)),
        "nomatch_flat": int(np.sum(~match & flat)),
        "nomatch_barrier": int(np.sum(~match & ~flat)),
    }


def lowest_matching_density(density: list[float], matching: list[bool]) -> float | None:
    """The lowest density reached with every level down to it matching (None if level 1 already fails)."""
    low = None
    for d, m in zip(density[1:], matching[1:], strict=True):
        if not m:
            break
        low = d
    return low


def measured_max_fraction(fractions: list[float], ok: np.ndarray) -> float:
    """The largest fraction of the grid with every smaller fraction also succeeding (0 if the first fails)."""
    best = 0.0
    for p, good in zip(fractions, ok, strict=True):
        if not good:
            break
        best = float(p)
    return best


def instability(runs: list[imp.Run], hist: dict[str, np.ndarray]) -> dict[str, Any]:
    """Instability against the rewind step: the test-error (and train-loss) barrier between two copies trained from
    the same w_k with different SGD noise (the twin's level-1 barrier to its parent), per k, over seeds."""
    ks = sorted({r.rewind_step for r in runs})
    out: dict[str, Any] = {"k": ks, "barrier_error": [], "barrier_loss": [], "test_error": []}
    for k in ks:
        rows = [i for i, r in enumerate(runs) if r.name == "twin" and r.rewind_step == k]
        parents = [runs[i].parent for i in rows]
        out["barrier_error"].append(_stat(hist["parent_barrier_error"][rows, 1]))
        out["barrier_loss"].append(_stat(hist["parent_barrier_loss"][rows, 1]))
        out["test_error"].append(_stat(hist["test_error"][parents, 1]))
    return out


def _stat(x: np.ndarray) -> dict[str, Any]:
    x = np.asarray(x, np.float64)
    return {"mean": float(np.mean(x)), "std": float(np.std(x)), "per_seed": x.tolist()}
