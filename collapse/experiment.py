"""Stochastic collapse experiments: trained networks, attractivity toys, teacher-student, large lr early.

``run(config, workdir)`` wires the modules together:

1. digits (or a tfds set) networks: one vmapped, checkpointed sweep per static group (batch size, architecture),
   the fraction of independent neurons per layer measured at every checkpoint (Fig. 4 / 5 of the paper);
2. attractivity: quartic-well SDE, single-neuron SDE, hidden-neuron SGD, predicted threshold vs measured
   collapse probability (Fig. 1-3);
3. linear teacher-student, theory line vs simulation (Fig. 6);
4. large learning rate early (Fig. 7).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging

from collapse import attractivity as attr
from collapse import invariant_sets as inv
from collapse import teacher_student as ts
from collapse import train
from common import app, checkpoint, data, metrics, plotting, sweep
from common import validate as check

# ----------------------------------------------------------------------------------------------------------
# validation


def validate(config: ml_collections.ConfigDict) -> None:
    """Range and consistency checks; raises ``common.app.ConfigError`` naming the field."""
    check.one_of(config, "net.arch", ("mlp", "cnn", "resnet"))
    if config.net.arch == "resnet":  # both optional (defaults in _resnet_options)
        if "blocks" in config.net:
            check.positive_int(config, "net.blocks")
        if "resnet_neurons" in config.net:
            check.one_of(config, "net.resnet_neurons", inv.RESNET_SCHEMES)
    if config.train.get("max_runs_per_call", 0) < 0:
        raise app.ConfigError("train.max_runs_per_call", "must be >= 0 (0 = every run of a group in one call)")
    if _resnet_options(config)["warmup_steps"] < 0:
        raise app.ConfigError("train.warmup_steps", "must be >= 0")
    check.one_of(config, "net.act", ("gelu", "tanh", "relu"))  # sigma(0) = 0
    if not config.net.widths:
        raise app.ConfigError("net.widths", "needs at least one hidden layer")
    check.positive_int(
        config,
        "net.widths",
        "train.batch_size",
        "train.num_steps",
        "train.chunk_steps",
        "train.num_seeds",
        "sweep.batch_num_seeds",
        "cnn.widths",
        "cnn.num_steps",
        "cnn.num_seeds",
        "sde.num_seeds",
        "sde.neuron_num_seeds",
        "sde.hidden_batch_size",
        "sde.hidden_num_seeds",
        "sde.hidden_num_steps",
        "teacher_student.num_steps",
        "teacher_student.num_seeds",
    )
    check.positive(
        config,
        "sweep.base_lr",
        "large_lr.lr_high",
        "large_lr.lr_low",
        "sde.mu",
        "sde.dt",
        "sde.time",
        "sde.eps",
        "sde.neuron_label_noise",
        "sde.neuron_dt",
        "sde.neuron_time",
        "sde.hidden_label_noise",
        "teacher_student.lr",
        "teacher_student.collapse_threshold",
    )
    check.non_negative(config, "sweep.base_weight_decay")
    # Sweep grids: sorted, no repeats. The extra settings around the base run may be empty (none of that kind).
    check.sorted_grid(config, "sweep.lrs", positive=True)
    check.sorted_grid(config, "sweep.label_noises", low=0, high=1, allow_empty=True)
    check.sorted_grid(config, "sweep.weight_decays", non_negative=True, allow_empty=True)
    check.sorted_grid(config, "sweep.batch_sizes", kind=int, positive=True, allow_empty=True)
    check.sorted_grid(config, "large_lr.durations", kind=int, low=0, high=config.train.num_steps, allow_empty=True)
    if config.cnn.enabled:
        check.sorted_grid(config, "cnn.lrs", positive=True)
    check.sorted_grid(config, "sde.zetas", positive=True)
    check.sorted_grid(config, "sde.neuron_lrs", positive=True)
    check.sorted_grid(config, "sde.hidden_lr_factors", positive=True)
    check.sorted_grid(config, "teacher_student.sigmas", non_negative=True)
    check.sorted_grid(config, "net.maxpool_after", kind=int, non_negative=True, allow_empty=True)
    check.probability(config, "net.vanish_threshold", "net.identical_threshold", open_low=True, open_high=True)
    check.probability(config, "net.momentum", open_high=True)
    check.divides(config, "train.chunk_steps", "train.num_steps")
    if config.cnn.enabled and config.cnn.num_steps % config.train.chunk_steps:
        raise app.ConfigError("cnn.num_steps", "must be a multiple of train.chunk_steps")
    ts_cfg = config.teacher_student
    if not 0 < ts_cfg.drop_step <= ts_cfg.num_steps:
        raise app.ConfigError("teacher_student.drop_step", "must be in (0, num_steps]")
    if config.net.arch == "cnn" and not config.net.maxpool_after and config.net.dense_head:
        raise app.ConfigError("net.dense_head", "needs net.maxpool_after (flattened features)")


# ----------------------------------------------------------------------------------------------------------
# trained networks


def _settings(config: ml_collections.ConfigDict) -> tuple[list[dict], dict[str, list[int]]]:
    """Unique hyperparameter rows of the main (base batch size) sweep, and setting name -> row indices."""
    s, ll = config.sweep, config.large_lr
    rows: list[dict] = []
    settings: dict[str, list[int]] = {}
    never = float(config.train.num_steps + 1)

    def add(name: str, lr: float, wd: float, ln: float, lr_late: float | None = None, switch=never):
        for seed in range(config.train.num_seeds):
            row = {
                "seed": config.seed + seed,
                "lr": float(lr),
                "lr_late": float(lr if lr_late is None else lr_late),
                "switch": float(switch),
                "weight_decay": float(wd),
                "label_noise": float(ln),
            }
            if row["switch"] <= 0:  # no high-lr phase: the same run as lr_late throughout
                row.update(lr=row["lr_late"], switch=never)
            if row not in rows:
                rows.append(row)
            settings.setdefault(name, []).append(rows.index(row))

    for lr in s.lrs:
        add(f"lr={lr:g}", lr, s.base_weight_decay, 0.0)
    add(f"lr={s.base_lr:g}", s.base_lr, s.base_weight_decay, 0.0)
    for ln in s.label_noises:
        add(f"label_noise={ln:g}", s.base_lr, s.base_weight_decay, ln)
    for wd in s.weight_decays:
        add(f"weight_decay={wd:g}", s.base_lr, wd, 0.0)
    for d in ll.durations:
        add(f"large_lr={int(d)}", ll.lr_high, s.base_weight_decay, 0.0, ll.lr_low, d)
    for name in settings:
        settings[name] = sorted(set(settings[name]))
    return rows, settings


def _resnet_options(config: ml_collections.ConfigDict) -> dict[str, Any]:
    """ResNet-only fields, absent from the MLP/CNN configs (defaults: ResNet-18 blocks, exact neurons)."""
    return {
        "blocks": config.net.get("blocks", 2),
        "scheme": config.net.get("resnet_neurons", "exact"),
        "norm_params": bool(config.net.get("resnet_norm_params", True)),
        "warmup_steps": int(config.train.get("warmup_steps", 0)),
        "augment": bool(config.train.get("augment", False)),
    }


def _task(config: ml_collections.ConfigDict, ds: data.Dataset, batch_size: int, arch: str, widths):
    cnn = arch == "cnn"
    opts = _resnet_options(config)
    return train.Task(
        arch=arch,
        widths=tuple(int(w) for w in widths),
        num_classes=int(ds.num_classes),
        input_shape=tuple(int(d) for d in ds.x.shape[1:]),
        batch_size=int(batch_size),
        act=config.net.act,
        momentum=float(config.net.momentum),
        maxpool_after=tuple(config.net.maxpool_after) if cnn and config.net.arch == "cnn" else (),
        dense_head=tuple(config.net.dense_head) if cnn and config.net.arch == "cnn" else (),
        blocks=int(opts["blocks"]),
        warmup_steps=opts["warmup_steps"] if arch == config.net.arch else 0,
        augment=opts["augment"],
    )


def _train_group(
    name: str,
    task: train.Task,
    rows: Sequence[dict],
    arrays: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    num_steps: int,
    config: ml_collections.ConfigDict,
    workdir: str,
    writer: metrics.MetricWriter,
) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """Trains ``rows`` as one vmapped, checkpointed sweep. Returns (final state, test accuracy [R],
    independent fractions [R, layers])."""
    hp_all = {k: np.array([r[k] for r in rows], np.float32) for k in train.HPARAMS}
    keys = jax.vmap(jax.random.key)(jnp.asarray([r["seed"] for r in rows], jnp.uint32))
    chunk = int(config.train.chunk_steps)
    init_fn = sweep.vmapped(lambda k, h: train.init_state(task, k, h))
    runner = sweep.vmapped(
        lambda s, h, xy, t0: train.run_steps(task, s, h, xy, t0, chunk),
        in_axes=(0, 0, None, None),
        donate_argnums=(0,),
    )
    # Runs in slices of per_call (accelerator memory), each slice one vmapped call with its own device-resident,
    # run-sharded state; hyperparameters and the training set are placed on the devices once.
    per_call = int(config.train.get("max_runs_per_call", 0)) or len(rows)
    slices = [(i, min(i + per_call, len(rows))) for i in range(0, len(rows), per_call)]
    hps = [sweep.put({k: v[a:b] for k, v in hp_all.items()}, b - a) for a, b in slices]
    xys = [sweep.put_shared((arrays[0], arrays[1]), b - a) for a, b in slices]
    init = tuple(init_fn(keys[a:b], h) for (a, b), h in zip(slices, hps, strict=True))
    latest: dict[str, Any] = {}
    thresholds = {
        "vanish_threshold": float(config.net.vanish_threshold),
        "identical_threshold": float(config.net.identical_threshold),
        "scheme": _resnet_options(config)["scheme"],
        "norm_params": _resnet_options(config)["norm_params"],
    }

    def merged(parts, what):
        """The slices' outputs on the host, padding dropped, concatenated over runs."""
        return jax.tree.map(
            lambda *a: np.concatenate(a),
            *[sweep.to_numpy(what(p), b - a) for p, (a, b) in zip(parts, slices, strict=True)],
        )

    def chunk_fn(state, start):
        outs = [runner(st, h, xy, np.int32(start)) for st, h, xy in zip(state, hps, xys, strict=True)]
        state = tuple(o[0] for o in outs)
        bad = merged([o[1] for o in outs], lambda m: m[checkpoint.NONFINITE])
        latest["state"] = state
        return state, {"loss": [o[1]["loss"] for o in outs], checkpoint.NONFINITE: bad}

    def on_chunk(step, m):
        loss = merged(m["loss"], lambda x: x)
        metrics.check_finite(loss, f"{name} train loss", step)
        frac = inv.independent_fraction_batched(merged(latest["state"], lambda st: st["params"]), **thresholds)
        for r, row in enumerate(rows):
            writer.write(
                step,
                run=f"{name}/{r}",
                group=name,
                train_loss=float(loss[r]),
                independent_fraction=frac[r].tolist(),
                **{k: row[k] for k in ("seed", *train.HPARAMS)},
            )

    ckpt = checkpoint.Checkpointer(os.path.join(workdir, "checkpoints", name), save_every=chunk)
    try:
        state = checkpoint.run_chunked(
            chunk_fn,
            init,
            num_steps=num_steps,
            chunk_steps=chunk,
            checkpointer=ckpt,
            on_chunk=on_chunk,
            desc=f"collapse/{name}",
        )
    finally:
        ckpt.close()
    acc_fn = sweep.vmapped(
        lambda s, x, y: train.accuracy(task, s["params"], x, y, s.get("stats")), in_axes=(0, None, None)
    )
    test_xy = sweep.put_shared((arrays[2], arrays[3]), slices[0][1])
    acc = merged([acc_fn(st, *test_xy) for st in state], lambda x: x)
    state = merged(state, lambda st: st)  # the final state on the host, one row per run
    frac = inv.independent_fraction_batched(state["params"], **thresholds)
    for r in range(len(rows)):
        if "state" in latest:  # trained in this process (else restored finished: rows already written)
            writer.write(num_steps, run=f"{name}/{r}", group=name, final_test_acc=float(acc[r]))
        logging.info("%s run %d %s: test acc %.4f, independent %s", name, r, rows[r], acc[r], frac[r])
    return state, acc, frac


