"""The effective dimension of class manifolds and their boundaries (Fort et al. 2022), wired end to end.

``run(config, workdir)``:
1. known-answer cases at the data's D (a halfspace, tubes of codimension 1-3) with the released and the larger
   budget: the bias of the released settings;
2. classifiers trained through common.sweep / common.checkpoint: one vmapped group of MLPs (seeds for the
   ensembles, random-label runs, smaller training sets; parameters kept at every chunk for d* over training), one
   group per extra width, a small CNN;
3. d* per class, for 2/3/4-class boundaries, over training, random vs true labels, width, training-set size,
   ensembles of 1/2/4/8 members, and Gaussian-corruption accuracy against effective dimension;
4. figures in workdir/figures.
"""

from __future__ import annotations

import math
import os
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging

from common import app, checkpoint, data, metrics, plotting, sweep
from common import validate as v
from manifolds import closed_form as cf
from manifolds import cutting_planes as cp
from manifolds import models, train

# ----------------------------------------------------------------------------------------------------------
# validation


def validate(config: ml_collections.ConfigDict) -> None:
    """Range and consistency checks; raises common.app.ConfigError naming the field."""
    v.one_of(config, "data.name", ("digits", "mnist", "fashion_mnist", "cifar10"))
    v.boolean(config, "data.allow_fallback", "cnn.enabled", "estimator.filter_starts")
    v.positive_int(
        config,
        "train.num_steps",
        "train.chunk_steps",
        "train.batch_size",
        "train.num_seeds",
        "mlp.width",
        "estimator.repeats",
        "estimator.num_starts",
        "estimator.steps",
        "estimator.check_steps",
        "estimator.check_repeats",
        "estimator.max_per_call",
    )
    v.non_negative_int(config, "train.random_label_seeds", "estimator.num_boot")
    v.divides(config, "train.chunk_steps", "train.num_steps")
    v.positive(config, "train.lr", "train.random_label_lr", "estimator.lr", "estimator.check_lr", "robustness.sigma")
    v.probability(config, "estimator.tolerance", "estimator.rate_tolerance")
    v.one_of(config, "estimator.basis", cp.BASES)
    v.one_of(config, "estimator.fit_to", ("probability", "success"))
    v.sorted_grid(config, "estimator.dims", kind=int, positive=True)
    v.sorted_grid(config, "mlp.widths", kind=int, positive=True, allow_empty=True)
    v.sorted_grid(config, "train.train_sizes", kind=int, positive=True, allow_empty=True)
    v.sorted_grid(config, "ensemble.members", kind=int, positive=True, allow_empty=True)
    v.sorted_grid(config, "over_training.chunks", kind=int, positive=True, allow_empty=True)
    v.sorted_grid(config, "cnn.channels", kind=int, positive=True)
    v.sorted_grid(config, "classes", kind=int, non_negative=True)
    v.sorted_grid(config, "variable_classes", kind=int, non_negative=True)
    v.sorted_grid(config, "known_answer.codims", kind=int, positive=True, allow_empty=True, high=4)
    bounds = v.get(config, "estimator.bounds")
    if bounds is not None and (
        not isinstance(bounds, (tuple, list))
        or len(bounds) != 2
        or not all(isinstance(b, (int, float)) for b in bounds)
    ):
        raise app.ConfigError("estimator.bounds", f"must be None or (lo, hi), got {bounds!r}")
    if bounds is not None and not bounds[0] < bounds[1]:
        raise app.ConfigError("estimator.bounds", f"needs lo < hi, got {tuple(bounds)!r}")
    for sets in v.get(config, "boundary_sets"):
        if not isinstance(sets, (tuple, list)) or len(sets) < 2:
            raise app.ConfigError("boundary_sets", f"each boundary needs >= 2 classes, got {sets!r}")
        if len(set(sets)) != len(sets) or any(not isinstance(c, int) or c < 0 for c in sets):
            raise app.ConfigError("boundary_sets", f"classes must be distinct non-negative integers, got {sets!r}")
    members = list(config.ensemble.members)
    if members and members[-1] > config.train.num_seeds:
        raise app.ConfigError("ensemble.members", f"needs <= train.num_seeds={config.train.num_seeds} members")
    n_chunks = config.train.num_steps // config.train.chunk_steps
    if any(c > n_chunks for c in config.over_training.chunks):
        raise app.ConfigError("over_training.chunks", f"chunk indices must be <= {n_chunks} (num_steps/chunk_steps)")
    if config.estimator.check_repeats > config.estimator.repeats:
        raise app.ConfigError("estimator.check_repeats", "must be <= estimator.repeats")


