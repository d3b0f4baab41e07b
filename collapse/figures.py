"""The figures of a collapse run, named after the released notebooks (``Fig1``, ``Fig2``, ``FIG3_FIG4``,
``FIG5``, ``FIG6``). Drawing only: every number comes from the results computed in :mod:`collapse.experiment`."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from common import plotting


def draw_all(workdir: str, nets: dict, sde: dict, tsr: dict, *, base_setting: str, base_wd: float, lr_high: float):
    """Writes every PNG into ``workdir/figures``."""
    fig_dir = os.path.join(workdir, "figures")
    fig1_quartic(os.path.join(fig_dir, "fig1_quartic.png"), sde["quartic"])
    attractivity(os.path.join(fig_dir, "attractivity.png"), sde)
    if "merging" in sde:
        fig3_merging(os.path.join(fig_dir, "fig3_merging.png"), sde["merging"])
    if nets.get("heatmap"):
        fig3_weight_heatmaps(os.path.join(fig_dir, "fig3_weight_heatmaps.png"), nets["heatmap"])
    if nets.get("noise"):
        fig4_noise_scale(os.path.join(fig_dir, "fig4_noise_scale.png"), nets["noise"])
    fig4_independent_fraction(os.path.join(fig_dir, "fig4_independent_fraction.png"), nets, base_setting, base_wd)
    fig4_over_training(os.path.join(fig_dir, "fig4_independent_fraction_over_training.png"), nets)
    fig5_teacher_student(os.path.join(fig_dir, "fig5_teacher_student.png"), tsr)
    if nets["large_lr"]:
        fig6_large_lr(os.path.join(fig_dir, "fig6_large_lr.png"), nets, lr_high)


@plotting.styled
def fig1_quartic(path: str, q: dict) -> None:
    """Fig. 1: quartic-well paths below / above the threshold, the stationary density, the finite-time
    P(collapse) at several times, and the threshold of the Euler-Maruyama map against dt."""
    fig, axes = plotting.figure(1, 4, width=15.0, height=3.2)
    traj = q.get("_trajectories")
    if traj is not None:
        t = np.arange(traj["paths"].shape[1]) * traj["dt"]
        for zeta, paths, color in zip(traj["zetas"], traj["paths"], plotting.palette(2), strict=True):
            axes[0].plot(t, paths, color=color, lw=0.7, alpha=0.8)
            axes[0].plot([], [], color=color, label=rf"$\zeta$ = {zeta:g}")
        axes[0].set_xlabel("time")
        axes[0].set_ylabel(r"$\theta$")
        axes[0].legend(fontsize=7)
        axes[0].set_title("paths (Euler-Maruyama)", fontsize=9)
        dens = traj["density"]
        for zeta, p, color in zip(dens["zetas"], dens["p"], plotting.palette(len(dens["zetas"])), strict=True):
            axes[1].plot(dens["theta"], p, color=color, label=rf"$\zeta$ = {zeta:g}")
        axes[1].set_xlabel(r"$\theta$")
        axes[1].set_ylabel("stationary density")
        axes[1].set_title(r"stationary density ($\zeta < \sqrt{2\mu}$)", fontsize=9)
        axes[1].legend(fontsize=7)
    ft = q["finite_time"]
    for t_, p, color in zip(ft["times"], ft["collapse_probability"], plotting.palette(len(ft["times"])), strict=True):
        axes[2].plot(q["values"], p, marker="o", ms=3, color=color, label=f"T = {t_:g}")
    axes[2].plot(q["values"], q["collapse_probability"], "k-", lw=1.5, label="local (exit), finest dt")
    axes[2].axvline(q["predicted"], color="k", ls="--", lw=1, label=r"$\sqrt{2\mu}$")
    axes[2].set_xlabel(r"$\zeta$")
    axes[2].set_ylabel("P(collapse)")
    axes[2].set_title(r"finite time: P($|\theta_T| < 10^{-15}$)", fontsize=9)
    axes[2].legend(fontsize=6)
    grid = q["predicted_discrete_dt_grid"]
    dts = np.array([float(k) for k in grid])
    axes[3].semilogx(dts, list(grid.values()), "k.-", label="Euler-Maruyama map (quadrature)")
    axes[3].semilogx(q["dts"], q["measured_by_dt"], "o", color="C3", label="measured (exit problem)")
    axes[3].axhline(q["predicted"], color="k", ls="--", lw=1, label=r"SDE: $\sqrt{2\mu}$")
    axes[3].set_xlabel("dt")
    axes[3].set_ylabel(r"critical $\zeta$")
    axes[3].set_title("threshold vs step size", fontsize=9)
    axes[3].legend(fontsize=7)
    plotting.save(fig, path)


@plotting.styled
def attractivity(path: str, sde: dict) -> None:
    """Predicted vs measured local attractivity for every toy (Fig. 1-3)."""
    names = [n for n in ("quartic", "single_neuron", "hidden_neuron", "merging") if n in sde]
    fig, axes = plotting.figure(1, len(names), width=4.0 * len(names), height=3.4)
    titles = {
        "quartic": r"quartic well SDE (exit, per dt)",
        "single_neuron": r"single neuron $w_2\tanh(w_1x)$, SDE",
        "hidden_neuron": "vanishing neuron, 1-2-1 tanh, SGD B=4",
        "merging": "identical pair, 1-2-1 GELU, full-batch GD",
    }
    for ax, name in zip(axes, names, strict=True):
        (_quartic_panel if name == "quartic" else _set_panel)(ax, sde[name])
        ax.axhline(0.5, color="0.8", lw=0.8)
        ax.set_xlabel(r"$\zeta$" if name == "quartic" else r"learning rate $\eta$")
        ax.set_title(titles[name], fontsize=9)
        ax.set_ylim(-0.03, 1.03)
        ax.legend(fontsize=6)
    axes[0].set_ylabel("P(reach $r_{in}$ before $r_{out}$)")
    plotting.save(fig, path)


def _quartic_panel(ax, r: dict) -> None:
    """Measured P(collapse) per dt of the quartic well, the Euler-Maruyama thresholds and the SDE's."""
    xs = r["values"]
    for dt, p, pred, color in zip(
        r["dts"],
        r["collapse_probability_by_dt"],
        r["predicted_discrete"],
        plotting.palette(len(r["dts"])),
        strict=True,
    ):
        ax.plot(xs, p, marker="o", ms=3, color=color, label=f"measured, dt={dt:g}")
        ax.axvline(pred, color=color, ls=":", lw=1, label=f"EM map, dt={dt:g}: {pred:.3f}")
    ax.axvline(r["predicted"], color="k", ls="--", lw=1, label=f"SDE {r['predicted']:.3f}")
    ax.plot(
        xs,
        r["finite_time"]["collapse_probability"][-1],
        color="0.6",
        lw=1,
        label=f"finite time T={r['finite_time']['times'][-1]:g}",
    )


