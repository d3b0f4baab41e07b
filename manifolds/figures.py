"""The figures of a manifolds run (PNG files in workdir/figures), drawn from the results and the estimates."""

from __future__ import annotations

import os

import numpy as np

from common import plotting
from manifolds import cutting_planes as cp
from manifolds import summary


def _curve_panel(ax, res: cp.CriticalDimension, title: str):
    dims = np.asarray(res.dims, float)
    c0, c1 = plotting.palette(2)
    ax.plot(dims, res.success_rate, "o", ms=3, color=c0, label="success rate")
    ax.plot(dims, res.max_prob, "s", ms=3, color=c1, label="max target prob.")
    fine = np.geomspace(dims[0], dims[-1], 200)
    for fit, color in ((res.d_star_success.get("fit"), c0), (res.d_star_probability.get("fit"), c1)):
        if fit:
            y = fit["lo"] + (fit["hi"] - fit["lo"]) / (1 + np.exp(-(np.log(fine) - fit["mu"]) / fit["w"]))
            ax.plot(fine, y, "-", color=color, lw=1)
    ax.axvline(res.d_star, color="k", ls="--", lw=1)
    ax.set_xscale("log")
    ax.set_ylim(-0.03, 1.03)
    ax.set_title(f"{title}: d*={res.d_star:.2f}", fontsize=9)


