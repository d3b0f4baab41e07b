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
    """The rate-λ_max parameters' size relative to the rest over training, and against the rest's scale (slope -1)."""
    fig, axes = plotting.figure(1, 2, width=9.0, height=3.4)
    steps = np.asarray(s["step"])
    color = plotting.palette(1)[0]
    for r in s["ratio_per_seed"]:
        axes[0].loglog(steps, r, color="0.7", lw=1)
    axes[0].loglog(steps, s["ratio"], color=color, label="mean over seeds")
    axes[0].set_xlabel("step")
    label = f"‖{'/'.join(s['parameters'])}‖ / ‖θ$_{{λ={s['rest_rate']:g}}}$‖$^{{1/{s['rest_rate']:g}}}$"
    axes[0].set_ylabel(label)
    axes[0].set_title("the unnecessary output bias is discarded")
    axes[0].legend()
    for i, (sc, r) in enumerate(zip(s["scale_rest_per_seed"], s["ratio_per_seed"], strict=True)):
        axes[1].loglog(sc, r, "o-", ms=2, lw=1, label=f"seed {i}: slope {s['slope_per_seed'][i]:.2f}")
    sc = np.asarray(s["scale_rest_per_seed"][0])
    ref = np.asarray(s["ratio_per_seed"][0])[-1] * (sc / sc[-1]) ** -1.0
    axes[1].loglog(sc, ref, "k--", lw=1, label="slope -1 (theory)")
    axes[1].axvline(
        np.asarray(s["scale_rest_per_seed"])[:, s["step"].index(s["fit_from_step"])].mean(), color="0.6", ls=":", lw=0.8
    )
    axes[1].set_xlabel(f"‖θ$_{{λ={s['rest_rate']:g}}}$‖$^{{1/{s['rest_rate']:g}}}$")
    axes[1].set_title("decay exponent against the scale")
    axes[1].legend(fontsize=7)
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
    """NC1, NC2 cosine deviation and margin / γ_ETF over training, per seed: unconstrained features, the BatchNorm
    MLP on digits, and the control without normalisation (dashed)."""
    fig, axes = plotting.figure(1, 3, width=13, height=3.6)
    models = (("unconstrained features", ncres, "-"), ("BatchNorm MLP", ncres["mlp"], "-"))
    models += (("control: no BatchNorm", ncres["control"], "--"),)
    colors = plotting.palette(3)
    for color, (label, r, ls) in zip(colors, models, strict=True):
        ot = r["over_time"]
        steps = np.asarray(ot["step"])
        axes[0].loglog(steps, np.abs(ot["nc1"]), ls, color=color, label=label)
        axes[1].loglog(steps, np.abs(ot["nc2_cos_max_dev"]), ls, color=color, label=label)
        if label != "control: no BatchNorm":  # its margin is not normalised by the BatchNorm moments: no γ_ETF
            for i, m in enumerate(ot["margin_over_etf_per_seed"]):
                axes[2].semilogx(steps, m, ls, color=color, lw=1, label=label if i == 0 else None)
    axes[0].axhline(1e-2, color="k", lw=0.8, ls=":")
    axes[1].axhline(0.05, color="k", lw=0.8, ls=":")
    axes[2].axhline(1.0, color="k", lw=1)
    axes[2].axhspan(0.98, 1.0, color="0.9")
    axes[0].set_ylabel("NC1 = tr(Σ_W Σ_B⁺)/K (mean over seeds)")
    axes[1].set_ylabel("NC2: max |cos + 1/(K-1)| (mean over seeds)")
    axes[2].set_ylabel("normalised margin / γ_ETF (per seed)")
    for ax in axes:
        ax.set_xlabel("step")
    axes[0].legend(fontsize=7)
    axes[2].legend(fontsize=7)
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
    """Generalisation error vs α = P/N of the Hebb, max-margin, Gibbs and Bayes students: simulation (± s.e.) and
    the replica-symmetric theory."""
    from margin.teacher_student import THEORY

    fig, ax = plotting.figure(width=5.2, height=3.8)
    a = np.asarray(t["alpha"])
    fine = np.geomspace(a.min() * 0.8, a.max() * 1.2, 30)
    colors = plotting.palette(4)
    for color, (name, theory), marker in zip(colors, THEORY.items(), "osD^", strict=True):
        ax.plot(fine, theory(fine), color=color, lw=1)
        ax.errorbar(a, t[name], yerr=t[f"{name}_se"], fmt=marker, ms=4, color=color, capsize=2, label=name)
    ax.set_xscale("log")
    ax.set_xlabel("α = P / N")
    ax.set_ylabel("generalisation error ε")
    ax.set_title(f"teacher-student perceptron, N = {t['N']} (lines: theory)")
    ax.legend(fontsize=7)
    for ax_ in np.atleast_1d(fig.axes):
        _no_minor_labels(ax_)
    return plotting.save(fig, path)


def committee(c: dict, path: str) -> str:
    """ε_g(α) of online SGD in the soft committee machine (per seed, thin) against the order-parameter ODEs."""
    fig, ax = plotting.figure(width=5.2, height=3.6)
    a = np.asarray(c["alpha"])
    colors = plotting.palette(2)
    for i, (s, o) in enumerate(zip(c["eps_sim_per_seed"], c["eps_ode_per_seed"], strict=True)):
        ax.semilogy(a, s, "o", ms=2, color=colors[0], alpha=0.5, label="online SGD (per seed)" if i == 0 else None)
        ax.semilogy(
            a, o, "-", lw=0.8, color=colors[1], alpha=0.7, label="ODE from each seed's start" if i == 0 else None
        )
    ax.errorbar(a, c["eps_sim"], yerr=c["eps_sim_se"], fmt="s", ms=3, color="k", capsize=2, label="SGD mean ± s.e.")
    ax.set_xlabel("α = examples / N")
    ax.set_ylabel("generalisation error ε_g")
    ax.set_title(f"soft committee K = M = {c['K']}, N = {c['N']}, η = {c['lr']:g}")
    ax.legend(fontsize=7)
    return plotting.save(fig, path)