def _set_panel(ax, r: dict) -> None:
    """Measured P(collapse) of a toy (all trained / rest frozen / finite time) and its predicted thresholds."""
    xs = r["values"]
    if "collapse_probability" in r:
        ax.plot(xs, r["collapse_probability"], marker="o", ms=3, color="C0", label="measured")
    if "collapse_probability_rest_frozen" in r:
        ax.plot(
            xs,
            r["collapse_probability_rest_frozen"],
            marker="s",
            ms=3,
            color="C1",
            label="measured, rest frozen",
        )
    if "finite_time" in r:
        ax.plot(xs, r["finite_time"]["collapse_probability"], color="0.6", lw=1, label="finite time, start inside")
    ax.axvline(r["predicted"], color="k", ls="--", lw=1, label=f"curvature {r['predicted']:.3g}")
    if "predicted_discrete" in r:
        ax.axvline(
            r["predicted_discrete"],
            color="C0",
            ls=":",
            lw=1,
            label=f"EM map dt={r['dt']:g}: {r['predicted_discrete']:.3g}",
        )
    if "predicted_lyapunov" in r:
        ax.axvline(r["predicted_lyapunov"], color="C1", ls=":", lw=1, label=f"Lyapunov {r['predicted_lyapunov']:.3g}")
    if "predicted_lyapunov_moving" in r:
        ax.axvline(
            r["predicted_lyapunov_moving"],
            color="C0",
            ls="-.",
            lw=1,
            label=f"Lyapunov, rest moving {r['predicted_lyapunov_moving']:.3g}",
        )