def _load(config: ml_collections.ConfigDict) -> tuple[data.Dataset, tuple[np.ndarray, ...]]:
    try:
        tr = data.load(config.data.name, "train", allow_fallback=config.data.allow_fallback)
        te = data.load(config.data.name, "test", allow_fallback=config.data.allow_fallback)
    except data.DataUnavailable as e:
        raise app.UserError(f"data.name: {e}") from e
    logging.info("data: %s (%d train, %d test)", tr.source, len(tr.y), len(te.y))
    if not np.all(np.isfinite(tr.x)) or not np.all(np.isfinite(te.x)):
        raise app.UserError(f"data.name: {config.data.name} has non-finite inputs")
    return tr, (tr.x, tr.y, te.x, te.y)


def trained_networks(config: ml_collections.ConfigDict, workdir: str, writer) -> dict[str, Any]:
    """All digits sweeps. Returns per-setting fractions (mean over seeds), accuracies and the rows."""
    ds, arrays = _load(config)
    out: dict[str, Any] = {"fraction": {}, "fraction_sd": {}, "test_acc": {}, "source": ds.source}
    arch = config.net.arch
    rows, settings = _settings(config)
    task = _task(config, ds, config.train.batch_size, arch, config.net.widths)
    state, acc, frac = _train_group("main", task, rows, arrays, config.train.num_steps, config, workdir, writer)
    one_run = jax.tree.map(lambda a: np.asarray(a[0]), state["params"])
    out["layer_names"] = {arch: inv.layer_names(one_run, _resnet_options(config)["scheme"])}
    for name, idx in settings.items():
        out["fraction"][f"{arch} {name}"] = frac[idx].mean(axis=0)
        out["fraction_sd"][f"{arch} {name}"] = frac[idx].std(axis=0)
        out["test_acc"][f"{arch} {name}"] = float(acc[idx].mean())
    out["main_settings"] = settings
    s = config.sweep
    for b in s.batch_sizes:
        if b == config.train.batch_size:
            continue
        brow = [
            {
                "seed": config.seed + i,
                "lr": s.base_lr,
                "lr_late": s.base_lr,
                "switch": float(config.train.num_steps + 1),
                "weight_decay": s.base_weight_decay,
                "label_noise": 0.0,
            }
            for i in range(s.batch_num_seeds)
        ]
        btask = _task(config, ds, b, arch, config.net.widths)
        _, acc, frac = _train_group(f"batch{b}", btask, brow, arrays, config.train.num_steps, config, workdir, writer)
        out["fraction"][f"{arch} batch={b}"] = frac.mean(axis=0)
        out["fraction_sd"][f"{arch} batch={b}"] = frac.std(axis=0)
        out["test_acc"][f"{arch} batch={b}"] = float(acc.mean())
    if config.cnn.enabled and arch == "mlp":
        c = config.cnn
        crow = [
            {
                "seed": config.seed + i,
                "lr": lr,
                "lr_late": lr,
                "switch": float(c.num_steps + 1),
                "weight_decay": s.base_weight_decay,
                "label_noise": 0.0,
            }
            for lr in c.lrs
            for i in range(c.num_seeds)
        ]
        ctask = _task(config, ds, config.train.batch_size, "cnn", c.widths)
        cstate, acc, frac = _train_group("cnn", ctask, crow, arrays, c.num_steps, config, workdir, writer)
        out["layer_names"]["cnn"] = inv.layer_names(jax.tree.map(lambda a: np.asarray(a[0]), cstate["params"]))
        for j, lr in enumerate(c.lrs):
            idx = list(range(j * c.num_seeds, (j + 1) * c.num_seeds))
            out["fraction"][f"cnn lr={lr:g}"] = frac[idx].mean(axis=0)
            out["fraction_sd"][f"cnn lr={lr:g}"] = frac[idx].std(axis=0)
            out["test_acc"][f"cnn lr={lr:g}"] = float(acc[idx].mean())
    return out


