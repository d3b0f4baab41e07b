"""The paper's figures from a results dict: loss vs M (Figure 1's shape), distances vs M, loss vs context position,
M* vs D, the early-stopping step vs M, and the weight-decay and model-size sweeps. Bands are +- one standard error
over seeds. M = inf is drawn one and a half octaves to the right of the largest finite M.
"""

from __future__ import annotations

import math

import numpy as np

from common import plotting


def _x_positions(ms: list) -> tuple[np.ndarray, list[str]]:
    finite = [math.log2(m) for m in ms if m != "inf"]
    top = max(finite) if finite else 0.0
    xs = np.array([top + 1.5 if m == "inf" else math.log2(m) for m in ms])
    labels = ["∞" if m == "inf" else f"$2^{{{int(round(math.log2(m)))}}}$" for m in ms]
    return xs, labels


def _set_m_axis(ax, ms: list) -> np.ndarray:
    xs, labels = _x_positions(ms)
    step = max(1, int(math.ceil(len(ms) / 8)))
    keep = [i for i in range(len(ms)) if i % step == 0 or ms[i] == "inf"]
    ax.set_xticks(xs[keep], [labels[i] for i in keep])
    ax.set_xlabel("number of pretraining tasks M")
    return xs


def _with_band(ax, xs, mean, std, color, label, ls="-", **kw):
    mean, std = np.asarray(mean, float), np.asarray(std, float)
    ax.plot(xs, mean, marker="o", linestyle=ls, color=color, label=label, ms=3.5, **kw)
    ax.fill_between(xs, mean - std, mean + std, color=color, alpha=0.2, lw=0)


@plotting.styled
def loss_vs_m(results: dict, path: str) -> str:
    """Figure 1's shape: transformer, dMMSE and Ridge loss vs M on T_Pretrain (left) and T_True (right)."""
    ms = results["M"]
    c_tf, c_dm, c_ri = plotting.palette(3)
    fig, axes = plotting.figure(1, 2, width=9.0, height=3.4, sharey=False)
    for ax, dist, title in ((axes[0], "pretrain", "$T_{Pretrain}$"), (axes[1], "true", "$T_{True}$")):
        xs = _set_m_axis(ax, ms)
        _with_band(ax, xs, results[f"loss_{dist}"], results[f"loss_{dist}_se"], c_tf, "Transformer")
        ax.plot(xs, results[f"dmmse_{dist}"], "s--", color=c_dm, ms=3, label="dMMSE")
        ax.plot(xs, results[f"ridge_{dist}"], "^--", color=c_ri, ms=3, label="Ridge")
        ax.set_title(f"evaluated on {title}")
        ax.set_ylabel(f"MSE / D ({results.get('loss_units', 'noiseless')} target)")
        ax.set_ylim(bottom=0)
    axes[0].legend(loc="best")
    th = results.get("threshold_M", {}).get("closer_to_ridge", {})
    if th and th.get("log2_M") is not None:
        for ax in axes:
            ax.axvline(th["log2_M"], color="0.4", lw=0.8, ls=":")
        axes[1].text(th["log2_M"], axes[1].get_ylim()[1] * 0.95, " M*", color="0.3", va="top", fontsize=8)
    fig.suptitle(
        f"D={results.get('D')}, K={results.get('K')}, σ²={results.get('noise_var')}: "
        f"loss vs task diversity (batch {results['batch_sizes'][0]}, {results.get('num_seeds')} seeds, ± SE)",
        fontsize=10,
    )
    return plotting.save(fig, path)