@plotting.styled
def fig3_merging(path: str, r: dict) -> None:
    """Fig. 3 (toy): the identical-neuron set of a 1-2-1 GELU net; Lyapunov exponent of the difference
    coordinate and the measured local attractivity against the learning rate."""
    fig, axes = plotting.figure(1, 2, width=8.0, height=3.2)
    xs = r["values"]
    axes[0].plot(xs, r["lyapunov_exponent"], marker="o", ms=3)
    axes[0].axhline(0, color="0.6", lw=0.8)
    axes[0].axvline(r["predicted"], color="k", ls="--", lw=1, label=f"curvature {r['predicted']:.3g}")
    axes[0].set_xlabel(r"learning rate $\eta$")
    axes[0].set_ylabel("Lyapunov exponent per step")
    axes[0].legend(fontsize=7)
    axes[1].plot(xs, r["collapse_probability_rest_frozen"], marker="s", ms=3, label="P(merge): reach $r_{in}$ first")
    axes[1].plot(xs, r["stay_probability_rest_frozen"], marker=".", ms=3, label="... and stay")
    axes[1].axvline(r["predicted"], color="k", ls="--", lw=1)
    axes[1].axvline(r["predicted_lyapunov"], color="C1", ls=":", lw=1, label=f"Lyapunov {r['predicted_lyapunov']:.3g}")
    axes[1].set_xlabel(r"learning rate $\eta$")
    axes[1].set_ylim(-0.03, 1.03)
    axes[1].legend(fontsize=7)
    fig.suptitle("two identical GELU neurons: difference coordinate", fontsize=9)
    plotting.save(fig, path)


@plotting.styled
def fig3_weight_heatmaps(path: str, heat: dict) -> None:
    """Fig. 3: |incoming weights| of one trained layer, neurons sorted by group (vanishing last), SGD vs GD."""
    names = list(heat)
    fig, axes = plotting.figure(1, len(names), width=4.0 * len(names), height=3.4)
    axes = np.atleast_1d(axes)
    for ax, name in zip(axes, names, strict=True):
        m = np.asarray(heat[name])
        im = ax.imshow(np.abs(m), aspect="auto", cmap="viridis", interpolation="nearest")
        ax.set_title(name, fontsize=8)
        ax.set_xlabel("input")
        ax.set_ylabel("neuron (sorted by group)")
        fig.colorbar(im, ax=ax, fraction=0.05)
    plotting.save(fig, path)


def _panels(frac: dict, arch: str, base: str) -> list[tuple[str, list[str]]]:
    panels = [
        ("learning rate", [k for k in frac if k.startswith(f"{arch} lr=")]),
        ("label noise", [base] + [k for k in frac if k.startswith(f"{arch} label_noise=")]),
        ("batch size", [base] + [k for k in frac if k.startswith(f"{arch} batch=")]),
        ("weight decay", [base] + [k for k in frac if k.startswith(f"{arch} weight_decay=")]),
        ("CNN learning rate", [k for k in frac if k.startswith("cnn lr=")]),
    ]
    return [
        (t, ks)
        for t, ks in panels
        if ks and all(k in frac for k in ks) and len(ks) > (t not in ("learning rate", "CNN learning rate"))
    ]


@plotting.styled
def fig4_independent_fraction(path: str, nets: dict, base_setting: str, base_wd: float) -> None:
    """Fig. 4: fraction of independent neurons per layer, one panel per swept factor; SGD solid, the full-batch
    GD control at the same lr, weight decay and steps dashed; below, the fraction of vanishing and merged
    neurons."""
    frac, arch = nets["fraction"], nets["arch"]
    base = f"{arch} {base_setting}"
    panels = _panels(frac, arch, base)
    fig, axes = plotting.figure(2, len(panels), width=3.4 * len(panels), height=5.6)
    axes = np.asarray(axes).reshape(2, len(panels))
    for j, (title, keys) in enumerate(panels):
        ax, ax2 = axes[0, j], axes[1, j]
        for color, k in zip(plotting.palette(len(keys)), keys, strict=True):
            y = np.asarray(frac[k])
            sd = np.asarray(nets["fraction_sd"][k])
            xs = np.arange(len(y))
            label = k.split(" ", 1)[1]
            if k == base and title != "learning rate":
                label = f"base ({label}, wd={base_wd:g})"
            ax.plot(xs, y, marker="o", ms=4, color=color, label=label)
            ax.fill_between(xs, y - sd, y + sd, color=color, alpha=0.2)
            gd = nets["gd_fraction"].get(k)
            if gd is not None:
                ax.plot(xs, gd, ls="--", marker="x", ms=4, color=color, lw=1)
            sgd_early = nets["sgd_fraction_at_gd_steps"].get(k)
            if sgd_early is not None and nets["gd_steps"] != nets.get("num_steps"):
                ax.plot(xs, sgd_early, ls=":", marker=".", ms=4, color=color, lw=1)
            parts = nets["parts"].get(k)
            if parts is not None:
                ax2.plot(
                    xs,
                    parts["vanishing"],
                    marker="v",
                    ms=4,
                    color=color,
                    label="vanishing" if color == plotting.palette(len(keys))[0] else None,
                )
                ax2.plot(
                    xs,
                    parts["merged"],
                    marker="^",
                    ms=4,
                    ls=":",
                    color=color,
                    label="merged" if color == plotting.palette(len(keys))[0] else None,
                )
        names = nets["layer_names"]["cnn" if keys[0].startswith("cnn ") else arch]
        for a in (ax, ax2):
            a.set_xticks(range(len(names)), names, rotation=90 if len(names) > 4 else 0, fontsize=7)
            a.set_ylim(-0.05, 1.05)
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=6)
        ax2.set_xlabel("hidden layer")
        ax2.legend(fontsize=6)
    axes[0, 0].set_ylabel("fraction of independent neurons")
    axes[1, 0].set_ylabel("fraction vanishing / merged (SGD, end)")
    fig.suptitle(
        f"solid: SGD after {nets.get('num_steps')} steps; dotted: SGD at step {nets['gd_steps']}; "
        f"dashed: full-batch GD (same expected loss, lr and weight decay) at step {nets['gd_steps']}",
        fontsize=9,
    )
    plotting.save(fig, path)


