"""Training the classifiers whose class manifolds are measured: one run's init and chunk, for `common.train_loop`.

`init_run(task, chunk_steps, key, hp)` and `chunk_run(task, chunk_steps, state, hp, shared, start)` describe ONE
run; the driver vmaps them over a group's runs. Traced per-run hyperparameters (`HPARAMS`):
  - `lr`: Adam's learning rate (held in the optimizer state, `common.nn.per_run_lr`);
  - `train_size`: minibatches come from the run's own random subset of `train_size` training images (a
    permutation drawn from the run's key, so seeds see different subsets);
  - `stop_step`: the parameters stop changing after this many steps (training sets of different sizes trained
    for the same number of epochs inside one vmapped group);
  - `random_labels`: 1.0 trains on a fixed random relabelling of the training set;
  - `width`: an MLP's hidden units beyond `width` (of the task's `widths[0]`) start with zero weights in and out,
    so they get zero gradients and stay zero: the function is exactly the width-`width` MLP, initialised with
    fan-in `width` in the output layer;
  - `weight_decay`: an L2 penalty ½·wd·‖W‖² on the convolution kernels (the released training's rule: only
    kernels with more than two axes are decayed).
`shared` = (x [N, D], y [N], y_random [N]). Minibatches come from `fold_in(key, step)`, so a run resumes bit for bit
at any chunk boundary. The parameters after each of `task.snap_steps` steps (0: the initialisation) are kept in
the state (`snaps`) for d* over training.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from common import checkpoint, nn
from manifolds import models

HPARAMS = ("lr", "train_size", "stop_step", "random_labels", "width", "weight_decay")
TX = nn.per_run_lr(optax.adam)
# fold_in purposes of a run's key
_INIT, _DATA_ORDER, _BATCHES = 0, 1, 2


@dataclasses.dataclass(frozen=True)
class Task:
    """Static shape of a group of runs: architecture, widths, image shape, classes, batch size, snapshots."""

    arch: str  # "mlp", "cnn" or "resnet" (widths: blocks per stage, base width)
    widths: tuple[int, ...]
    image_shape: tuple[int, int, int]
    num_classes: int
    batch_size: int
    num_train: int
    snap_steps: tuple[int, ...] = ()

    @property
    def dim(self) -> int:
        return int(np.prod(self.image_shape))

    @property
    def apply(self):
        if self.arch == "resnet":  # widths = (blocks per stage, base width)
            return models.ResNet(self.image_shape, *self.widths)
        return models.mlp_apply if self.arch == "mlp" else models.CNN(self.image_shape)

    def init(self, key: jax.Array) -> models.Params:
        if self.arch == "mlp":
            return models.init_mlp(key, (self.dim, *self.widths, self.num_classes))
        if self.arch == "resnet":
            return self.apply.init(key, self.num_classes)
        return models.init_cnn(key, self.image_shape[-1], self.widths, self.num_classes)


def init_run(task: Task, chunk_steps: int, key: jax.Array, hp: dict[str, jax.Array]) -> dict[str, Any]:
    """{"params", "opt", "key", "order"} (+ "snaps": one slot per snapshot step and a last scratch slot)."""
    del chunk_steps
    params = task.init(jax.random.fold_in(key, _INIT))
    if task.arch == "mlp" and len(task.widths) == 1:
        params = mask_width(params, hp["width"])
    order = jax.random.permutation(jax.random.fold_in(key, _DATA_ORDER), task.num_train).astype(jnp.int32)
    batches = jax.random.key_data(jax.random.fold_in(key, _BATCHES))
    state = {"params": params, "opt": TX.init(params), "key": batches, "order": order}
    if task.snap_steps:
        n = len(task.snap_steps) + 1
        state["snaps"] = jax.tree.map(lambda p: jnp.broadcast_to(p, (n, *p.shape)), params)
    return state


def mask_width(params: models.Params, width: jax.Array) -> models.Params:
    """A one-hidden-layer MLP reduced to its first `width` hidden units (the others zero in and out), with the
    output layer rescaled to the fan-in `width` (PyTorch-default init of the narrower net)."""
    wmax = params[0]["w"].shape[1]
    width = jnp.minimum(width, wmax)
    keep = (jnp.arange(wmax) < width).astype(params[0]["w"].dtype)
    scale = jnp.sqrt(wmax / width)
    return [
        {"w": params[0]["w"] * keep, "b": params[0]["b"] * keep},
        {"w": params[1]["w"] * keep[:, None] * scale, "b": params[1]["b"] * scale},
    ]


def _snapshot(task: Task, snaps: Any, params: Any, steps_done: jax.Array) -> Any:
    """Writes `params` into the slot of `steps_done` if it is a snapshot step (else into the scratch slot)."""
    table = jnp.asarray(task.snap_steps, jnp.int32)
    j = jnp.searchsorted(table, steps_done)
    hit = (j < len(task.snap_steps)) & (table[jnp.minimum(j, len(task.snap_steps) - 1)] == steps_done)
    slot = jnp.where(hit, j, len(task.snap_steps))
    return jax.tree.map(lambda s, p: s.at[slot].set(p), snaps, params)


def _loss(task: Task, params, x, y, weight_decay):
    logits = task.apply(params, x)
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
    kernels = [w for w in jax.tree.leaves(params) if w.ndim > 2]
    penalty = 0.5 * weight_decay * sum(jnp.sum(w * w) for w in kernels) if kernels else 0.0
    return loss + penalty, (loss, jnp.mean(jnp.argmax(logits, -1) == y))


def chunk_run(task: Task, chunk_steps: int, state, hp, shared, start):
    """(state, {"loss", "train_acc", first_nonfinite}) after `chunk_steps` more steps (`checkpoint.guarded_scan`)."""
    x, y, y_rand = shared
    key = jax.random.wrap_key_data(state["key"])
    n = jnp.clip(hp["train_size"], 1, x.shape[0]).astype(jnp.int32)

    def step(carry, t):
        params, opt, snaps = carry
        idx = state["order"][jax.random.randint(jax.random.fold_in(key, t), (task.batch_size,), 0, n)]
        yb = jnp.where(hp["random_labels"] > 0.5, y_rand[idx], y[idx])
        grad_fn = jax.value_and_grad(lambda p: _loss(task, p, x[idx], yb, hp["weight_decay"]), has_aux=True)
        (_, (loss, acc)), g = grad_fn(params)
        opt = nn.set_lr(opt, jnp.where(t < hp["stop_step"], hp["lr"], 0.0))
        updates, opt = TX.update(g, opt, params)
        params = optax.apply_updates(params, updates)
        if task.snap_steps:
            snaps = _snapshot(task, snaps, params, t + 1)
        return (params, opt, snaps), {"loss": loss, "acc": acc}

    carry = (state["params"], state["opt"], state.get("snaps"))
    (params, opt, snaps), outs, bad = checkpoint.guarded_scan(step, carry, start, chunk_steps)
    new = {**state, "params": params, "opt": opt}
    if task.snap_steps:
        new["snaps"] = snaps
    return new, {"loss": outs["loss"].mean(), "train_acc": outs["acc"].mean(), checkpoint.NONFINITE: bad}


def accuracy(apply, params: models.Params, x: jax.Array, y: jax.Array) -> jax.Array:
    """Fraction of `x` classified as `y`."""
    return jnp.mean(jnp.argmax(apply(params, x), axis=-1) == y)


def corrupted_accuracy(apply, params, x: jax.Array, y: jax.Array, sigma: float, key: jax.Array) -> jax.Array:
    """Accuracy on `x` plus Gaussian noise of standard deviation `sigma` (one fixed draw from `key`)."""
    return accuracy(apply, params, x + sigma * jax.random.normal(key, x.shape), y)
