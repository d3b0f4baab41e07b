"""The paper's experiments (a)-(e): theory vs simulation, phase diagram, finite rank, denoising.

(a) singular-value density, theory vs simulated histograms, for several (b, s, c) ESM signals;
(b) overlaps of data singular vectors with the signal subspace (ESM, theory vs simulation) and the
    rank-one BBP overlaps;
(c) the ESM phase diagram over (b, s): number of bulks, the critical strength s_c(b) and the BBP
    limit c^(1/4);
(d) the finite-rank failure: N = M = 1000, rank 10, strengths around the threshold, where BBP
    predicts isolated outliers while the spectrum shows one merged bulk (ESM theory with b = 10/N);
(e) relative Frobenius error of every estimator (denoise.compare_estimators) on ESM signals and a
    continuous signal spectrum, and the covariance-estimation table.
"""

from __future__ import annotations

import math
import os
import time

import jax
import ml_collections
import numpy as np
import scipy.linalg
from absl import logging
from threadpoolctl import threadpool_limits

from common import metrics, plotting
from spectra import denoise, signals, theory
from spectra.report import report  # noqa: F401  (the experiment contract of common.app)
from spectra.validation import validate  # noqa: F401

_FINITE_SIGNAL = "continuous"
_ESM, _BBP = 0, 1  # purposes of the keys of (b): the ESM settings and the rank-one (BBP) simulations


def _key(key: jax.Array, *path: int) -> jax.Array:
    """The key of setting path[0], seed path[1], ...: one fold_in per level (no arithmetic on indices)."""
    for p in path:
        key = jax.random.fold_in(key, p)
    return key


def _sample(key: jax.Array, n: int, m: int, sv: np.ndarray):
    ks, kx = jax.random.split(key)
    s_mat = np.asarray(signals.signal_matrix(ks, n, m, sv), dtype=np.float64)
    x = np.asarray(signals.noise(kx, n, m), dtype=np.float64)
    return s_mat, s_mat + x


def _name(b: float, s: float, c: float | None = None) -> str:
    return f"b={b:g},s={s:g}" + (f",c={c:g}" if c is not None else "")


def _theory_cdf(t, w, c):
    sup = theory.support(t, w, c)
    per = 4000 // len(sup)
    grid = np.concatenate([np.linspace(lo, hi, per) for lo, hi in sup])
    p = theory.density(grid, t, w, c)
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (p[1:] + p[:-1]) * np.diff(grid))])
    # Between intervals the density is 0 and the trapezoid across the gap adds nothing.
    return grid, p, cdf, sup