# ----------------------------------------------------------------------------------------------------------
# data and training


def _load(config) -> dict[str, Any]:
    try:
        tr = data.load(config.data.name, "train", allow_fallback=config.data.allow_fallback)
        te = data.load(config.data.name, "test", allow_fallback=config.data.allow_fallback)
    except data.DataUnavailable as e:
        raise app.UserError(f"data.name: {e}") from e
    n_classes = int(tr.num_classes)
    for key in ("classes", "variable_classes"):
        if max(config[key]) >= n_classes:
            raise app.UserError(f"{key}: classes must be < {n_classes} for {tr.source}")
    if any(max(s) >= n_classes for s in config.boundary_sets):
        raise app.UserError(f"boundary_sets: classes must be < {n_classes} for {tr.source}")
    dim = int(np.prod(tr.x.shape[1:]))
    if max(config.estimator.dims) > dim:
        raise app.UserError(f"estimator.dims: d must be <= D={dim} (the input dimension of {tr.source})")
    x, xt = tr.x.reshape(len(tr.x), -1), te.x.reshape(len(te.x), -1)
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(xt))):
        raise app.UserError(f"data.name: {tr.source} has non-finite inputs")
    y_rand = np.random.default_rng(config.seed + 12345).integers(0, n_classes, len(tr.y)).astype(np.int32)
    logging.info("data: %s (%d train, %d test, D=%d)", tr.source, len(tr.y), len(te.y), dim)
    return {
        "x": x,
        "y": tr.y,
        "y_rand": y_rand,
        "xt": xt,
        "yt": te.y,
        "shape": tuple(int(s) for s in tr.x.shape[1:]),
        "classes": n_classes,
        "dim": dim,
        "source": tr.source,
    }


def _train_group(name: str, task: train.Task, rows: list[dict], ds: dict, config, workdir: str, writer) -> dict:
    """Trains `rows` (seed + HPARAMS each) as one vmapped, checkpointed sweep; returns host state and accuracies."""
    hp = {k: np.array([r[k] for r in rows], np.float32) for k in train.HPARAMS}
    keys = jax.vmap(jax.random.key)(jnp.asarray([r["seed"] for r in rows], jnp.uint32))
    state0 = sweep.vmapped(lambda k, h: train.init_state(task, k, h))(keys, hp)
    chunk_steps = int(config.train.chunk_steps)
    chunk = sweep.vmapped(train.run_chunk(task, chunk_steps), in_axes=(0, 0, None, None))
    xy = (ds["x"], ds["y"], ds["y_rand"])

    def chunk_fn(state, start):
        return chunk(state, hp, xy, np.int32(start))

    def on_chunk(step, m):
        loss, acc = np.asarray(m["loss"]), np.asarray(m["train_acc"])
        for r in range(len(rows)):
            writer.write(step, run=f"{name}/{r}", loss=float(loss[r]), train_acc=float(acc[r]))

    state = checkpoint.run_chunked(  # stops at a non-finite loss reported under checkpoint.NONFINITE
        chunk_fn,
        state0,
        num_steps=int(config.train.num_steps),
        chunk_steps=chunk_steps,
        checkpoint_dir=os.path.join(workdir, "checkpoints", name),
        on_chunk=on_chunk,
        metric_writer=writer,
        metric_run_prefix=f"{name}/",
        desc=f"manifolds/{name}",
    )
    acc_fn = sweep.vmapped(lambda s, x, y: train.accuracy(task, s["params"], x, y), in_axes=(0, None, None))
    test_acc = np.asarray(acc_fn(state, ds["xt"], ds["yt"]))[: len(rows)]
    host = sweep.to_numpy(state)
    host = jax.tree.map(lambda a: np.asarray(a)[: len(rows)], host)
    for r, row in enumerate(rows):
        logging.info("%s run %d %s: test acc %.4f", name, r, row, test_acc[r])
    return {"state": host, "test_acc": test_acc, "rows": rows, "task": task}


def _row(seed, lr, train_size=1e9, random_labels=0.0, width=1e9) -> dict:
    return {
        "seed": int(seed),
        "lr": float(lr),
        "train_size": float(train_size),
        "random_labels": float(random_labels),
        "width": float(width),
    }