# ----------------------------------------------------------------------------------------------------------
# attractivity


def attractivity(config: ml_collections.ConfigDict, key: jax.Array) -> dict[str, Any]:
    """Predicted critical values and measured collapse probabilities for the three toys."""
    c = config.sde
    k1, k2, k3, k4 = jax.random.split(key, 4)
    out: dict[str, Any] = {}

    zetas = np.asarray(c.zetas, np.float64)
    prob = np.asarray(
        attr.quartic_collapse_probability(k1, zetas, mu=c.mu, num_seeds=c.num_seeds, dt=c.dt, time=c.time, eps=c.eps)
    )
    out["quartic"] = {
        "predicted": attr.critical_noise_1d(lambda t: attr.quartic_loss(t, c.mu), lambda t: t),
        "measured": attr.crossing(zetas, prob),
        "knob": "zeta",
        "values": zetas,
        "collapse_probability": prob,
    }

    x, y = attr.single_neuron_data(config.seed)
    lin = attr.linearize(attr.single_neuron_output, jnp.asarray(x), jnp.asarray(y), 2)
    lrs = np.asarray(c.neuron_lrs, np.float64)
    prob = np.asarray(
        attr.simulate_single_neuron_sde(
            k2,
            x,
            y,
            lrs,
            c.neuron_label_noise,
            num_seeds=c.neuron_num_seeds,
            dt=c.neuron_dt,
            time=c.neuron_time,
        )
    )
    out["single_neuron"] = {
        "predicted": attr.single_neuron_critical_lr(x, y, c.neuron_label_noise),
        "predicted_curvature": lin.critical_lr(c.neuron_label_noise, None),
        "measured": attr.crossing(lrs, prob),
        "knob": "lr",
        "values": lrs,
        "collapse_probability": prob,
    }

    problem = attr.make_hidden_neuron_problem(config.seed)
    hlin = attr.hidden_neuron_linearization(problem)
    eta_c = hlin.critical_lr(c.hidden_label_noise, c.hidden_batch_size)
    hlrs = eta_c * np.asarray(c.hidden_lr_factors, np.float64)
    lyap = np.asarray(attr.lyapunov_exponent(k3, hlin, hlrs, c.hidden_label_noise, c.hidden_batch_size))
    common_kw = dict(num_seeds=c.hidden_num_seeds, num_steps=c.hidden_num_steps)
    p_full = np.asarray(
        attr.simulate_hidden_neuron_sgd(k4, problem, hlrs, c.hidden_label_noise, c.hidden_batch_size, **common_kw)
    )
    p_frozen = np.asarray(
        attr.simulate_hidden_neuron_sgd(
            k4,
            problem,
            hlrs,
            c.hidden_label_noise,
            c.hidden_batch_size,
            train_rest=False,
            **common_kw,
        )
    )
    out["hidden_neuron"] = {
        "predicted": eta_c,
        "predicted_lyapunov": attr.root(hlrs, lyap),
        "measured": attr.crossing(hlrs, p_full),
        "measured_rest_frozen": attr.crossing(hlrs, p_frozen),
        "knob": "lr",
        "values": hlrs,
        "collapse_probability": p_full,
        "collapse_probability_rest_frozen": p_frozen,
        "lyapunov_exponent": lyap,
    }
    return out


