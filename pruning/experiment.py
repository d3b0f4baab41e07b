"""What a winning ticket's mask encodes (Paul et al. 2023), wired end to end.

1. One vmapped, checkpointed IMP sweep (common.sweep, common.checkpoint): for every seed, IMP with rewinding and
   each ablation (no rewinding, random pruning, random re-initialisation, retraining from the final weights,
   one-shot), plus a twin (same mask and rewind point, other SGD noise: stability) and a perturbed copy (noise of
   the size of the distance between successive rewind points added at the rewind point: robustness) of the IMP
   run. Per level: density, test error, the error barrier to the previous level's solution.
2. Flatness: at chosen levels of the IMP runs, the full Hessian spectrum over the remaining weights gives the
   predicted largest prune fraction per iteration (random and magnitude pruning, pruning/hessian.py); a second
   vmapped sweep prunes each fraction of a grid from that solution, rewinds, retrains, and measures the largest
   fraction whose retrained network stays in the solution's low-loss, linearly connected region.
3. Weight magnitudes of the survivors at the rewind point and after retraining (retraining creates small weights).
Figures go to workdir/figures; the results.json keys are documented in pruning/README.md.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging
from matplotlib.ticker import NullFormatter

from common import app, data, metrics, plotting, sweep
from common import validate as v
from pruning import hessian, imp, masks, models

KINDS = {"magnitude": "imp", "random": "random_pruning"}  # pruning kind -> the run name that prunes that way


# ----------------------------------------------------------------------------------------------------------------
# config


def validate(config: ml_collections.ConfigDict) -> None:
    """Range and consistency checks; raises common.app.ConfigError naming the field."""
    v.one_of(config, "net.arch", ("mlp", "resnet"))
    if config.net.arch == "mlp":
        v.positive_int(config, "net.widths")
        if not len(config.net.widths):
            raise app.ConfigError("net.widths", "needs at least one hidden layer")
    else:
        v.positive_int(config, "net.resnet_blocks", "net.resnet_width")
    v.non_negative_int(config, "data.train_size")
    v.probability(config, "data.label_noise")
    v.boolean(config, "data.allow_fallback", "train.augment")
    v.positive_int(
        config,
        "train.batch_size",
        "train.steps",
        "train.chunk_steps",
        "train.eval_batch",
        "imp.num_levels",
        "imp.num_seeds",
        "imp.barrier_points",
    )
    v.non_negative_int(config, "train.rewind_step", "train.warmup_steps")
    v.divides(config, "train.chunk_steps", "train.steps")
    if config.train.rewind_step >= config.train.steps:
        raise app.ConfigError("train.rewind_step", f"must be < train.steps={config.train.steps}")
    v.positive(config, "train.lr")
    v.non_negative(config, "train.weight_decay")
    v.in_range(config, "train.momentum", 0.0, 0.999)
    v.in_range(config, "train.lr_gamma", 0.0, 1.0)
    v.sorted_grid(config, "train.lr_drops", kind=int, positive=True, allow_empty=True)
    if any(d >= config.train.steps for d in config.train.lr_drops):
        raise app.ConfigError("train.lr_drops", f"must be < train.steps={config.train.steps}")
    v.probability(config, "imp.fraction", open_low=True, open_high=True)
    v.in_range(config, "imp.output_rate", 0.0, 2.0)
    if config.imp.barrier_points < 3:
        raise app.ConfigError("imp.barrier_points", "needs at least 3 points (both ends and one inside)")
    names = tuple(config.imp.runs)
    if "imp" not in names:
        raise app.ConfigError("imp.runs", "must include 'imp'")
    for n in names:
        if n not in imp.ABLATIONS and n not in imp.COMPANIONS:
            raise app.ConfigError(
                "imp.runs", f"unknown run {n!r}; known: {sorted(imp.ABLATIONS) + list(imp.COMPANIONS)}"
            )
    if len(set(names)) != len(names):
        raise app.ConfigError("imp.runs", "lists a run twice")
    v.non_negative(config, "imp.matching_tolerance")
    v.sorted_grid(config, "flatness.levels", kind=int, non_negative=True, allow_empty=True)
    if any(lv >= config.imp.num_levels for lv in config.flatness.levels):
        raise app.ConfigError("flatness.levels", f"must be < imp.num_levels={config.imp.num_levels}")
    v.sorted_grid(config, "flatness.fractions", low=0.0, high=1.0)
    if config.flatness.fractions and not (0 < config.flatness.fractions[0] and config.flatness.fractions[-1] < 1):
        raise app.ConfigError("flatness.fractions", "entries must lie strictly between 0 and 1")
    v.positive(config, "flatness.epsilon")
    v.positive_int(config, "flatness.max_dim", "flatness.hvp_batch")
    if config.flatness.levels and "random_pruning" not in names:
        pass  # the measured sweep prunes both ways itself; nothing needed from the main sweep


# ----------------------------------------------------------------------------------------------------------------
# data and setup


def load_data(config: ml_collections.ConfigDict) -> tuple[tuple[np.ndarray, ...], str, int]:
    """(x_train, y_train, x_test, y_test), data_source, num_classes.

    `data.train_size` > 0 keeps that many training examples (the first of a fixed permutation) and, for digits, adds
    the unused ones to the test set (unseen examples: a less noisy test error). `data.label_noise` replaces that
    fraction of the training labels, once, by uniformly drawn other classes.
    """
    try:
        tr = data.load(config.data.name, "train", allow_fallback=config.data.allow_fallback)
        te = data.load(config.data.name, "test", allow_fallback=config.data.allow_fallback)
    except data.DataUnavailable as e:
        raise app.UserError(f"data.name: {e}") from e
    x_tr, y_tr, x_te, y_te = tr.x, tr.y, te.x, te.y
    if not (np.all(np.isfinite(x_tr)) and np.all(np.isfinite(x_te))):
        raise app.UserError(f"data.name: {config.data.name} has non-finite inputs")
    n = int(config.data.train_size)
    if n:
        if n > len(y_tr):
            raise app.UserError(f"data.train_size: {n} exceeds the {len(y_tr)} training examples")
        perm = np.random.default_rng(12345).permutation(len(y_tr))
        keep, rest = perm[:n], perm[n:]
        if tr.source.startswith("sklearn:digits"):
            x_te, y_te = np.concatenate([x_te, x_tr[rest]]), np.concatenate([y_te, y_tr[rest]])
        x_tr, y_tr = x_tr[keep], y_tr[keep]
    if config.data.label_noise > 0:
        rng = np.random.default_rng(54321)
        flip = rng.random(len(y_tr)) < config.data.label_noise
        shift = rng.integers(1, tr.num_classes, size=len(y_tr))
        y_tr = np.where(flip, (y_tr + shift) % tr.num_classes, y_tr).astype(np.int32)
    logging.info("data: %s, %d train, %d test", tr.source, len(y_tr), len(y_te))
    arrays = tuple(np.asarray(a) for a in (x_tr, y_tr.astype(np.int32), x_te, y_te.astype(np.int32)))
    return arrays, tr.source, int(tr.num_classes)


def make_setup(config, input_shape, num_classes: int, *, num_levels: int, snapshot_levels=()) -> imp.Setup:
    """The static IMP setup of a config."""
    if config.net.arch == "mlp":
        model = models.MLP(int(np.prod(input_shape)), tuple(int(w) for w in config.net.widths), num_classes)
    else:
        model = models.ResNet(
            blocks=int(config.net.resnet_blocks),
            width=int(config.net.resnet_width),
            num_classes=num_classes,
            in_channels=int(input_shape[-1]),
        )
    t = config.train
    return imp.Setup(
        model=model,
        batch_size=int(t.batch_size),
        steps=int(t.steps),
        num_levels=int(num_levels),
        momentum=float(t.momentum),
        lr_drops=tuple(int(d) for d in t.lr_drops),
        lr_gamma=float(t.lr_gamma),
        warmup_steps=int(t.warmup_steps),
        augment=bool(t.augment),
        output_rate=float(config.imp.output_rate),
        barrier_points=int(config.imp.barrier_points),
        snapshot_levels=tuple(int(x) for x in snapshot_levels),
        eval_batch=int(t.eval_batch),
    )


def _seeds(config) -> list[int]:
    return [config.seed + i for i in range(config.imp.num_seeds)]


# ----------------------------------------------------------------------------------------------------------------
# summaries


def _mean_std(x: np.ndarray) -> dict[str, list]:
    with np.errstate(all="ignore"):
        return {"mean": np.nanmean(x, axis=0).tolist(), "std": np.nanstd(x, axis=0).tolist()}


def summarize(runs: list[imp.Run], hist: dict[str, np.ndarray], tolerance: float) -> dict[str, Any]:
    """Per run name, per level: density, test_error / barriers (mean, std over seeds), matching; stability."""
    names = list(dict.fromkeys(r.name for r in runs))
    idx = {n: [i for i, r in enumerate(runs) if r.name == n] for n in names}
    dense = hist["test_error"][idx["imp"], 0]
    dense_mean = float(np.mean(dense))
    out: dict[str, Any] = {
        "dense_test_error": {"mean": dense_mean, "std": float(np.std(dense))},
        "matching_tolerance": tolerance,
        "matching_threshold": dense_mean + tolerance,
    }
    per_name = {}
    for n in names:
        if n in imp.COMPANIONS:
            continue
        rows = idx[n]
        err = hist["test_error"][rows]
        mean_err = err.mean(axis=0)
        entry = {
            "density": hist["density"][rows].mean(axis=0).tolist(),
            "test_error": _mean_std(err),
            "train_loss": _mean_std(hist["train_loss"][rows]),
            "barrier_loss": _mean_std(hist["barrier_loss"][rows]),
            "barrier_error": _mean_std(hist["barrier_error"][rows]),
            "matching": (mean_err <= dense_mean + tolerance).tolist(),
            "matching_per_seed": (err <= dense_mean + tolerance).tolist(),
        }
        entry["lowest_matching_density"] = lowest_matching_density(entry["density"], entry["matching"])
        per_name[n] = entry
    out["imp"] = per_name["imp"]
    out["ablations"] = {n: e for n, e in per_name.items() if n != "imp"}
    stab: dict[str, Any] = {"density": per_name["imp"]["density"]}
    for c in imp.COMPANIONS:
        if c in idx:
            stab[f"{c}_barrier_loss"] = _mean_std(hist["parent_barrier_loss"][idx[c]])
            stab[f"{c}_barrier_error"] = _mean_std(hist["parent_barrier_error"][idx[c]])
            stab[f"{c}_test_error"] = _mean_std(hist["test_error"][idx[c]])
    stab["rewind_distance"] = _mean_std(hist["rewind_distance"][idx["imp"]])
    out["stability"] = stab
    return out


def lowest_matching_density(density: list[float], matching: list[bool]) -> float | None:
    """The lowest density reached with every level down to it matching (None if level 1 already fails)."""
    low = None
    for d, m in zip(density[1:], matching[1:], strict=True):
        if not m:
            break
        low = d
    return low


# ----------------------------------------------------------------------------------------------------------------
# flatness


def _one(tree, i: int):
    return jax.tree.map(lambda x: np.asarray(x[i]), tree)


def flatness(
    config, workdir: str, setup: imp.Setup, runs: list[imp.Run], state, arrays, writer
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Predicted (Hessian bound) and measured (retraining sweep) largest prune fraction per iteration.

    Returns (results, extra data for the figures)."""
    f = config.flatness
    eps = float(f.epsilon)
    imp_rows = [i for i, r in enumerate(runs) if r.name == "imp"]
    snap_params = sweep.to_numpy(state["snap_params"])
    snap_masks = sweep.to_numpy(state["snap_masks"])
    w_rewind = sweep.to_numpy(state["w_rewind"])
    s_rewind = sweep.to_numpy(state["s_rewind"])
    stats = sweep.to_numpy(state["stats"])
    x_tr, y_tr = jnp.asarray(arrays[0]), jnp.asarray(arrays[1])
    out: dict[str, Any] = {"epsilon": eps, "fractions": list(f.fractions)}
    figs: dict[str, Any] = {}
    fsetup = make_setup(config, arrays[0].shape[1:], setup.model.num_classes, num_levels=2)
    for j, level in enumerate(f.levels):
        key = f"level_{level}"
        entry: dict[str, Any] = {"level": int(level), "random": {}, "magnitude": {}}
        # predicted, per seed, from the full spectrum over the remaining weights
        pred = {k: [] for k in KINDS}
        base_loss, spectra = [], []
        for r in imp_rows:
            params = jax.tree.map(lambda a, j=j: jnp.asarray(a[j]), _one(snap_params, r))
            mask = _one(snap_masks, r)
            mask = jax.tree.map(lambda a, j=j: np.asarray(a[j]), mask)
            st = jax.tree.map(jnp.asarray, _one(stats, r))
            rates = setup.rates(params)
            d = int(masks.count(mask, rates))
            if d > f.max_dim:
                raise app.UserError(
                    f"flatness.max_dim: level {level} has {d} remaining weights, above {f.max_dim} (full spectrum)"
                )

            def loss_fn(p, st=st):
                return imp._loss_and_error(setup, p, st, x_tr, y_tr)[0]

            lam = hessian.full_spectrum(loss_fn, params, mask=mask, rates=rates, batch=int(f.hvp_batch))
            w = hessian.flat_weights(params, mask, rates)
            spectra.append(lam)
            base_loss.append(float(loss_fn(params)))
            for kind in KINDS:
                pred[kind].append(hessian.max_prune_fraction(lam, w, eps, kind))
        entry["remaining_weights"] = d
        entry["train_loss"] = base_loss
        entry["top_eigenvalue"] = [float(np.max(lam)) for lam in spectra]
        entry["negative_eigenvalues"] = [int(np.sum(lam < 0)) for lam in spectra]
        # measured: prune each fraction from the level's solution, rewind, retrain; in one vmapped sweep
        fruns, parents, kinds = [], [], []
        for kind, name in KINDS.items():
            for p in f.fractions:
                for r in imp_rows:
                    base = runs[r]
                    fruns.append(
                        imp.Run(base.seed, name, len(fruns), base.lr, base.weight_decay, float(p), base.rewind_step)
                    )
                    parents.append(r)
                    kinds.append(kind)
        fsw = imp.Sweep(fsetup, fruns, int(config.train.chunk_steps))
        st0 = fsw.init()
        pidx = np.asarray(parents)
        host = sweep.to_numpy(st0)
        host["params"] = jax.tree.map(lambda a, j=j, pidx=pidx: a[pidx, j], snap_params)
        mk = jax.tree.map(lambda a, j=j, pidx=pidx: a[pidx, j], snap_masks)
        host["opt"] = masks.set_masks(host["opt"], mk)
        for name, tree in (("w_rewind", w_rewind), ("s_rewind", s_rewind), ("stats", stats)):
            host[name] = jax.tree.map(lambda a, pidx=pidx: a[pidx], tree)
        fstate = fsw.run(
            host,
            arrays,
            first_level=1,
            num_levels=1,
            ckpt_dir=os.path.join(workdir, "checkpoints", f"flatness_{key}"),
            writer=writer,
            desc=f"flatness_{key}",
        )
        fh = imp.history(fstate)
        n_seeds = len(imp_rows)
        nf = len(f.fractions)
        for kind_i, kind in enumerate(KINDS):
            sl = slice(kind_i * nf * n_seeds, (kind_i + 1) * nf * n_seeds)
            loss = fh["train_loss"][sl, 1].reshape(nf, n_seeds)
            bar = fh["barrier_loss"][sl, 1].reshape(nf, n_seeds)
            err = fh["test_error"][sl, 1].reshape(nf, n_seeds)
            ok = (loss <= np.asarray(base_loss)[None] + eps) & (bar <= eps)
            measured = [measured_max_fraction(list(f.fractions), ok[:, s]) for s in range(n_seeds)]
            entry[kind] = {
                "predicted": float(np.mean(pred[kind])),
                "predicted_per_seed": pred[kind],
                "measured": float(np.mean(measured)),
                "measured_per_seed": measured,
                "retrained_train_loss": loss.mean(axis=1).tolist(),
                "retrained_barrier_loss": bar.mean(axis=1).tolist(),
                "retrained_test_error": err.mean(axis=1).tolist(),
                "success_fraction": ok.mean(axis=1).tolist(),
            }
        out[key] = entry
        figs[key] = {"spectrum": spectra[0]}
    return out, figs