def _member(group: dict, i: int, snap: int | None = None):
    src = group["state"]["params"] if snap is None else jax.tree.map(lambda a: a[:, snap], group["state"]["snaps"])
    return jax.tree.map(lambda a: jnp.asarray(a[i]), src)


# ----------------------------------------------------------------------------------------------------------
# estimates


class _Estimator:
    """Runs and records d* estimates with the config's settings."""

    def __init__(self, config, ds: dict, writer):
        e = config.estimator
        self.config, self.ds, self.writer = config, ds, writer
        self.dims = tuple(int(d) for d in e.dims)
        self.budget = cp.Budget(lr=float(e.lr), steps=int(e.steps))
        self.check = cp.Budget(lr=float(e.check_lr), steps=int(e.check_steps))
        self.bounds = None if e.bounds is None else (float(e.bounds[0]), float(e.bounds[1]))
        self.key = jax.random.key(config.seed + 1)
        self.records: dict[str, dict] = {}
        self.curves: dict[str, cp.CriticalDimension] = {}

    def starts(self, log_prob, params, target: tuple[int, ...]) -> np.ndarray:
        """The first num_starts test points (fixed shuffled order) whose label and prediction are not in
        `target`, and that are not already on a boundary target."""
        xt, yt = self.ds["xt"], self.ds["yt"]
        order = np.random.default_rng(self.config.seed + 7).permutation(len(yt))
        lp = np.asarray(log_prob(params, jnp.asarray(xt[order])))
        p = np.exp(lp)
        pred_in = np.isin(np.argmax(lp, 1), target)
        boundary = len(target) * p[:, list(target)].min(axis=1) >= 0.5
        ok = ~np.isin(yt[order], target)
        if self.config.estimator.filter_starts:  # else the estimator refuses points already in the target
            ok &= ~pred_in & ~boundary
        idx = order[ok][: int(self.config.estimator.num_starts)]
        if idx.size == 0:
            raise app.UserError(f"no test point outside the target {target} to start from")
        return xt[idx]

    def __call__(self, name: str, log_prob, params, target, x0s=None) -> dict:
        e = self.config.estimator
        t = cp.as_target(target)
        if x0s is None:
            x0s = self.starts(log_prob, params, t.classes)
        try:
            res = cp.critical_dimension(
                log_prob,
                x0s,
                t,
                self.dims,
                int(e.repeats),
                jax.random.fold_in(self.key, sum(t.classes) * 131 + t.k),
                params=params,
                budget=self.budget,
                check_budget=self.check,
                check_repeats=int(e.check_repeats),
                tolerance=float(e.tolerance),
                rate_tolerance=float(e.rate_tolerance),
                basis=e.basis,
                bounds=self.bounds,
                fit_to=e.fit_to,
                num_boot=int(e.num_boot),
                max_per_call=int(e.max_per_call),
            )
        except cp.EstimatorInputError as err:
            raise app.UserError(f"{name}: {err}") from err
        rec = {
            "value": res.d_star,
            "error": res.d_star_error,
            "bracket": res.d_star_bracket,
            "effective_dimension": res.effective_dimension,
            "d_star_success": res.d_star_success["d_star"],
            "d_star_grid": res.d_star_grid,
            "converged": res.converged,
            "moved": res.convergence["moved"],
            "d_star_subset_larger_budget": res.convergence["d_star_subset_larger_budget"],
            "num_starts": int(len(x0s)),
        }
        self.records[name] = rec
        self.curves[name] = res
        self.writer.write(0, run=f"estimate/{name}", **{k: v for k, v in rec.items() if k != "bracket"})
        logging.info(
            "d* %-28s %.2f ± %.2f (success fit %.2f, grid %.0f) converged=%s moved=%+.2f",
            name,
            res.d_star,
            res.d_star_error if math.isfinite(res.d_star_error) else 0.0,
            res.d_star_success["d_star"],
            res.d_star_grid,
            res.converged,
            res.convergence["moved"],
        )
        return rec

    def mean_over(self, prefix: str, log_prob, params, classes) -> dict:
        """d* averaged over `classes` (each its own estimate named prefix/class)."""
        recs = [self(f"{prefix}/class{c}", log_prob, params, int(c)) for c in classes]
        vals = np.array([r["value"] for r in recs], float)
        errs = np.array([r["error"] for r in recs], float)
        return {
            "value": float(vals.mean()),
            "error": float(np.sqrt(np.nansum(errs**2)) / len(errs)),
            "per_class": vals.tolist(),
            "converged": bool(all(r["converged"] for r in recs)),
        }


