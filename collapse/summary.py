"""Summaries of trained runs over seeds (pure numpy): per-setting means, the large-lr-early protocol, the
noise-scale sweep's points, the Fig. 3 heatmap order, and the results.json layout."""

from __future__ import annotations

from typing import Any

import ml_collections
import numpy as np

from collapse import invariant_sets as inv


def add_setting(out: dict, key: str, parts: np.ndarray, acc: np.ndarray) -> None:
    """Mean over the setting's runs: independent fraction (and sd), vanishing / merged fractions, accuracy."""
    out["fraction"][key] = parts[:, :, 0].mean(axis=0)
    out["fraction_sd"][key] = parts[:, :, 0].std(axis=0)
    out["parts"][key] = {"vanishing": parts[:, :, 1].mean(axis=0), "merged": parts[:, :, 2].mean(axis=0)}
    out["test_acc"][key] = float(np.mean(acc))


def sorted_neurons(params, th: dict) -> np.ndarray:
    """The first hidden layer's neuron vectors (incoming, bias, outgoing) with neurons ordered by group, the
    largest group first and the vanishing neurons last (the released Fig. 3 heatmaps)."""
    vec = inv.neuron_vectors(params, 0)
    lay = inv.analyse_layer(vec, th["vanish_threshold"], th["identical_threshold"])
    order = [i for g in sorted(lay.groups, key=len, reverse=True) for i in g]
    order += [int(i) for i in np.flatnonzero(lay.vanishing)]
    return vec[order]


def large_lr(config: ml_collections.ConfigDict, settings: dict, hist: dict, nets: dict) -> tuple[dict, dict]:
    """Large lr early, as released (FIG6): the fraction at the drop and the accuracy after a fixed fine-tune at
    lr_low; and the same runs read at the end of training (``large_lr_fixed_budget``)."""
    ll, arch = config.large_lr, config.net.arch
    released, fixed = {}, {}
    for d in ll.durations:
        idx = settings[f"large_lr={int(d)}"]
        at_drop = hist.get(int(d))
        after = hist.get(int(d) + int(ll.finetune_steps))
        if at_drop is not None and after is not None:
            released[str(int(d))] = {
                "independent_fraction": at_drop["parts"][idx, :, 0].mean(axis=0),
                "test_acc": float(after["acc"][idx].mean()),
            }
        fixed[str(int(d))] = {
            "independent_fraction": nets["fraction"][f"{arch} large_lr={int(d)}"],
            "test_acc": nets["test_acc"][f"{arch} large_lr={int(d)}"],
        }
    return released, fixed


def spread(x: np.ndarray) -> np.ndarray:
    """The seed spread: sample standard deviation over axis 0 (0 for a single run)."""
    x = np.asarray(x, np.float64)
    return x.std(axis=0, ddof=1) if x.shape[0] > 1 else np.zeros(x.shape[1:])


def _point(lr: float, batch: int, sgd: dict, gd: dict) -> dict[str, Any]:
    """One point of the noise sweep: SGD's and its control's independent fraction per run and layer, their seed
    means and spreads, and the noise scale lr / batch."""
    s, g = sgd["parts"][:, :, 0], gd["parts"][:, :, 0]
    return {
        "lr": float(lr),
        "batch": int(batch),
        "noise_scale": float(lr) / int(batch),
        "sgd": s,
        "gd": g,
        "sgd_mean": s.mean(axis=0),
        "sgd_sd": spread(s),
        "gd_mean": g.mean(axis=0),
        "gd_sd": spread(g),
        "sgd_test_acc": float(np.mean(sgd["acc"])),
        "sgd_test_acc_min": float(np.min(sgd["acc"])),
        "gd_test_acc": float(np.mean(gd["acc"])),
        "sgd_vanishing": sgd["parts"][:, :, 1].mean(axis=0),
        "sgd_merged": sgd["parts"][:, :, 2].mean(axis=0),
    }


def noise_points(
    n: ml_collections.ConfigDict, sgd: dict[str, dict], gd: dict[str, dict], layers: list[str]
) -> dict[str, Any]:
    """The noise sweep by axis, points in increasing noise scale lr / batch: the lr axis at batch
    ``n.lr_axis_batch`` (each lr with its own full-batch control) and the batch axis at lr ``n.batch_axis_lr``
    (one control for all). ``sgd`` / ``gd``: setting name -> {"parts": [R, layers, 3], "acc": [R]}; ``layers``:
    the analysed layers' names."""
    b0, lr0 = int(n.lr_axis_batch), float(n.batch_axis_lr)
    lr_axis = [_point(lr, b0, sgd[f"lr={lr:g} batch={b0}"], gd[f"lr={lr:g}"]) for lr in n.lrs]
    batch_axis = [_point(lr0, b, sgd[f"lr={lr0:g} batch={b}"], gd[f"lr={lr0:g}"]) for b in n.batch_sizes]
    return {
        "weight_decay": float(n.weight_decay),
        "label_noise": float(n.get("label_noise", 0.0)),
        "warmup_steps": int(n.get("warmup_steps", 0)),
        "num_steps": int(n.num_steps),
        "num_seeds": int(n.num_seeds),
        "gd_num_seeds": int(n.gd_num_seeds),
        "min_test_acc": float(n.min_test_acc),
        "layers": list(layers),
        "lr_axis": {"batch": b0, "points": sorted(lr_axis, key=lambda p: p["noise_scale"])},
        "batch_axis": {"lr": lr0, "points": sorted(batch_axis, key=lambda p: p["noise_scale"])},
    }


def results_json(nets: dict, sde: dict, tsr: dict, arch: str) -> dict[str, Any]:
    """The results.json layout (documented in collapse/README.md) from the parts' outputs (``arch``: the main
    network's architecture; its large-lr settings are reported apart)."""
    independent = {k: v for k, v in nets["fraction"].items() if f"{arch} large_lr=" not in k}
    return {
        "sde": sde,
        "independent_fraction": independent,
        "vanishing_fraction": {k: v["vanishing"] for k, v in nets["parts"].items() if k in independent},
        "merged_fraction": {k: v["merged"] for k, v in nets["parts"].items() if k in independent},
        "test_acc": {k: v for k, v in nets["test_acc"].items() if k in independent},
        "gd_control": {
            "steps": nets["gd_steps"],
            "gd_independent_fraction": nets["gd_fraction"],
            "sgd_independent_fraction": nets["sgd_fraction_at_gd_steps"],
            "gd_test_acc": nets["gd_test_acc"],
            "label_noise": nets["gd_label_noise"],
        },
        "noise_scale": nets.get("noise", {}),
        "teacher_student": {
            k: {kk: vv for kk, vv in v.items() if kk != "products"} for k, v in tsr.items() if not k.startswith("_")
        },
        "large_lr": nets["large_lr"],
        "large_lr_fixed_budget": nets["large_lr_fixed_budget"],
        "independent_fraction_layers": nets["layer_names"],
        "data_source": nets["source"],
    }
