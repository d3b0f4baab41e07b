"""Two estimates of the task-diversity threshold M* from per-seed curves over M (Raventós et al. 2023, Sec. 4).

- `batch_crossing` (the paper's): train at two batch sizes. Below M*, more data per task pulls the model toward
  dMMSE, so the larger batch is further from Ridge; above M*, it is closer. M* is where the two distance-to-Ridge
  curves cross: the last sign change from + to - of d(M) = Delta_large(M) - Delta_small(M), interpolated linearly
  in log2 M.
- `closer_to_ridge` (a simple one): the smallest M, scanning upward, at which the model's T_True loss is closer to
  Ridge's than to dMMSE's.
Both return log2 M* per seed, its mean and standard deviation over seeds (None where the sweep does not bracket it).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _crossing(log2_ms: np.ndarray, diff: np.ndarray) -> tuple[float | None, list | None]:
    """Last + to - sign change of `diff` (log2-linear interpolation), or None."""
    pos = np.flatnonzero(diff > 0)
    if pos.size == 0 or pos[-1] == diff.size - 1:
        return None, None
    i = int(pos[-1])
    d0, d1 = float(diff[i]), float(diff[i + 1])
    x0, x1 = float(log2_ms[i]), float(log2_ms[i + 1])
    x = x0 + d0 / (d0 - d1) * (x1 - x0)
    return x, [x0, x1]


def _stats(values: list[float | None]) -> tuple[float | None, float | None]:
    ok = [v for v in values if v is not None]
    if not ok:
        return None, None
    return float(np.mean(ok)), float(np.std(ok))


def batch_crossing(log2_ms: Sequence[float], dist_small_SxM: np.ndarray, dist_large_SxM: np.ndarray) -> dict:
    """M* where the distance-to-Ridge curves of the small- and large-batch models cross (the paper's definition).

    Inputs: log2 M of each (finite) sweep point and the distances per seed [S, M] at the two batch sizes.
    Returns `log2_M` (from the seed-averaged curves), `interval_log2` (the bracketing sweep points), `per_seed_log2`,
    `log2_M_mean`, `log2_M_std` (over seeds that bracket it) and `diff` (the seed-averaged d(M)).
    """
    x = np.asarray(log2_ms, float)
    small, large = np.asarray(dist_small_SxM, float), np.asarray(dist_large_SxM, float)
    if small.shape != large.shape or small.shape[-1] != x.size:
        raise ValueError(f"shapes {small.shape}, {large.shape} do not match {x.size} values of M")
    diff = large.mean(0) - small.mean(0)
    est, interval = _crossing(x, diff)
    per_seed = [_crossing(x, large[s] - small[s])[0] for s in range(small.shape[0])]
    mean, std = _stats(per_seed)
    return {
        "log2_M": est,
        "interval_log2": interval,
        "per_seed_log2": per_seed,
        "log2_M_mean": mean,
        "log2_M_std": std,
        "diff": diff.tolist(),
    }


def closer_to_ridge(
    log2_ms: Sequence[float], loss_SxM: np.ndarray, ridge_SxM: np.ndarray, dmmse_SxM: np.ndarray
) -> dict:
    """Smallest M (per seed) at which |loss - Ridge| < |loss - dMMSE| on T_True; mean and std of log2 M* over seeds.

    Returns `per_seed_log2` (None for a seed that never gets closer to Ridge), `log2_M_mean`, `log2_M_std`.
    """
    x = np.asarray(log2_ms, float)
    loss, ridge, dmmse = (np.asarray(a, float) for a in (loss_SxM, ridge_SxM, dmmse_SxM))
    closer = np.abs(loss - ridge) < np.abs(loss - dmmse)
    per_seed = [float(x[np.argmax(row)]) if row.any() else None for row in closer]
    mean, std = _stats(per_seed)
    return {"per_seed_log2": per_seed, "log2_M_mean": mean, "log2_M_std": std}