def measured_max_fraction(fractions: list[float], ok: np.ndarray) -> float:
    """The largest fraction of the grid with every smaller fraction also succeeding (0 if the first fails)."""
    best = 0.0
    for p, good in zip(fractions, ok, strict=True):
        if not good:
            break
        best = float(p)
    return best


# ----------------------------------------------------------------------------------------------------------------
# weight magnitudes


def weight_magnitudes(setup: imp.Setup, runs, state, level_index: int) -> dict[str, np.ndarray]:
    """|w| of the surviving kernel weights of the first IMP run at a snapshot level: at the rewind point (before
    retraining) and at the level's solution (after), and which of them the next level prunes."""
    r = [i for i, run in enumerate(runs) if run.name == "imp"][0]
    params = jax.tree.map(lambda a: np.asarray(a[r, level_index]), sweep.to_numpy(state["snap_params"]))
    mask = jax.tree.map(lambda a: np.asarray(a[r, level_index]), sweep.to_numpy(state["snap_masks"]))
    w_k = jax.tree.map(lambda a: np.asarray(a[r]), sweep.to_numpy(state["w_rewind"]))
    rates = setup.rates(params)
    before = np.abs(hessian.flat_weights(w_k, mask, rates))
    after = np.abs(hessian.flat_weights(params, mask, rates))
    return {"before": before, "after": after}


