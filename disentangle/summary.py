"""Scores of trained runs and their summaries over seeds (the numbers results.json holds)."""

from __future__ import annotations

from typing import Any

import numpy as np
from absl import logging

from disentangle import metrics as dm

KEYS = ("mir", "mig", "recon", "info_m", "info_c", "modularity", "num_active")


def mean_std(values) -> tuple[float, float]:
    a = np.asarray(values, np.float64)
    return float(a.mean()), float(a.std())


def synthetic_scores(out: dict, config) -> dict[str, Any]:
    """Every metric of one synthetic run on its training distribution, plus MIR / MIG on independent factors."""
    kw = {"num_bins": config.eval.num_bins, "factor_bins": config.eval.factor_bins}
    kw["activity_threshold"] = config.eval.activity_threshold
    m = dm.mutual_information(out["code"], out["factors"], **kw)
    s: dict[str, Any] = dm.scores(m)
    ind = dm.mutual_information(out["code_independent"], out["factors_independent"], **kw)
    s["mir_on_independent"] = dm.mir(ind)
    s["mig_on_independent"] = dm.mig(ind)
    s["recon"] = float(out["recon"])
    s["mi"] = m.mi
    return s


def summarise(runs: list[dict], keys=KEYS) -> dict[str, Any]:
    """Mean, std and per-seed values of each key over the runs (seeds) of one row."""
    out: dict[str, Any] = {}
    for k in keys:
        out[k], out[k + "_std"] = mean_std([r[k] for r in runs])
        out[k + "_per_seed"] = [float(r[k]) for r in runs]
    return out


def vae_scores(out: dict, factors: np.ndarray, config) -> dict[str, Any]:
    """MIG / MIR / ... of one VAE's posterior means against the image factors (each factor value a class, as
    disentanglement_lib), its NLL and KL; a run whose every mean is constant scores 0 with a warning."""
    try:
        m = dm.mutual_information(
            out["code"], factors, num_bins=config.eval.num_bins, activity_threshold=config.eval.activity_threshold
        )
        s: dict[str, Any] = {**dm.scores(m), "mi": m.mi}
    except ValueError as e:  # every posterior mean collapsed to a constant: no information at all
        logging.warning("vae run: %s", e)
        s = {"mir": 0.0, "mig": 0.0, "info_m": 0.0, "info_c": 0.0, "modularity": 0.0, "num_active": 0, "mi": None}
    s.update(nll=float(out["nll"]), kl=float(out["kl"]))
    return s
