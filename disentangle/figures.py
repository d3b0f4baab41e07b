"""The package's figures (common.plotting style): energy vs theta, MI matrices, the ablation, correlation, cells."""

from __future__ import annotations

import numpy as np

from common import plotting


def energy_vs_theta(thetas, analytic, simulated, path: str) -> str:
    """Theorem 1's example: analytic E||z||^2 against Monte Carlo, over the rotation angle."""
    fig, ax = plotting.figure(width=4.6, height=3.3)
    deg = np.degrees(np.asarray(thetas))
    ax.plot(deg, analytic, label="analytic 2/3 + 2(|cos|+|sin|)^2", color=plotting.palette(2)[0])
    ax.plot(deg, simulated, "o", ms=3.5, label="simulation", color=plotting.palette(2)[1])
    ax.set_xlabel("rotation angle theta (degrees)")
    ax.set_ylabel("energy E||z||^2 of the nonnegative code")
    ax.set_title("Rotated codes cost energy; axis-aligned is cheapest")
    ax.legend()
    return plotting.save(fig, path)


def mi_matrices(matrices: dict[str, np.ndarray], scores: dict[str, float], path: str, factor_label="factor") -> str:
    """One panel per variant: I[neuron, factor] (neurons sorted by their preferred factor), titled with MIR."""
    names = list(matrices)
    fig, axes = plotting.figure(1, len(names), width=2.3 * len(names), height=3.0)
    axes = np.atleast_1d(axes)
    vmax = max(float(np.max(m)) for m in matrices.values()) or 1.0
    im = None
    for ax, name in zip(axes, names, strict=True):
        m = np.asarray(matrices[name])
        order = np.lexsort((-m.max(1), m.argmax(1)))
        im = ax.imshow(m[order], aspect="auto", vmin=0.0, vmax=vmax, cmap="viridis")
        ax.set_title(f"{name}\nMIR {scores[name]:.2f}", fontsize=9)
        ax.set_xlabel(factor_label)
        ax.grid(False)
    axes[0].set_ylabel("neuron")
    fig.colorbar(im, ax=list(axes), shrink=0.8, label="mutual information (nats)")
    return plotting.save(fig, path)


def ablation_bars(ablation: dict[str, dict], path: str, title: str) -> str:
    """MIR and MIG per constraint variant, mean +- std over seeds."""
    names = list(ablation)
    x = np.arange(len(names))
    fig, ax = plotting.figure(width=5.2, height=3.3)
    col = plotting.palette(2)
    for off, key, c in ((-0.18, "mir", col[0]), (0.18, "mig", col[1])):
        ax.bar(
            x + off,
            [ablation[n][key] for n in names],
            0.36,
            yerr=[ablation[n][key + "_std"] for n in names],
            color=c,
            label=key.upper(),
            capsize=3,
        )
    ax.set_xticks(x, names, rotation=20)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("score")
    ax.set_title(title)
    ax.legend()
    return plotting.save(fig, path)


def correlated(corr: dict[float, dict], entangling: dict | None, path: str) -> str:
    """MIR of the constrained autoencoder against the factor correlation rho (full support), scored on its own
    correlated factors and on independent factors; the corner-cut support as separate points."""
    fig, ax = plotting.figure(width=5.0, height=3.4)
    col = plotting.palette(3)
    rhos = list(corr)
    for key, label, c in (("mir", "scored on its training factors", col[0]),
                          ("mir_on_independent", "same encoder, independent factors", col[1])):  # fmt: skip
        ax.errorbar(rhos, [corr[r][key] for r in rhos], yerr=[corr[r][key + "_std"] for r in rhos], marker="o",
                    capsize=3, color=c, label=label)  # fmt: skip
    if entangling is not None:
        x = max(rhos) + 0.08 if rhos else 0.0
        for key, c, m in (("mir", col[0], "s"), ("mir_on_independent", col[1], "D")):
            ax.errorbar([x], [entangling[key]], yerr=[entangling[key + "_std"]], marker=m, capsize=3, color=c,
                        ls="none")  # fmt: skip
        ax.annotate(f"corners cut\n({entangling['corner']:g})", (x, entangling["mir_on_independent"]),
                    textcoords="offset points", xytext=(-20, -28), fontsize=8)  # fmt: skip
    ax.set_xlabel("factor correlation rho (full support)")
    ax.set_ylabel("MIR")
    ax.set_ylim(0, 1.05)
    ax.set_title("Correlation confounds the metric; cut corners entangle")
    ax.legend(fontsize=7, loc="lower left")
    return plotting.save(fig, path)


def cells(per_variant: dict[str, dict], path: str) -> str:
    """Per neuron: information about position (I_x) against information about the object (I_d), per variant."""
    names = list(per_variant)
    fig, axes = plotting.figure(1, len(names), width=2.6 * len(names), height=2.9)
    axes = np.atleast_1d(axes)
    for ax, name in zip(axes, names, strict=True):
        v = per_variant[name]
        ax.scatter(v["i_x"], v["i_d"], s=12, color=plotting.palette(1)[0])
        top = max(max(v["i_x"] + [0.0]), max(v["i_d"] + [0.0])) * 1.05 or 1.0
        ax.plot([0, top], [0, top], ":", color="grey", lw=1)
        ax.set_xlim(0, top)
        ax.set_ylim(0, top)
        ax.set_title(f"{name}\nseparation {v['score']:.2f}", fontsize=9)
        ax.set_xlabel("I(neuron; position)")
    axes[0].set_ylabel("I(neuron; object displacement)")
    return plotting.save(fig, path)


def vae_mig(summary: dict[str, dict], path: str) -> str:
    """MIG of each VAE variant, mean +- std over seeds."""
    names = list(summary)
    fig, ax = plotting.figure(width=4.6, height=3.2)
    ax.bar(names, [summary[n]["mig"] for n in names], yerr=[summary[n]["mig_std"] for n in names], capsize=3,
           color=plotting.palette(1)[0])  # fmt: skip
    ax.set_ylabel("MIG")
    ax.tick_params(axis="x", labelrotation=15)
    ax.set_title("VAE variants")
    return plotting.save(fig, path)
