"""Training groups of the collapse sweeps: which runs exist (hyperparameter rows per setting), which runs share one
compiled call (a static task: architecture, batch size, full batch or not), and the driver that trains a group.

A *row* is one run: ``{"seed", "lr", "lr_late", "switch", "weight_decay", "label_noise"}`` (``train.HPARAMS`` plus
the seed; the key of a run is ``jax.random.key(seed)``, so an SGD run and its full-batch control with the same seed
start from the same initial network). A *setting* is a named set of rows (the seeds of one point of a figure).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging

from collapse import invariant_sets as inv
from collapse import train
from common import app, data, metrics, train_loop


@dataclasses.dataclass
class Group:
    """One compiled sweep: ``rows`` trained together for ``num_steps`` on the static task of (arch, batch,
    widths, full_batch); ``settings`` maps setting names (``"lr=0.1"``) to row indices."""

    name: str
    arch: str
    rows: list[dict]
    settings: dict[str, list[int]]
    batch_size: int
    widths: tuple[int, ...]
    num_steps: int
    full_batch: bool = False
    warmup_steps: int | None = None  # None: train.warmup_steps (main architecture only)


def resnet_options(config: ml_collections.ConfigDict) -> dict[str, Any]:
    """ResNet-only fields, absent from the MLP/CNN configs (defaults: ResNet-18 blocks, exact neurons)."""
    return {
        "blocks": config.net.get("blocks", 2),
        "scheme": config.net.get("resnet_neurons", "exact"),
        "norm_params": bool(config.net.get("resnet_norm_params", True)),
        "warmup_steps": int(config.train.get("warmup_steps", 0)),
        "augment": bool(config.train.get("augment", False)),
    }


def thresholds(config: ml_collections.ConfigDict) -> dict[str, Any]:
    """The invariant-set detection options (the paper's thresholds, the ResNet neuron scheme)."""
    opts = resnet_options(config)
    return {
        "vanish_threshold": float(config.net.vanish_threshold),
        "identical_threshold": float(config.net.identical_threshold),
        "scheme": opts["scheme"],
        "norm_params": opts["norm_params"],
    }


def load(config: ml_collections.ConfigDict) -> tuple[data.Dataset, tuple[np.ndarray, ...]]:
    """The training set and ``(x_train, y_train, x_test, y_test)``; a missing data set is a one-line error."""
    try:
        tr = data.load(config.data.name, "train", allow_fallback=config.data.allow_fallback)
        te = data.load(config.data.name, "test", allow_fallback=config.data.allow_fallback)
    except data.DataUnavailable as e:
        raise app.UserError(f"data.name: {e}") from e
    logging.info("data: %s (%d train, %d test)", tr.source, len(tr.y), len(te.y))
    if not np.all(np.isfinite(tr.x)) or not np.all(np.isfinite(te.x)):
        raise app.UserError(f"data.name: {config.data.name} has non-finite inputs")
    return tr, (tr.x, tr.y, te.x, te.y)


def make_task(config: ml_collections.ConfigDict, ds: data.Dataset, group: Group) -> train.Task:
    """The static task of a group (the CNN options only for a CNN of the main architecture)."""
    cnn = group.arch == "cnn" and config.net.arch == "cnn"
    opts = resnet_options(config)
    return train.Task(
        arch=group.arch,
        widths=tuple(int(w) for w in group.widths),
        num_classes=int(ds.num_classes),
        input_shape=tuple(int(d) for d in ds.x.shape[1:]),
        batch_size=int(group.batch_size),
        act=config.net.act,
        momentum=float(config.net.momentum),
        maxpool_after=tuple(config.net.maxpool_after) if cnn else (),
        dense_head=tuple(config.net.dense_head) if cnn else (),
        blocks=int(opts["blocks"]),
        warmup_steps=_warmup(config, group, opts),
        augment=opts["augment"],
        full_batch=group.full_batch,
    )


def _warmup(config: ml_collections.ConfigDict, group: Group, opts: dict[str, Any]) -> int:
    """The group's own warmup (the noise sweep's), else train.warmup_steps for the main architecture."""
    if group.warmup_steps is not None:
        return int(group.warmup_steps)
    return opts["warmup_steps"] if group.arch == config.net.arch else 0


def row(config: ml_collections.ConfigDict, lr: float, wd: float, ln: float, seed: int | None = None) -> dict:
    """A constant-lr run (no switch within ``train.num_steps``)."""
    return {
        "seed": config.seed if seed is None else int(seed),
        "lr": float(lr),
        "lr_late": float(lr),
        "switch": float(config.train.num_steps + 1),
        "weight_decay": float(wd),
        "label_noise": float(ln),
    }


def main_settings(config: ml_collections.ConfigDict) -> tuple[list[dict], dict[str, list[int]]]:
    """Unique hyperparameter rows of the main (base batch size) sweep, and setting name -> row indices."""
    s, ll = config.sweep, config.large_lr
    rows: list[dict] = []
    settings: dict[str, list[int]] = {}
    never = float(config.train.num_steps + 1)

    def add(name: str, lr: float, wd: float, ln: float, lr_late: float | None = None, switch=never):
        for seed in range(config.train.num_seeds):
            r = dict(row(config, lr, wd, ln, config.seed + seed), lr_late=float(lr if lr_late is None else lr_late))
            r["switch"] = float(switch)
            if r["switch"] <= 0:  # no high-lr phase: the same run as lr_late throughout
                r.update(lr=r["lr_late"], switch=never)
            if r not in rows:
                rows.append(r)
            settings.setdefault(name, []).append(rows.index(r))

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


def sweep_groups(config: ml_collections.ConfigDict) -> list[Group]:
    """The main group, one group per extra batch size, and the digits CNN when enabled (all SGD)."""
    arch, s = config.net.arch, config.sweep
    rows, settings = main_settings(config)
    widths, steps = tuple(config.net.widths), int(config.train.num_steps)
    groups = [Group("main", arch, rows, settings, int(config.train.batch_size), widths, steps)]
    base = row(config, s.base_lr, s.base_weight_decay, 0.0)
    for b in s.batch_sizes:
        if b != config.train.batch_size:
            brows = [dict(base, seed=config.seed + i) for i in range(s.batch_num_seeds)]
            groups.append(
                Group(f"batch{b}", arch, brows, {f"batch={b}": list(range(len(brows)))}, int(b), widths, steps)
            )
    if config.cnn.enabled and arch == "mlp":
        c = config.cnn
        crows = [row(config, lr, s.base_weight_decay, 0.0, config.seed + i) for lr in c.lrs for i in range(c.num_seeds)]
        csets = {f"lr={lr:g}": list(range(j * c.num_seeds, (j + 1) * c.num_seeds)) for j, lr in enumerate(c.lrs)}
        groups.append(Group("cnn", "cnn", crows, csets, int(config.train.batch_size), tuple(c.widths), c.num_steps))
    return groups


def gd_row(r: dict, gd_steps: int) -> dict:
    """The noise-free control of an SGD row: same lr schedule, weight decay and expected loss (label noise as soft
    targets), full batch."""
    switch = r["switch"] if r["switch"] < gd_steps else float(gd_steps + 1)
    lr = r["lr"] if r["switch"] > 0 else r["lr_late"]
    return {
        "seed": r["seed"],
        "lr": lr,
        "lr_late": r["lr_late"] if switch <= gd_steps else lr,
        "switch": switch,
        "weight_decay": r["weight_decay"],
        "label_noise": r["label_noise"],
    }


def noise_groups(config: ml_collections.ConfigDict) -> list[Group]:
    """The noise-scale sweep: SGD at every (lr, batch) point of the lr axis (batch ``lr_axis_batch``) and the batch
    axis (lr ``batch_axis_lr``), ``num_seeds`` seeds each, one group per batch size; and the noise-free control,
    full-batch GD at every lr for the same number of steps (``gd_num_seeds`` seeds; the batch axis shares the
    control of its lr). Every run, SGD and control, has the sweep's label noise ``noise.label_noise`` (the
    control on the expected loss: soft targets) and linear lr warmup ``noise.warmup_steps``. Setting names:
    ``"lr=0.1 batch=8"``; the control's ``"lr=0.1"``."""
    n = config.noise
    steps, widths, arch = int(n.num_steps), tuple(config.net.widths), config.net.arch
    ln = float(n.get("label_noise", 0.0))
    warm = int(n.get("warmup_steps", 0))  # SGD and its control alike (the same lr schedule)
    points = [(float(lr), int(n.lr_axis_batch)) for lr in n.lrs]
    points += [(float(n.batch_axis_lr), int(b)) for b in n.batch_sizes if int(b) != int(n.lr_axis_batch)]
    groups = []
    for b in sorted({p[1] for p in points}):
        rows, settings = [], {}
        for lr, _ in [p for p in points if p[1] == b]:
            seeds = [config.seed + i for i in range(n.num_seeds)]
            settings[f"lr={lr:g} batch={b}"] = list(range(len(rows), len(rows) + len(seeds)))
            rows += [dict(row(config, lr, n.weight_decay, ln, s), switch=float(steps + 1)) for s in seeds]
        groups.append(Group(f"noise_b{b}", arch, rows, settings, b, widths, steps, warmup_steps=warm))
    rows, settings = [], {}
    for lr in n.lrs:
        seeds = [config.seed + i for i in range(n.gd_num_seeds)]
        settings[f"lr={lr:g}"] = list(range(len(rows), len(rows) + len(seeds)))
        rows += [dict(row(config, lr, n.weight_decay, ln, s), switch=float(steps + 1)) for s in seeds]
    groups.append(
        Group("noise_gd", arch, rows, settings, int(config.train.batch_size), widths, steps, True, warmup_steps=warm)
    )
    return groups


def train_group(
    group: Group,
    task: train.Task,
    arrays: tuple[np.ndarray, ...],
    config: ml_collections.ConfigDict,
    workdir: str,
    writer: metrics.MetricWriter,
) -> dict[str, Any]:
    """Trains ``group.rows`` as one sweep through :func:`common.train_loop.train`; at every checkpoint each run's
    train loss, test accuracy and per-layer independent / vanishing / merged fractions go to ``metrics.jsonl``
    (run ``"<group>/<r>"``, labelled with the run's seed and hyperparameters).

    Returns ``{"state": final state (host, one row per run), "acc": [R], "parts": [R, layers, 3] (independent,
    vanishing, merged), "history": {step: {"acc": [R], "parts": [R, layers, 3]}}}`` (the history includes the
    rows of earlier invocations, so a resumed run has it too)."""
    rows = group.rows
    th = thresholds(config)

    def on_chunk(ctx: train_loop.ChunkContext) -> dict[str, np.ndarray]:
        parts = inv.collapse_fractions_batched(ctx.to_host(ctx.state["params"]), **th)
        return {
            "independent_fraction": parts[..., 0],
            "vanishing_fraction": parts[..., 1],
            "merged_fraction": parts[..., 2],
        }

    chunk = int(config.train.chunk_steps)
    res = train_loop.train(
        name=group.name,
        init=init_one,
        chunk=chunk_one,
        static=(task, chunk),
        keys=jax.vmap(jax.random.key)(jnp.asarray([r["seed"] for r in rows], jnp.uint32)),
        hparams={k: np.array([r[k] for r in rows], np.float32) for k in train.HPARAMS},
        shared=tuple(arrays),
        num_steps=group.num_steps,
        chunk_steps=chunk,
        workdir=workdir,
        writer=writer,
        labels=[{k: r[k] for k in ("seed", *train.HPARAMS)} for r in rows],
        on_chunk=on_chunk,
        max_runs_per_call=int(config.train.get("max_runs_per_call", 0)),
    )
    hist = _by_step(res.history)
    parts = inv.collapse_fractions_batched(res.state["params"], **th)
    acc = hist[group.num_steps]["acc"] if group.num_steps in hist else np.full(len(rows), np.nan)
    for r in range(len(rows)):
        logging.info("%s run %d %s: test acc %.4f, independent %s", group.name, r, rows[r], acc[r], parts[r, :, 0])
    return {"state": res.state, "acc": acc, "parts": parts, "history": hist}


def init_one(task: train.Task, chunk_steps: int, key: jax.Array, hp: dict) -> dict:
    """One run's initial state (``chunk_steps`` is part of the static key only)."""
    del chunk_steps
    return train.init_state(task, key, hp)


def chunk_one(task: train.Task, chunk_steps: int, state: dict, hp: dict, shared: tuple, start: jax.Array):
    """One run advanced by ``chunk_steps`` SGD steps; metrics: mean train loss, the first non-finite step and the
    test accuracy at the chunk's end."""
    x, y, x_test, y_test = shared
    state, m = train.run_steps(task, state, hp, (x, y), start, chunk_steps)
    m["test_acc"] = train.accuracy(task, state["params"], x_test, y_test, state.get("stats"))
    return state, m


def _by_step(history: dict[str, np.ndarray]) -> dict[int, dict[str, np.ndarray]]:
    """The driver's history ({"step": [T], name: [T, R, ...]}) as step -> {"acc": [R], "parts": [R, layers, 3]}."""
    keys = ("independent_fraction", "vanishing_fraction", "merged_fraction")
    if not all(k in history for k in (*keys, "test_acc")):
        return {}
    return {
        int(t): {
            "acc": np.asarray(history["test_acc"][i], float),
            "parts": np.stack([np.asarray(history[k][i], float) for k in keys], axis=-1),
        }
        for i, t in enumerate(history["step"])
    }
