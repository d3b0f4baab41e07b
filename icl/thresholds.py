"""Two estimates of the task-diversity threshold M* from per-seed curves over M (Raventós et al. 2023, Sec. 4).

- `closer_to_ridge` (from the prediction distances): the smallest M from which on the model's predictions on T_True
  stay closer to Ridge's than to dMMSE's, Delta(model, Ridge) < Delta(model, dMMSE) at that M and every larger one.
  Interpolated linearly in log2 M where log(Delta_Ridge / Delta_dMMSE) crosses 0.
- `batch_crossing` (the paper's): train at two batch sizes. Below M*, more data per task pulls the model toward
  dMMSE, so the larger batch is further from Ridge; above M*, it is closer. M* is where the two distance-to-Ridge
  curves cross: the last sign change from + to - of d(M) = Delta_large(M) - Delta_small(M), interpolated linearly
  in log2 M.
Both return log2 M* per seed (None where the sweep does not bracket it), and over the seeds that bracket it the mean,
the standard error (`log2_M_se`, sample std / sqrt(n); 0 for one seed) and `num_seeds` n.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def _interp_zero(x0: float, x1: float, d0: float, d1: float) -> float:
    return x0 + d0 / (d0 - d1) * (x1 - x0)


def _crossing(log2_ms: np.ndarray, diff: np.ndarray) -> tuple[float | None, list | None]:
    """Last + to - sign change of `diff` (log2-linear interpolation), or None."""
    pos = np.flatnonzero(diff > 0)
    if pos.size == 0 or pos[-1] == diff.size - 1:
        return None, None
    i = int(pos[-1])
    x0, x1 = float(log2_ms[i]), float(log2_ms[i + 1])
    return _interp_zero(x0, x1, float(diff[i]), float(diff[i + 1])), [x0, x1]


def _stats(values: list[float | None]) -> dict:
    ok = [v for v in values if v is not None]
    if not ok:
        return {"log2_M_mean": None, "log2_M_se": None, "num_seeds": 0}
    se = float(np.std(ok, ddof=1) / math.sqrt(len(ok))) if len(ok) > 1 else 0.0
    return {"log2_M_mean": float(np.mean(ok)), "log2_M_se": se, "num_seeds": len(ok)}


def batch_crossing(log2_ms: Sequence[float], dist_small_SxM: np.ndarray, dist_large_SxM: np.ndarray) -> dict:
    """M* where the distance-to-Ridge curves of the small- and large-batch models cross (the paper's definition).

    Inputs: log2 M of each (finite) sweep point and the distances per seed [S, M] at the two batch sizes.
    Returns `log2_M` (from the seed-averaged curves), `interval_log2` (the bracketing sweep points), `per_seed_log2`,
    `log2_M_mean`, `log2_M_se`, `num_seeds` (over seeds that bracket it) and `diff` (the seed-averaged d(M)).
    """
    x = np.asarray(log2_ms, float)
    small, large = np.asarray(dist_small_SxM, float), np.asarray(dist_large_SxM, float)
    if small.shape != large.shape or small.shape[-1] != x.size:
        raise ValueError(f"shapes {small.shape}, {large.shape} do not match {x.size} values of M")
    diff = large.mean(0) - small.mean(0) if x.size else np.zeros(0)
    est, interval = _crossing(x, diff)
    per_seed = [_crossing(x, large[s] - small[s])[0] for s in range(small.shape[0])]
    return {
        "log2_M": est,
        "interval_log2": interval,
        "per_seed_log2": per_seed,
        **_stats(per_seed),
        "diff": diff.tolist(),
    }


def _first_stays_closer(x: np.ndarray, log_ratio: np.ndarray) -> float | None:
    """Interpolated log2 M from which on log(Delta_Ridge / Delta_dMMSE) < 0 holds for every larger M."""
    closer = log_ratio < 0
    if closer.size == 0 or not closer[-1]:
        return None
    j = closer.size - 1
    while j > 0 and closer[j - 1]:
        j -= 1
    if j == 0:
        return None  # already closer to Ridge at the smallest M: the sweep does not bracket M*
    return _interp_zero(float(x[j - 1]), float(x[j]), float(log_ratio[j - 1]), float(log_ratio[j]))


def closer_to_ridge(log2_ms: Sequence[float], dist_ridge_SxM: np.ndarray, dist_dmmse_SxM: np.ndarray) -> dict:
    """M* from the prediction distances on T_True (see the module docstring), per seed and from the seed means.

    Returns `log2_M` (seed-mean distances), `per_seed_log2`, `log2_M_mean`, `log2_M_se`, `num_seeds`.
    """
    x = np.asarray(log2_ms, float)
    dr, dd = np.asarray(dist_ridge_SxM, float), np.asarray(dist_dmmse_SxM, float)
    if dr.shape != dd.shape or dr.shape[-1] != x.size:
        raise ValueError(f"shapes {dr.shape}, {dd.shape} do not match {x.size} values of M")
    tiny = 1e-30
    per_seed = [_first_stays_closer(x, np.log(dr[s] + tiny) - np.log(dd[s] + tiny)) for s in range(dr.shape[0])]
    mean_curve = np.log(dr.mean(0) + tiny) - np.log(dd.mean(0) + tiny) if x.size else np.zeros(0)
    return {"log2_M": _first_stays_closer(x, mean_curve), "per_seed_log2": per_seed, **_stats(per_seed)}