@plotting.styled
def _density_experiment(config, key, workdir, mw):
    """(a) theory density vs simulated singular values; max abs quantile error per setting."""
    # Mid-point levels: a level equal to a bulk's exact mass (e.g. 1 - b when the signal bulk is
    # separated) would sit on a jump of the quantile function and measure the gap, not an error.
    qs = (np.arange(200) + 0.5) / 200
    errors, integrals = {}, {}
    k = len(config.density_settings)
    ncol = min(k, 2)
    nrow = -(-k // ncol)
    fig, axes = plotting.figure(nrow, ncol, width=4.6 * ncol, height=3.1 * nrow)
    axes = np.atleast_1d(axes).ravel()
    for i, (b, s, c) in enumerate(config.density_settings):
        n = config.n
        m = int(round(n / c))
        t, w = theory.esm_spectrum(b, s)
        sv = signals.esm_singular_values(n, b, s)
        ys = []
        for r in range(config.num_seeds):
            _, y = _sample(_key(key, i, r), n, m, sv)
            ys.append(signals.singular_values(y))
        ys = np.concatenate(ys)
        grid, p, cdf, sup = _theory_cdf(t, w, c)
        integrals[_name(b, s, c)] = float(cdf[-1])
        q_theory = np.interp(qs, cdf / cdf[-1], grid)
        err = float(np.max(np.abs(q_theory - np.quantile(ys, qs))))
        errors[_name(b, s, c)] = err
        mw.write(i, run=f"density/{_name(b, s, c)}", quantile_error=err, integral=cdf[-1])
        ax = axes[i]
        ax.hist(ys, bins=80, density=True, color="0.75", label=f"simulation N={n}")
        ax.plot(grid, p, color=plotting.palette(2)[1], label="theory")
        for _lo, hi in sup:
            ax.axvline(hi, color="0.4", lw=0.6, ls=":")
        ax.set_title(f"b={b:g}, s={s:g}, c={c:g} ({len(sup)} bulk{'s' if len(sup) > 1 else ''})")
        ax.set_xlabel("singular value y")
        ax.set_ylabel("density p(y)")
        if i == 0:
            ax.legend()
    for ax in axes[k:]:
        ax.set_visible(False)
    plotting.save(fig, os.path.join(workdir, "figures", "a_density.png"))
    return errors, integrals


def _esm_overlap_rows(config, key, b, s, c):
    """Simulated overlaps of one ESM setting, binned by singular value: rows [bins, 5] of (y, left, right, theory
    left, theory right), and the theory curves on a fine grid."""
    n = config.n
    m = int(round(n / c))
    t, w = theory.esm_spectrum(b, s)
    sv = signals.esm_singular_values(n, b, s)
    k = sv.size
    ys, left, right = [], [], []
    for r in range(config.num_seeds):
        ku, kv, kx = jax.random.split(_key(key, r), 3)
        a = np.asarray(signals.random_orthonormal(ku, n, k), dtype=np.float64)
        bm = np.asarray(signals.random_orthonormal(kv, m, k), dtype=np.float64)
        y = (a * sv[None, :]) @ bm.T + np.asarray(signals.noise(kx, n, m), dtype=np.float64)
        lam, u = np.linalg.eigh(y @ y.T)
        yv = np.sqrt(np.maximum(lam, 1e-300))
        v = (y.T @ u) / yv[None, :]
        ys.append(yv)
        left.append(np.sum((a.T @ u) ** 2, axis=0))
        right.append(np.sum((bm.T @ v) ** 2, axis=0))
    ys, left, right = map(np.concatenate, (ys, left, right))
    th_l, th_r = theory.overlaps(ys, t, w, c)
    th_l, th_r = w[0] * th_l[:, 0], w[0] * th_r[:, 0]  # fraction in the signal subspace
    bins = np.array_split(np.argsort(ys), config.overlap_bins)  # equal-count bins
    rows = np.array([[ys[x].mean(), left[x].mean(), right[x].mean(), th_l[x].mean(), th_r[x].mean()] for x in bins])
    grid = np.linspace(ys.min() * 0.95, ys.max() * 1.02, 600)
    gl, gr = theory.overlaps(grid, t, w, c)
    return rows, (b, s, c, rows, grid, w[0] * gl[:, 0], w[0] * gr[:, 0])


def _bbp_rows(config, key, c_bbp: float, mw) -> list:
    """Rank-one spikes (the finite-rank limit): simulated (top, left, right) against the BBP prediction per θ."""
    n = config.n
    m = int(round(n / c_bbp))
    out = []
    for j, theta in enumerate(config.bbp_thetas):
        sims = []
        for r in range(config.num_seeds):
            ku, kv, kx = jax.random.split(_key(key, _BBP, j, r), 3)
            a = np.asarray(signals.random_orthonormal(ku, n, 1), dtype=np.float64)[:, 0]
            bv = np.asarray(signals.random_orthonormal(kv, m, 1), dtype=np.float64)[:, 0]
            y = theta * np.outer(a, bv) + np.asarray(signals.noise(kx, n, m), dtype=np.float64)
            lam, u = scipy.linalg.eigh(y @ y.T, subset_by_index=[n - 1, n - 1])  # top pair only
            top = math.sqrt(lam[-1])
            v = y.T @ u[:, -1] / top
            sims.append([top, (a @ u[:, -1]) ** 2, (bv @ v) ** 2])
        sim = np.mean(sims, axis=0)
        out.append((theta, sim, np.array([float(x) for x in theory.bbp(theta, c_bbp)])))
        mw.write(j, run=f"bbp/theta={theta:g}", top=sim[0], left=sim[1], right=sim[2])
    return out


@plotting.styled
def _overlap_figure(config, curves, bbp_rows, c_bbp, path):
    ncol = len(curves) + 1
    fig, axes = plotting.figure(1, ncol, width=3.8 * ncol, height=3.1)
    axes = np.atleast_1d(axes)
    col = plotting.palette(2)
    for ax, (b, s, c, rows, grid, gl, gr) in zip(axes, curves, strict=False):
        ax.plot(grid, gl, color=col[0], label="left (theory)")
        ax.plot(grid, gr, color=col[1], label="right (theory)")
        ax.plot(rows[:, 0], rows[:, 1], "o", ms=3.5, color=col[0], label="left (sim.)")
        ax.plot(rows[:, 0], rows[:, 2], "s", ms=3.5, color=col[1], mfc="none", label="right (sim.)")
        ax.set_title(f"ESM b={b:g}, s={s:g}, c={c:g}")
        ax.set_xlabel("singular value y")
        ax.set_ylabel("fraction of u_y, v_y in signal span")
        ax.legend()
    ax = axes[-1]
    th_grid = np.linspace(0.3, max(config.bbp_thetas) * 1.1, 300)
    _, l_th, r_th = theory.bbp(th_grid, c_bbp)
    ax.plot(th_grid, l_th, color=col[0], label="|<u,a>|^2 BBP")
    ax.plot(th_grid, r_th, color=col[1], label="|<v,b>|^2 BBP")
    for theta, sim, _ in bbp_rows:
        ax.plot(theta, sim[1], "o", color=col[0], ms=4)
        ax.plot(theta, sim[2], "s", color=col[1], mfc="none", ms=4)
    ax.axvline(c_bbp**0.25, color="0.5", ls=":", lw=0.8)
    ax.set_title(f"rank one, c={c_bbp:g}, N={config.n}")
    ax.set_xlabel("signal strength theta")
    ax.legend()
    plotting.save(fig, path)


def _overlap_experiment(config, key, workdir, mw):
    """(b) fraction of data singular vectors in the signal subspace, theory vs simulation; BBP."""
    errors, curves = {}, []
    for i, (b, s, c) in enumerate(config.overlap_settings):
        rows, curve = _esm_overlap_rows(config, _key(key, _ESM, i), b, s, c)
        err = float(np.max(np.abs(rows[:, 1:3] - rows[:, 3:5])))
        errors[_name(b, s, c)] = err
        mw.write(i, run=f"overlap/{_name(b, s, c)}", max_abs_error=err)
        curves.append(curve)
    c_bbp = 0.5
    bbp_rows = _bbp_rows(config, key, c_bbp, mw)
    bbp_err = float(max(np.max(np.abs(sim[1:] - pred[1:])) for _, sim, pred in bbp_rows))
    bbp_top_err = float(max(abs(sim[0] - pred[0]) for _, sim, pred in bbp_rows))
    _overlap_figure(config, curves, bbp_rows, c_bbp, os.path.join(workdir, "figures", "b_overlaps.png"))
    return errors, bbp_err, bbp_top_err


def _count_bulks(sv: np.ndarray, factor: float = 5.0, window: int = 30, edge: int = 3) -> int:
    """Bulks in a simulated spectrum (descending): 1 + the gaps wider than `factor` times the median
    spacing of the `window` neighbours on each side and than 3 N^(-2/3), the scale of edge
    (Tracy-Widom) fluctuations, which alone can open such a gap below the top few values (measured
    at N = 1000: 0.020 at an edge, 0.042-0.067 between bulks at s_c + 0.15); the `edge` extreme
    values are not counted."""
    d = -np.diff(sv)
    n = d.size
    floor = 3.0 * sv.size ** (-2.0 / 3.0)
    big = 0
    for i in range(edge, n - edge):
        local = np.median(d[max(i - window, 0) : i + window])
        big += int(d[i] > max(factor * local, floor))
    return 1 + big


def _phase_simulation(config, key, c):
    """Simulated ESM spectra at s_c(b) -+ offset, checked against the theory independently of the
    bulk-counting code that draws the map: the number of bulks seen in each simulated spectrum (gaps
    wider than 5 typical spacings) against the theory's count, and the gap after the K-th value."""
    n = config.n
    m = int(round(n / c))
    bs = np.asarray(config.phase_sim_bs, dtype=np.float64)
    if bs.size == 0:
        return []
    scs = theory.critical_strengths(bs, c, tol=1e-3)
    pts = [
        (float(b), float(s))
        for b, sc in zip(bs, scs, strict=True)
        for s in (sc - config.phase_sim_offset, sc + config.phase_sim_offset)
    ]
    counts = theory.esm_num_components(np.array([p[0] for p in pts]), np.array([p[1] for p in pts]), c)
    out = []
    for idx, ((b, s), th_count) in enumerate(zip(pts, counts, strict=True)):
        i, j = divmod(idx, 2)
        k = max(1, int(round(b * n)))
        _, y = _sample(_key(key, i, j), n, m, signals.esm_singular_values(n, b, s))
        sv = signals.singular_values(y)
        spacing = np.median(-np.diff(sv[max(k - 30, 0) : k + 30]))
        ratio = float((sv[k - 1] - sv[k]) / spacing)
        # Gap > 5 typical spacings = separated (measured at N = 1000: <= 2.8 below s_c - 0.1,
        # >= 7 above s_c + 0.1).
        out.append(
            {
                "b": b,
                "s": s,
                "gap_over_spacing": ratio,
                "separated": ratio > 5,
                "theory_separated": bool(s > scs[i]),
                "bulks": _count_bulks(sv),
                "theory_bulks": int(th_count),
            }
        )
    return out


@plotting.styled
def _phase_experiment(config, key, workdir, mw):
    """(c) phase diagram over (b, s): number of bulks, s_c(b) and the BBP limit."""
    c = config.phase_c
    bs_line = np.array(sorted(float(b) for b in config.phase_bs))
    t0 = time.time()
    line = theory.critical_strengths(bs_line, c)  # all b at once (vmapped bisection)
    sc = {f"{b:g}": float(v) for b, v in zip(bs_line, line, strict=True)}
    for i, b in enumerate(bs_line):
        mw.write(i, run=f"phase/b={b:g}", s_c=sc[f"{b:g}"])
    bs_img = np.geomspace(min(config.phase_bs), max(config.phase_bs), config.phase_grid_b)
    ss_img = np.linspace(config.phase_s_max / config.phase_grid_s, config.phase_s_max, config.phase_grid_s)
    img = theory.phase_map(bs_img, ss_img, c)  # every cell in one batched solve
    theory_seconds = time.time() - t0
    sims = _phase_simulation(config, key, c)
    fig, ax = plotting.figure(1, 1, width=5.2, height=3.8)
    ax.pcolormesh(bs_img, ss_img, img, cmap="Blues", shading="nearest", vmin=0.5, vmax=3)
    for k_, row in enumerate(sims):
        ax.plot(
            row["b"],
            row["s"],
            "o" if row["separated"] else "x",
            color="k",
            ms=5,
            mfc="none" if row["separated"] else None,
            label=(f"simulation N={config.n}: o gap, x no gap" if k_ == 0 else None),
        )
    ax.plot(bs_line, [sc[f"{b:g}"] for b in bs_line], "o-", color="C1", label="s_c(b) (theory)")
    ax.axhline(c**0.25, color="k", ls="--", lw=1, label="BBP threshold c^(1/4)")
    ax.set_xscale("log")
    ax.set_xlabel("rank fraction b = K/N")
    ax.set_ylabel("signal strength s")
    ax.set_title(f"ESM phase diagram, c={c:g} (dark: signal bulk separated)")
    ax.legend(loc="upper left")
    ax.grid(False)
    plotting.save(fig, os.path.join(workdir, "figures", "c_phase_diagram.png"))
    return sc, sims, theory_seconds


@plotting.styled
def _finite_rank_experiment(config, key, workdir, mw):
    """(d) rank-K spikes at N = M: top singular values vs BBP (isolated outliers) and ESM theory."""
    n = config.finite_n
    k = config.finite_rank
    b = k / n
    c = 1.0
    rows = []
    for j, theta in enumerate(config.finite_thetas):
        tops = []
        gaps = []
        for r in range(config.finite_seeds):
            _, y = _sample(_key(key, j, r), n, n, np.full(k, theta, np.float32))
            sv = signals.singular_values(y)
            tops.append(sv[: k + 1])
            gaps.append(sv[k - 1] - sv[k])  # gap between the K-th and (K+1)-th singular values
        tops = np.array(tops)
        bbp_top = float(theory.bbp(theta, c)[0])
        t, w = theory.esm_spectrum(b, theta)
        sup = theory.support(t, w, c)
        rows.append(
            {
                "theta": float(theta),
                "sim_top_mean": float(tops[:, :k].mean()),
                "sim_top_min": float(tops[:, :k].min()),
                "sim_top_max": float(tops[:, :k].max()),
                "sim_next": float(tops[:, k].mean()),
                "sim_gap": float(np.mean(gaps)),
                "bbp_top": bbp_top,
                "bbp_isolated": bool(theta > c**0.25),
                "esm_bulks": len(sup),
                "esm_signal_bulk": [float(x) for x in sup[-1]] if len(sup) > 1 else None,
                "esm_top_edge": float(sup[-1][1]),
            }
        )
        mw.write(
            j,
            run=f"finite_rank/theta={theta:g}",
            **{kk: v for kk, v in rows[-1].items() if isinstance(v, float)},
        )
    s_c = theory.critical_strength(b, c)
    fig, ax = plotting.figure(1, 1, width=5.4, height=3.8)
    th = np.array([r["theta"] for r in rows])
    col = plotting.palette(3)
    ax.fill_between(
        th,
        [r["sim_top_min"] for r in rows],
        [r["sim_top_max"] for r in rows],
        color=col[0],
        alpha=0.25,
        label=f"top {k} singular values (sim., range)",
    )
    ax.plot(th, [r["sim_next"] for r in rows], "x", color="0.3", label=f"singular value {k + 1} (sim.)")
    th_f = np.linspace(th.min(), th.max(), 300)
    ax.plot(th_f, theory.bbp(th_f, c)[0], color=col[1], label="BBP outlier (finite rank)")
    lo = [r["esm_signal_bulk"][0] if r["esm_signal_bulk"] else np.nan for r in rows]
    hi = [r["esm_top_edge"] for r in rows]
    ax.plot(th, hi, "--", color=col[2], label=f"ESM top edge (b={b:g})")
    ax.plot(th, lo, ":", color=col[2], label="ESM signal-bulk lower edge")
    ax.axhline(2.0, color="0.5", lw=0.8, ls="-.", label="noise edge 1+sqrt(c)")
    ax.axvline(s_c, color=col[2], lw=0.8, alpha=0.6)
    ax.set_xlabel("signal strength theta (all K spikes)")
    ax.set_ylabel("singular value")
    ax.set_title(f"N=M={n}, rank {k}: BBP vs simulation (s_c={s_c:.3f})")
    ax.legend(fontsize=7)
    plotting.save(fig, os.path.join(workdir, "figures", "d_finite_rank.png"))
    return rows, s_c


@plotting.styled
def _denoise_experiment(config, key, workdir, mw):
    """(e) denoising and covariance tables (mean over seeds)."""
    n = config.denoise_n
    m = int(round(n / config.denoise_c))
    sigma = 1.0 / math.sqrt(m)
    signal_list = [(_name(b, s), signals.esm_singular_values(n, b, s)) for b, s in config.denoise_esm]
    signal_list.append((_FINITE_SIGNAL, signals.continuous_singular_values(n, config.denoise_continuous_smax)))
    den, cov, info, fit, d_fit = {}, {}, {}, {}, {}
    shrink_example = None
    for i, (name, sv) in enumerate(signal_list):
        d_acc, c_acc, s_acc = [], [], []
        for r in range(config.denoise_seeds):
            s_mat, y = _sample(_key(key, i, r), n, m, sv)
            d, cv, inf = denoise.compare_estimators(
                y,
                s_mat,
                sigma,
                int(sv.size),
                smoothing=config.smoothing,
                cov_smoothing=config.cov_smoothing,
                fit_sigma=r == 0,  # the spectrum fit (a few seconds) on the first seed only
            )
            d_acc.append(d)
            c_acc.append(cv)
            s_acc.append(inf["sigma_hat_over_sigma"])
            if r == 0:
                fit[name] = inf["sigma_fit_over_sigma"]
                d_fit[name] = d["rie_sigma_estimated"]
                d.pop("rie_sigma_estimated")
                d.pop("gd_shrink_sigma_estimated")
            if i == 0 and r == 0:
                shrink_example = (name, s_mat, y)
        for est in d_acc[0]:
            den.setdefault(est, {})[name] = float(np.mean([d[est] for d in d_acc]))
        for est in c_acc[0]:
            cov.setdefault(est, {})[name] = float(np.mean([d[est] for d in c_acc]))
        info[name] = float(np.mean(s_acc))
        mw.write(i, run=f"denoise/{name}", **{f"err_{k}": v[name] for k, v in den.items()})
    names = [nm for nm, _ in signal_list]
    fig, axes = plotting.figure(1, 2, width=11, height=4.4)
    top = 1.3
    for ax, table, title in ((axes[0], den, "denoising S"), (axes[1], cov, "estimating S S^T")):
        ests = list(table)
        width = 0.8 / len(ests)
        col = plotting.palette(len(ests))
        for e_i, est in enumerate(ests):
            xs = np.arange(len(names)) + e_i * width
            vals = np.array([table[est][nm] for nm in names])
            ax.bar(xs, np.minimum(vals, top), width, color=col[e_i], label=est)
            for x_, v in zip(xs, vals, strict=True):
                if v > top:  # clipped bar: print its value
                    ax.text(x_, top * 0.98, f"{v:.2f}", rotation=90, ha="center", va="top", fontsize=6)
        ax.set_xticks(np.arange(len(names)) + 0.4 - width / 2, names, fontsize=7)
        ax.set_ylabel("relative Frobenius error")
        ax.set_ylim(0, top)
        ax.set_title(title)
        ax.legend(fontsize=6, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.1))
    plotting.save(fig, os.path.join(workdir, "figures", "e_denoise.png"))
    # Shrinkage curves on one ESM sample: data-driven xi(y) and cov(y) vs the oracle values.
    name, s_mat, y = shrink_example
    curve = denoise.shrinkage_curves(y, s_mat, sigma, config.smoothing, config.cov_smoothing)
    yv, xi, cvals = curve["y"], curve["xi"], curve["cov"]
    oracle_xi, oracle_cov = curve["oracle_xi"], curve["oracle_cov"]
    fig, axes = plotting.figure(1, 2, width=9, height=3.4)
    col = plotting.palette(3)
    axes[0].plot(yv, oracle_xi, ".", ms=2, color="0.6", label="oracle u^T S v")
    axes[0].plot(yv, xi, color=col[0], label="RIE xi(y)")
    axes[0].plot(yv, curve["gd"], color=col[1], label="GD shrinker")
    axes[0].set_xlabel("singular value y")
    axes[0].set_title(f"singular values ({name})")
    axes[0].legend()
    axes[1].plot(yv**2, oracle_cov, ".", ms=2, color="0.6", label="oracle u^T S S^T u")
    axes[1].plot(yv**2, cvals, color=col[0], label="RI covariance c(lambda)")
    axes[1].plot(yv**2, xi**2, color=col[2], ls="--", label="xi(y)^2")
    axes[1].set_xlabel("eigenvalue lambda = y^2")
    axes[1].set_title("covariance eigenvalues")
    axes[1].legend()
    plotting.save(fig, os.path.join(workdir, "figures", "e_shrinkage.png"))
    return den, cov, info, fit, d_fit


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """Runs (a)-(e), writes figures and metrics.jsonl, returns the results dict (keys in README)."""
    with threadpool_limits(config.blas_threads or None):
        return _run(config, workdir)


