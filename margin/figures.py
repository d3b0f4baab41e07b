"""The figures of margin/experiment.py, in common.plotting's style."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from common import plotting


def _no_minor_labels(ax) -> None:
    """Log axes: labels at 1, 2, 5 x 10^k in plain numbers, no minor labels (the defaults overlap at these widths)."""
    for axis in (ax.xaxis, ax.yaxis):
        if axis.get_scale() == "log":
            axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            axis.set_minor_formatter(NullFormatter())


def decision_boundaries(toy: dict, x: np.ndarray, y: np.ndarray, path: str) -> str:
    """The 2-D toy data with each model's trained boundary and its program's (β·x = 0), ℓ2 margins in the legend."""
    fig, ax = plotting.figure(width=5.2, height=4.4)
    colors = plotting.palette(3)
    ax.scatter(*x[y > 0].T, c=colors[2], marker="o", s=22, label="y = +1")
    ax.scatter(*x[y < 0].T, c="0.4", marker="x", s=22, label="y = -1")
    lim = 1.15 * np.max(np.abs(x))
    t = np.linspace(-lim, lim, 2)
    for color, (model, r) in zip(colors[:2], toy.items(), strict=False):
        for beta, style, what, key in (
            (r["program_beta"], "--", "program", "program_l2_margin"),
            (r["trained_beta"], "-", "trained", "l2_margin"),
        ):
            b = np.asarray(beta)
            ax.plot(
                -b[1] * t / np.hypot(*b),
                b[0] * t / np.hypot(*b),
                style,
                color=color,
                lw=1.4 if style == "-" else 2.4,
                alpha=1.0 if style == "-" else 0.5,
                label=f"{model} {what} (ℓ2 margin {r[key]:.3f})",
            )
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    ax.set_title("f = w·x vs f = w x$_1$ + uv x$_2$: max-margin boundaries")
    ax.legend(loc="lower left", fontsize=7)
    for a in np.atleast_1d(fig.axes):
        _no_minor_labels(a)
    return plotting.save(fig, path)


def gamma_over_time(hists: dict, program: dict, path: str) -> str:
    """γ(t) and the smoothed margin for every trained model (mean over seeds), the program's γ* dashed."""
    n = len(hists)
    fig, axes = plotting.figure(1, n, width=3.4 * n, height=3.0)
    axes = np.atleast_1d(axes)
    for ax, (name, h) in zip(axes, hists.items(), strict=True):
        steps = h["step"] + 1
        ax.plot(steps, np.nanmean(h["gamma"], 0), label="γ = min margin / ‖θ‖$_Λ^{1/λ_{max}}$")
        ax.plot(steps, np.nanmean(h["smoothed_gamma"], 0), label="smoothed (-log L / ‖θ‖$_Λ^{1/λ_{max}}$)")
        if name in program:
            ax.axhline(program[name], ls="--", color="k", lw=1, label="program γ*")
        ax.set_xscale("log")
        top = np.nanmax(np.nanmean(h["gamma"], 0))
        if name in program:
            top = max(top, program[name])
        ax.set_ylim(0, 1.08 * top)
        ax.set_title(name)
        ax.set_xlabel("step")
    axes[0].set_ylabel("normalised margin")
    axes[0].legend(fontsize=7)
    for a in np.atleast_1d(fig.axes):
        _no_minor_labels(a)
    return plotting.save(fig, path)


def direction_error(toy: dict, path: str) -> str:
    """Relative distance of the trained direction (normalised along Λ's curves) to the program's solution."""
    fig, ax = plotting.figure(width=4.4, height=3.3)
    for model, r in toy.items():
        d = r["direction_error_over_time"]
        ax.loglog(d["step"], d["mean"], marker="o", ms=3, label=model)
    ax.set_xlabel("step")
    ax.set_ylabel("‖β̄(t) - β̄*‖ / ‖β̄*‖")
    ax.set_title("convergence to each model's own program")
    ax.legend()
    for a in np.atleast_1d(fig.axes):
        _no_minor_labels(a)
    return plotting.save(fig, path)


def sparsity(s: dict, path: str) -> str:
    """The rate-λ_max parameters' size relative to the rest (scale-free along characteristic curves) over time."""
    fig, ax = plotting.figure(width=4.4, height=3.3)
    steps = np.asarray(s["step"])
    for r in s["ratio_per_seed"]:
        ax.loglog(steps, r, color="0.7", lw=1)
    ax.loglog(steps, s["ratio"], color=plotting.palette(1)[0], label="mean over seeds")
    ax.set_xlabel("step")
    ax.set_ylabel(f"‖{'/'.join(s['parameters'])}‖ / ‖θ$_{{λ={s['rest_rate']:g}}}$‖$^{{1/{s['rest_rate']:g}}}$")
    ax.set_title("sparsity: the unnecessary output bias is discarded")
    ax.legend()
    for a in np.atleast_1d(fig.axes):
        _no_minor_labels(a)
    return plotting.save(fig, path)