def known_answer(config, dim: int, est: _Estimator) -> dict:
    """d* of closed-form regions (a halfspace at distance 3, tubes of codimension m) at the data's D, with the
    configured (released) budget and with the larger one."""
    k = config.known_answer
    out = {}
    cases = [("halfspace", 1, *cf.halfspace(dim, float(k.halfspace_distance), int(k.num_starts)))]
    for m in k.codims:
        cases.append((f"codim{m}", int(m), *cf.tube(dim, int(m), int(k.num_starts), seed=int(m))))
    dims = tuple(d for d in est.dims if d <= 2 * max([c[1] for c in cases]) + 2)
    for name, m, params, x0s in cases:
        row = {"truth": m}
        for label, budget in (("released", est.budget), ("larger", est.check)):
            r = cp.critical_dimension(
                cf.closed_form,
                x0s,
                1,
                dims,
                int(k.repeats),
                jax.random.key(config.seed + m),
                params=params,
                budget=budget,
                check_budget=None,
                num_boot=int(config.estimator.num_boot),
            )
            row[label] = {
                "d_star": r.d_star,
                "error": r.d_star_error,
                "d_star_grid": r.d_star_grid,
                "success_rate": r.success_rate.tolist(),
            }
        row["dims"] = list(dims)
        out[name] = row
        logging.info(
            "known answer %s (truth %d): released d* %.2f, larger budget d* %.2f",
            name,
            m,
            row["released"]["d_star"],
            row["larger"]["d_star"],
        )
    return out