@plotting.styled
def fig4_noise_scale(path: str, ns: dict) -> None:
    """Fig. 4 as noise: the fraction of independent neurons per layer against the noise scale lr / B, for the lr
    axis (fixed batch) and the batch axis (fixed lr); SGD (mean +- sd over seeds) beside its noise-free control,
    full-batch GD on the same loss for as many steps, drawn at the same lr / B (the control of each lr)."""
    layers = list(ns["layers"])
    axes_spec = [
        ("lr_axis", f"lr axis (batch {ns['lr_axis']['batch']})", "lr"),
        ("batch_axis", f"batch axis (lr {ns['batch_axis']['lr']:g})", "batch"),
    ]
    fig, axes = plotting.figure(2, len(layers), width=4.0 * len(layers), height=6.4)
    axes = np.asarray(axes).reshape(2, len(layers))
    for i, (key, title, varied) in enumerate(axes_spec):
        pts = ns[key]["points"]
        x = np.array([p["noise_scale"] for p in pts])
        for j, name in enumerate(layers):
            ax = axes[i, j]
            sgd = [np.asarray(p["sgd"], float)[:, j] for p in pts]
            gd = [np.asarray(p["gd"], float)[:, j] for p in pts]
            ax.errorbar(
                x,
                [v.mean() for v in sgd],
                yerr=[_sd(v) for v in sgd],
                marker="o",
                ms=5,
                capsize=3,
                color="C0",
                label=f"SGD ({_seeds(len(sgd[0]))})",
            )
            ax.errorbar(
                x * 1.04,
                [v.mean() for v in gd],
                yerr=[_sd(v) for v in gd],
                marker="s",
                ms=5,
                capsize=3,
                mfc="none",
                ls="--",
                color="C3",
                label=f"full-batch GD, same lr and loss ({_seeds(len(gd[0]))})",
            )
            for p, xv in zip(pts, x, strict=True):
                ax.annotate(f"{varied} {p[varied]:g}", (xv, 0.02), fontsize=6, ha="center", rotation=90)
            ax.set_xscale("log")
            ax.set_ylim(-0.05, 1.05)
            ax.set_title(f"{title}: {name}", fontsize=9)
            ax.set_xlabel("noise scale lr / batch")
        axes[i, 0].set_ylabel("fraction of independent neurons")
        axes[i, 0].legend(fontsize=7, loc="center left")
    fig.suptitle(
        f"after {ns['num_steps']} steps (SGD and GD alike), weight decay {ns['weight_decay']:g}, label noise "
        f"{ns.get('label_noise', 0.0):g} (GD: its expected loss); error bars: seed sd",
        fontsize=9,
    )
    plotting.save(fig, path)


def _seeds(n: int) -> str:
    return f"{n} seed" + ("s" if n != 1 else "")


def _sd(v: np.ndarray) -> float:
    return float(v.std(ddof=1)) if len(v) > 1 else 0.0