# ----------------------------------------------------------------------------------------------------------
# teacher-student


def teacher_student(config: ml_collections.ConfigDict, key: jax.Array) -> dict[str, Any]:
    """Simulated and predicted test MSE / collapsed modes per label-noise level."""
    c = config.teacher_student
    problem = ts.make_problem(config.seed)
    s = jnp.asarray(problem.s, jnp.float32)
    sigmas = jnp.asarray(c.sigmas, jnp.float32)
    keys = jax.random.split(key, c.num_seeds)

    def one(k, sigma):
        return ts.train_modes(
            k,
            s,
            sigma,
            lr=c.lr,
            num_samples=problem.num_samples,
            num_steps=c.num_steps,
            drop_step=c.drop_step,
        )[0]

    products = np.asarray(jax.jit(jax.vmap(jax.vmap(one, (None, 0)), (0, None)))(keys, sigmas))
    out = {}
    for j, sigma in enumerate(c.sigmas):
        p = products[:, j]
        theory = ts.theory_products(problem.s, sigma, c.lr, problem.num_samples)
        out[f"{sigma:g}"] = {
            "test_mse": float(ts.test_mse(problem, p).mean()),
            "test_mse_sd": float(ts.test_mse(problem, p).std()),
            "collapsed_modes": float(np.mean(np.sum(p < c.collapse_threshold, axis=1))),
            "theory_test_mse": float(ts.test_mse(problem, theory)),
            "theory_collapsed_modes": int(np.sum(theory == 0)),
            "products": p.mean(axis=0),
        }
    out["_target"] = problem.s
    return out