@plotting.styled
def per_class(path: str, results: dict, curves: dict[str, cp.CriticalDimension], model: str) -> None:
    classes = list(results["d_star"])
    ncols = min(5, len(classes))
    nrows = -(-len(classes) // ncols)
    fig, axes = plotting.figure(nrows, ncols, width=2.6 * ncols, height=2.3 * nrows)
    axes = np.atleast_1d(axes).ravel()
    for ax, c in zip(axes, classes, strict=False):
        _curve_panel(ax, curves[f"{model}/class{c}"], f"class {c}")
    for ax in axes[len(classes) :]:
        ax.set_visible(False)
    axes[0].legend(fontsize=6)
    for ax in axes[-ncols:]:
        ax.set_xlabel("cutting-plane dimension d")
    fig.suptitle(f"class manifolds, MLP on {results['data_source']} (D={results['D']})", fontsize=10)
    plotting.save(fig, path)


@plotting.styled
def boundaries(path: str, results: dict, curves: dict[str, cp.CriticalDimension], model: str) -> None:
    sets = list(results["d_star_boundary_sets"])
    fig, axes = plotting.figure(1, len(sets) + 1, width=2.6 * (len(sets) + 1), height=2.6)
    axes = np.atleast_1d(axes)
    for ax, s in zip(axes, sets, strict=False):
        _curve_panel(ax, curves[f"{model}/boundary{s}"], f"boundary {s}")
        ax.set_xlabel("d")
    kb = results["d_star_boundary"]
    ks = sorted(kb, key=int)
    axes[-1].plot([int(k) for k in ks], [kb[k]["value"] for k in ks], "o-")
    axes[-1].set_xlabel("classes k (1 = class manifold)")
    axes[-1].set_ylabel("d*")
    axes[-1].set_title("k-class boundaries", fontsize=9)
    axes[0].legend(fontsize=6)
    plotting.save(fig, path)


_PANELS = (
    ("training step", "d_star_by_epoch", "symlog"),
    ("hidden width", "d_star_by_width", "log"),
    ("training-set size (equal epochs)", "d_star_by_train_size", "log"),
    ("ensemble members", "d_star_ensemble", "log"),
    ("certainty threshold", "d_star_by_threshold", "linear"),
    ("labels (test-image starts)", "d_star_random_labels", None),
    ("labels (training-image starts)", "d_star_random_labels_train_starts", None),
)


def _trend_panel(ax, label: str, d: dict, scale: str | None, trend: dict | None) -> None:
    keys = list(d)
    vals = [d[k]["value"] for k in keys]
    errs = [d[k].get("error") or 0.0 for k in keys]
    if scale is None:
        ax.bar(range(len(keys)), vals, yerr=errs, color=plotting.palette(len(keys)), capsize=3)
        ax.set_xticks(range(len(keys)), keys, fontsize=7)
    else:
        xs = [float(k) for k in keys]
        for s in range(max(len(d[k].get("per_seed", [])) for k in keys)):
            ys = [d[k]["per_seed"][s] if s < len(d[k].get("per_seed", [])) else np.nan for k in keys]
            ax.plot(xs, ys, "-", color="0.8", lw=0.8)
        ax.errorbar(xs, vals, yerr=errs, marker="o", capsize=2)
        ax.set_xscale(scale, **({"linthresh": 5} if scale == "symlog" else {}))
        if scale == "log":
            ax.minorticks_off()
            ax.set_xticks(xs, keys, fontsize=7)
    if trend:
        verdict = "holds" if trend["holds"] else ("opposite" if trend["opposite"] else "not resolved")
        ax.set_title(f"Δd*={trend['delta']:+.2f}±{trend['error']:.2f} ({verdict})", fontsize=7)
    ax.set_xlabel(label)


@plotting.styled
def variables(path: str, results: dict, variable_classes) -> None:
    """d* (mean over the variable classes; mean ± s.e. over seeds, seeds in grey) against each variable, and
    corrupted accuracy against effective dimension."""
    names = {v[0]: k for k, v in summary.TRENDS.items()}
    panels = [p for p in _PANELS if results.get(p[1])]
    fig, axes = plotting.figure(1, len(panels) + 1, width=2.8 * (len(panels) + 1), height=2.9)
    axes = np.atleast_1d(axes)
    for ax, (label, key, scale) in zip(axes, panels, strict=False):
        _trend_panel(ax, label, results[key], scale, results.get("trends", {}).get(names.get(key)))
    axes[0].set_ylabel(f"d* (mean over classes {tuple(variable_classes)})")
    rob = results["robustness"]
    ax = axes[-1]
    ax.scatter([r["effective_dimension"] for r in rob.values()], [r["corrupted_acc"] for r in rob.values()], s=12)
    for n, r in rob.items():
        ax.annotate(n.split("/")[-1], (r["effective_dimension"], r["corrupted_acc"]), fontsize=5)
    ax.set_xlabel("effective dimension D - d*")
    ax.set_ylabel(f"accuracy, Gaussian noise σ={results['robustness_sigma']:g}")
    plotting.save(fig, path)


@plotting.styled
def known_answers(path: str, known: dict) -> None:
    fig, axes = plotting.figure(1, len(known), width=2.6 * len(known), height=2.5)
    axes = np.atleast_1d(axes)
    for ax, (name, row) in zip(axes, known.items(), strict=True):
        for label, color in (("ours", plotting.palette(2)[0]), ("released", plotting.palette(2)[1])):
            if label not in row:
                continue
            ax.plot(row["dims"], row[label]["success_rate"], "o-", ms=3, color=color,
                    label=f"{label}: d*={row[label]['d_star']:.2f}")  # fmt: skip
        ax.axvline(row["truth"], color="k", ls=":", lw=1)
        ax.set_title(f"{name}, {row['where']} (truth {row['truth']})", fontsize=8)
        ax.set_xlabel("d")
        ax.legend(fontsize=6)
    axes[0].set_ylabel("success rate")
    plotting.save(fig, path)


def draw(workdir: str, results: dict, est, config) -> None:
    """Writes every PNG into workdir/figures."""
    fig_dir = os.path.join(workdir, "figures")
    model = results["models"]["per_class"]
    per_class(os.path.join(fig_dir, "d_star_per_class.png"), results, est.curves, model)
    if results["d_star_boundary_sets"]:
        boundaries(os.path.join(fig_dir, "d_star_boundaries.png"), results, est.curves, model)
    variables(os.path.join(fig_dir, "d_star_vs_variables.png"), results, config.variable_classes)
    known_answers(os.path.join(fig_dir, "known_answer_budget.png"), results["known_answer"])