def robustness(robust: dict, trained: dict, x: np.ndarray, y: np.ndarray, path: str) -> str:
    """Accuracy under PGD-ℓ2 attacks vs ε, and each network's decision regions (first seed)."""
    fig, axes = plotting.figure(1, 3, width=11.5, height=3.4)
    colors = plotting.palette(2)
    for color, (model, r) in zip(colors, robust.items(), strict=True):
        axes[0].plot(r["eps"], r["accuracy"], marker="o", ms=3, color=color, label=model)
    axes[0].set_xlabel("ℓ2 perturbation ε")
    axes[0].set_ylabel("test accuracy under PGD")
    axes[0].legend()
    lim = 1.2 * np.max(np.abs(x))
    g = np.linspace(-lim, lim, 121)
    gx, gy = np.meshgrid(g, g)
    grid = jnp.asarray(np.stack([gx.ravel(), gy.ravel()], 1), jnp.float32)
    for ax, (model, (f, params)) in zip(axes[1:], trained.items(), strict=True):
        p0 = {k: {n: a[0] for n, a in v.items()} for k, v in params.items()}
        z = np.asarray(f(p0, grid)).reshape(gx.shape)
        ax.contourf(gx, gy, np.sign(z), levels=[-2, 0, 2], colors=["0.85", "#cfe3f3"])
        ax.contour(gx, gy, z, levels=[0], colors="k", linewidths=1)
        ax.scatter(*x[y > 0].T, s=6, c=colors[0])
        ax.scatter(*x[y < 0].T, s=6, c=colors[1])
        ax.set_aspect("equal")
        ax.set_title(model)
    for a in np.atleast_1d(fig.axes):
        _no_minor_labels(a)
    return plotting.save(fig, path)


def neural_collapse(ncres: dict, path: str) -> str:
    """NC1, NC2 (cosine deviation, norm CV), NC3 and ‖b‖/‖W‖ over training, and margin / ETF margin."""
    fig, axes = plotting.figure(1, 3, width=12, height=3.4)
    names = ("nc1", "nc2_cos_max_dev", "nc2_norm_cv", "nc3", "bias_ratio")
    colors = plotting.palette(len(names))
    for ax, (label, r) in zip(
        axes[:2], (("unconstrained features", ncres), ("BatchNorm MLP", ncres["mlp"])), strict=True
    ):
        ot = r["over_time"]
        for c, n in zip(colors, names, strict=True):
            ax.loglog(ot["step"], np.abs(ot[n]), color=c, label=n)
        ax.set_title(f"{label} (K={r['K']}, d={r['d']})")
        ax.set_xlabel("step")
    axes[0].legend(fontsize=7)
    for label, r, ls in (("unconstrained features", ncres, "-"), ("BatchNorm MLP", ncres["mlp"], "--")):
        ot = r["over_time"]
        axes[2].semilogx(ot["step"], np.asarray(ot["margin"]) / r["etf_margin"], ls, label=label)
    axes[2].axhline(1.0, color="k", lw=1)
    axes[2].set_ylabel("normalised margin / γ_ETF")
    axes[2].set_xlabel("step")
    axes[2].legend()
    for a in np.atleast_1d(fig.axes):
        _no_minor_labels(a)
    return plotting.save(fig, path)


def cover(c: dict, path: str) -> str:
    """Measured fraction of separable draws against Cover's C(P, N)."""
    fig, ax = plotting.figure(width=4.4, height=3.3)
    p = np.asarray(c["P"]) / c["N"]
    fine = np.arange(1, max(c["P"]) + 1)
    from margin.perceptron import cover_probability

    ax.plot(fine / c["N"], [cover_probability(int(q), c["N"]) for q in fine], "k-", lw=1, label="C(P, N)")
    ax.plot(p, c["measured"], "o", ms=4, label=f"{c['draws']} draws per P")
    ax.axvline(2.0, color="0.6", lw=0.8, ls=":")
    ax.set_xlabel("P / N")
    ax.set_ylabel("P(separable)")
    ax.set_title(f"Cover's theorem, N = {c['N']}")
    ax.legend()
    for a in np.atleast_1d(fig.axes):
        _no_minor_labels(a)
    return plotting.save(fig, path)


def teacher_student(t: dict, path: str) -> str:
    """Generalisation error vs α = P/N of Hebb and max-margin students: simulation and theory."""
    from margin.perceptron import hebb_error, max_margin_error

    fig, ax = plotting.figure(width=4.6, height=3.4)
    a = np.asarray(t["alpha"])
    fine = np.geomspace(a.min() * 0.8, a.max() * 1.2, 40)
    colors = plotting.palette(2)
    ax.plot(fine, hebb_error(fine), color=colors[0], lw=1, label="Hebb theory")
    ax.plot(fine, max_margin_error(fine), color=colors[1], lw=1, label="max-margin theory")
    ax.errorbar(a, t["hebb"], yerr=t["hebb_std"], fmt="o", ms=4, color=colors[0], label=f"Hebb, N={t['N']}")
    ax.errorbar(a, t["max_margin"], yerr=t["max_margin_std"], fmt="s", ms=4, color=colors[1], label="max-margin")
    ax.set_xscale("log")
    ax.set_xlabel("α = P / N")
    ax.set_ylabel("generalisation error ε")
    ax.set_title("teacher-student perceptron")
    ax.legend(fontsize=7)
    for a in np.atleast_1d(fig.axes):
        _no_minor_labels(a)
    return plotting.save(fig, path)
