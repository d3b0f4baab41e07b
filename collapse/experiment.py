"""Stochastic collapse experiments (Chen et al. 2023), wired end to end.

The module common.app runs: ``validate`` (collapse.validation), ``run`` (below), ``report`` (collapse.report).
``run(config, workdir)``:

1. trained networks (collapse.networks): the digits (or a tfds set) sweeps, one vmapped, checkpointed group per
   static task (collapse.groups), the fraction of independent neurons per layer at every checkpoint; the
   noise-scale sweep (SGD along an lr axis and a batch axis beside full-batch GD trained as long) and the
   weight-decay sweep with its label-noise, weight-decay and large-lr-early settings (Fig. 3, 4, 6);
2. the simulations (collapse.simulations): local attractivity of the SDE / SGD toys, predicted threshold vs the
   measured exit problem (Fig. 1-3), and the linear teacher-student (Fig. 5);
3. summaries to results.json (collapse.summary) and the figures (collapse.figures).
"""

from __future__ import annotations

import os
from typing import Any

import jax
import ml_collections
from absl import logging

from collapse import figures, simulations, summary
from collapse.networks import trained_networks
from collapse.report import report  # noqa: F401  (the experiment contract of common.app)
from collapse.validation import validate  # noqa: F401
from common import metrics


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    """Runs every experiment; returns the results dict (keys documented in collapse/README.md)."""
    key = jax.random.key(config.seed)
    k_sde, k_ts = jax.random.split(key)
    with metrics.MetricWriter(os.path.join(workdir, "metrics.jsonl")) as writer:
        nets = trained_networks(config, workdir, writer)
    logging.info("networks done; attractivity toys")
    sde = simulations.attractivity(config, k_sde)
    sde["quartic"]["_trajectories"] = simulations.quartic_illustration(config, k_sde)
    logging.info("teacher-student")
    tsr = simulations.teacher_student(config, k_ts)
    figures.draw_all(
        workdir,
        nets,
        sde,
        tsr,
        base_setting=f"lr={config.sweep.base_lr:g}",
        base_wd=float(config.sweep.base_weight_decay),
        lr_high=float(config.large_lr.lr_high),
    )
    return figures.strip_private(summary.results_json(nets, sde, tsr, config.net.arch))