def _run(config: ml_collections.ConfigDict, workdir: str) -> dict:
    key = jax.random.key(config.seed)
    k_a, k_b, k_c, k_d, k_e = jax.random.split(key, 5)
    times = {}
    results: dict = {}
    with metrics.MetricWriter(os.path.join(workdir, "metrics.jsonl")) as mw:
        bar = metrics.progress(5, "spectra (a)-(e)")
        t0 = time.time()
        q_err, integrals = _density_experiment(config, k_a, workdir, mw)
        times["a_density"] = time.time() - t0
        bar.update()
        results["density_max_abs_quantile_error"] = max(q_err.values())
        results["density_quantile_errors"] = q_err
        results["density_integral"] = integrals

        t0 = time.time()
        ov_err, bbp_err, bbp_top_err = _overlap_experiment(config, k_b, workdir, mw)
        times["b_overlaps"] = time.time() - t0
        bar.update()
        results["overlap_max_abs_error"] = max(max(ov_err.values()), bbp_err)
        results["overlap_errors"] = ov_err
        results["bbp_overlap_max_abs_error"] = bbp_err
        results["bbp_top_singular_value_max_abs_error"] = bbp_top_err

        t0 = time.time()
        sc, sims, theory_seconds = _phase_experiment(config, k_c, workdir, mw)
        times["c_phase"] = time.time() - t0
        times["c_phase_theory"] = theory_seconds
        bar.update()
        results["phase_diagram"] = sc
        results["phase_diagram_c"] = config.phase_c
        results["phase_bbp_threshold"] = config.phase_c**0.25
        results["phase_simulation"] = sims
        nan = float("nan")
        results["phase_simulation_agreement"] = (
            float(np.mean([r["separated"] == r["theory_separated"] for r in sims])) if sims else nan
        )
        results["phase_simulation_count_agreement"] = (
            float(np.mean([r["bulks"] == r["theory_bulks"] for r in sims])) if sims else nan
        )

        t0 = time.time()
        rows, s_c_fin = _finite_rank_experiment(config, k_d, workdir, mw)
        times["d_finite_rank"] = time.time() - t0
        bar.update()
        results["finite_rank"] = rows
        results["finite_rank_critical_strength"] = s_c_fin

        t0 = time.time()
        den, cov, info, fit, d_fit = _denoise_experiment(config, k_e, workdir, mw)
        times["e_denoise"] = time.time() - t0
        bar.update()
        bar.close()
        results["denoise"] = den
        results["denoise_squared"] = {k: {s: v * v for s, v in d.items()} for k, d in den.items()}
        results["covariance"] = cov
        results["sigma_hat_over_sigma"] = info
        results["sigma_fit_over_sigma"] = fit
        results["denoise_rie_sigma_estimated"] = d_fit
        results["seconds"] = {k: round(v, 2) for k, v in times.items()}
    logging.info(
        "spectra: %s",
        {k: results[k] for k in ("density_max_abs_quantile_error", "overlap_max_abs_error")},
    )
    return results
