"""Per-run evaluation results -> tables over M: means over seeds, standard errors, per-seed and per-position curves.

A table picks, for every M, one learning rate (`lrs[j]`, e.g. the best rate per M on the held-out curve set,
`best_lrs`) and one weight decay, and averages the seeds. The standard error is the sample standard deviation over
seeds / sqrt(n) (0 with one seed); `num_seeds` says n.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from common import sweep
from icl import evaluation

SUBSET = tuple(k for name in evaluation.KEYS for k in (name, name + "_se")) + (
    "num_seeds",
    "dist_ridge_per_seed",
    "dist_dmmse_per_seed",
    "loss_true_per_seed",
)


def _axes(grid: sweep.Grid) -> tuple[list[float], list[int]]:
    return sorted(set(grid.hparams["num_tasks"].tolist())), sorted(set(grid.seeds.tolist()))


def se(values_SxM: np.ndarray) -> np.ndarray:
    """Standard error of the mean over the leading (seeds) axis; 0 with one seed."""
    n = values_SxM.shape[0]
    if n < 2:
        return np.zeros(values_SxM.shape[1:])
    return values_SxM.std(0, ddof=1) / math.sqrt(n)


def table(grid: sweep.Grid, per_run: dict[str, np.ndarray], *, weight_decay: float, lrs: list[float]) -> dict:
    """For each metric: `<name>` and `<name>_se` over M (mean over positions and seeds), `<name>_per_position`
    ([M][K], mean over seeds) and `<name>_per_seed` ([seed][M]); runs at learning rate `lrs[j]` for the j-th M."""
    ms, seeds = _axes(grid)
    if len(lrs) != len(ms):
        raise ValueError(f"{len(lrs)} learning rates for {len(ms)} values of M")
    out: dict[str, Any] = {"num_seeds": len(seeds), "lr": [float(x) for x in lrs], "weight_decay": weight_decay}
    for name, v in per_run.items():
        curve = np.full((len(seeds), len(ms)), np.nan)
        pos = np.full((len(seeds), len(ms), v.shape[1]), np.nan)
        for i, s in enumerate(seeds):
            for j, m in enumerate(ms):
                r = grid.index(seed=s, num_tasks=m, lr=lrs[j], weight_decay=weight_decay)
                curve[i, j] = v[r].mean()
                pos[i, j] = v[r]
        out[name] = curve.mean(0).tolist()
        out[name + "_se"] = se(curve).tolist()
        out[name + "_per_position"] = pos.mean(0).tolist()
        out[name + "_per_seed"] = curve.tolist()
    return out


def subset(tab: dict) -> dict:
    """The keys of a table kept for the secondary groupings (by batch size, lr, weight decay, model size)."""
    return {k: tab[k] for k in SUBSET + ("lr", "weight_decay") if k in tab}


def best_lrs(grid: sweep.Grid, curves_RxExL: np.ndarray, weight_decay: float) -> list[float]:
    """Per M, the learning rate with the lowest seed-mean final T_True loss on the held-out curve set."""
    ms, seeds = _axes(grid)
    lrs = sorted(set(grid.hparams["lr"].tolist()))
    out = []
    for m in ms:
        scores = [
            np.mean(
                [curves_RxExL[grid.index(seed=s, num_tasks=m, lr=lr, weight_decay=weight_decay), -1, 0] for s in seeds]
            )
            for lr in lrs
        ]
        out.append(float(lrs[int(np.nanargmin(scores))]))
    return out


def curves(
    grid: sweep.Grid, curves_RxExL: np.ndarray, steps: list[int], weight_decay: float, lrs: list[float]
) -> tuple[dict, dict]:
    """(`curves`: step -> {loss_true, loss_pretrain, and their _se: lists over M}, `early_stop_step`: M -> the
    step of the lowest seed-mean T_True loss on the curve set)."""
    ms, seeds = _axes(grid)
    arr = np.stack(
        [
            np.stack(
                [curves_RxExL[grid.index(seed=s, num_tasks=m, lr=lrs[j], weight_decay=weight_decay)] for s in seeds]
            )
            for j, m in enumerate(ms)
        ],
        axis=1,
    )  # [S, M, E, 2]
    mean = arr.mean(0)
    err = np.stack([se(arr[:, j]) for j in range(len(ms))])  # [M, E, 2]
    out = {
        str(step): {
            "loss_true": mean[:, e, 0].tolist(),
            "loss_true_se": err[:, e, 0].tolist(),
            "loss_pretrain": mean[:, e, 1].tolist(),
            "loss_pretrain_se": err[:, e, 1].tolist(),
        }
        for e, step in enumerate(steps)
    }
    labels = ["inf" if math.isinf(m) else str(int(m)) for m in ms]
    stop = {lab: int(steps[int(np.nanargmin(mean[j, :, 0]))]) for j, lab in enumerate(labels)}
    return out, stop