# ----------------------------------------------------------------------------------------------------------
# figures


@plotting.styled
def figures(config, workdir: str, nets: dict, sde: dict, tsr: dict) -> None:
    """Writes every PNG into ``workdir/figures``."""
    fig_dir = os.path.join(workdir, "figures")
    arch = config.net.arch
    frac = nets["fraction"]

    # Fig. 4 style: fraction of independent neurons per layer, one panel per swept factor.
    panels = [
        ("learning rate", [k for k in frac if k.startswith(f"{arch} lr=")]),
        (
            "label noise",
            [f"{arch} lr={config.sweep.base_lr:g}"] + [k for k in frac if k.startswith(f"{arch} label_noise=")],
        ),
        ("batch size", [f"{arch} lr={config.sweep.base_lr:g}"] + [k for k in frac if k.startswith(f"{arch} batch=")]),
        (
            "weight decay",
            [f"{arch} lr={config.sweep.base_lr:g}"] + [k for k in frac if k.startswith(f"{arch} weight_decay=")],
        ),
        ("CNN learning rate", [k for k in frac if k.startswith("cnn lr=")]),
    ]
    panels = [(t, ks) for t, ks in panels if ks and all(k in frac for k in ks)]
    fig, axes = plotting.figure(1, len(panels), width=3.3 * len(panels), height=3.0)
    axes = np.atleast_1d(axes)
    for ax, (title, keys) in zip(axes, panels, strict=True):
        colors = plotting.palette(len(keys))
        for color, k in zip(colors, keys, strict=True):
            y = np.asarray(frac[k])
            sd = np.asarray(nets["fraction_sd"][k])
            xs = np.arange(len(y))
            label = k.split(" ", 1)[1]
            if k == f"{arch} lr={config.sweep.base_lr:g}" and title != "learning rate":
                label = f"base ({label}, wd={config.sweep.base_weight_decay:g})"
            ax.plot(xs, y, marker="o", ms=4, color=color, label=label)
            ax.fill_between(xs, y - sd, y + sd, color=color, alpha=0.2)
        names = nets["layer_names"]["cnn" if keys[0].startswith("cnn ") else arch]
        ax.set_xticks(range(len(y)), names, rotation=90 if len(names) > 4 else 0, fontsize=7)
        ax.set_ylim(-0.05, 1.05)
        ax.set_title(title)
        ax.set_xlabel("hidden layer")
        ax.legend(fontsize=7)
    axes[0].set_ylabel("fraction of independent neurons")
    plotting.save(fig, os.path.join(fig_dir, "independent_fraction.png"))

    # Over training: mean over seeds of each layer's fraction at each checkpoint, main group.
    rows = metrics.read_jsonl(os.path.join(workdir, "metrics.jsonl"))
    rows = [r for r in rows if r.get("group") == "main" and "independent_fraction" in r]
    names = [k for k in nets["main_settings"]]
    layer_titles = nets["layer_names"][arch]
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
            idx = set(nets["main_settings"][name])
            pts: dict[int, list[float]] = {}
            for r in rows:
                if int(r["run"].split("/")[1]) in idx:
                    pts.setdefault(r["step"], []).append(r["independent_fraction"][layer])
            steps = sorted(pts)
            ax.plot(steps, [np.mean(pts[t]) for t in steps], marker="o", ms=3, color=color, label=name)
        ax.set_title(f"layer {layer_titles[layer]}")
        ax.set_xlabel("step")
        ax.set_ylim(-0.05, 1.05)
    axes[0].set_ylabel("fraction of independent neurons")
    axes[-1].legend(fontsize=6, ncol=2)
    plotting.save(fig, os.path.join(fig_dir, "independent_fraction_over_training.png"))

    # Attractivity: predicted threshold vs measured collapse probability.
    fig, axes = plotting.figure(1, 3, width=12.0, height=3.3)
    titles = {
        "quartic": r"quartic well SDE, $d\theta=-(\theta^3-\mu\theta)dt+\zeta\theta dW$",
        "single_neuron": r"single neuron $w_2\tanh(w_1x)$, SDE",
        "hidden_neuron": "hidden neuron of a 1-2-1 tanh net, SGD",
    }
    for ax, name in zip(axes, ("quartic", "single_neuron", "hidden_neuron"), strict=True):
        r = sde[name]
        ax.plot(r["values"], r["collapse_probability"], marker="o", ms=4, label="measured")
        if "collapse_probability_rest_frozen" in r:
            ax.plot(r["values"], r["collapse_probability_rest_frozen"], marker="s", ms=3, label="measured, rest frozen")
        ax.axvline(r["predicted"], color="k", ls="--", label=f"predicted {r['predicted']:.3g}")
        ax.set_xlabel(r"$\zeta$" if r["knob"] == "zeta" else "learning rate $\\eta$")
        ax.set_title(titles[name], fontsize=9)
        ax.set_ylim(-0.03, 1.03)
        ax.legend(fontsize=7)
    axes[0].set_ylabel("P(collapse)")
    plotting.save(fig, os.path.join(fig_dir, "attractivity.png"))

    # Teacher-student.
    sig = [k for k in tsr if not k.startswith("_")]
    sv = np.array([float(k) for k in sig])
    fig, axes = plotting.figure(1, 3, width=12.0, height=3.3)
    mse = np.array([tsr[k]["test_mse"] for k in sig])
    sd = np.array([tsr[k]["test_mse_sd"] for k in sig])
    axes[0].errorbar(sv, mse, yerr=sd, marker="o", ls="none", label="simulation")
    fine = np.linspace(0, sv.max(), 60)
    problem = ts.make_problem(config.seed)
    c = config.teacher_student
    theory = [ts.test_mse(problem, ts.theory_products(problem.s, f, c.lr, problem.num_samples)) for f in fine]
    axes[0].plot(fine, theory, "k-", label="theory (soft threshold)")
    axes[0].set_xlabel(r"label noise $\sigma$")
    axes[0].set_ylabel("test MSE")
    axes[0].legend()
    axes[1].plot(sv, [tsr[k]["collapsed_modes"] for k in sig], marker="o", ls="none", label="simulation")
    axes[1].plot(
        fine, [int(np.sum(problem.s <= c.lr / problem.num_samples * f**2 / 2)) for f in fine], "k-", label="theory"
    )
    axes[1].set_xlabel(r"label noise $\sigma$")
    axes[1].set_ylabel(f"collapsed modes (of {len(problem.s)})")
    axes[1].legend()
    colors = plotting.palette(len(sig))
    for color, k in zip(colors, sig, strict=True):
        axes[2].plot(tsr["_target"], tsr[k]["products"], ".", color=color, label=rf"$\sigma$={k}")
    axes[2].plot(tsr["_target"], tsr["_target"], "k:", lw=1)
    axes[2].set_xlabel("data singular value $s$")
    axes[2].set_ylabel(r"learned $\hat s$ (mean over seeds)")
    axes[2].legend(fontsize=7)
    plotting.save(fig, os.path.join(fig_dir, "teacher_student.png"))

    # Large lr early.
    durs = [k for k in frac if k.startswith(f"{arch} large_lr=")]
    if durs:
        d = np.array([int(k.split("=")[1]) for k in durs])
        order = np.argsort(d)
        fig, axes = plotting.figure(1, 2, width=8.0, height=3.2)
        axes[0].plot(d[order], [nets["test_acc"][durs[i]] for i in order], marker="o")
        axes[0].set_xlabel(f"steps at lr {config.large_lr.lr_high:g} before the drop")
        axes[0].set_ylabel("final test accuracy")
        fr = np.array([frac[durs[i]] for i in order])
        for layer, color in enumerate(plotting.palette(fr.shape[1])):
            axes[1].plot(d[order], fr[:, layer], marker="o", color=color, label=nets["layer_names"][arch][layer])
        axes[1].set_xlabel(f"steps at lr {config.large_lr.lr_high:g} before the drop")
        axes[1].set_ylabel("fraction of independent neurons")
        axes[1].set_ylim(-0.05, 1.05)
        axes[1].legend()
        plotting.save(fig, os.path.join(fig_dir, "large_lr.png"))


