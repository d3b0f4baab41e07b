"""The figures of a pruning run (written to workdir/figures)."""

from __future__ import annotations

import numpy as np
from matplotlib.ticker import NullFormatter

from common import plotting

KINDS = ("magnitude", "random")

_LABELS = {
    "imp": "IMP, rewind to k > 0",
    "no_rewind": "IMP, no rewinding (k = 0)",
    "random_pruning": "IMP mask shuffled per layer",
    "random_reinit": "IMP mask, re-initialised",
    "retrain_final": "retrain from final weights",
    "one_shot": "one-shot magnitude",
}


def figure_error_vs_density(res: dict, path: str) -> None:
    fig, ax = plotting.figure(width=6.0, height=4.0)
    entries = {"imp": res["imp"], **res["ablations"]}
    colors = plotting.palette(len(entries))
    for (name, e), c in zip(entries.items(), colors, strict=True):
        d = np.asarray(e["density"])
        m, s = np.asarray(e["test_error"]["mean"]), np.asarray(e["test_error"]["std"])
        ax.plot(d, m, "o-", ms=3, color=c, label=_LABELS.get(name, name))
        ax.fill_between(d, m - s, m + s, color=c, alpha=0.15, lw=0)
    ax.axhline(res["matching_threshold"], color="k", ls="--", lw=1, label="matching threshold")
    ax.set_xscale("log")
    ax.invert_xaxis()
    ax.set_xlabel("density (fraction of kernel weights remaining)")
    ax.set_ylabel("test error")
    top = max(res["matching_threshold"] * 3, 0.2)
    ax.set_ylim(0, min(1.0, top))
    ax.set_title("Test error vs density (mean ± std over seeds)")
    ax.legend(loc="lower left")
    plotting.save(fig, path)


def figure_barrier_vs_density(res: dict, path: str) -> None:
    """Successive-level barriers of IMP (k > 0) and IMP without rewinding (k = 0): filled = matching level."""
    fig, axes = plotting.figure(1, 2, width=10.0, height=3.8)
    series = [("imp", res["imp"], "#0072B2", "o")]
    if "no_rewind" in res["ablations"]:
        series.append(("no_rewind", res["ablations"]["no_rewind"], "#D55E00", "s"))
    for ax, key, label in (
        (axes[0], "barrier_error", "test-error barrier"),
        (axes[1], "barrier_loss", "train-loss barrier"),
    ):
        for name, e, c, mk in series:
            d = np.asarray(e["density"])[1:]
            y = np.asarray(e[key]["mean"])[1:]
            s = np.asarray(e[key]["std"])[1:]
            match = np.asarray(e["matching"], bool)[1:]
            ax.errorbar(d, y, yerr=s, color=c, lw=1, alpha=0.5, zorder=1)
            ax.scatter(d[match], y[match], color=c, marker=mk, zorder=2, label=f"{_LABELS[name]}: matching")
            ax.scatter(d[~match], y[~match], facecolors="none", edgecolors=c, marker=mk, zorder=2, label="not matching")
        st = res["stability"]
        if "twin_" + key in st:
            ax.plot(st["density"], st["twin_" + key]["mean"], "^:", ms=3, color="#009E73", lw=1, label="twin (k > 0)")
        ax.axhline(res["barrier_tolerance"] if key == "barrier_error" else 0.0, color="k", ls="--", lw=0.8)
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.invert_xaxis()
        ax.set_xlabel("density at level L")
        ax.set_ylabel(label)
        ax.set_title(f"{label} between levels L-1 and L")
    axes[0].legend(loc="upper left", fontsize=7)
    plotting.save(fig, path)


def figure_prune_fraction(flat: dict, path: str) -> None:
    levels = [k for k in flat if k.startswith("level_")]
    fig, axes = plotting.figure(1, len(levels) + 1, width=4.2 * (len(levels) + 1), height=3.6)
    axes = np.atleast_1d(axes)
    colors = {"random": "#D55E00", "magnitude": "#0072B2"}
    p = np.asarray(flat["fractions"])
    for ax, key in zip(axes[:-1], levels, strict=True):
        e = flat[key]
        for kind in KINDS:
            ax.plot(p, e[kind]["success_fraction"], "o-", color=colors[kind], label=f"{kind}: retrained within ε")
            ax.axvline(e[kind]["predicted"], color=colors[kind], ls="--", lw=1)
            ax.axvline(e[kind]["measured"], color=colors[kind], ls=":", lw=1.5)
        ax.set_xlabel("fraction pruned in one iteration")
        ax.set_ylabel("fraction of seeds whose subspace training reaches loss + ε")
        ax.set_title(f"level {e['level']} (dashed: predicted, dotted: measured)")
        ax.set_ylim(-0.05, 1.05)
    axes[0].legend(loc="lower left")
    ax = axes[-1]
    for key in levels:
        for kind in KINDS:
            e = flat[key][kind]
            ax.scatter(
                e["measured_per_seed"], e["predicted_per_seed"], color=colors[kind], alpha=0.7, label=f"{kind} ({key})"
            )
    ax.plot([0, 1], [0, 1], "k--", lw=1)
    ax.set_xlabel("measured largest fraction")
    ax.set_ylabel("predicted largest fraction")
    ax.set_title("Predicted vs measured (per seed)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(loc="upper left", fontsize=7)
    plotting.save(fig, path)


def figure_magnitudes(mags: dict, fraction: float, level: int, path: str) -> None:
    fig, ax = plotting.figure(width=5.5, height=3.8)
    hi = float(max(mags["before"].max(), mags["after"].max()))
    bins = np.linspace(0, hi, 60)
    ax.hist(mags["before"], bins=bins, alpha=0.6, color="#D55E00", label="at the rewind point (before retraining)")
    ax.hist(mags["after"], bins=bins, alpha=0.6, color="#0072B2", label="after retraining")
    thr = float(np.quantile(mags["after"], fraction))
    ax.axvline(thr, color="k", ls="--", lw=1, label=f"next level's threshold ({fraction:.0%} pruned)")
    ax.set_xlabel("|w| of the surviving kernel weights")
    ax.set_ylabel("count")
    ax.set_title(f"Retraining creates new small weights (level {level})")
    ax.legend()
    plotting.save(fig, path)


def figure_instability(inst: dict, tol: float, path: str) -> None:
    fig, ax = plotting.figure(width=5.0, height=3.6)
    ks = np.asarray(inst["k"], float)
    x = np.where(ks > 0, ks, 0.5)
    for key, label, c in (
        ("barrier_error", "test-error barrier", "#0072B2"),
        ("barrier_loss", "train-loss barrier", "#D55E00"),
    ):
        m = np.asarray([v["mean"] for v in inst[key]])
        s = np.asarray([v["std"] for v in inst[key]])
        ax.errorbar(x, m, yerr=s, fmt="o-", color=c, label=label, capsize=3)
    ax.axhline(tol, color="k", ls="--", lw=1, label="barrier tolerance")
    ax.set_xscale("log")
    ax.set_xticks(x, [str(int(k)) for k in ks])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("rewind step k (0 plotted at 0.5)")
    ax.set_ylabel("barrier between two copies from w_k")
    ax.set_title("Instability to SGD noise vs k (dense network)")
    ax.legend()
    plotting.save(fig, path)
