"""The data and the trained models of a run: which groups of runs are trained, through `common.train_loop`.

Groups (each one vmapped, checkpointed sweep): "mlp" (the main width: seeds on true labels with snapshots over
training, seeds on random labels, seeds per smaller training set), "mlp_widths" (the other widths as one group of
masked MLPs of the largest width), "ensemble" (a pool of MLPs, each on its own random subset of the training set),
"cnn" and one group per ResNet / WideResNet of `resnet.models` ("resnet_<label>"). `train_models` returns every
trained model as a `Model` (host parameters, test accuracy, labels).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import numpy as np
from absl import logging

from common import app, data, sweep, train_loop
from manifolds import train

# fold_in purposes of the run's root key
_GROUPS = {"mlp": 0, "mlp_widths": 1, "ensemble": 2, "cnn": 3}
_RANDOM_LABELS, _RANDOM_TEST_LABELS = 0, 1


@dataclasses.dataclass
class Model:
    """One trained network: `apply(params, x)`, host parameters, its labels and test accuracy."""

    name: str
    apply: Any
    params: Any
    test_acc: float
    labels: dict
    snaps: Any = None  # parameters at `over_training.steps`, stacked (the main true-label runs)


def load_data(config) -> dict[str, Any]:
    """Flattened train/test arrays, random labels, and the checks a user's data set must pass."""
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
    if config.data.subtract_mean:
        mean = x.mean(axis=0)
        x, xt = x - mean, xt - mean
    y_rand = np.random.default_rng([config.seed, _RANDOM_LABELS]).integers(0, n_classes, len(tr.y))
    yt_rand = np.random.default_rng([config.seed, _RANDOM_TEST_LABELS]).integers(0, n_classes, len(te.y))
    logging.info("data: %s (%d train, %d test, D=%d)", tr.source, len(tr.y), len(te.y), dim)
    return {
        "x": x.astype(np.float32),
        "y": tr.y.astype(np.int32),
        "y_rand": y_rand.astype(np.int32),
        "xt": xt.astype(np.float32),
        "yt": te.y.astype(np.int32),
        "yt_rand": yt_rand.astype(np.int32),
        "shape": tuple(int(s) for s in tr.x.shape[1:]),
        "classes": n_classes,
        "dim": dim,
        "source": tr.source,
    }


def _hp(config, n_full: int, **kw) -> dict[str, float]:
    row = {"lr": float(config.train.lr), "train_size": float(n_full), "stop_step": float(config.train.num_steps)}
    row |= {"random_labels": 0.0, "width": 1e9, "weight_decay": float(config.train.weight_decay)}
    return row | {k: float(v) for k, v in kw.items()}


def _test_acc(task, params, x, y):
    return train.accuracy(task.apply, params, x, y)


def _train_group(name: str, task: train.Task, rows: list[dict], ds: dict, config, workdir, writer,
                 purpose: int | None = None) -> list[Model]:  # fmt: skip
    """Trains `rows` ({"labels": ..., "hp": ...} each) as one vmapped, checkpointed group; one Model per row."""
    purpose = _GROUPS[name] if purpose is None else purpose
    keys = jax.random.split(jax.random.fold_in(jax.random.key(config.seed), purpose), len(rows))
    res = train_loop.train(
        name=name,
        init=train.init_run,
        chunk=train.chunk_run,
        static=(task, int(config.train.chunk_steps)),
        keys=keys,
        hparams={k: np.array([r["hp"][k] for r in rows], np.float32) for k in train.HPARAMS},
        shared=(ds["x"], ds["y"], ds["y_rand"]),
        num_steps=int(config.train.num_steps),
        chunk_steps=int(config.train.chunk_steps),
        workdir=workdir,
        writer=writer,
        labels=[r["labels"] for r in rows],
    )
    acc_fn = sweep.vmapped(_test_acc, in_axes=(0, None, None), static=(task,))
    acc = sweep.to_numpy(acc_fn(res.state["params"], ds["xt"], ds["yt"]), len(rows))
    acc_rand = sweep.to_numpy(acc_fn(res.state["params"], ds["xt"], ds["yt_rand"]), len(rows))
    out = []
    for i, r in enumerate(rows):
        random_test = r["hp"]["random_labels"] > 0.5 and config.data.random_test_labels
        labels = dict(r["labels"])
        params = jax.tree.map(lambda a, i=i: np.asarray(a[i]), res.state["params"])
        m = Model(
            f"{name}/{labels.pop('name')}", task.apply, params, float((acc_rand if random_test else acc)[i]), labels
        )
        if "snaps" in res.state and labels["kind"] == "true":
            m.snaps = jax.tree.map(lambda a, i=i: np.asarray(a[i]), res.state["snaps"])
        logging.info("%s: test acc %.4f", m.name, m.test_acc)
        out.append(m)
    return out