@plotting.styled
def fig4_over_training(path: str, nets: dict) -> None:
    """The independent fraction of every main-group setting at every checkpoint (mean over seeds)."""
    hist = nets["main_history"]
    steps = sorted(hist)
    names = list(nets["main_settings"])
    layer_titles = nets["layer_names"][nets["arch"]]
    ncols = min(len(layer_titles), 4)
    nrows = -(-len(layer_titles) // ncols)
    fig, axes = plotting.figure(nrows, ncols, width=4.0 * ncols, height=3.0 * nrows)
    axes = np.atleast_1d(axes).ravel()
    for ax in axes[len(layer_titles) :]:
        ax.set_visible(False)
    axes = axes[: len(layer_titles)]
    colors = plotting.palette(len(names))
    for layer, ax in enumerate(axes):
        for color, name in zip(colors, names, strict=True):
            idx = nets["main_settings"][name]
            ys = [hist[t]["parts"][idx, layer, 0].mean() for t in steps]
            ax.plot(steps, ys, marker="o", ms=3, color=color, label=name)
        ax.set_title(f"layer {layer_titles[layer]}")
        ax.set_xlabel("step")
        ax.set_ylim(-0.05, 1.05)
    axes[0].set_ylabel("fraction of independent neurons")
    axes[-1].legend(fontsize=6, ncol=2)
    plotting.save(fig, path)


@plotting.styled
def fig5_teacher_student(path: str, tsr: dict) -> None:
    """Fig. 5: test MSE and collapsed modes vs label noise (simulation and the soft-threshold theory line),
    learned vs data singular values (and, when given, the test loss over training with its theory)."""
    sig = [k for k in tsr if not k.startswith("_")]
    sv = np.array([float(k) for k in sig])
    line = tsr["_theory_line"]
    curves = tsr.get("_curves")
    ncols = 3 if curves is None else 4
    fig, axes = plotting.figure(1, ncols, width=4.0 * ncols, height=3.3)
    mse = np.array([tsr[k]["test_mse"] for k in sig])
    sd = np.array([tsr[k]["test_mse_sd"] for k in sig])
    axes[0].errorbar(sv, mse, yerr=sd, marker="o", ls="none", label="simulation")
    axes[0].plot(line["sigma"], line["test_mse"], "k-", label="theory (soft threshold)")
    axes[0].set_xlabel(r"label noise $\sigma$")
    axes[0].set_ylabel("test MSE")
    axes[0].legend()
    axes[1].plot(sv, [tsr[k]["collapsed_modes"] for k in sig], marker="o", ls="none", label="simulation")
    axes[1].plot(line["sigma"], line["collapsed_modes"], "k-", label="theory")
    axes[1].set_xlabel(r"label noise $\sigma$")
    axes[1].set_ylabel(f"collapsed modes (of {len(tsr['_target'])})")
    axes[1].legend()
    colors = plotting.palette(len(sig))
    for color, k in zip(colors, sig, strict=True):
        axes[2].plot(tsr["_target"], tsr[k]["products"], ".", color=color, label=rf"$\sigma$={k}")
    axes[2].plot(tsr["_target"], tsr["_target"], "k:", lw=1)
    axes[2].set_xlabel("data singular value $s$")
    axes[2].set_ylabel(r"learned $\hat s$ (mean over seeds)")
    axes[2].legend(fontsize=7)
    if curves is not None:
        for color, k in zip(colors, sig, strict=True):
            axes[3].plot(curves["steps"], curves["test_mse"][k], color=color, label=rf"$\sigma$={k}")
            axes[3].plot(curves["steps"], curves["theory"][k], color=color, ls="--", lw=0.8)
        axes[3].set_yscale("log")
        axes[3].set_xlabel("step")
        axes[3].set_ylabel("test MSE (dashed: mean-field theory)")
        axes[3].legend(fontsize=7)
    plotting.save(fig, path)


@plotting.styled
def fig6_large_lr(path: str, nets: dict, lr_high: float) -> None:
    """Fig. 6: independent fraction at the lr drop and test accuracy after a fixed fine-tune, vs the duration
    of the high-lr phase (the released protocol)."""
    ll = nets["large_lr"]
    d = np.array(sorted(int(k) for k in ll))
    fig, axes = plotting.figure(1, 2, width=8.0, height=3.2)
    axes[0].plot(d, [ll[str(k)]["test_acc"] for k in d], marker="o", label="after the fine-tune")
    axes[0].set_xlabel(f"steps at lr {lr_high:g} before the drop")
    axes[0].set_ylabel("test accuracy")
    axes[0].legend(fontsize=7)
    fr = np.array([ll[str(k)]["independent_fraction"] for k in d])
    names = nets["layer_names"][nets["arch"]]
    for layer, color in enumerate(plotting.palette(fr.shape[1])):
        axes[1].plot(d, fr[:, layer], marker="o", color=color, label=names[layer])
    axes[1].set_xlabel(f"steps at lr {lr_high:g} before the drop")
    axes[1].set_ylabel("independent fraction at the drop")
    axes[1].set_ylim(-0.05, 1.05)
    axes[1].legend()
    plotting.save(fig, path)


def strip_private(tree: Any) -> Any:
    """The tree without keys starting with ``_`` (figure-only data kept out of results.json)."""
    if isinstance(tree, dict):
        return {k: strip_private(v) for k, v in tree.items() if not str(k).startswith("_")}
    return tree