def _spearman(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 3:
        return math.nan
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


# ----------------------------------------------------------------------------------------------------------


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    """Trains the classifiers and measures every d*; returns the results (keys in manifolds/README.md)."""
    ds = _load(config)
    t_cfg = config.train
    n_chunks = t_cfg.num_steps // t_cfg.chunk_steps
    full = float(len(ds["y"]))
    with metrics.MetricWriter(os.path.join(workdir, "metrics.jsonl")) as writer:
        est = _Estimator(config, ds, writer)
        known = known_answer(config, ds["dim"], est)

        # One vmapped group of MLPs of the main width: seeds, random labels, smaller training sets.
        rows = [_row(config.seed + i, t_cfg.lr, full) for i in range(t_cfg.num_seeds)]
        rows += [_row(config.seed + i, t_cfg.random_label_lr, full, 1.0) for i in range(t_cfg.random_label_seeds)]
        rows += [_row(config.seed, t_cfg.lr, n) for n in t_cfg.train_sizes if n < full]
        main_task = train.Task(
            "mlp", (int(config.mlp.width),), ds["shape"], ds["classes"], int(t_cfg.batch_size), n_chunks, True
        )
        main = _train_group("mlp", main_task, rows, ds, config, workdir, writer)
        # The other widths: one vmapped group of MLPs of the largest width, each masked to its own width.
        groups = {}
        widths = [int(w) for w in config.mlp.widths if w != config.mlp.width]
        if widths:
            task = train.Task("mlp", (max(widths),), ds["shape"], ds["classes"], int(t_cfg.batch_size), n_chunks)
            wrows = [_row(config.seed, t_cfg.lr, full, width=w) for w in widths]
            wg = _train_group("mlp_widths", task, wrows, ds, config, workdir, writer)
            for i, w in enumerate(widths):
                groups[w] = {**wg, "index": i}
        cnn = None
        if config.cnn.enabled:
            task = train.Task(
                "cnn",
                tuple(int(c) for c in config.cnn.channels),
                ds["shape"],
                ds["classes"],
                int(t_cfg.batch_size),
                n_chunks,
            )
            cnn = _train_group("cnn", task, [_row(config.seed, t_cfg.lr, full)], ds, config, workdir, writer)

        mlp_lp = models.log_prob(models.mlp_apply)
        p0 = _member(main, 0)
        var_classes = [int(c) for c in config.variable_classes]

        # d* per class and of boundaries (the main MLP, seed 0).
        d_star = {str(c): est(f"class{c}", mlp_lp, p0, int(c)) for c in config.classes}
        boundary_by_set = {
            "-".join(map(str, s)): est(f"boundary{'-'.join(map(str, s))}", mlp_lp, p0, tuple(int(c) for c in s))
            for s in config.boundary_sets
        }
        ks = sorted({len(s) for s in config.boundary_sets})
        d_star_boundary = {"1": {"value": float(np.mean([d_star[str(c)]["value"] for c in config.classes]))}}
        for k in ks:
            vals = [boundary_by_set["-".join(map(str, s))]["value"] for s in config.boundary_sets if len(s) == k]
            d_star_boundary[str(k)] = {"value": float(np.mean(vals)), "sets": len(vals)}

        # Over training (parameters at the end of the chosen chunks).
        by_epoch = {}
        steps_per_epoch = len(ds["y"]) / t_cfg.batch_size
        for c in config.over_training.chunks:
            step = int(c) * t_cfg.chunk_steps
            r = est.mean_over(f"step{step}", mlp_lp, _member(main, 0, int(c) - 1), var_classes)
            by_epoch[str(step)] = {**r, "epoch": step / steps_per_epoch}

        # Random vs true labels.
        rand_idx = [i for i, r in enumerate(main["rows"]) if r["random_labels"] > 0.5]
        random_labels = {"true": est.mean_over("true_labels", mlp_lp, p0, var_classes)}
        for j, i in enumerate(rand_idx):
            random_labels[f"random{j}"] = est.mean_over(f"random_labels{j}", mlp_lp, _member(main, i), var_classes)

        # Width.
        by_width = {str(config.mlp.width): random_labels["true"]}
        for w, g in groups.items():
            by_width[str(w)] = est.mean_over(f"width{w}", mlp_lp, _member(g, g["index"]), var_classes)
        by_width = dict(sorted(by_width.items(), key=lambda kv: int(kv[0])))

        # Training-set size.
        by_size = {str(int(full)): random_labels["true"]}
        for i, r in enumerate(main["rows"]):
            if r["train_size"] < full:
                by_size[str(int(r["train_size"]))] = est.mean_over(
                    f"train_size{int(r['train_size'])}", mlp_lp, _member(main, i), var_classes
                )
        by_size = dict(sorted(by_size.items(), key=lambda kv: int(kv[0])))

        # Ensembles of the first k seeds (members' log-probabilities averaged).
        ens_fn = cp.ensemble_of(models.mlp_apply)
        ensemble = {}
        for k in config.ensemble.members:
            if k == 1:
                ensemble["1"] = random_labels["true"]
                continue
            stacked = jax.tree.map(lambda a, k=k: jnp.asarray(a[:k]), main["state"]["params"])
            ensemble[str(k)] = est.mean_over(f"ensemble{k}", ens_fn, stacked, var_classes)

        # CNN.
        d_star_cnn = None
        if cnn is not None:
            d_star_cnn = est.mean_over("cnn", models.log_prob(cnn["task"].apply), _member(cnn, 0), var_classes)

        # Robustness to Gaussian corruption against effective dimension, over every trained model.
        sigma = float(config.robustness.sigma)
        noise_key = jax.random.key(config.seed + 99)
        robustness = {}

        def corrupt(task, params, name, rec):
            acc = float(train.corrupted_accuracy(task, params, ds["xt"], ds["yt"], sigma, noise_key))
            clean = float(train.accuracy(task, params, ds["xt"], ds["yt"]))
            robustness[name] = {
                "d_star": rec["value"],
                "effective_dimension": ds["dim"] - rec["value"],
                "clean_acc": clean,
                "corrupted_acc": acc,
            }

        corrupt(main_task, p0, f"mlp{config.mlp.width}", random_labels["true"])
        for w, g in groups.items():
            corrupt(g["task"], _member(g, g["index"]), f"mlp{w}", by_width[str(w)])
        for i, r in enumerate(main["rows"]):
            if r["train_size"] < full:
                corrupt(
                    main_task, _member(main, i), f"train_size{int(r['train_size'])}", by_size[str(int(r["train_size"]))]
                )
        for j, i in enumerate(rand_idx):
            corrupt(main_task, _member(main, i), f"random_labels{j}", random_labels[f"random{j}"])
        for step, rec in by_epoch.items():
            c = int(step) // t_cfg.chunk_steps
            corrupt(main_task, _member(main, 0, c - 1), f"step{step}", rec)
        if cnn is not None:
            corrupt(cnn["task"], _member(cnn, 0), "cnn", d_star_cnn)

    names = list(robustness)
    corr = _spearman(
        [robustness[n]["effective_dimension"] for n in names], [robustness[n]["corrupted_acc"] for n in names]
    )
    conv = {n: r["converged"] for n, r in est.records.items()}
    results = {
        "data_source": ds["source"],
        "D": ds["dim"],
        "d_star": d_star,
        "effective_dimension": {c: ds["dim"] - r["value"] for c, r in d_star.items()},
        "d_star_boundary": d_star_boundary,
        "d_star_boundary_sets": boundary_by_set,
        "d_star_by_epoch": by_epoch,
        "d_star_random_labels": random_labels,
        "d_star_by_width": by_width,
        "d_star_by_train_size": by_size,
        "d_star_ensemble": ensemble,
        "d_star_cnn": d_star_cnn,
        "robustness": robustness,
        "robustness_sigma": sigma,
        "robustness_spearman_effective_dimension_vs_corrupted_acc": corr,
        "converged": {
            "all": bool(all(conv.values())),
            "fraction": float(np.mean(list(conv.values()))),
            "by_estimate": conv,
        },
        "known_answer": known,
        "test_acc": {
            "mlp": main["test_acc"].tolist(),
            "mlp_rows": main["rows"],
            **{f"mlp{w}": float(g["test_acc"][g["index"]]) for w, g in groups.items()},
            **({"cnn": cnn["test_acc"].tolist()} if cnn is not None else {}),
        },
        "estimator": {
            "dims": list(est.dims),
            "repeats": int(config.estimator.repeats),
            "num_starts": int(config.estimator.num_starts),
            "budget": {"lr": est.budget.lr, "steps": est.budget.steps},
            "check_budget": {"lr": est.check.lr, "steps": est.check.steps},
        },
    }
    figures(workdir, results, est)
    return results


# ----------------------------------------------------------------------------------------------------------
# figures


def _curve_panel(ax, res: cp.CriticalDimension, title: str):
    dims = np.asarray(res.dims, float)
    ax.plot(dims, res.success_rate, "o", ms=3, color=plotting.palette(2)[0], label="success rate")
    ax.plot(dims, res.max_prob, "s", ms=3, color=plotting.palette(2)[1], label="max target prob.")
    fine = np.geomspace(dims[0], dims[-1], 200)
    for fit, color in (
        (res.d_star_success.get("fit"), plotting.palette(2)[0]),
        (res.d_star_probability.get("fit"), plotting.palette(2)[1]),
    ):
        if fit:
            y = fit["lo"] + (fit["hi"] - fit["lo"]) / (1 + np.exp(-(np.log(fine) - fit["mu"]) / fit["w"]))
            ax.plot(fine, y, "-", color=color, lw=1)
    ax.axvline(res.d_star, color="k", ls="--", lw=1)
    ax.set_xscale("log")
    ax.set_ylim(-0.03, 1.03)
    ax.set_title(f"{title}: d*={res.d_star:.2f}", fontsize=9)


def figures(workdir: str, results: dict, est: _Estimator) -> None:
    """Writes the PNGs into workdir/figures."""
    fig_dir = os.path.join(workdir, "figures")
    classes = list(results["d_star"])
    ncols = min(5, len(classes))
    nrows = -(-len(classes) // ncols)
    fig, axes = plotting.figure(nrows, ncols, width=2.6 * ncols, height=2.3 * nrows)
    axes = np.atleast_1d(axes).ravel()
    for ax, c in zip(axes, classes, strict=False):
        _curve_panel(ax, est.curves[f"class{c}"], f"class {c}")
    for ax in axes[len(classes) :]:
        ax.set_visible(False)
    axes[0].legend(fontsize=6)
    for ax in axes[-ncols:]:
        ax.set_xlabel("cutting-plane dimension d")
    fig.suptitle(f"class manifolds, MLP on {results['data_source']} (D={results['D']})", fontsize=10)
    plotting.save(fig, os.path.join(fig_dir, "d_star_per_class.png"))

    sets = list(results["d_star_boundary_sets"])
    if sets:
        fig, axes = plotting.figure(1, len(sets) + 1, width=2.6 * (len(sets) + 1), height=2.6)
        axes = np.atleast_1d(axes)
        for ax, s in zip(axes, sets, strict=False):
            _curve_panel(ax, est.curves[f"boundary{s}"], f"boundary {s}")
            ax.set_xlabel("d")
        kb = results["d_star_boundary"]
        ks = sorted(kb, key=int)
        axes[-1].plot([int(k) for k in ks], [kb[k]["value"] for k in ks], "o-")
        axes[-1].set_xlabel("classes k (1 = class manifold)")
        axes[-1].set_ylabel("d*")
        axes[-1].set_title("k-class boundaries", fontsize=9)
        axes[0].legend(fontsize=6)
        plotting.save(fig, os.path.join(fig_dir, "d_star_boundaries.png"))

    panels = [
        ("training step", results["d_star_by_epoch"], True),
        ("hidden width", results["d_star_by_width"], True),
        ("training-set size", results["d_star_by_train_size"], True),
        ("ensemble members", results["d_star_ensemble"], True),
        ("labels", results["d_star_random_labels"], False),
    ]
    panels = [p for p in panels if p[1]]
    fig, axes = plotting.figure(1, len(panels) + 1, width=2.8 * (len(panels) + 1), height=2.7)
    axes = np.atleast_1d(axes)
    for ax, (label, d, numeric) in zip(axes, panels, strict=False):
        keys = list(d)
        vals = [d[k]["value"] for k in keys]
        errs = [d[k].get("error", 0.0) for k in keys]
        if numeric:
            xs = [float(k) for k in keys]
            ax.errorbar(xs, vals, yerr=errs, marker="o", capsize=2)
            ax.set_xscale("log")
            ax.minorticks_off()
            ax.set_xticks(xs, keys, fontsize=7)
        else:
            ax.bar(range(len(keys)), vals, yerr=errs, color=plotting.palette(len(keys)))
            ax.set_xticks(range(len(keys)), keys, fontsize=7)
        ax.set_xlabel(label)
    axes[0].set_ylabel(f"d* (mean over classes {est.config.variable_classes})")
    rob = results["robustness"]
    ax = axes[-1]
    names = list(rob)
    ax.scatter([rob[n]["effective_dimension"] for n in names], [rob[n]["corrupted_acc"] for n in names], s=12)
    for n in names:
        ax.annotate(n, (rob[n]["effective_dimension"], rob[n]["corrupted_acc"]), fontsize=5)
    ax.set_xlabel("effective dimension D - d*")
    ax.set_ylabel(f"accuracy, Gaussian noise σ={results['robustness_sigma']:g}")
    plotting.save(fig, os.path.join(fig_dir, "d_star_vs_variables.png"))

    known = results["known_answer"]
    fig, axes = plotting.figure(1, len(known), width=2.6 * len(known), height=2.5)
    axes = np.atleast_1d(axes)
    for ax, (name, row) in zip(axes, known.items(), strict=True):
        for label, color in (("released", plotting.palette(2)[1]), ("larger", plotting.palette(2)[0])):
            ax.plot(row["dims"], row[label]["success_rate"], "o-", ms=3, color=color,
                    label=f"{label}: d*={row[label]['d_star']:.2f}")  # fmt: skip
        ax.axvline(row["truth"], color="k", ls=":", lw=1)
        ax.set_title(f"{name} (truth {row['truth']})", fontsize=9)
        ax.set_xlabel("d")
        ax.legend(fontsize=6)
    axes[0].set_ylabel("success rate")
    plotting.save(fig, os.path.join(fig_dir, "known_answer_budget.png"))


# ----------------------------------------------------------------------------------------------------------


def _fmt(x) -> str:
    return "n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.2f}"


def _floats(obj):
    """results.json stores non-finite numbers as "inf" / "-inf" / "nan": back to floats."""
    if isinstance(obj, dict):
        return {k: _floats(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_floats(v) for v in obj]
    if obj in ("inf", "-inf", "nan"):
        return float(obj)
    return obj


def report(results: dict) -> list[dict]:
    """Headline numbers and the paper's directions for runs/REPORT.md."""
    results = _floats(results)
    out = []
    dstar = results["d_star"]
    vals = [r["value"] for r in dstar.values()]
    dim = results["D"]
    out.append(
        {
            "name": f"d* per class (D={dim}), min / max",
            "value": f"{min(vals):.2f} / {max(vals):.2f} (effective dim {dim - max(vals):.1f}-{dim - min(vals):.1f})",
            "paper": "CIFAR-10 ResNet-20: 21-330 of 3072; digits MLP (notes): 1.3-4.4 of 64",
            "ok": bool(max(vals) < 0.25 * dim),
        }
    )
    ka = results["known_answer"]
    if "halfspace" in ka:
        h = ka["halfspace"]
        out.append(
            {
                "name": "halfspace d*: released budget / larger budget (truth 1)",
                "value": f"{_fmt(h['released']['d_star'])} / {_fmt(h['larger']['d_star'])}",
                "paper": "released settings ~2.5 (biased up), converged 1",
                "ok": bool(h["larger"]["d_star"] <= 1.2 and h["released"]["d_star"] > h["larger"]["d_star"]),
            }
        )
    codims = [k for k in ka if k.startswith("codim")]
    if codims:
        out.append(
            {
                "name": "codimension-m regions: larger-budget d_star_grid",
                "value": ", ".join(f"m={ka[k]['truth']}: {_fmt(ka[k]['larger']['d_star_grid'])}" for k in codims),
                "paper": "d* = m (Gordon's escape theorem)",
                "ok": bool(all(ka[k]["larger"]["d_star_grid"] == ka[k]["truth"] for k in codims)),
            }
        )
    b = results["d_star_boundary"]
    ks = sorted(b, key=int)
    bv = [b[k]["value"] for k in ks]
    out.append(
        {
            "name": "d* of k-class boundaries, k = " + "/".join(ks),
            "value": " / ".join(f"{x:.2f}" for x in bv),
            "paper": "boundaries are lower-dimensional: d* grows with k",
            "ok": bool(all(b2 > b1 for b1, b2 in zip(bv, bv[1:], strict=False))),
        }
    )

    def direction(key, name, paper, want):  # want: "falls" / "rises" along the (sorted) variable
        d = results[key]
        keys = list(d)
        if len(keys) < 2:
            return
        first, last = d[keys[0]], d[keys[-1]]
        change = last["value"] - first["value"]
        sigma = math.hypot(first.get("error", 0.0) or 0.0, last.get("error", 0.0) or 0.0)
        right = change < 0 if want == "falls" else change > 0
        significant = abs(change) > 2 * sigma
        verdict = "within 2 sigma" if not significant else ("paper's direction" if right else "opposite direction")
        out.append(
            {
                "name": name,
                "value": " -> ".join(f"{k}: {d[k]['value']:.2f}" for k in keys) + f" ({verdict})",
                "paper": paper,
                "ok": bool(right and significant),
            }
        )

    direction("d_star_by_epoch", "d* over training steps", "d* falls during training", "falls")
    direction("d_star_by_width", "d* by MLP width", "wider, better models: lower d* (higher-dim CMs)", "falls")
    direction("d_star_by_train_size", "d* by training-set size", "more data: lower d*", "falls")
    direction("d_star_ensemble", "d* by ensemble members", "ensembles intersect CMs: d* grows", "rises")
    rl = results["d_star_random_labels"]
    rand = [v["value"] for k, v in rl.items() if k.startswith("random")]
    if rand:
        out.append(
            {
                "name": "d*: true labels / random labels",
                "value": f"{rl['true']['value']:.2f} / " + ", ".join(f"{x:.2f}" for x in rand),
                "paper": "random labels raise d*",
                "ok": bool(min(rand) > rl["true"]["value"] + 2 * (rl["true"].get("error") or 0.0)),
            }
        )
    ens = results["d_star_ensemble"]
    if "1" in ens and len(ens) > 1:
        k_max = max(ens, key=int)
        out.append(
            {
                "name": f"ensemble of {k_max}: d* / (members x d* of one)",
                "value": f"{ens[k_max]['value'] / (int(k_max) * ens['1']['value']):.2f}",
                "paper": "codimensions roughly add for independent members (ratio ~1); correlated members: < 1",
                "ok": None,
            }
        )
    corr = results["robustness_spearman_effective_dimension_vs_corrupted_acc"]
    out.append(
        {
            "name": "Spearman(effective dimension, corrupted accuracy) over models",
            "value": _fmt(corr),
            "paper": "more robust models have higher-dimensional CMs (positive)",
            "ok": bool(corr > 0) if isinstance(corr, float) and math.isfinite(corr) else None,
        }
    )
    c = results["converged"]
    out.append(
        {
            "name": "estimates converged (larger-budget rerun)",
            "value": f"{c['fraction']:.0%} of {len(c['by_estimate'])}",
            "paper": "the released budget biases d* up; check convergence",
            "ok": None,
        }
    )
    return out