def _main_rows(config, n_full: int) -> list[dict]:
    t = config.train
    rows = []
    for s in range(t.num_seeds):
        rows.append({"labels": {"name": f"true{s}", "seed": s, "kind": "true"}, "hp": _hp(config, n_full)})
    for s in range(t.num_seeds):
        hp = _hp(config, n_full, lr=t.random_label_lr, random_labels=1.0)
        rows.append({"labels": {"name": f"random{s}", "seed": s, "kind": "random"}, "hp": hp})
    for n in (n for n in t.train_sizes if n < n_full):
        stop = max(1, round(t.num_steps * n / n_full)) if t.equal_epochs else t.num_steps
        for s in range(t.num_seeds):
            labels = {"name": f"size{n}_{s}", "seed": s, "kind": "train_size", "train_size": n}
            rows.append({"labels": labels, "hp": _hp(config, n_full, train_size=n, stop_step=stop)})
    return rows


def train_models(config, ds: dict, workdir: str, writer) -> dict[str, list[Model]]:
    """Every group of the config, trained (or restored from its checkpoints)."""
    n_full, t = len(ds["y"]), config.train
    shape, c, b = ds["shape"], ds["classes"], int(t.batch_size)
    snaps = tuple(int(s) for s in config.over_training.steps)
    main_task = train.Task("mlp", (int(config.mlp.width),), shape, c, b, n_full, snaps)
    out = {"mlp": _train_group("mlp", main_task, _main_rows(config, n_full), ds, config, workdir, writer)}
    widths = [int(w) for w in config.mlp.widths if w != config.mlp.width]
    if widths:
        task = train.Task("mlp", (max(widths),), shape, c, b, n_full)
        rows = [
            {
                "labels": {"name": f"width{w}_{s}", "seed": s, "kind": "width", "width": w},
                "hp": _hp(config, n_full, width=w),
            }
            for w in widths
            for s in range(t.num_seeds)
        ]
        out["mlp_widths"] = _train_group("mlp_widths", task, rows, ds, config, workdir, writer)
    if config.ensemble.members:
        n_sub = max(1, round(config.ensemble.train_fraction * n_full))
        pool = t.num_seeds * max(config.ensemble.members)
        rows = [
            {"labels": {"name": f"member{i}", "seed": i, "kind": "member"}, "hp": _hp(config, n_full, train_size=n_sub)}
            for i in range(pool)
        ]
        task = dataclasses.replace(main_task, snap_steps=())
        out["ensemble"] = _train_group("ensemble", task, rows, ds, config, workdir, writer)
    if config.cnn.enabled:
        task = train.Task("cnn", tuple(int(ch) for ch in config.cnn.channels), shape, c, b, n_full)
        rows = [{"labels": {"name": "cnn0", "seed": 0, "kind": "cnn"}, "hp": _hp(config, n_full)}]
        out["cnn"] = _train_group("cnn", task, rows, ds, config, workdir, writer)
    for i, (label, blocks, width) in enumerate(config.resnet.models):  # one group per architecture
        task = train.Task("resnet", (int(blocks), int(width)), shape, c, b, n_full)
        rows = [
            {"labels": {"name": f"{label}_{s}", "seed": s, "kind": "resnet", "arch": label}, "hp": _hp(config, n_full)}
            for s in range(t.num_seeds)
        ]
        out[f"resnet_{label}"] = _train_group(f"resnet_{label}", task, rows, ds, config, workdir, writer, 4 + i)
    return out