# ----------------------------------------------------------------------------------------------------------


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    """Runs every experiment; returns the results dict (keys documented in collapse/README.md)."""
    key = jax.random.key(config.seed)
    k_sde, k_ts = jax.random.split(key)
    with metrics.MetricWriter(os.path.join(workdir, "metrics.jsonl")) as writer:
        nets = trained_networks(config, workdir, writer)
    logging.info("networks done; attractivity toys")
    sde = attractivity(config, k_sde)
    logging.info("teacher-student")
    tsr = teacher_student(config, k_ts)
    figures(config, workdir, nets, sde, tsr)

    arch = config.net.arch
    large = {}
    for d in config.large_lr.durations:
        k = f"{arch} large_lr={int(d)}"
        large[str(int(d))] = {
            "test_acc": nets["test_acc"][k],
            "independent_fraction": nets["fraction"][k],
        }
    independent = {k: v for k, v in nets["fraction"].items() if f"{arch} large_lr=" not in k}
    return {
        "sde": {name: {k: v for k, v in r.items() if k != "knob"} for name, r in sde.items()},
        "independent_fraction": independent,
        "teacher_student": {
            k: {kk: vv for kk, vv in v.items() if kk != "products"} for k, v in tsr.items() if not k.startswith("_")
        },
        "large_lr": large,
        "independent_fraction_layers": nets["layer_names"],
        "data_source": nets["source"],
    }