# ----------------------------------------------------------------------------------------------------------------
# figures

_LABELS = {
    "imp": "IMP, rewind to step k",
    "no_rewind": "IMP, no rewinding (k = 0)",
    "random_pruning": "random pruning",
    "random_reinit": "random re-init",
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
    fig, axes = plotting.figure(1, 2, width=10.0, height=3.8)
    e = res["imp"]
    d = np.asarray(e["density"])
    match = np.asarray(e["matching"], bool)
    for ax, key, label in (
        (axes[0], "barrier_error", "test-error barrier"),
        (axes[1], "barrier_loss", "train-loss barrier"),
    ):
        y = np.asarray(e[key]["mean"])
        s = np.asarray(e[key]["std"])
        ax.errorbar(d[1:], y[1:], yerr=s[1:], color="0.6", lw=1, zorder=1)
        ax.scatter(d[1:][match[1:]], y[1:][match[1:]], color="#0072B2", zorder=2, label="matching")
        ax.scatter(
            d[1:][~match[1:]],
            y[1:][~match[1:]],
            facecolors="none",
            edgecolors="#D55E00",
            zorder=2,
            label="not matching",
        )
        st = res["stability"]
        if "twin_" + key in st:
            ax.plot(d, st["twin_" + key]["mean"], "s--", ms=3, color="#009E73", lw=1, label="twin (other SGD noise)")
        if "perturbed_" + key in st:
            ax.plot(
                d, st["perturbed_" + key]["mean"], "^:", ms=3, color="#CC79A7", lw=1, label="perturbed rewind point"
            )
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.invert_xaxis()
        ax.set_xlabel("density at level L+1")
        ax.set_ylabel(label)
        ax.set_title(f"IMP: {label} between levels L and L+1")
    axes[0].legend(loc="upper left")
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
        ax.set_ylabel("fraction of seeds in the same low-loss mode")
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


# ----------------------------------------------------------------------------------------------------------------
# run / report


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """Runs the experiment (see the module docstring) and returns the results dict (keys in pruning/README.md)."""
    arrays, source, num_classes = load_data(config)
    levels = tuple(int(x) for x in config.flatness.levels)
    setup = make_setup(
        config, arrays[0].shape[1:], num_classes, num_levels=config.imp.num_levels, snapshot_levels=levels
    )
    runs = imp.make_runs(
        _seeds(config),
        list(config.imp.runs),
        lr=float(config.train.lr),
        weight_decay=float(config.train.weight_decay),
        fraction=float(config.imp.fraction),
        rewind_step=int(config.train.rewind_step),
    )
    logging.info(
        "IMP sweep: %d runs (%s x %d seeds) as one jit(vmap), %d levels x %d steps",
        len(runs),
        ",".join(config.imp.runs),
        config.imp.num_seeds,
        setup.num_levels,
        setup.steps,
    )
    sw = imp.Sweep(setup, runs, int(config.train.chunk_steps))
    fig_dir = os.path.join(workdir, "figures")
    with metrics.MetricWriter(os.path.join(workdir, "metrics.jsonl")) as writer:
        state = sw.run(sw.init(), arrays, ckpt_dir=os.path.join(workdir, "checkpoints", "imp"), writer=writer)
        hist = imp.history(state)
        res = summarize(runs, hist, float(config.imp.matching_tolerance))
        flat, _ = flatness(config, workdir, setup, runs, state, arrays, writer) if levels else ({}, {})
    res["max_prune_fraction"] = flat
    res["data_source"] = source
    res["num_train"] = int(arrays[1].shape[0])
    res["num_test"] = int(arrays[3].shape[0])
    res["num_seeds"] = int(config.imp.num_seeds)
    res["fraction_per_level"] = float(config.imp.fraction)
    res["num_runs"] = len(runs)
    res["runs"] = [r.name for r in runs]
    res["per_run"] = {k: hist[k].tolist() for k in ("density", "test_error", "barrier_error", "barrier_loss")}
    figure_error_vs_density(res, os.path.join(fig_dir, "test_error_vs_density.png"))
    figure_barrier_vs_density(res, os.path.join(fig_dir, "barrier_vs_density.png"))
    if levels:
        figure_prune_fraction(flat, os.path.join(fig_dir, "max_prune_fraction.png"))
        mag_level = next((j for j, lv in enumerate(levels) if lv > 0), None)
        if mag_level is not None:
            mags = weight_magnitudes(setup, runs, state, mag_level)
            res["weight_magnitudes"] = {
                "level": levels[mag_level],
                "median_before": float(np.median(mags["before"])),
                "median_after": float(np.median(mags["after"])),
                "below_next_threshold_before": float(
                    np.mean(mags["before"] < np.quantile(mags["after"], config.imp.fraction))
                ),
            }
            figure_magnitudes(
                mags, float(config.imp.fraction), levels[mag_level], os.path.join(fig_dir, "weight_magnitudes.png")
            )
    return res


def report(results: dict) -> list[dict]:
    """The headline checks: matching well below density 1 with rewinding, ablations worse, barrier ~0 exactly while
    matching, predicted vs measured largest prune fraction."""
    out = []
    e = results["imp"]
    low = e["lowest_matching_density"]
    out.append(
        {
            "name": "IMP (rewinding): lowest density with every level matching",
            "value": "none" if low is None else round(low, 4),
            "paper": "matching down to a density well below 1 (here: <= 0.3)",
            "ok": bool(low is not None and low <= 0.3),
        }
    )
    dens = np.asarray(e["density"])
    # the ablations at the lowest density where IMP still matches (or the last level)
    j = int(np.argmin(np.abs(dens - (low if low is not None else dens[-1]))))
    imp_err = e["test_error"]["mean"][j]
    for name, a in results["ablations"].items():
        err = a["test_error"]["mean"][j]
        worse = err > imp_err
        out.append(
            {
                "name": f"{name}: test error at density {dens[j]:.3f} (IMP {imp_err:.4f})",
                "value": round(err, 4),
                "paper": "worse than IMP with rewinding"
                + (" (small nets often work without rewinding)" if name == "no_rewind" else ""),
                "ok": bool(worse) if name not in ("no_rewind", "retrain_final") else None,
            }
        )
    match = np.asarray(e["matching"][1:], bool)
    bar = np.asarray(e["barrier_error"]["mean"][1:], float)
    tol = results["matching_tolerance"]
    near_zero = bar <= max(tol, 1e-9)
    agree = float(np.mean(near_zero == match)) if len(match) else float("nan")
    out.append(
        {
            "name": f"IMP levels where (barrier_error <= {tol}) == matching",
            "value": round(agree, 3),
            "paper": "barrier ~0 if and only if matching (at higher sparsities)",
            "ok": bool(agree >= 0.8),
        }
    )
    if match.any():
        out.append(
            {
                "name": "IMP: largest test-error barrier among matching levels",
                "value": round(float(np.max(bar[match])), 4),
                "paper": "~0 while matching",
                "ok": bool(np.max(bar[match]) <= tol),
            }
        )
    if (~match).any():
        out.append(
            {
                "name": "IMP: largest test-error barrier among non-matching levels",
                "value": round(float(np.max(bar[~match])), 4),
                "paper": "> 0 once not matching",
                "ok": bool(np.max(bar[~match]) > tol),
            }
        )
    st = results.get("stability", {})
    if "twin_barrier_error" in st:
        tb = np.asarray(st["twin_barrier_error"]["mean"][1:], float)
        out.append(
            {
                "name": "twin (other SGD noise): test-error barrier, matching levels (max)",
                "value": round(float(np.nanmax(tb[match])), 4) if match.any() else "n/a",
                "paper": "~0: stable to SGD noise while matching",
                "ok": bool(np.nanmax(tb[match]) <= tol) if match.any() else None,
            }
        )
    if "perturbed_barrier_error" in st:
        pb = np.asarray(st["perturbed_barrier_error"]["mean"][1:], float)
        out.append(
            {
                "name": "perturbed rewind point: test-error barrier, matching levels (max)",
                "value": round(float(np.nanmax(pb[match])), 4) if match.any() else "n/a",
                "paper": "~0: SGD returns to the same linearly connected mode",
                "ok": bool(np.nanmax(pb[match]) <= tol) if match.any() else None,
            }
        )
    flat = results.get("max_prune_fraction") or {}
    for key, entry in flat.items():
        if not key.startswith("level_"):
            continue
        for kind in KINDS:
            k = entry[kind]
            step = float(np.max(np.diff([0.0, *flat["fractions"]])))
            out.append(
                {
                    "name": f"{key}, {kind} pruning: predicted / measured largest fraction",
                    "value": f"{k['predicted']:.3f} / {k['measured']:.3f}",
                    "paper": "predicted matches measured for random pruning; magnitude does a little better",
                    "ok": bool(abs(k["predicted"] - k["measured"]) <= step) if kind == "random" else None,
                }
            )
    return out