@plotting.styled
def distance_vs_m(results: dict, path: str) -> str:
    """Distance of the model's predictions to Ridge and dMMSE on T_True vs M; distance to Ridge at both batch sizes."""
    ms = results["M"]
    colors = plotting.palette(4)
    fig, axes = plotting.figure(1, 2, width=9.0, height=3.4)
    xs = _set_m_axis(axes[0], ms)
    _with_band(axes[0], xs, results["dist_ridge"], results["dist_ridge_se"], colors[2], "Δ(Transformer, Ridge)")
    _with_band(axes[0], xs, results["dist_dmmse"], results["dist_dmmse_se"], colors[1], "Δ(Transformer, dMMSE)")
    axes[0].set_yscale("log")
    if "dist_ridge_pretrain" in results:
        _with_band(
            axes[0],
            xs,
            results["dist_ridge_pretrain"],
            results["dist_ridge_pretrain_se"],
            colors[2],
            "(on $T_{Pretrain}$)",
            ls="--",
        )
        _with_band(
            axes[0],
            xs,
            results["dist_dmmse_pretrain"],
            results["dist_dmmse_pretrain_se"],
            colors[1],
            "(on $T_{Pretrain}$)",
            ls="--",
        )
    axes[0].set_ylabel("distance (per D); solid: $T_{True}$")
    axes[0].set_title(f"batch {results['batch_sizes'][0]}")
    axes[0].legend()
    xs = _set_m_axis(axes[1], ms)
    for i, (b, v) in enumerate(results["by_batch_size"].items()):
        _with_band(axes[1], xs, v["dist_ridge"], v["dist_ridge_se"], colors[i * 3 % 4], f"batch {b}")
    th = results["threshold_M"].get("batch_crossing")
    if th and th.get("log2_M") is not None:
        axes[1].axvline(th["log2_M"], color="0.4", lw=0.8, ls=":", label=f"M* ≈ 2^{th['log2_M']:.1f}")
    axes[1].set_yscale("log")
    axes[1].set_ylabel("Δ(Transformer, Ridge)")
    axes[1].set_title("larger batch: toward dMMSE below M*, Ridge above")
    axes[1].legend()
    return plotting.save(fig, path)


@plotting.styled
def loss_vs_position(results: dict, path: str, max_curves: int = 5) -> str:
    """Loss per context position on T_Pretrain and T_True at a few M, with Ridge (dashed) for reference."""
    ms = results["M"]
    pick = np.unique(np.linspace(0, len(ms) - 1, min(max_curves, len(ms))).round().astype(int))
    colors = plotting.palette(len(pick))
    fig, axes = plotting.figure(1, 2, width=9.0, height=3.4, sharey=True)
    for ax, dist, title in ((axes[0], "pretrain", "$T_{Pretrain}$"), (axes[1], "true", "$T_{True}$")):
        for c, j in zip(colors, pick, strict=True):
            curve = np.asarray(results[f"loss_{dist}_per_position"][j])
            k = np.arange(1, curve.size + 1)
            label = "M = ∞" if ms[j] == "inf" else f"M = {ms[j]}"
            ax.plot(k, curve, "o-", color=c, ms=3, label=label)
            if ms[j] != "inf":
                ax.plot(k, results[f"dmmse_{dist}_per_position"][j], ":", color=c, lw=1)
        ridge = np.asarray(results[f"ridge_{dist}_per_position"][pick[-1]])
        ax.plot(np.arange(1, ridge.size + 1), ridge, "k--", lw=1.2, label="Ridge")
        ax.set_xlabel("context position k")
        ax.set_title(f"{title} (dotted: dMMSE of the same M)")
    axes[0].set_ylabel("MSE / D")
    axes[1].legend()
    return plotting.save(fig, path)


