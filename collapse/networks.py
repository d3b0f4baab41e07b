"""The trained-network experiments: every SGD group, its full-batch GD controls, and their summaries.

``trained_networks`` returns the summaries the report and the figures read (keys below); every number is a mean
(and sd) over the seeds of a setting, computed in :mod:`collapse.summary`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import ml_collections
import numpy as np

from collapse import groups as grp
from collapse import invariant_sets as inv
from collapse import summary


def trained_networks(config: ml_collections.ConfigDict, workdir: str, writer) -> dict[str, Any]:
    """All digits sweeps and their full-batch GD controls: per-setting fractions (mean and sd over seeds),
    vanishing / merged parts, accuracies, the GD controls' fractions beside SGD's at the same step, the
    large-lr-early numbers as released (fraction at the drop, accuracy after a fixed fine-tune) and the
    noise-scale sweep (SGD against full-batch GD run as long, along an lr axis and a batch axis)."""
    ds, arrays = grp.load(config)
    arch = config.net.arch
    out: dict[str, Any] = {
        "fraction": {},
        "fraction_sd": {},
        "parts": {},
        "test_acc": {},
        "source": ds.source,
        "arch": arch,
        "layer_names": {},
    }
    # The noise-scale sweep first: the headline of Fig. 4 (each group is independent of the others' order).
    out["noise"] = _noise_sweep(config, ds, arrays, workdir, writer, out) if _noise_enabled(config) else {}
    groups = grp.sweep_groups(config)
    results: dict[str, dict] = {}
    for g in groups:
        results[g.name] = _train(g, config, ds, arrays, workdir, writer, out)
        for setting, idx in g.settings.items():
            summary.add_setting(out, f"{g.arch} {setting}", results[g.name]["parts"][idx], results[g.name]["acc"][idx])
    main = groups[0]
    out["main_settings"] = main.settings
    out["main_history"] = results["main"]["history"]
    out["num_steps"] = int(config.train.num_steps)
    _gd_controls(config, ds, arrays, workdir, writer, groups, results, out)
    out["heatmap"] = _heatmaps(config, main, results)
    out["large_lr"], out["large_lr_fixed_budget"] = summary.large_lr(
        config, main.settings, results["main"]["history"], out
    )
    return out


def _noise_enabled(config: ml_collections.ConfigDict) -> bool:
    return "noise" in config and bool(config.noise.enabled)


def _train(g: grp.Group, config, ds, arrays, workdir: str, writer, out: dict) -> dict:
    """Trains one group and records its architecture's layer names."""
    res = grp.train_group(g, grp.make_task(config, ds, g), arrays, config, workdir, writer)
    first = jax.tree.map(lambda a: np.asarray(a[0]), res["state"]["params"])
    out["layer_names"].setdefault(g.arch, inv.layer_names(first, grp.resnet_options(config)["scheme"]))
    return res


def _gd_controls(config, ds, arrays, workdir: str, writer, groups: list[grp.Group], results: dict, out: dict):
    """Full-batch GD on the same expected loss (label noise as soft targets) with each setting's lr schedule and
    weight decay, one seed, for ``gd.num_steps``; compared with SGD's fraction at that step. The batch-size groups
    share the main group's control of the base setting."""
    gd_steps = int(config.gd.num_steps)
    out["gd_steps"] = gd_steps
    out["gd_fraction"], out["sgd_fraction_at_gd_steps"], out["gd_test_acc"], out["gd_label_noise"] = {}, {}, {}, {}
    if not config.gd.enabled:
        return
    for g in groups:
        twins, twin_of = _twins(config, g, gd_steps)
        if not twins:
            continue
        gd_name = "gd" if g.name in ("main",) or g.name.startswith("batch") else f"gd_{g.name}"
        if not g.name.startswith("batch"):  # batch groups: the same control as the main group's base setting
            gd_group = dataclasses.replace(
                g, name=gd_name, rows=twins, settings={}, num_steps=gd_steps, full_batch=True
            )
            gd_group.batch_size = int(config.train.batch_size)
            results[gd_name] = _train(gd_group, config, ds, arrays, workdir, writer, out)
            results[gd_name]["rows"] = twins
        gd = results[gd_name]
        hist = results[g.name]["history"].get(gd_steps)
        for setting, idx in g.settings.items():
            if setting not in twin_of:
                continue
            key = f"{g.arch} {setting}"
            j = gd["rows"].index(twins[twin_of[setting]])
            out["gd_fraction"][key] = gd["parts"][j, :, 0]
            out["gd_test_acc"][key] = float(gd["acc"][j])
            out["gd_label_noise"][key] = float(twins[twin_of[setting]]["label_noise"])
            if hist is not None:
                out["sgd_fraction_at_gd_steps"][key] = hist["parts"][idx, :, 0].mean(axis=0)
    results["_gd_steps"] = gd_steps


def _twins(config, g: grp.Group, gd_steps: int) -> tuple[list[dict], dict[str, int]]:
    """The distinct GD control rows of a group's settings (seed ``config.seed``) and setting -> control index."""
    twins: list[dict] = []
    twin_of: dict[str, int] = {}
    for setting, idx in g.settings.items():
        if g.name == "main" and setting.startswith("large_lr=") and not config.gd.large_lr:
            continue
        t = grp.gd_row(dict(g.rows[idx[0]], seed=config.seed), gd_steps)
        if t not in twins:
            twins.append(t)
        twin_of[setting] = twins.index(t)
    return twins, twin_of


def _heatmaps(config, main: grp.Group, results: dict) -> dict[str, np.ndarray]:
    """Fig. 3: the first layer's neuron vectors of the base setting, SGD and its GD control."""
    s = config.sweep
    base_key = f"lr={s.base_lr:g}"
    if config.net.arch != "mlp" or base_key not in main.settings:
        return {}
    th = grp.thresholds(config)
    i = main.settings[base_key][0]
    run_params = jax.tree.map(lambda a: a[i], results["main"]["state"]["params"])
    out = {f"SGD {base_key} ({config.train.num_steps} steps): fc1 neurons": summary.sorted_neurons(run_params, th)}
    if "gd" in results:
        gd_steps = results["_gd_steps"]
        j = results["gd"]["rows"].index(grp.gd_row(dict(main.rows[i], seed=config.seed), gd_steps))
        gd_params = jax.tree.map(lambda a: a[j], results["gd"]["state"]["params"])
        out[f"full-batch GD {base_key} ({gd_steps} steps): fc1 neurons"] = summary.sorted_neurons(gd_params, th)
    return out


def _noise_sweep(config, ds, arrays, workdir: str, writer, out: dict) -> dict[str, Any]:
    """SGD along the lr and batch axes and full-batch GD at every lr, all for ``noise.num_steps``."""
    sgd: dict[str, dict] = {}
    gd: dict[str, dict] = {}
    for g in grp.noise_groups(config):
        res = _train(g, config, ds, arrays, workdir, writer, out)
        for setting, idx in g.settings.items():
            (gd if g.full_batch else sgd)[setting] = {
                "parts": res["parts"][idx],
                "acc": res["acc"][idx],
            }
    return summary.noise_points(config.noise, sgd, gd, out["layer_names"][config.net.arch])