def report(results: dict) -> list[dict]:
    """Headline numbers for runs/REPORT.md."""
    out = []
    q = results["sde"]["quartic"]
    out.append(
        {
            "name": "quartic well critical zeta (predicted / measured P=0.5)",
            "value": f"{q['predicted']:.3f} / {q['measured']:.3f}",
            "paper": "sqrt(3) = 1.732; P(collapse) 0.0 / 0.5 / 0.997 at zeta 1.5 / 1.8 / 2.0",
            "ok": bool(abs(float(q["measured"]) - q["predicted"]) < 0.15),
        }
    )
    s = results["sde"]["single_neuron"]
    out.append(
        {
            "name": "single neuron critical lr (predicted / measured P=0.5)",
            "value": f"{s['predicted']:.3f} / {s['measured']:.3f}",
            "paper": "eta zeta^2 sigma'(0)/2 > sum xy / sum x^2 (~1.97 on the notebook's data)",
            "ok": bool(abs(float(s["measured"]) - s["predicted"]) < 0.25 * s["predicted"]),
        }
    )
    h = results["sde"]["hidden_neuron"]
    out.append(
        {
            "name": "hidden neuron critical lr (curvature / Lyapunov / measured full / frozen)",
            "value": f"{h['predicted']:.3g} / {h['predicted_lyapunov']:.3g} / "
            f"{h['measured']:.3g} / {h['measured_rest_frozen']:.3g}",
            "paper": "sufficient condition: loss curvature + noise curvature > 0",
            "ok": None,
        }
    )
    fr = results["independent_fraction"]
    for k in sorted(fr):
        out.append(
            {
                "name": f"independent fraction per layer, {k}",
                "value": " / ".join(f"{v:.2f}" for v in np.asarray(fr[k], float)),
                "paper": "digits MLP (notes): lr 0.05 -> 0.61/0.79, lr 0.2 -> 0.22/0.35, "
                "no collapse without weight decay",
                "ok": None,
            }
        )
    tsr = results["teacher_student"]
    sig = sorted(tsr, key=float)
    lo, hi = tsr[sig[0]], tsr[sig[-1]]
    out.append(
        {
            "name": f"teacher-student test MSE sigma={sig[0]} -> {sig[-1]}",
            "value": f"{lo['test_mse']:.4g} -> {hi['test_mse']:.4g} "
            f"(collapsed modes {lo['collapsed_modes']:.0f} -> {hi['collapsed_modes']:.0f})",
            "paper": "test MSE falls ~40% from sigma 0 to 20; collapsed modes 1 -> 47 of 64",
            "ok": bool(hi["test_mse"] < lo["test_mse"] and hi["collapsed_modes"] > lo["collapsed_modes"]),
        }
    )
    for d, v in sorted(results["large_lr"].items(), key=lambda kv: int(kv[0])):
        out.append(
            {
                "name": f"large lr early, {d} steps: test acc / independent fraction",
                "value": f"{v['test_acc']:.3f} / "
                + " / ".join(f"{x:.2f}" for x in np.asarray(v["independent_fraction"])),
                "paper": "VGG-16: longer high-lr phase -> higher accuracy, fewer independent",
                "ok": None,
            }
        )
    return out