@plotting.styled
def threshold_vs_dim(by_dim: dict, path: str) -> str:
    """log2 M* vs D for both estimates (the paper: M* grows with D)."""
    c1, c2 = plotting.palette(2)
    fig, ax = plotting.figure(1, 1, width=4.6, height=3.4)
    dims = sorted(by_dim)
    cross = [by_dim[d]["threshold_M"].get("batch_crossing", {}).get("log2_M") for d in dims]
    close = [by_dim[d]["threshold_M"]["closer_to_ridge"] for d in dims]
    xs = [d for d, v in zip(dims, cross, strict=True) if v is not None]
    ax.plot(xs, [v for v in cross if v is not None], "o-", color=c1, label="batch-size crossing")
    xs2 = [d for d, v in zip(dims, close, strict=True) if v["log2_M_mean"] is not None]
    ax.errorbar(
        xs2,
        [v["log2_M_mean"] for v in close if v["log2_M_mean"] is not None],
        [v["log2_M_se"] for v in close if v["log2_M_mean"] is not None],
        fmt="s--",
        color=c2,
        capsize=3,
        label="closer to Ridge than dMMSE",
    )
    ax.set_xscale("log", base=2)
    ax.set_xticks(dims, [str(d) for d in dims])
    ax.set_xlabel("dimension D (K = 2D, σ² = D/32)")
    ax.set_ylabel("log2 M*")
    ax.legend()
    return plotting.save(fig, path)


@plotting.styled
def early_stopping(results: dict, path: str) -> str:
    """In-training T_True loss curves per M (left) and the step of the lowest T_True loss vs M (right)."""
    ms = results["M"]
    steps = sorted(int(s) for s in results["curves"])
    colors = plotting.palette(len(ms))
    fig, axes = plotting.figure(1, 2, width=9.0, height=3.4)
    for j, m in enumerate(ms):
        ys = [results["curves"][str(s)]["loss_true"][j] for s in steps]
        axes[0].plot(steps, ys, "-", color=colors[j], lw=1.2, label="M = ∞" if m == "inf" else f"M = {m}")
    axes[0].set_yscale("log")
    axes[0].set_xlabel("training step")
    axes[0].set_ylabel("$T_{True}$ loss / D (curve set)")
    axes[0].legend(fontsize=6, ncol=2)
    stop = results["early_stop_step"]
    xs, _ = _x_positions(ms)
    labels = [str(m) for m in ms]
    axes[1].plot(xs, [stop[lab] for lab in labels], "o-", color=colors[0])
    _set_m_axis(axes[1], ms)
    axes[1].set_ylabel("step of the lowest $T_{True}$ loss")
    axes[1].set_title("early stopping vs M")
    return plotting.save(fig, path)


@plotting.styled
def weight_decay(results: dict, path: str) -> str:
    """T_True loss and Delta(model, Ridge) vs M for every weight decay of the sweep."""
    ms = results["M"]
    entries = results["by_weight_decay"]
    colors = plotting.palette(len(entries))
    fig, axes = plotting.figure(1, 2, width=9.0, height=3.4)
    for c, (wd, e) in zip(colors, entries.items(), strict=True):
        xs = _set_m_axis(axes[0], ms)
        _with_band(axes[0], xs, e["loss_true"], e["loss_true_se"], c, f"decay {wd}")
        _set_m_axis(axes[1], ms)
        _with_band(axes[1], xs, e["dist_ridge"], e["dist_ridge_se"], c, f"decay {wd}")
    axes[0].plot(xs, results["ridge_true"], "k--", lw=1, label="Ridge")
    axes[0].set_ylabel("$T_{True}$ loss / D")
    axes[0].legend()
    axes[1].set_yscale("log")
    axes[1].set_ylabel("Δ(Transformer, Ridge) on $T_{True}$")
    return plotting.save(fig, path)


@plotting.styled
def model_size(results: dict, path: str) -> str:
    """T_True loss vs M for every model size (legend: layers x width and parameter count)."""
    ms = results["M"]
    entries = results["by_model_size"]
    colors = plotting.palette(len(entries))
    fig, ax = plotting.figure(1, 1, width=5.0, height=3.4)
    xs = _set_m_axis(ax, ms)
    for c, (name, e) in zip(colors, entries.items(), strict=True):
        _with_band(ax, xs, e["loss_true"], e["loss_true_se"], c, f"{name} ({e['num_params']:,} params)")
    ax.plot(xs, results["ridge_true"], "k--", lw=1, label="Ridge")
    ax.set_ylabel("$T_{True}$ loss / D")
    ax.legend(fontsize=7)
    return plotting.save(fig, path)
